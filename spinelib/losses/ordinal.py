"""Per-task classification and ordinal-regression losses (ranking paper's baselines).

Every loss takes grades (B, T) with −1 for a missing grade, skips missing
entries, and sums over the T tasks (tasks may have different numbers of
grades K_t, so per-task outputs come as lists).

* weighted cross-entropy, w_c = N_t / (K_t · N_{t,c})  (inverse class frequency)
* CORN (Shi et al.): K_t − 1 conditional binary tasks; task c is trained on the
  discs with y > c − 1 only, target y > c; P(y > c) = Π_{j ≤ c} σ(f_j)
* MAE regression on the score scale: |s · (K_t − 1) / S − y|, in grade units
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F


def inverse_frequency_weights(grades: np.ndarray, num_grades: Sequence[int]) -> list[torch.Tensor]:
    """w_c = N_t / (K_t · N_{t,c}) per task from training grades (N, T); 0 for a grade never seen."""
    grades = np.asarray(grades)
    weights = []
    for t, k in enumerate(num_grades):
        counts = np.bincount(grades[grades[:, t] >= 0, t], minlength=k)[:k].astype(float)
        n = counts.sum()
        weights.append(torch.tensor(np.where(counts > 0, n / (k * np.maximum(counts, 1)), 0.0), dtype=torch.float32))
    return weights


def weighted_cross_entropy(logits: Sequence[torch.Tensor], grades: torch.Tensor,
                           weights: Sequence[torch.Tensor] | None = None) -> torch.Tensor:
    """Σ_t weighted CE of task t's logits (B, K_t) over its graded discs (a task with none adds 0)."""
    total = logits[0].new_zeros(())
    for t, z in enumerate(logits):
        y = grades[:, t]
        if bool((y >= 0).any()):
            w = None if weights is None else weights[t].to(z.device, z.dtype)
            total = total + F.cross_entropy(z, y, weight=w, ignore_index=-1)
    return total


def corn_loss(logits: Sequence[torch.Tensor], grades: torch.Tensor) -> torch.Tensor:
    """Σ_t CORN loss: BCE of f_c for target y > c over the discs with y ≥ c, averaged over those entries."""
    total = logits[0].new_zeros(())
    for t, z in enumerate(logits):
        y = grades[:, t]
        c = torch.arange(z.shape[1], device=z.device)
        subset = (y[:, None] >= c) & (y[:, None] >= 0)
        if bool(subset.any()):
            target = (y[:, None] > c).to(z.dtype)
            bce = F.binary_cross_entropy_with_logits(z, target, reduction="none")
            total = total + (bce * subset).sum() / subset.sum()
    return total


def corn_probabilities(logits: torch.Tensor) -> torch.Tensor:
    """P(y > c) = Π_{j ≤ c} σ(f_j): (B, K − 1) cumulative probabilities, non-increasing in c."""
    return torch.cumprod(torch.sigmoid(logits), dim=1)


def mae_loss(scores: torch.Tensor, grades: torch.Tensor, num_grades: Sequence[int], scale: float = 10.0) -> torch.Tensor:
    """Σ_t mean over graded discs of |s_t · (K_t − 1)/S − y_t| (regression of the grade on the score scale)."""
    k = torch.as_tensor(list(num_grades), dtype=scores.dtype, device=scores.device)
    graded = grades >= 0
    error = (scores * (k - 1) / scale - grades.clamp(min=0).to(scores.dtype)).abs()
    return ((error * graded).sum(dim=0) / graded.sum(dim=0).clamp(min=1)).sum()
