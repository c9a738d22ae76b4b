"""Losses of the multi-stage paper's Stage 1: slice (1a) and in-plane point (1b/1c) localisation (§2.1).

Heads are level-separated (one per (condition, level) of a series type); a head that is not annotated on a
sample is masked out of the loss.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def instance_loss(logits: torch.Tensor, regression: torch.Tensor, z: torch.Tensor, xy: torch.Tensor,
                  depth: int, z_weight: float, reg_weight: float) -> torch.Tensor:
    """CE over the slice logits + λ · (|Δx'| + |Δy'| + w_z |Δz'|), on annotated heads only.

    ``logits`` (B, H, D), ``regression`` (B, H, 3) = (x', y', z'), ``z`` (B, H) input slice index (−1: not
    annotated), ``xy`` (B, H, 2) normalised (x / W, y / H); z' is compared with z / ``depth``.
    """
    mask = z >= 0                                              # (B, H) annotated heads
    if not bool(mask.any()):
        return logits.sum() * 0.0      # nothing annotated: a zero that still has a graph (backward works)
    ce = F.cross_entropy(logits[mask], z[mask])                # logits[mask]: (M, D) over the slice indices
    target = torch.cat([xy[mask], (z[mask].float() / depth)[:, None]], dim=1)   # (M, 3) = (x', y', z')
    error = (regression[mask] - target).abs()
    l1 = (error[:, 0] + error[:, 1] + z_weight * error[:, 2]).mean()
    return ce + reg_weight * l1


def masked_l1(predicted: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """mean over annotated heads of |Δx'| + |Δy'|: ``predicted``, ``target`` (B, H, 2), ``mask`` (B, H)."""
    if not bool(mask.any()):
        return predicted.sum() * 0.0   # nothing annotated: a zero that still has a graph (backward works)
    return (predicted[mask] - target[mask]).abs().sum(dim=1).mean()
