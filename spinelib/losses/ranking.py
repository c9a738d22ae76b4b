"""Pairwise ranking losses over every pair of a batch (ranking paper §2, Eqs. 1–3).

For task t and discs i, j of a batch, with scores s (B, T) and grades y (B, T)
(−1 = missing), the pair quantities are (B, B, T) tensors built by broadcasting:

    Δs_ij = s_i − s_j,    d_ij = y_i − y_j,    r_ij = sign(d_ij)
    w_ij  = |d_ij| · S / (K_t − 1)                                   (Eq. 3)
    m_ij  = m_base + m_scale · w_ij / S                              (adaptive margin)
    L_hinge^t = mean over pairs with d_ij ≠ 0 of  w_ij · max(0, m_ij − r_ij Δs_ij)²
    L_sim^t   = mean over pairs with d_ij = 0 of  (Δs_ij)²           (Eq. 1, unweighted)
    L = Σ_t λ_dis L_hinge^t + λ_sim L_sim^t                          (Eq. 2)

Only pairs i < j where both grades are present count. Pair selection per task
with n such pairs (``select_pairs``):

    n_keep = n                        if pair_fraction is None else ⌈pair_fraction · n⌉
    n_keep = min(n_keep, pair_budget) if pair_budget is set
    n_hard = ⌈hard_fraction · n_keep⌉ costliest pairs (hard-negative mining),
    n_keep − n_hard drawn uniformly from the other pairs.

``hard_fraction=None`` or n_keep = n uses every pair: with the released code's
budget of 500 pairs and a batch of 32 (496 pairs) nothing is ever mined.
Selection works on the i < j pair list with one top-k (hard share) and one
random order per task (uniform share), never a loop over pairs.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Sequence

import torch
import torch.nn.functional as F


def _pairs(scores: torch.Tensor, grades: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(Δs, d, valid): (B, B, T) score and grade differences, and the mask of counted pairs (i < j, both graded).

    Args:
        scores: s (B, T) float.
        grades: y (B, T) long, −1 for missing.

    Returns:
        Δs[i, j, t] = s_it − s_jt and d[i, j, t] = y_it − y_jt (both (B, B, T), d in scores' dtype), and
        valid (B, B, T) bool. d is meaningless where a grade is missing; ``valid`` masks those pairs.
    """
    if scores.shape != grades.shape or scores.dim() != 2:
        raise ValueError(f"scores and grades must both be (B, T); got {tuple(scores.shape)} and {tuple(grades.shape)}")
    # Broadcasting (B, 1, T) against (1, B, T) gives every ordered pair (i, j) at once.
    delta_s = scores[:, None, :] - scores[None, :, :]
    grade_diff = (grades[:, None, :] - grades[None, :, :]).to(scores.dtype)
    graded = grades >= 0
    batch_size = scores.shape[0]
    # Strict upper triangle: each unordered pair once (i < j), never a disc with itself.
    upper = torch.triu(torch.ones(batch_size, batch_size, dtype=torch.bool, device=scores.device), diagonal=1)
    valid = graded[:, None, :] & graded[None, :, :] & upper[:, :, None]
    return delta_s, grade_diff, valid


def _check_selection(hard_fraction: float | None, pair_fraction: float | None, pair_budget: int | None) -> None:
    """Raise ValueError on a selection setting out of range (before any tensor work)."""
    # bool is a subclass of int in Python: reject True/False explicitly, a YAML typo such as `pair_budget: yes`.
    def is_number(x: object) -> bool:
        return isinstance(x, (int, float)) and not isinstance(x, bool)

    if hard_fraction is not None and not (is_number(hard_fraction) and 0.0 <= hard_fraction <= 1.0):
        raise ValueError(f"hard_fraction must be None (all pairs) or in [0, 1], got {hard_fraction!r}")
    if pair_fraction is not None and not (is_number(pair_fraction) and 0.0 < pair_fraction <= 1.0):
        raise ValueError(f"pair_fraction must be None (no fraction) or in (0, 1], got {pair_fraction!r}")
    if pair_budget is not None and not (isinstance(pair_budget, int) and not isinstance(pair_budget, bool)
                                        and pair_budget >= 1):
        raise ValueError(f"pair_budget must be None (no budget) or an int >= 1, got {pair_budget!r}")


def _largest(keys: torch.Tensor, counts: list[int]) -> torch.Tensor:
    """Mask (R, P) of exactly ``counts[r]`` largest ``keys`` (R, P) of each row r (ties broken by top-k).

    One top-k for all rows: row r gets k − counts[r] sentinels above every key
    (and −∞ fillers up to a common width), so its k largest are the sentinels
    plus its own counts[r] largest. ``sorted=False`` makes top-k a linear-time
    selection instead of a sort.
    """
    rows, width = keys.shape
    k = max(counts)
    if k == 0:
        return torch.zeros_like(keys, dtype=torch.bool)
    # Width of the sentinel block: the row with the fewest picks needs k − min(counts) sentinels.
    pad = k - min(counts)
    if pad:
        shortfall = torch.tensor([k - c for c in counts], device=keys.device)[:, None]    # (R, 1)
        above = torch.arange(pad, device=keys.device) < shortfall                         # (R, pad)
        keys = torch.cat([keys, torch.where(above, math.inf, -math.inf).to(keys.dtype)], dim=1)
    index = keys.topk(k, dim=1, sorted=False).indices
    # Mark the picked columns, then cut the sentinel block off again: only real keys stay in the mask.
    return torch.zeros(keys.shape, dtype=torch.bool, device=keys.device).scatter_(1, index, True)[:, :width]


def _uniform_subset(candidates: torch.Tensor, counts: list[int]) -> torch.Tensor:
    """Mask (R, P) of ``counts[r]`` of row r's ``candidates`` (R, P) bool, drawn uniformly without replacement.

    The first m candidates in a uniform random order are a uniform m-subset:
    one randperm per row (independent rows; R is the number of tasks, not of
    pairs) and a running count, linear in P, where a top-k over random keys is
    about twice as slow.
    """
    rows, width = candidates.shape
    # The randperm calls draw from torch's RNG in row order: keep that order, the draws are part of the result.
    order = torch.stack([torch.randperm(width, device=candidates.device) for _ in range(rows)])   # (R, P)
    shuffled = candidates.gather(1, order)
    # cumsum counts candidates seen so far in the shuffled order: keep the first counts[r] of them.
    first = shuffled & (shuffled.cumsum(dim=1) <= torch.tensor(counts, device=candidates.device)[:, None])
    # Undo the shuffle: the value at shuffled position p belongs to original column order[r, p].
    return torch.empty_like(first).scatter_(1, order, first)


@lru_cache(maxsize=8)
def _upper_pairs(b: int, device: torch.device) -> torch.Tensor:
    """Flat indices i · B + j (P,) of the P = B(B − 1)/2 pairs i < j; cached, as batches repeat one size."""
    i, j = torch.triu_indices(b, b, offset=1, device=device)
    return i * b + j


def select_pairs(cost: torch.Tensor, valid: torch.Tensor, hard_fraction: float | None,
                 pair_fraction: float | None = 0.5, *, pair_budget: int | None = None) -> torch.Tensor:
    """Mask (B, B, T) of the pairs that enter the loss: all valid pairs, or a mined subset per task.

    ``cost`` (B, B, T) float and ``valid`` (B, B, T) bool, valid only where
    i < j. Per task with n valid pairs keep n_keep = ⌈pair_fraction · n⌉ (n if
    ``pair_fraction`` is None), at most ``pair_budget``: the ⌈hard_fraction · n_keep⌉
    costliest, then the rest drawn uniformly (torch's RNG on ``cost``'s device,
    so deterministic under ``torch.manual_seed``) from the other valid pairs.
    ``hard_fraction=None``, or n_keep = n in every task, returns ``valid``.
    """
    _check_selection(hard_fraction, pair_fraction, pair_budget)
    if cost.dim() != 3 or cost.shape[0] != cost.shape[1] or valid.shape != cost.shape or valid.dtype != torch.bool:
        raise ValueError(f"cost must be (B, B, T) and valid a bool mask of its shape; got {tuple(cost.shape)} and "
                         f"{tuple(valid.shape)} {valid.dtype}")
    if hard_fraction is None:
        return valid
    # ---- the i < j pairs as a (T, P) table, one row per task ----
    b, _, t = cost.shape
    # Only the i < j pair list can hold valid pairs: select on it, (T, P) with P = B(B − 1)/2.
    flat = _upper_pairs(b, cost.device)                                        # (P,)
    pair_valid = valid.reshape(b * b, t).index_select(0, flat).T               # (T, P)
    *n_valid, n_marked = torch.cat([pair_valid.count_nonzero(dim=1), valid.count_nonzero()[None]]).tolist()
    # A valid pair outside the upper triangle would be silently dropped by the (T, P) table: refuse it instead.
    if sum(n_valid) != n_marked:
        raise ValueError("valid marks pairs with i >= j; pairs are counted once, as i < j")
    # Per-task counts as T Python ints: exact ceilings, and top-k needs its k on the host anyway.
    n_keep = n_valid if pair_fraction is None else [math.ceil(pair_fraction * n) for n in n_valid]
    if pair_budget is not None:
        n_keep = [min(n, pair_budget) for n in n_keep]
    if n_keep == n_valid:
        return valid    # nothing to drop in any task: no mining, and no random draw either
    # ---- hard share: the n_hard costliest valid pairs of each task (invalid pairs get −inf, never chosen) ----
    n_hard = [math.ceil(hard_fraction * n) for n in n_keep]
    pair_cost = cost.detach().reshape(b * b, t).index_select(0, flat).T        # (T, P)
    chosen = _largest(torch.where(pair_valid, pair_cost, -math.inf), n_hard)
    # ---- uniform share: the rest drawn among the valid pairs not already chosen ----
    n_rest = [keep - hard for keep, hard in zip(n_keep, n_hard)]
    if any(n_rest):
        chosen |= _uniform_subset(pair_valid & ~chosen, n_rest)
    # ---- back from the (T, P) pair table to the (B, B, T) layout of the losses ----
    mask = torch.zeros(b * b, t, dtype=torch.bool, device=cost.device)
    return mask.index_copy_(0, flat, chosen.T).reshape(b, b, t)


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-task mean of ``values`` over ``mask`` (B, B, T) → (T,); 0 for a task without such pairs."""
    total = (values * mask).sum(dim=(0, 1))
    # clamp(min=1): an empty task gives 0 / 1 = 0 instead of nan, so it adds nothing to the sum over tasks.
    return total / mask.sum(dim=(0, 1)).clamp(min=1)


def _reduce(per_task: torch.Tensor, reduction: str) -> torch.Tensor:
    """Per-task losses (T,) to a scalar: summed over tasks (Eq. 2) or averaged (the released code)."""
    if reduction == "sum":
        return per_task.sum()
    if reduction == "mean":
        return per_task.mean()
    raise ValueError(f"reduction must be 'sum' (paper) or 'mean' (released code), got {reduction!r}")


def pairwise_hinge_loss(scores: torch.Tensor, grades: torch.Tensor, num_grades: Sequence[int], *,
                        scale: float = 10.0, m_base: float = 0.5, m_scale: float = 1.5, severity_weight: bool = True,
                        adaptive_margin: bool = True, margin: float = 1.0, lambda_dis: float = 1.0,
                        lambda_sim: float = 0.25, hard_fraction: float | None = None,
                        pair_fraction: float | None = 0.5, pair_budget: int | None = None,
                        reduction: str = "sum") -> torch.Tensor:
    """Squared-hinge ranking loss with optional severity weight, adaptive margin and similarity term.

    SpineRankNet is (severity_weight, adaptive_margin) = (True, True); Deep-RankSVM
    is (False, False) with a fixed ``margin``. The component ablations switch one off.
    Pairs are selected by ``select_pairs`` on each pair's own term (hinge or similarity).

    Args:
        scores: s (B, T) float in [0, S]; grades: y (B, T) long, −1 for missing; num_grades: K_t per task (≥ 2).
        The other arguments are the symbols of the module docstring (S = ``scale``).

    Returns:
        Scalar: Σ_t (or mean over t) of λ_dis L_hinge^t + λ_sim L_sim^t.
    """
    k = torch.as_tensor(list(num_grades), dtype=scores.dtype, device=scores.device)     # K_t (T,)
    if k.numel() != scores.shape[1] or bool((k < 2).any()):
        raise ValueError(f"num_grades needs one entry >= 2 per task ({scores.shape[1]} tasks), got {list(num_grades)}")
    delta_s, grade_diff, valid = _pairs(scores, grades)
    # ---- Eq. 3 severity weight and the margin, all (B, B, T) ----
    # w_ij rescales a grade gap to score units: a gap across the whole grade range weighs S, whatever K_t is.
    severity = grade_diff.abs() * scale / (k - 1)
    # Adaptive margin: pairs further apart in grade must also be further apart in score (m_base .. m_base + m_scale).
    pair_margin = m_base + m_scale * severity / scale if adaptive_margin else torch.full_like(severity, margin)
    # ---- squared hinge on ordered pairs: r_ij Δs_ij should exceed the margin ----
    hinge = F.relu(pair_margin - torch.sign(grade_diff) * delta_s).square()
    if severity_weight:
        hinge = severity * hinge
    # ---- same-grade pairs: their scores should coincide (Eq. 1) ----
    similar = delta_s.square()
    ordered = valid & (grade_diff != 0)
    # ---- pair mining on each pair's own term, then the two masked means per task (Eq. 2) ----
    cost = torch.where(ordered, hinge, similar)
    chosen = select_pairs(cost, valid, hard_fraction, pair_fraction, pair_budget=pair_budget)
    per_task = lambda_dis * _masked_mean(hinge, chosen & ordered)
    if lambda_sim:
        per_task = per_task + lambda_sim * _masked_mean(similar, chosen & ~ordered)
    return _reduce(per_task, reduction)


def spineranknet_loss(scores: torch.Tensor, grades: torch.Tensor, num_grades: Sequence[int], *, scale: float = 10.0,
                      m_base: float = 0.5, m_scale: float = 1.5, severity_weight: bool = True,
                      adaptive_margin: bool = True, margin: float = 1.0, lambda_dis: float = 1.0,
                      lambda_sim: float = 0.25, hard_fraction: float | None = None,
                      pair_fraction: float | None = 0.5, pair_budget: int | None = None,
                      reduction: str = "sum") -> torch.Tensor:
    """SpineRankNet (Eqs. 1–3): severity-weighted squared hinge with adaptive margin plus same-grade term.

    ``scores`` (B, T) float, ``grades`` (B, T) long with −1 for missing,
    ``num_grades`` K_t per task. The loss ablations: ``severity_weight=False``
    drops w_ij from the hinge, ``adaptive_margin=False`` uses the fixed
    ``margin`` instead of m_ij, ``lambda_sim=0`` drops the similarity term and
    ``hard_fraction=None`` uses every valid pair (see ``select_pairs``).
    """
    return pairwise_hinge_loss(scores, grades, num_grades, scale=scale, m_base=m_base, m_scale=m_scale,
                               severity_weight=severity_weight, adaptive_margin=adaptive_margin, margin=margin,
                               lambda_dis=lambda_dis, lambda_sim=lambda_sim, hard_fraction=hard_fraction,
                               pair_fraction=pair_fraction, pair_budget=pair_budget, reduction=reduction)


def deep_rank_svm_loss(scores: torch.Tensor, grades: torch.Tensor, num_grades: Sequence[int], *, margin: float = 1.0,
                       lambda_dis: float = 1.0, lambda_sim: float = 0.25, hard_fraction: float | None = None,
                       pair_fraction: float | None = 0.5, pair_budget: int | None = None,
                       reduction: str = "sum") -> torch.Tensor:
    """Deep-RankSVM: max(0, m − r Δs)² on ordered pairs (fixed margin, unweighted) + λ_sim (Δs)² on equal pairs."""
    return pairwise_hinge_loss(scores, grades, num_grades, severity_weight=False, adaptive_margin=False,
                               margin=margin, lambda_dis=lambda_dis, lambda_sim=lambda_sim,
                               hard_fraction=hard_fraction, pair_fraction=pair_fraction, pair_budget=pair_budget,
                               reduction=reduction)


def ranknet_loss(scores: torch.Tensor, grades: torch.Tensor, num_grades: Sequence[int] | None = None, *,
                 sigma: float = 1.0, hard_fraction: float | None = None, pair_fraction: float | None = 0.5,
                 pair_budget: int | None = None, reduction: str = "sum") -> torch.Tensor:
    """RankNet: mean over ordered pairs of −log σ(σ_s · r_ij Δs_ij) = softplus(−σ_s r_ij Δs_ij), per task.

    Only ordered pairs (d_ij ≠ 0) count, so n in ``select_pairs`` is their number. ``num_grades`` is unused
    (RankNet has no severity weight); it is accepted so that every score loss takes the same arguments.
    Reference: Burges et al., "Learning to rank using gradient descent", ICML 2005.
    """
    delta_s, grade_diff, valid = _pairs(scores, grades)
    ordered = valid & (grade_diff != 0)
    # softplus(−x) = −log σ(x), computed without forming σ(x) (no log(0) for a badly ordered pair).
    cost = F.softplus(-sigma * torch.sign(grade_diff) * delta_s)
    chosen = select_pairs(cost, ordered, hard_fraction, pair_fraction, pair_budget=pair_budget)
    return _reduce(_masked_mean(cost, chosen), reduction)
