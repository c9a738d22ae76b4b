"""Weighted focal loss, contrastive paper §3.6, Eq. 2 (after Lin et al.).

For a sample with true class y and predicted probability p_y = softmax(logits)_y:

    L_focal = -alpha_y * (1 - p_y)^gamma * log(p_y)       (Eq. 2)

alpha_y is a per-class weight (1 when ``alpha`` is None) and gamma the focusing
parameter; at gamma = 0 it is the alpha-weighted cross-entropy of each sample.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

REDUCTIONS = ("mean", "sum", "none")   # as torch's losses name them


def focal_loss(logits: torch.Tensor, target: torch.Tensor, alpha: Sequence[float] | torch.Tensor | None = None,
               gamma: float = 2.0, reduction: str = "mean") -> torch.Tensor:
    """Eq. 2 per sample for ``logits`` (N, K) and integer ``target`` (N,).

    Args:
        logits: unnormalised class scores (N, K).
        target: true class per sample (N,), −1 for a missing grade.
        alpha: per-class weights alpha_y (K,), or None for 1 everywhere (e.g. inverse class frequencies).
        gamma: focusing parameter >= 0; larger values shrink the loss of well-classified samples (p_y → 1).
        reduction: "mean", "sum" or "none" (per-sample losses (N,)).

    Returns:
        A scalar float32 tensor, or (N,) for "none".

    Targets below 0 (-1: missing grade) are ignored: 0 under ``"none"``, left out
    of ``"sum"`` and of ``"mean"``, which is the plain mean over the kept samples
    (not divided by the sum of their alphas, unlike ``F.cross_entropy(weight=)``);
    with no kept sample ``"mean"`` is nan, as in ``F.cross_entropy``.
    """
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    if logits.dim() != 2 or target.shape != (logits.shape[0],):
        raise ValueError(f"expected logits (N, K) and target (N,), got {tuple(logits.shape)} and {tuple(target.shape)}")
    if gamma < 0:
        raise ValueError(f"gamma must be >= 0, got {gamma}")
    num_classes = logits.shape[1]
    # log p from log_softmax (not log(softmax)): finite even for very confident logits.
    log_prob = F.log_softmax(logits.float(), dim=1)
    keep = target >= 0
    # −1 is not a valid gather index: point missing samples at class 0 and zero their loss below.
    safe_target = torch.where(keep, target, torch.zeros_like(target)).long()
    log_p_true = log_prob.gather(1, safe_target[:, None]).squeeze(1)     # log p_y (N,)
    p_true = log_p_true.exp()
    if alpha is None:
        weight = torch.ones_like(log_p_true)
    else:
        alpha = torch.as_tensor(alpha, dtype=log_prob.dtype, device=log_prob.device)
        if alpha.shape != (num_classes,):
            raise ValueError(f"alpha needs one weight per class ({num_classes}), got shape {tuple(alpha.shape)}")
        weight = alpha[safe_target]
    # (1 − p_y)^gamma; the clamp guards against exp(log p) rounding a hair above 1, where a fractional
    # power of a negative number would be nan.
    modulating = (1.0 - p_true).clamp_min(0.0) ** gamma
    loss = torch.where(keep, -weight * modulating * log_p_true, torch.zeros_like(log_p_true))
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    # Plain mean over the labelled samples (see above): 0 / 0 = nan when none is labelled.
    return loss.sum() / keep.sum()
