"""The MIL loss: cross-entropy on the bag plus the auxiliary attention term on the key slice."""

from __future__ import annotations

import pytest
import torch

from spinelib.losses.mil import mil_loss


def test_mil_loss_adds_the_auxiliary_term_and_ignores_shifted_bags():
    out = {"logits": torch.tensor([[2.0, 0.0, 0.0]]), "aux_scores": torch.tensor([[0.0, 0.0, 1.0, 0.0, 0.0]])}
    grade = torch.tensor([0])
    ce = torch.nn.functional.cross_entropy(out["logits"], grade)
    aux = torch.nn.functional.cross_entropy(out["aux_scores"], torch.tensor([2]))
    assert mil_loss(out, grade, torch.tensor([2]), 0.5).item() == pytest.approx((ce + 0.5 * aux).item())
    assert mil_loss(out, grade, torch.tensor([-1]), 0.5).item() == pytest.approx(ce.item())
