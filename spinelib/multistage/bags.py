"""Stage 2 inputs: MIL bags with pre-crop jitter and post-crop augmentation (multi-stage paper §2.2.1, Table 1).

For every point (annotated or predicted) a *source* region is stored: the
bag's ``bag_slices`` slices plus ``max_shift`` on each side, and the Table 1
box (left, right, up, down) plus ``margin`` pixels on each side, resized by
the kind's ``scale``. A bag is cut from it on the fly:

* pre-crop (simulated Stage 1 errors): in-plane shift (Δx, Δy) uniform in
  ±margin px; slice shift |Δz| ∈ {0, 1, 2} drawn with the probabilities of
  the measured Stage 1a error distribution, random sign;
* post-crop: brightness/contrast (p = 0.25) and shift-scale-rotate (p = 0.5),
  the same transform for every slice of a bag.

Left subarticular regions are mirrored so that both sides share one model.
Without jitter the cut is exactly the Table 1 box around the point.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from spinelib.crops.geometry import Box, crop_stack, resize_stack, to_uint8
from spinelib.crops.plan import BAG_KIND, TABLE1_RANGES
from spinelib.data.dicom import SeriesReadError, read_series
from spinelib.parallel import process_map

MIRRORED = ("left_subarticular_stenosis",)


@dataclass(frozen=True)
class BagConfig:
    """Bag geometry: slices, jitter reach and stored scale per kind (defaults: the paper's Table 1 at full scale)."""

    bag_slices: int = 5
    max_shift: int = 2
    margin: int = 10
    scale: dict[str, float] = field(default_factory=lambda: {"bag_scs": 1.0, "bag_nfn": 1.0, "bag_ss": 1.0})
    ranges: dict[str, tuple[int, int, int, int]] = field(default_factory=lambda: dict(TABLE1_RANGES))

    def box(self, condition: str) -> Box:
        left, right, up, down = self.ranges[condition]
        if condition in MIRRORED:
            left, right = right, left
        return Box(left, right, up, down)

    def bag_size(self, condition: str) -> tuple[int, int]:
        """(h, w) of a cut bag at the stored scale."""
        box, scale = self.box(condition), self.scale[BAG_KIND[condition]]
        return round(box.height * scale), round(box.width * scale)

    def margin_px(self, condition: str) -> int:
        return round(self.margin * self.scale[BAG_KIND[condition]])


def source_region(pixels: np.ndarray, k: int, x: float, y: float, condition: str, cfg: BagConfig) -> np.ndarray:
    """The stored region around (k, x, y) of a volume in [0, 1]: (bag_slices + 2·max_shift, h + 2m, w + 2m) uint8."""
    box = cfg.box(condition)
    if condition in MIRRORED:  # mirror the image, then the point: the region is cut from the mirrored slices
        pixels, x = pixels[:, :, ::-1], pixels.shape[2] - 1 - x
    wide = Box(box.left + cfg.margin, box.right + cfg.margin, box.up + cfg.margin, box.down + cfg.margin)
    stack, _ = crop_stack(pixels, int(k), cfg.bag_slices + 2 * cfg.max_shift, x, y, wide, fill=0.0)
    h, w = cfg.bag_size(condition)
    m = cfg.margin_px(condition)
    return to_uint8(resize_stack(np.ascontiguousarray(stack), (h + 2 * m, w + 2 * m)))


def cut_bag(source: np.ndarray, dz: int, dy: int, dx: int, n_slices: int, max_shift: int, margin: int) -> np.ndarray:
    """The bag of ``n_slices`` shifted by (dz, dy, dx) inside a source region (no shift: its centre)."""
    _, height, width = source.shape
    h, w = height - 2 * margin, width - 2 * margin
    z0, y0, x0 = max_shift + dz, margin + dy, margin + dx
    return source[z0:z0 + n_slices, y0:y0 + h, x0:x0 + w]


def draw_slice_shift(probabilities: list[float], rng: np.random.Generator) -> int:
    """|Δz| = j with probability p_j, random sign."""
    magnitude = int(rng.choice(len(probabilities), p=np.asarray(probabilities) / np.sum(probabilities)))
    return magnitude * (1 if rng.random() < 0.5 else -1)


def shift_scale_rotate(bag: torch.Tensor, shift: float, scale: float, rotate: float,
                       rng: np.random.Generator) -> torch.Tensor:
    """One random affine transform (shift ±shift·size, scale 1 ± scale, rotation ±rotate°) for all slices.

    ``bag`` is (N, 1, H, W); outside the image is filled with zeros.
    """
    angle = math.radians(rng.uniform(-rotate, rotate))
    s = 1.0 + rng.uniform(-scale, scale)
    tx, ty = rng.uniform(-shift, shift, size=2) * 2
    cos, sin = math.cos(angle) / s, math.sin(angle) / s
    theta = torch.tensor([[cos, -sin, tx], [sin, cos, ty]], dtype=bag.dtype).expand(bag.shape[0], 2, 3)
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
        rng = np.random.default_rng(np.random.randint(2**31))  # seeded per epoch by ``fit``
        dz = dy = dx = 0
        if self.shift_probabilities is not None:
            dz = draw_slice_shift(self.shift_probabilities, rng)
            dy, dx = (int(v) for v in rng.integers(-self.margin, self.margin + 1, size=2))
        n = self.cfg.bag_slices
        bag = torch.from_numpy(cut_bag(self.sources[i], dz, dy, dx, n, self.cfg.max_shift, self.margin)
                               .astype(np.float32) / 255.0)[:, None]
        if self.augment is not None:
            if rng.random() < self.augment["brightness_contrast_p"]:
                contrast = 1 + rng.uniform(-self.augment["contrast"], self.augment["contrast"])
                brightness = rng.uniform(-self.augment["brightness"], self.augment["brightness"])
                bag = (bag * contrast + brightness).clamp(0, 1)
            if rng.random() < self.augment["shift_scale_rotate_p"]:
                bag = shift_scale_rotate(bag, self.augment["ssr_shift"], self.augment["ssr_scale"],
                                         self.augment["ssr_rotate"], rng)
        key = (n - 1) // 2 - dz
        return bag, self.grades[i], key if 0 <= key < n else -1, i


def _study_sources(args: tuple) -> list[tuple[int, np.ndarray | None, str]]:
    """Source regions of one study's points (each series read once): (row, region or None, status)."""
    images, rows, cfg = args
    volumes: dict[int, object] = {}
    out = []
    for row in rows:
        try:
            sid = int(row["series_id"])
            if sid not in volumes:
                volumes[sid] = read_series(Path(images) / str(int(row["study_id"])) / str(sid), normalise=(1.0, 99.0))
            volume = volumes[sid]
            if isinstance(volume, str):
                raise LookupError(volume)
            k = volume.index_of(int(row["instance_number"]))
            out.append((row["row"], source_region(volume.pixels, k, row["x"], row["y"], row["condition"], cfg), "ok"))
        except (SeriesReadError, OSError) as err:
            volumes[int(row["series_id"])] = f"series unreadable: {err}"
            out.append((row["row"], None, volumes[int(row["series_id"])]))
        except (LookupError, ValueError) as err:
            out.append((row["row"], None, str(err).strip("'\"")))
    return out


def build_sources(images: Path, points: pd.DataFrame, cfg: BagConfig, workers: int = 1,
                  progress: bool = True) -> dict[str, tuple[np.ndarray, pd.DataFrame]]:
    """Source regions of every point (study_id, condition, level, series_id, instance_number, x, y, ...) by kind.

    ``images`` is the ``<split>_images`` folder. Returns kind → (regions (N, S, H, W) uint8, index with
    ``status``); rows that failed keep zeros and their reason.
    """
    out = {}
    for kind in sorted(set(BAG_KIND[c] for c in points["condition"].unique())):
        plan = points[points["condition"].map(BAG_KIND) == kind].reset_index(drop=True)
        condition = plan["condition"].iloc[0]
        h, w = cfg.bag_size(condition)
        m = cfg.margin_px(condition)
        regions = np.zeros((len(plan), cfg.bag_slices + 2 * cfg.max_shift, h + 2 * m, w + 2 * m), dtype=np.uint8)
        status = np.full(len(plan), "not made", dtype=object)
        jobs = [(images, group.assign(row=group.index).to_dict("records"), cfg)
                for _, group in plan.groupby("study_id")]
        for found in process_map(_study_sources, jobs, workers, chunksize=4, progress=progress, desc=kind):
            for row, region, reason in found:
                if region is not None:
                    regions[row] = region
                status[row] = reason
        out[kind] = (regions, plan.assign(status=status))
    return out
