"""Multi-positive NT-Xent (contrastive paper Eq. 3 and 5) against hand-written references."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from spinelib.losses.contrastive import multi_positive_nt_xent


def _cos(a, b) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_small_example_by_hand():
    # five 2-D vectors, groups {0, 1, 2} and {3, 4}: anchors 0-2 have two positives, 3-4 one.
    angles = [0.0, 0.3, -0.2, 2.0, 2.5]
    z = np.array([[3 * math.cos(a), 3 * math.sin(a)] for a in angles])
    groups = [0, 0, 0, 1, 1]
    tau = 0.5
    losses = []
    for i in range(5):
        denominator = sum(math.exp(_cos(z[i], z[k]) / tau) for k in range(5) if k != i)
        positives = [p for p in range(5) if p != i and groups[p] == groups[i]]
        losses.append(-sum(math.log(math.exp(_cos(z[i], z[p]) / tau) / denominator) for p in positives)
                      / len(positives))
    expected = sum(losses) / 5
    got = multi_positive_nt_xent(torch.tensor(z), torch.tensor(groups), temperature=tau)
    assert got.item() == pytest.approx(expected, rel=1e-6)


def _simclr_reference(z1: torch.Tensor, z2: torch.Tensor, tau: float) -> float:
    """SimCLR NT-Xent over 2N views, view i of z1 paired with view i of z2, written with loops."""
    z = torch.cat([z1, z2]).double()
    n = z1.shape[0]
    total = 0.0
    for i in range(2 * n):
        positive = (i + n) % (2 * n)
        sims = [torch.nn.functional.cosine_similarity(z[i], z[k], dim=0).item() / tau for k in range(2 * n)]
        denominator = sum(math.exp(s) for k, s in enumerate(sims) if k != i)
        total += -math.log(math.exp(sims[positive]) / denominator)
    return total / (2 * n)


def test_one_positive_per_anchor_is_simclr():
    torch.manual_seed(0)
    z1, z2 = torch.randn(4, 8), torch.randn(4, 8)
    z = torch.cat([z1, z2])
    groups = torch.cat([torch.arange(4), torch.arange(4)])
    got = multi_positive_nt_xent(z, groups, temperature=0.2)
    assert got.item() == pytest.approx(_simclr_reference(z1, z2, 0.2), rel=1e-5)


def test_invariant_to_scaling_z():
    torch.manual_seed(1)
    z = torch.randn(9, 5)
    groups = torch.arange(3).repeat_interleave(3)
    base = multi_positive_nt_xent(z, groups)
    assert torch.allclose(multi_positive_nt_xent(7.5 * z, groups), base, atol=1e-5)


def test_gradient_finite_for_small_tau_and_large_z():
    torch.manual_seed(2)
    z = (1e4 * torch.randn(12, 16)).requires_grad_()
    loss = multi_positive_nt_xent(z, torch.arange(4).repeat_interleave(3), temperature=0.1)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(z.grad).all()


def test_anchor_without_positive_left_out():
    torch.manual_seed(3)
    z = torch.randn(5, 4)
    with_single = multi_positive_nt_xent(z, torch.tensor([0, 0, 1, 1, 2]))
    assert torch.isfinite(with_single)
    with pytest.raises(ValueError, match="positive"):
        multi_positive_nt_xent(z, torch.arange(5))
