"""Deterministic test-time augmentation over disc volumes (ranking paper §3; released code's 54 views).

A view is (flip, dx, dy, slice shift): slice-order flip on/off × horizontal and
vertical translations in {−t, 0, +t} pixels (zero fill) × a roll of the slices
by {−1, 0, +1}: 2 × 3 × 3 × 3 = 54 views. A flipped view mirrors the patient,
so its left and right task outputs are swapped back before averaging.
"""

from __future__ import annotations

import itertools
from typing import NamedTuple

import torch


class View(NamedTuple):
    """One test-time view of a volume batch."""

    flip: bool          # reverse the slice order (mirrors the patient: left/right outputs must be swapped back)
    dx: int             # horizontal translation in pixels (positive: content moves right)
    dy: int             # vertical translation in pixels (positive: content moves down)
    slice_shift: int    # roll of the slice axis (wraps around, unlike the zero-filled training shift)


def tta_views(translate: int = 16, slice_shift: int = 1, flips: bool = True) -> list[View]:
    """All combinations: flips × {−t, 0, t}² × {−s, 0, s} (54 with the defaults; duplicates removed for t or s = 0)."""
    # Sets drop the duplicates when t or s is 0; sorting fixes the view order (the average does not depend on it,
    # but the order of floating-point additions, and so the last bits, would).
    shifts = sorted({-translate, 0, translate})
    rolls = sorted({-slice_shift, 0, slice_shift})
    return [View(f, dx, dy, r) for f, dx, dy, r in itertools.product((False, True) if flips else (False,),
                                                                        shifts, shifts, rolls)]


def _translate(x: torch.Tensor, dx: int, dy: int) -> torch.Tensor:
    """Shift the last two axes by (dy, dx) pixels, filling with zeros."""
    out = torch.zeros_like(x)
    h, w = x.shape[-2:]
    # Source and destination windows of equal size: a positive shift copies rows/columns [0, n − d) to [d, n),
    # a negative one [|d|, n) to [0, n − |d|); what is not covered stays 0.
    src_y, dst_y = slice(max(0, -dy), h - max(0, dy)), slice(max(0, dy), h - max(0, -dy))
    src_x, dst_x = slice(max(0, -dx), w - max(0, dx)), slice(max(0, dx), w - max(0, -dx))
    out[..., dst_y, dst_x] = x[..., src_y, src_x]
    return out


def apply_view(x: torch.Tensor, view: View) -> torch.Tensor:
    """The view of a batch (B, C, D, H, W): slice flip, then slice roll, then in-plane translation."""
    if view.flip:
        x = x.flip(2)
    if view.slice_shift:
        x = x.roll(view.slice_shift, dims=2)
    return _translate(x, view.dx, view.dy) if (view.dx or view.dy) else x
