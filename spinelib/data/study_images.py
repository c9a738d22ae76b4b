"""A study folder → its series and the preprocessed images every step of the multi-stage pipeline reads.

Stage 1a reads the sagittal volume padded (or, beyond ``depth`` slices,
linearly resampled) to ``depth`` = 32 slices at a small in-plane size; Stages
1b/1c read one slice with its two neighbours as 3 channels. Intensities are
windowed per series to [0, 1] between the 1st and 99th percentiles and kept
as uint8. The slice axis maps native index k to input index z = k · s with
s = 1 when D ≤ depth (zero padding after the last slice) and
s = (depth − 1) / (D − 1) otherwise.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from spinelib.constants import AXIAL_T2, CONDITIONS, LEVELS, SAGITTAL_T1, SAGITTAL_T2, SERIES_TYPES
from spinelib.data.dicom import InstanceReadError, Volume, read_header, read_series, to_uint8
from spinelib.data.patient_geometry import Geometry
from spinelib.data.rsna import read_series_descriptions
from spinelib.data.series_type import infer_series_type

log = logging.getLogger(__name__)

# The conditions localised on each series type (where RSNA annotates them).
SERIES_CONDITIONS: dict[str, tuple[str, ...]] = {
    SAGITTAL_T2: CONDITIONS[:1],
    SAGITTAL_T1: CONDITIONS[1:3],
    AXIAL_T2: CONDITIONS[3:],
}
SERIES_KEYS: dict[str, str] = {SAGITTAL_T2: "sag_t2", SAGITTAL_T1: "sag_t1", AXIAL_T2: "axial"}


def heads(series_type: str) -> list[tuple[str, str]]:
    """The (condition, level) heads of a series type's localisers, in a fixed order."""
    return [(condition, level) for condition in SERIES_CONDITIONS[series_type] for level in LEVELS]


@dataclass
class SeriesImages:
    """One series, preprocessed: ``stack`` (depth, S, S) for Stage 1a (sagittal only), ``slices`` (D, S2, S2)."""

    study_id: int
    series_id: int
    description: str
    geometry: Geometry
    slices: np.ndarray
    stack: np.ndarray | None
    instance_numbers: np.ndarray

    @property
    def depth(self) -> int:
        return self.geometry.shape[0]


def depth_scale(depth: int, target: int) -> float:
    """s in z = k · s (see the module docstring)."""
    return 1.0 if depth <= target else (target - 1) / (depth - 1)


def _resize(pixels: np.ndarray, size: int) -> np.ndarray:
    """(D, H, W) float → (D, size, size) with antialiased bilinear resizing."""
    # the slices as a batch of one-channel images: (D, 1, H, W)
    tensor = torch.from_numpy(np.ascontiguousarray(pixels, dtype=np.float32))[:, None]
    return F.interpolate(tensor, size=(size, size), mode="bilinear", antialias=True, align_corners=False)[:, 0].numpy()


def sagittal_stack(pixels: np.ndarray, depth: int, size: int) -> np.ndarray:
    """(D, H, W) in [0, 1] → (depth, size, size): zero-padded after the last slice, or resampled when D > depth."""
    small = _resize(pixels, size)
    count = small.shape[0]
    if count <= depth:   # short series: keep the native slices, z = k (s = 1)
        out = np.zeros((depth, size, size), dtype=np.float32)
        out[:count] = small
        return out
    # long series: input slice z samples the native axis at k = z / s, linearly between its two neighbours
    position = np.arange(depth) / depth_scale(count, depth)        # native position of input slice z
    low = np.floor(position).astype(int).clip(0, count - 1)
    high = np.minimum(low + 1, count - 1)
    frac = (position - low)[:, None, None].astype(np.float32)
    return small[low] * (1 - frac) + small[high] * frac


def three_channels(slices: np.ndarray, k: int) -> np.ndarray:
    """Slices k − 1, k, k + 1 (clamped at the ends) as a (3, S, S) array."""
    index = np.clip([k - 1, k, k + 1], 0, slices.shape[0] - 1)   # the first/last slice repeats at the ends
    return slices[index]


def prepare_series(volume: Volume, study_id: int, series_id: int, description: str, stack_depth: int,
                   stack_size: int, slice_size: int) -> SeriesImages:
    """Preprocess a read series (pixels already windowed to [0, 1])."""
    # Stage 1a reads only sagittal series: an axial series has no stack
    stack = to_uint8(sagittal_stack(volume.pixels, stack_depth, stack_size)) if description != AXIAL_T2 else None
    slices = to_uint8(_resize(volume.pixels, slice_size))
    return SeriesImages(study_id, series_id, description, Geometry.of(volume), slices, stack,
                        np.asarray(volume.instance_numbers))


def study_series(study_dir: Path, descriptions: pd.DataFrame | None = None) -> pd.DataFrame:
    """(study_id, series_id, series_description) of a study folder ``<images>/<study_id>/<series_id>/``.

    Descriptions come from ``descriptions`` when given, else from a
    ``*_series_descriptions.csv`` two folders up (the RSNA layout). A series
    the CSV does not list gets the type :func:`infer_series_type` reads from
    its first file's header (orientation, description, echo/repetition
    times); where the CSV lists it, the CSV wins and a disagreeing header is
    logged as a warning. Series of other types are dropped with a log line.
    """
    study_dir = Path(study_dir)
    if not study_dir.is_dir():
        raise FileNotFoundError(f"{study_dir}: study folder not found")
    study_id = int(study_dir.name)
    folders = sorted(p for p in study_dir.iterdir() if p.is_dir() and p.name.isdigit())
    if descriptions is None:
        for csv in sorted(study_dir.parent.parent.glob("*_series_descriptions.csv")):
            table = read_series_descriptions(csv)
            if (table["study_id"] == study_id).any():
                descriptions = table
                break
    if descriptions is not None and "study_id" in descriptions:
        descriptions = descriptions[descriptions["study_id"].astype(int) == study_id]
    known = {} if descriptions is None else dict(zip(descriptions["series_id"].astype(int),
                                                      descriptions["series_description"].astype(str)))
    rows = []
    for folder in folders:
        listed = known.get(int(folder.name))
        listed = None if listed is None else {d.lower(): d for d in SERIES_TYPES}.get(listed.strip().lower())
        inferred = _inferred_type(folder, study_id)
        if listed is not None and inferred is not None and inferred != listed:
            log.warning("study %s: series %s is %r in the descriptions CSV but its DICOM header looks like %r; "
                        "kept the CSV's", study_id, folder.name, listed, inferred)
        description = listed if listed is not None else inferred
        if description is None:
            log.warning("study %s: series %s is not one of %s; ignored", study_id, folder.name, SERIES_TYPES)
            continue
        rows.append((study_id, int(folder.name), description))
    return pd.DataFrame(rows, columns=["study_id", "series_id", "series_description"])


def _inferred_type(folder: Path, study_id: int) -> str | None:
    """:func:`infer_series_type` of the series' first readable header; None (logged) when there is none."""
    for path in sorted(folder.glob("*.dcm"))[:3]:   # a broken first file should not hide the series
        try:
            return infer_series_type(read_header(path))
        except (InstanceReadError, OSError) as err:
            log.warning("study %s: header of %s unreadable (%s)", study_id, path, err)
    return None


def read_study(study_dir: Path, series: pd.DataFrame, stack_depth: int, stack_size: int, slice_size: int,
               keep_volumes: bool = False) -> tuple[dict[int, SeriesImages], dict[int, Volume], list[str]]:
    """Read every listed series of a study once: preprocessed images, optionally the volumes, and problems."""
    images, volumes, problems = {}, {}, []
    for row in series.itertuples():
        try:
            volume = read_series(Path(study_dir) / str(row.series_id), normalise=(1.0, 99.0))
        except (OSError, ValueError, RuntimeError) as err:
            problems.append(f"series {row.series_id} ({row.series_description}) unreadable: {err}")
            continue
        images[row.series_id] = prepare_series(volume, int(row.study_id), int(row.series_id), row.series_description,
                                               stack_depth, stack_size, slice_size)
        if keep_volumes:
            volumes[row.series_id] = volume
    return images, volumes, problems
