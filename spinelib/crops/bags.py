"""Stage 2 inputs of the multi-stage paper: the source region stored around each point, and the bag cut from it
(multi-stage paper §2.2.1, Table 1).

For every point (annotated or predicted) a *source* region is stored: the
bag's ``bag_slices`` slices plus ``max_shift`` on each side, and the Table 1
box (left, right, up, down) plus ``margin`` pixels on each side, resized by
the kind's ``scale``. A bag is cut from it on the fly (:func:`cut_bag`); the
random shifts that simulate Stage 1 errors are drawn by
:class:`spinelib.datasets.bags.BagDataset`.

Left subarticular regions are mirrored so that both sides share one model.
Without jitter the cut is exactly the Table 1 box around the point.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from spinelib.crops.geometry import Box, crop_stack, resize_stack, to_uint8
from spinelib.crops.plan import BAG_KIND, TABLE1_RANGES
from spinelib.data.dicom import SeriesReadError, read_series
from spinelib.parallel import process_map

# Conditions whose regions are mirrored left-right, so that one model grades both sides (the right side is kept).
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
        """The Table 1 box of ``condition`` in native pixels (left and right swapped for a mirrored condition)."""
        left, right, up, down = self.ranges[condition]
        if condition in MIRRORED:
            left, right = right, left
        return Box(left, right, up, down)

    def bag_size(self, condition: str) -> tuple[int, int]:
        """(h, w) of a cut bag at the stored scale."""
        box, scale = self.box(condition), self.scale[BAG_KIND[condition]]
        return round(box.height * scale), round(box.width * scale)

    def margin_px(self, condition: str) -> int:
        """The jitter margin in stored pixels (``margin`` native pixels at the kind's scale)."""
        return round(self.margin * self.scale[BAG_KIND[condition]])


def source_region(pixels: np.ndarray, k: int, x: float, y: float, condition: str, cfg: BagConfig) -> np.ndarray:
    """The stored region around (k, x, y) of a volume in [0, 1]: (bag_slices + 2·max_shift, h + 2m, w + 2m) uint8."""
    box = cfg.box(condition)
    if condition in MIRRORED:  # mirror the image, then the point: the region is cut from the mirrored slices
        pixels, x = pixels[:, :, ::-1], pixels.shape[2] - 1 - x
    # the Table 1 box widened by the jitter margin on every side, in native pixels (outside the image: zeros)
    wide = Box(box.left + cfg.margin, box.right + cfg.margin, box.up + cfg.margin, box.down + cfg.margin)
    stack, _ = crop_stack(pixels, int(k), cfg.bag_slices + 2 * cfg.max_shift, x, y, wide, fill=0.0)
    h, w = cfg.bag_size(condition)
    m = cfg.margin_px(condition)
    return to_uint8(resize_stack(np.ascontiguousarray(stack), (h + 2 * m, w + 2 * m)))


def cut_bag(source: np.ndarray, dz: int, dy: int, dx: int, n_slices: int, max_shift: int, margin: int) -> np.ndarray:
    """The bag of ``n_slices`` shifted by (dz, dy, dx) inside a source region (no shift: its centre).

    ``source`` is (n_slices + 2·max_shift, h + 2·margin, w + 2·margin); the bag is (n_slices, h, w), a view.
    """
    _, height, width = source.shape
    h, w = height - 2 * margin, width - 2 * margin
    z0, y0, x0 = max_shift + dz, margin + dy, margin + dx    # the unshifted bag starts at (max_shift, margin, margin)
    return source[z0:z0 + n_slices, y0:y0 + h, x0:x0 + w]


def _study_sources(args: tuple) -> list[tuple[int, np.ndarray | None, str]]:
    """Source regions of one study's points (each series read once): (row, region or None, status)."""
    images, rows, cfg = args
    # series id → its volume, or the reason it could not be read (so that a broken series is tried once)
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
        # every condition of a kind shares its box size (Table 1), so the first row's condition sizes the array
        condition = plan["condition"].iloc[0]
        h, w = cfg.bag_size(condition)
        m = cfg.margin_px(condition)
        regions = np.zeros((len(plan), cfg.bag_slices + 2 * cfg.max_shift, h + 2 * m, w + 2 * m), dtype=np.uint8)
        status = np.full(len(plan), "not made", dtype=object)
        # one job per study (its series read once); "row" carries each point's place in ``plan`` through the workers
        jobs = [(images, group.assign(row=group.index).to_dict("records"), cfg)
                for _, group in plan.groupby("study_id")]
        for found in process_map(_study_sources, jobs, workers, chunksize=4, progress=progress, desc=kind):
            for row, region, reason in found:
                if region is not None:
                    regions[row] = region
                status[row] = reason
        out[kind] = (regions, plan.assign(status=status))
    return out
