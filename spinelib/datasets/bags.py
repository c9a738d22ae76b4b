"""MIL bags for Stage 2 of the multi-stage paper, with pre-crop jitter and post-crop augmentation (§2.2.1).

A bag is cut on the fly from its stored source region (:mod:`spinelib.crops.bags`):

* pre-crop (simulated Stage 1 errors): in-plane shift (Δx, Δy) uniform in
  ±margin px; slice shift |Δz| ∈ {0, 1, 2} drawn with the probabilities of
  the measured Stage 1a error distribution, random sign;
* post-crop: brightness/contrast (p = 0.25) and shift-scale-rotate (p = 0.5),
  the same transform for every slice of a bag.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from spinelib.crops.bags import BagConfig, cut_bag


def draw_slice_shift(probabilities: list[float], rng: np.random.Generator) -> int:
    """|Δz| = j with probability p_j, random sign."""
    magnitude = int(rng.choice(len(probabilities), p=np.asarray(probabilities) / np.sum(probabilities)))
    return magnitude * (1 if rng.random() < 0.5 else -1)


def shift_scale_rotate(bag: torch.Tensor, shift: float, scale: float, rotate: float,
                       rng: np.random.Generator) -> torch.Tensor:
    """One random affine transform (shift ±shift·size, scale 1 ± scale, rotation ±rotate°) for all slices.

    ``bag`` is (N, 1, H, W); outside the image is filled with zeros.
    """
    # the three draws in this order (angle, scale, shift) keep a seeded bag reproducible
    angle = math.radians(rng.uniform(-rotate, rotate))
    s = 1.0 + rng.uniform(-scale, scale)
    tx, ty = rng.uniform(-shift, shift, size=2) * 2           # affine_grid's coordinates span [−1, 1]: 2 per size
    # θ maps output to input coordinates: rotation by the angle, divided by the scale (zoom in for s > 1)
    cos, sin = math.cos(angle) / s, math.sin(angle) / s
    theta = torch.tensor([[cos, -sin, tx], [sin, cos, ty]], dtype=bag.dtype).expand(bag.shape[0], 2, 3)   # (N, 2, 3)
    grid = F.affine_grid(theta, list(bag.shape), align_corners=False)
    return F.grid_sample(bag, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


class BagDataset(Dataset):
    """Bags cut from source regions (N, S, H, W) uint8 of one kind; returns (bag (n, 1, h, w), grade, key slice, i).

    ``shift_probabilities`` None disables the pre-crop jitter; ``augment`` holds
    the post-crop settings or None. The key slice is the bag position of the
    point's slice (−1 when a slice shift moved it out of the bag).
    """

    def __init__(self, sources: np.ndarray, grades: np.ndarray, cfg: BagConfig, condition: str,
                 shift_probabilities: list[float] | None = None, augment: dict | None = None):
        self.sources, self.grades, self.cfg = sources, torch.as_tensor(np.asarray(grades), dtype=torch.long), cfg
        self.margin = cfg.margin_px(condition)
        self.shift_probabilities, self.augment = shift_probabilities, augment

    def __len__(self) -> int:
        return len(self.sources)

    def __getitem__(self, i: int):
        # a generator per item, seeded from numpy's global state, which ``fit`` seeds per epoch (and per worker)
        rng = np.random.default_rng(np.random.randint(2**31))
        dz = dy = dx = 0
        # ---- pre-crop: simulated Stage 1 errors (slice, then in-plane) ----
        if self.shift_probabilities is not None:
            dz = draw_slice_shift(self.shift_probabilities, rng)
            dy, dx = (int(v) for v in rng.integers(-self.margin, self.margin + 1, size=2))
        n = self.cfg.bag_slices
        bag = torch.from_numpy(cut_bag(self.sources[i], dz, dy, dx, n, self.cfg.max_shift, self.margin)
                               .astype(np.float32) / 255.0)[:, None]          # (n, 1, h, w) in [0, 1]
        # ---- post-crop: intensity, then geometry, one transform for every slice of the bag ----
        if self.augment is not None:
            if rng.random() < self.augment["brightness_contrast_p"]:
                contrast = 1 + rng.uniform(-self.augment["contrast"], self.augment["contrast"])
                brightness = rng.uniform(-self.augment["brightness"], self.augment["brightness"])
                bag = (bag * contrast + brightness).clamp(0, 1)
            if rng.random() < self.augment["shift_scale_rotate_p"]:
                bag = shift_scale_rotate(bag, self.augment["ssr_shift"], self.augment["ssr_scale"],
                                         self.augment["ssr_rotate"], rng)
        # the point's slice sits in the middle of an unshifted bag; a slice shift of dz moves it by −dz
        key = (n - 1) // 2 - dz
        return bag, self.grades[i], key if 0 <= key < n else -1, i
