"""Pairwise ranking losses over every pair of a batch (ranking paper §2, Eqs. 1–3).

For task t and discs i, j of a batch, with scores s (B, T) and grades y (B, T)
(−1 = missing), the pair quantities are (B, B, T) tensors built by broadcasting:

    Δs_ij = s_i − s_j,    d_ij = y_i − y_j,    r_ij = sign(d_ij)
    w_ij  = |d_ij| · S / (K_t − 1)                                   (Eq. 3)
    m_ij  = m_base + m_scale · w_ij / S                              (adaptive margin)
    L_hinge^t = mean over pairs with d_ij ≠ 0 of  w_ij · max(0, m_ij − r_ij Δs_ij)²
    L_sim^t   = mean over pairs with d_ij = 0 of  (Δs_ij)²           (Eq. 1, unweighted)
    L = Σ_t λ_dis L_hinge^t + λ_sim L_sim^t                          (Eq. 2)

Only pairs i < j where both grades are present count. With ``hard_fraction``
set, a share ``pair_fraction`` of each task's available pairs is kept:
``hard_fraction`` of them with the largest cost (hard-negative mining) and
the rest drawn uniformly from the remaining pairs; selection is done with
sorts over the pair axis, never a Python loop over pairs.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F


def _pairs(scores: torch.Tensor, grades: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(Δs, d, valid): (B, B, T) score and grade differences, and the mask of counted pairs (i < j, both graded)."""
    if scores.shape != grades.shape or scores.dim() != 2:
        raise ValueError(f"scores and grades must both be (B, T); got {tuple(scores.shape)} and {tuple(grades.shape)}")
    delta_s = scores[:, None, :] - scores[None, :, :]
    d = (grades[:, None, :] - grades[None, :, :]).to(scores.dtype)
    graded = grades >= 0
    b = scores.shape[0]
    upper = torch.triu(torch.ones(b, b, dtype=torch.bool, device=scores.device), diagonal=1)
    valid = graded[:, None, :] & graded[None, :, :] & upper[:, :, None]
    return delta_s, d, valid


def select_pairs(cost: torch.Tensor, valid: torch.Tensor, hard_fraction: float | None,
                 pair_fraction: float = 0.5) -> torch.Tensor:
    """Mask of the pairs that enter the loss: all valid pairs, or a mined subset per task.

    ``cost`` and ``valid`` are (B, B, T). Per task with n valid pairs, keep
    k = ceil(pair_fraction · n): the ceil(hard_fraction · k) costliest, then
    k − that many drawn uniformly (torch's global RNG) from the other valid pairs.
    """
    if hard_fraction is None:
        return valid
    if not (0.0 <= hard_fraction <= 1.0 and 0.0 < pair_fraction <= 1.0):
        raise ValueError(f"need 0 <= hard_fraction <= 1 and 0 < pair_fraction <= 1, got {hard_fraction}, "
                         f"{pair_fraction}")
    b, _, t = cost.shape
    flat_valid = valid.reshape(b * b, t).T                                   # (T, P)
    flat_cost = cost.detach().reshape(b * b, t).T.masked_fill(~flat_valid, -math.inf)
    n_valid = flat_valid.sum(dim=1)
    n_keep = torch.ceil(n_valid * pair_fraction)
    n_hard = torch.ceil(n_keep * hard_fraction).minimum(n_keep)
    positions = torch.arange(flat_cost.shape[1], device=cost.device).expand_as(flat_cost)

    def ranks(keys: torch.Tensor) -> torch.Tensor:
        order = keys.argsort(dim=1, descending=True, stable=True)
        return torch.empty_like(order).scatter_(1, order, positions)

    hard = (ranks(flat_cost) < n_hard[:, None]) & flat_valid
    keys = torch.rand(flat_cost.shape, device=cost.device).masked_fill(~flat_valid | hard, -1.0)
    rest = (ranks(keys) < (n_keep - n_hard)[:, None]) & flat_valid & ~hard
    return (hard | rest).T.reshape(b, b, t)


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-task mean of ``values`` over ``mask`` (B, B, T) → (T,); 0 for a task without such pairs."""
    total = (values * mask).sum(dim=(0, 1))
    return total / mask.sum(dim=(0, 1)).clamp(min=1)


def _reduce(per_task: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "sum":
        return per_task.sum()
    if reduction == "mean":
        return per_task.mean()
    raise ValueError(f"reduction must be 'sum' (paper) or 'mean' (released code), got {reduction!r}")


def pairwise_hinge_loss(scores: torch.Tensor, grades: torch.Tensor, num_grades: Sequence[int], *,
                        scale: float = 10.0, m_base: float = 0.5, m_scale: float = 1.5, severity_weight: bool = True,
                        adaptive_margin: bool = True, margin: float = 1.0, lambda_dis: float = 1.0,
                        lambda_sim: float = 0.25, hard_fraction: float | None = None, pair_fraction: float = 0.5,
                        reduction: str = "sum") -> torch.Tensor:
    """Squared-hinge ranking loss with optional severity weight, adaptive margin and similarity term.

    SpineRankNet is (severity_weight, adaptive_margin) = (True, True); Deep-RankSVM
    is (False, False) with a fixed ``margin``. The component ablations switch one off.
    """
    k = torch.as_tensor(list(num_grades), dtype=scores.dtype, device=scores.device)
    if k.numel() != scores.shape[1] or bool((k < 2).any()):
        raise ValueError(f"num_grades needs one entry >= 2 per task ({scores.shape[1]} tasks), got {list(num_grades)}")
    delta_s, d, valid = _pairs(scores, grades)
    w = d.abs() * scale / (k - 1)
    m = m_base + m_scale * w / scale if adaptive_margin else torch.full_like(w, margin)
    hinge = F.relu(m - torch.sign(d) * delta_s).square()
    if severity_weight:
        hinge = w * hinge
    similar = delta_s.square()
    dis = valid & (d != 0)
    cost = torch.where(dis, hinge, similar)
    chosen = select_pairs(cost, valid, hard_fraction, pair_fraction)
    per_task = lambda_dis * _masked_mean(hinge, chosen & dis)
    if lambda_sim:
        per_task = per_task + lambda_sim * _masked_mean(similar, chosen & ~dis)
    return _reduce(per_task, reduction)


def spineranknet_loss(scores: torch.Tensor, grades: torch.Tensor, num_grades: Sequence[int], *, scale: float = 10.0,
                      m_base: float = 0.5, m_scale: float = 1.5, lambda_dis: float = 1.0, lambda_sim: float = 0.25,
                      hard_fraction: float | None = None, pair_fraction: float = 0.5,
                      reduction: str = "sum") -> torch.Tensor:
    """SpineRankNet (Eqs. 1–3): severity-weighted squared hinge with adaptive margin plus same-grade term.

    ``scores`` (B, T) float, ``grades`` (B, T) long with −1 for missing,
    ``num_grades`` K_t per task. ``hard_fraction=None`` uses every valid pair.
    """
    return pairwise_hinge_loss(scores, grades, num_grades, scale=scale, m_base=m_base, m_scale=m_scale,
                               lambda_dis=lambda_dis, lambda_sim=lambda_sim, hard_fraction=hard_fraction,
                               pair_fraction=pair_fraction, reduction=reduction)


def deep_rank_svm_loss(scores: torch.Tensor, grades: torch.Tensor, num_grades: Sequence[int], *, margin: float = 1.0,
                       lambda_dis: float = 1.0, lambda_sim: float = 0.25, hard_fraction: float | None = None,
                       pair_fraction: float = 0.5, reduction: str = "sum") -> torch.Tensor:
    """Deep-RankSVM: max(0, m − r Δs)² on ordered pairs (fixed margin, unweighted) + λ_sim (Δs)² on equal pairs."""
    return pairwise_hinge_loss(scores, grades, num_grades, severity_weight=False, adaptive_margin=False,
                               margin=margin, lambda_dis=lambda_dis, lambda_sim=lambda_sim,
                               hard_fraction=hard_fraction, pair_fraction=pair_fraction, reduction=reduction)


def ranknet_loss(scores: torch.Tensor, grades: torch.Tensor, num_grades: Sequence[int] | None = None, *,
                 sigma: float = 1.0, hard_fraction: float | None = None, pair_fraction: float = 0.5,
                 reduction: str = "sum") -> torch.Tensor:
    """RankNet: mean over ordered pairs of −log σ(σ_s · r_ij Δs_ij) = softplus(−σ_s r_ij Δs_ij), per task."""
    delta_s, d, valid = _pairs(scores, grades)
    dis = valid & (d != 0)
    cost = F.softplus(-sigma * torch.sign(d) * delta_s)
    chosen = select_pairs(cost, dis, hard_fraction, pair_fraction)
    return _reduce(_masked_mean(cost, chosen), reduction)
