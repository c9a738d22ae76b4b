"""The multi-stage paper's Stage 2 loss: grade cross-entropy plus the auxiliary attention loss (§2.2.3)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def mil_loss(out: dict[str, torch.Tensor], grade: torch.Tensor, key_slice: torch.Tensor,
             aux_weight: float, class_weights: torch.Tensor | None = None) -> torch.Tensor:
    """L = CE(logits, grade) + λ · CE(aux_scores, key_slice) (multi-stage paper §2.2.3).

    ``out`` is :class:`spinelib.models.mil.MILGrader`'s output: ``logits`` (B, K), ``aux_scores`` (B, N).
    ``key_slice`` (B,) is the bag position of the annotated slice, or −1 where it is
    outside the bag (after a slice shift), which the auxiliary term ignores.
    """
    loss = F.cross_entropy(out["logits"], grade, weight=class_weights)
    # no auxiliary term at λ = 0 (ablation) or when every key slice was shifted out (its CE would be NaN)
    if aux_weight > 0 and bool((key_slice >= 0).any()):
        loss = loss + aux_weight * F.cross_entropy(out["aux_scores"], key_slice, ignore_index=-1)
    return loss
