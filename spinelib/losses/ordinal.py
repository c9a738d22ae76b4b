"""Per-task classification and ordinal-regression losses (ranking paper's baselines).

Every loss takes grades (B, T) with −1 for a missing grade, skips missing
entries, and sums over the T tasks (tasks may have different numbers of
grades K_t, so per-task outputs come as lists).

* weighted cross-entropy, w_c = N_t / (K_t · N_{t,c})  (inverse class frequency)
* CORN (Shi et al.): K_t − 1 conditional binary tasks; task c is trained on the
  discs with y > c − 1 only, target y > c; P(y > c) = Π_{j ≤ c} σ(f_j)
* MAE regression on the score scale: |s · (K_t − 1) / S − y|, in grade units

References: weighted CE is the phase-1 objective of the ranking paper; CORN is Shi, Cao and Raschka,
"Deep neural networks for rank-consistent ordinal regression based on conditional probabilities" (2023).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F


def inverse_frequency_weights(grades: np.ndarray, num_grades: Sequence[int]) -> list[torch.Tensor]:
    """w_c = N_t / (K_t · N_{t,c}) per task from training grades (N, T); 0 for a grade never seen.

    Args:
        grades: training grades (N, T), −1 for missing.
        num_grades: K_t per task.

    Returns:
        T float32 tensors, task t's of shape (K_t,). With balanced classes every weight is 1; a grade half as
        frequent as average gets 2.
    """
    grades = np.asarray(grades)
    weights = []
    for task, k in enumerate(num_grades):
        counts = np.bincount(grades[grades[:, task] >= 0, task], minlength=k)[:k].astype(float)   # N_{t,c}
        n_graded = counts.sum()                                                                  # N_t
        # np.maximum(counts, 1) only avoids a division by zero; np.where then sets unseen grades to 0.
        weights.append(torch.tensor(np.where(counts > 0, n_graded / (k * np.maximum(counts, 1)), 0.0),
                                    dtype=torch.float32))
    return weights


def weighted_cross_entropy(logits: Sequence[torch.Tensor], grades: torch.Tensor,
                           weights: Sequence[torch.Tensor] | None = None) -> torch.Tensor:
    """Σ_t weighted CE of task t's logits (B, K_t) over its graded discs (a task with none adds 0).

    Args:
        logits: T tensors, task t's (B, K_t).
        grades: (B, T) long, −1 for missing.
        weights: per-task class weights (K_t,) (:func:`inverse_frequency_weights`), or None.

    Returns:
        Scalar. Each task's term is torch's weighted mean, Σ_i w_{y_i} CE_i / Σ_i w_{y_i}.
    """
    total = logits[0].new_zeros(())
    for task, task_logits in enumerate(logits):
        task_grades = grades[:, task]
        # F.cross_entropy over an all-ignored batch is 0/0 = nan: skip such a task instead.
        if bool((task_grades >= 0).any()):
            class_weight = None if weights is None else weights[task].to(task_logits.device, task_logits.dtype)
            total = total + F.cross_entropy(task_logits, task_grades, weight=class_weight, ignore_index=-1)
    return total


def corn_loss(logits: Sequence[torch.Tensor], grades: torch.Tensor) -> torch.Tensor:
    """Σ_t CORN loss: BCE of f_c for target y > c over the discs with y ≥ c, averaged over those entries.

        L_t = Σ_{i, c : y_i ≥ c} BCE(f_c(x_i), [y_i > c]) / #{(i, c) : y_i ≥ c}

    Args:
        logits: T tensors, task t's conditional logits (B, K_t − 1).
        grades: (B, T) long, −1 for missing.

    Returns:
        Scalar (a task without any graded disc adds 0).
    """
    total = logits[0].new_zeros(())
    for task, task_logits in enumerate(logits):
        task_grades = grades[:, task]
        boundary = torch.arange(task_logits.shape[1], device=task_logits.device)     # c = 0..K_t − 2
        # The conditional training sets of CORN: boundary c only sees discs known to be above c − 1, i.e. y ≥ c
        # (rank consistency follows from chaining the conditionals). (B, K_t − 1) masks throughout.
        subset = (task_grades[:, None] >= boundary) & (task_grades[:, None] >= 0)
        if bool(subset.any()):
            target = (task_grades[:, None] > boundary).to(task_logits.dtype)
            bce = F.binary_cross_entropy_with_logits(task_logits, target, reduction="none")
            total = total + (bce * subset).sum() / subset.sum()
    return total


def corn_probabilities(logits: torch.Tensor) -> torch.Tensor:
    """P(y > c) = Π_{j ≤ c} σ(f_j): (B, K − 1) cumulative probabilities, non-increasing in c.

    ``logits`` (B, K − 1) of one task. The sum over c is the expected grade E[y] (the ranking study's score
    for CORN); the columns are the boundary scores that :func:`spinelib.metrics.boundary_auc` expects.
    """
    return torch.cumprod(torch.sigmoid(logits), dim=1)


def mae_loss(scores: torch.Tensor, grades: torch.Tensor, num_grades: Sequence[int], scale: float = 10.0) -> torch.Tensor:
    """Σ_t mean over graded discs of |s_t · (K_t − 1)/S − y_t| (regression of the grade on the score scale).

    Args:
        scores: (B, T) in [0, S] (the soft-clamped head outputs).
        grades: (B, T) long, −1 for missing.
        num_grades: K_t per task; a score S maps to the top grade K_t − 1.
        scale: S.

    Returns:
        Scalar; a task without any graded disc adds 0.
    """
    k = torch.as_tensor(list(num_grades), dtype=scores.dtype, device=scores.device)     # (T,), broadcasts over B
    graded = grades >= 0
    # clamp(min=0) turns −1 into a harmless 0; those entries are masked out by ``graded`` anyway.
    error = (scores * (k - 1) / scale - grades.clamp(min=0).to(scores.dtype)).abs()
    # Per-task mean over graded discs (clamp: 0 / 1 = 0 for a task with none), then summed over tasks.
    return ((error * graded).sum(dim=0) / graded.sum(dim=0).clamp(min=1)).sum()
