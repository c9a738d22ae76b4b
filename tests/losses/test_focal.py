"""Weighted focal loss (contrastive paper Eq. 2)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from spinelib.losses.focal import focal_loss

ALPHA = [0.8, 4.0, 5.0]


def test_gamma_zero_is_weighted_cross_entropy_per_sample():
    torch.manual_seed(0)
    logits, target = torch.randn(6, 3), torch.tensor([0, 1, 2, 2, 1, 0])
    reference = F.cross_entropy(logits, target, weight=torch.tensor(ALPHA), reduction="none")
    assert torch.allclose(focal_loss(logits, target, ALPHA, gamma=0.0, reduction="none"), reference, atol=1e-6)
    assert torch.allclose(focal_loss(logits, target, ALPHA, gamma=0.0), reference.mean(), atol=1e-6)
    assert torch.allclose(focal_loss(logits, target, ALPHA, gamma=0.0, reduction="sum"), reference.sum(), atol=1e-5)


def test_matches_formula_by_hand():
    logits, target = torch.tensor([[2.0, 0.0, 0.0]]), torch.tensor([0])
    p = math.exp(2) / (math.exp(2) + 2)
    expected = -0.8 * (1 - p) ** 2 * math.log(p)
    assert focal_loss(logits, target, ALPHA, gamma=2.0).item() == pytest.approx(expected, rel=1e-6)


def test_gamma_down_weights_easy_examples():
    logits, target = torch.tensor([[4.0, 0.0, 0.0], [0.0, 0.5, 0.0]]), torch.tensor([0, 0])
    ce = focal_loss(logits, target, gamma=0.0, reduction="none")
    focal = focal_loss(logits, target, gamma=2.0, reduction="none")
    easy_ratio, hard_ratio = (focal / ce).tolist()
    assert easy_ratio < 0.01 and hard_ratio > 0.4


def test_ignored_targets_not_in_mean():
    torch.manual_seed(1)
    logits = torch.randn(4, 3)
    target = torch.tensor([0, -1, 2, -1])
    per_sample = focal_loss(logits, target, ALPHA, reduction="none")
    assert per_sample[1] == 0 and per_sample[3] == 0
    kept = focal_loss(logits[[0, 2]], target[[0, 2]], ALPHA)
    assert torch.allclose(focal_loss(logits, target, ALPHA), kept)


def test_bad_alpha_and_reduction_raise():
    logits, target = torch.randn(2, 3), torch.tensor([0, 1])
    with pytest.raises(ValueError, match="alpha"):
        focal_loss(logits, target, alpha=[1.0, 2.0])
    with pytest.raises(ValueError, match="reduction"):
        focal_loss(logits, target, reduction="average")
