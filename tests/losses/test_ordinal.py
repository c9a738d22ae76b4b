"""Weighted CE, CORN and MAE losses on hand cases."""

import math

import numpy as np
import pytest
import torch

from spinelib.losses import corn_loss, corn_probabilities, inverse_frequency_weights, mae_loss, weighted_cross_entropy


def test_inverse_frequency_weights():
    grades = np.array([[0, 0], [0, 1], [0, -1], [1, 2]])
    w = inverse_frequency_weights(grades, [2, 3])
    assert w[0].tolist() == pytest.approx([4 / (2 * 3), 4 / (2 * 1)])
    assert w[1].tolist() == pytest.approx([3 / 3, 3 / 3, 3 / 3])
    assert inverse_frequency_weights(np.array([[0], [0]]), [3])[0].tolist() == pytest.approx([1 / 3, 0.0, 0.0])


def test_weighted_cross_entropy_skips_missing_and_sums_tasks():
    logits = [torch.zeros(2, 3), torch.zeros(2, 4)]
    grades = torch.tensor([[0, -1], [2, 3]])
    assert weighted_cross_entropy(logits, grades).item() == pytest.approx(math.log(3) + math.log(4))
    only_missing = torch.tensor([[0, -1], [2, -1]])
    assert weighted_cross_entropy(logits, only_missing).item() == pytest.approx(math.log(3))


def test_corn_loss_uses_the_conditional_subsets():
    logits = [torch.zeros(2, 2)]                # K = 3: two conditional tasks
    grades = torch.tensor([[0], [2]])
    # y=0 enters task 0 only; y=2 enters tasks 0 and 1: 3 entries, each BCE = log 2
    assert corn_loss(logits, grades).item() == pytest.approx(math.log(2))
    probs = corn_probabilities(torch.tensor([[0.0, 0.0]]))
    assert probs.tolist() == [[0.5, 0.25]]


def test_mae_loss_in_grade_units():
    scores = torch.tensor([[5.0, 10.0], [0.0, 2.5]])
    grades = torch.tensor([[2, 4], [-1, 0]])
    # task 0 (K=3): |5*2/10 - 2| = 1; task 1 (K=5): |10*4/10 - 4| = 0, |2.5*4/10 - 0| = 1 -> mean 0.5
    assert mae_loss(scores, grades, [3, 5]).item() == pytest.approx(1.5)
