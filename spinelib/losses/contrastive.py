"""Multi-positive NT-Xent (InfoNCE) loss, contrastive paper §3.6, Eq. 3 and 5.

For anchor i with positives P(i) (the other rows of the batch carrying the
same group id, e.g. the other views of the same disc):

    L_i = -1/|P(i)| * sum_{p in P(i)} log( exp(s_ip / tau) / sum_{k != i} exp(s_ik / tau) )     (Eq. 3)
    L   = mean of L_i over the anchors with |P(i)| >= 1        (Eq. 5, which averages over all N anchors:
                                                             the same whenever every anchor has a positive)

with s_ik = cos(z_i, z_k). With one positive per anchor this is SimCLR's
NT-Xent; with group ids set to class labels it is SupCon's L_out.

Note on Eq. 4: as printed it is not the same function as Eq. 3. Expanding Eq. 3,

    L_i = -1/|P(i)| sum_p s_ip/tau + log sum_{k != i} exp(s_ik/tau),

while Eq. 4 reads -1/|P(i)| log sum_p exp(s_ip/tau) + 1/|P(i)| log sum_{k != i} exp(s_ik/tau):
the log of the sum over positives replaces the mean of the logs, and the
denominator is scaled by 1/|P(i)|. The two agree only when |P(i)| = 1. This
module implements Eq. 3 (the SupCon "L_out" form); the stability Eq. 4 aims at
comes from the log-softmax below.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def multi_positive_nt_xent(z: torch.Tensor, groups: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """Eq. 3 averaged as in Eq. 5 over a batch of projections ``z`` (N, D) with group ids ``groups`` (N,).

    Args:
        z: projections g(f(x)) (N, D), any scale (normalised here).
        groups: integer group id per row (N,); rows sharing an id are each other's positives.
        temperature: tau > 0; smaller values sharpen the softmax over the other N − 1 rows.

    Returns:
        The scalar loss (float32, differentiable w.r.t. ``z``).

    Computed from the (N, N) matrix of cosine similarities / tau: the diagonal is
    masked out (-inf) before a row-wise log-softmax, so ``log_prob[i, k]`` is the
    log of the fraction in Eq. 3, stable for small tau and large ``z``; the mean
    over positives uses the same-group mask. Anchors without any positive are
    left out of the mean; a batch with none at all raises ``ValueError``.
    """
    if z.dim() != 2 or groups.shape != (z.shape[0],):
        raise ValueError(f"expected z (N, D) and groups (N,), got {tuple(z.shape)} and {tuple(groups.shape)}")
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    n = z.shape[0]
    # ---- similarities: s_ik / tau (N, N), cosine = dot product of unit vectors; a half-precision z is upcast
    # first, as 1 / tau = 10 magnifies its rounding ----
    unit = F.normalize(z.float(), dim=1)
    logits = unit @ unit.T / temperature
    # ---- log of the Eq. 3 fraction for every (i, k): the sum over k != i excludes the anchor itself ----
    self_mask = torch.eye(n, dtype=torch.bool, device=z.device)
    log_prob = logits.masked_fill(self_mask, float("-inf")).log_softmax(dim=1)
    # ---- positives P(i): same group, not i itself; |P(i)| per anchor (N,) ----
    positive = (groups[:, None] == groups[None, :]) & ~self_mask
    n_positive = positive.sum(dim=1)
    has_positive = n_positive > 0
    if not bool(has_positive.any()):
        raise ValueError("no anchor in the batch has a positive (every group id occurs once)")
    # ---- L_i = −mean over P(i) of log_prob[i, p]; torch.where, not log_prob * mask, since the diagonal is −inf
    # and −inf · 0 would be nan ----
    positive_log_prob = torch.where(positive, log_prob, torch.zeros_like(log_prob)).sum(dim=1)
    loss_per_anchor = -positive_log_prob[has_positive] / n_positive[has_positive]
    return loss_per_anchor.mean()
