"""PyTorch datasets over the crop store (notebook 01's output).

Crops are uint8 arrays; a dataset turns one into a float tensor in [0, 1]
with its grade (-1 where the grade is missing) and its row in the index, so
predictions can be joined back to study, level and split.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from spinelib.constants import LEVELS
from spinelib.crops.store import CropStore

Transform = Callable[[torch.Tensor], torch.Tensor]


def _grades(index: pd.DataFrame) -> torch.Tensor:
    return torch.tensor(index["grade_index"].fillna(-1).astype(int).to_numpy(), dtype=torch.long)


class RoiDataset(Dataset):
    """2D disc ROIs of one condition and split: ``(image (1, S, S) or views (V, 1, S, S), grade, row)``.

    With ``views > 1`` each item is V independent draws of ``transform`` (the
    contrastive paper's V stochastic views of one disc); otherwise one.
    """

    def __init__(self, store: CropStore, condition: str, split: str | None, transform: Transform,
                 split_column: str = "split", views: int = 1):
        rois, self.index = store.load("roi", split=split, condition=condition, split_column=split_column)
        self.images = torch.from_numpy(np.ascontiguousarray(rois))
        self.grades = _grades(self.index)
        self.transform = transform
        self.views = views

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        image = self.images[i].float().div_(255.0).unsqueeze(0)
        if self.views > 1:
            return torch.stack([self.transform(image) for _ in range(self.views)]), self.grades[i], i
        return self.transform(image), self.grades[i], i


class ShiftedRoiDataset(RoiDataset):
    """Disc ROIs cut from wider crops so that the ROI's centre can move: ``(image (1, S, S), grade, row)``.

    ``store`` holds ROIs of (S + 2m) x (S + 2m) px around each point (m = ``margin``). Item i is the S x S window
    whose centre is moved by ``offsets[i]`` = (dx, dy) px from the point when ``offsets`` (N, 2) is given (a
    controlled shift: the point was off by that much), else by a fresh uniform draw in [-jitter, jitter]² when
    ``jitter`` > 0 (shift augmentation: the multi-stage paper's pre-crop jitter), else not at all. The window
    always lies inside the wide crop, so no padding is invented: |dx|, |dy| <= margin.
    """

    def __init__(self, store: CropStore, condition: str, split: str | None, transform: Transform, margin: int,
                 split_column: str = "split", jitter: int = 0, offsets: np.ndarray | None = None):
        super().__init__(store, condition, split, transform, split_column)     # the wide crops, grades, index
        self.margin, self.jitter = int(margin), int(jitter)
        self.size = (self.images.shape[1] - 2 * self.margin, self.images.shape[2] - 2 * self.margin)
        if min(self.size) < 1:
            raise ValueError(f"margin {margin} leaves no window in crops of {tuple(self.images.shape[1:])} px")
        if self.jitter > self.margin:
            raise ValueError(f"jitter {jitter} px exceeds the crop margin {margin} px")
        self.offsets = None
        if offsets is not None:
            offsets = np.asarray(offsets, dtype=np.int64)
            if offsets.shape != (len(self.images), 2) or np.abs(offsets).max(initial=0) > self.margin:
                raise ValueError(f"offsets must be ({len(self.images)}, 2) integers within ±{margin} px, "
                                 f"got shape {offsets.shape}")
            self.offsets = torch.from_numpy(offsets)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        if self.offsets is not None:
            dx, dy = (int(v) for v in self.offsets[i])
        elif self.jitter > 0:   # torch's generator: reseeded per epoch by the training loop
            dx, dy = (int(v) for v in torch.randint(-self.jitter, self.jitter + 1, (2,)))
        else:
            dx = dy = 0
        top, left = self.margin + dy, self.margin + dx     # a point moved right/down moves the window with it
        window = self.images[i, top: top + self.size[0], left: left + self.size[1]]
        return self.transform(window.float().div(255.0).unsqueeze(0)), self.grades[i], i


class LocaliserDataset(Dataset):
    """2.5D localiser inputs: ``(slices (3, S, S), level index, normalised target (x, y), row)``."""

    def __init__(self, store: CropStore, split: str | None, split_column: str = "split"):
        stacks, self.index = store.load("loc", split=split, split_column=split_column)
        self.images = torch.from_numpy(np.ascontiguousarray(stacks))
        self.levels = torch.tensor(self.index["level"].map(LEVELS.index).to_numpy(), dtype=torch.long)
        self.targets = torch.tensor(self.index[["x_norm", "y_norm"]].to_numpy(), dtype=torch.float32)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
        return self.images[i].float().div_(255.0), self.levels[i], self.targets[i], i


def centre_field(volumes: torch.Tensor, field: tuple[int, int]) -> torch.Tensor:
    """The central ``field`` (H, W) of volumes (..., H0, W0); raises if the field is larger than the volume."""
    h0, w0 = volumes.shape[-2:]
    h, w = int(field[0]), int(field[1])
    if h > h0 or w > w0:
        raise ValueError(f"field {h} x {w} is larger than the stored volumes ({h0} x {w0})")
    top, left = (h0 - h) // 2, (w0 - w) // 2
    return volumes[..., top:top + h, left:left + w]


class VolumeDataset(Dataset):
    """Disc volumes of one split: ``(volume (1, D, H, W), grades (T,), disc index)``, one item per disc.

    ``labels`` is :func:`spinelib.tasks.volume_labels` output. Each disc may have
    several series; ``series`` lists those used, and each item draws one of the
    disc's available series at random (training: T1 or T2 as in the released code)
    or takes the first available in ``series`` order when ``sample_series`` is False.
    ``field`` (H, W), if given, keeps only the central part of each stored volume
    (in stored pixels, so at the stored spacing) before anything else; volumes are
    then resized once to ``size`` (H, W) and kept as uint8. ``augment``
    receives (volume, grades) and returns both (a mirror swaps left/right grades).
    """

    def __init__(self, store: CropStore, labels: pd.DataFrame, task_names: tuple[str, ...], split: str | None,
                 series: list[str], size: tuple[int, int] | None = None, split_column: str = "split",
                 sample_series: bool = False, augment: Callable | None = None,
                 field: tuple[int, int] | None = None):
        rows = labels[labels["series_description"].isin(series)]
        if split is not None:
            rows = rows[rows[split_column] == split]
        rank = {s: i for i, s in enumerate(series)}
        rows = rows.assign(_rank=rows["series_description"].map(rank)).sort_values(["study_id", "level", "_rank"])
        self.discs = rows.drop_duplicates(["study_id", "level"])[["study_id", "level"]].reset_index(drop=True)
        key = pd.MultiIndex.from_frame(rows[["study_id", "level"]])
        disc_of = pd.MultiIndex.from_frame(self.discs).get_indexer(key)
        self.rows = rows.drop(columns="_rank").reset_index(drop=True)
        self.members = [np.flatnonzero(disc_of == i) for i in range(len(self.discs))]
        volumes = torch.from_numpy(np.ascontiguousarray(store.array("volume")[self.rows["row"].to_numpy()]))
        if field is not None:  # the central (H, W) of the stored volume: a smaller field at the stored spacing
            volumes = centre_field(volumes, field)
        if size is not None and tuple(volumes.shape[-2:]) != tuple(size):
            volumes = torch.cat([torch.nn.functional.interpolate(chunk.float(), size=tuple(size), mode="area")
                                 .round_().to(torch.uint8) for chunk in volumes.split(256)])
        self.volumes = volumes
        self.grades = torch.tensor(self.rows[list(task_names)].to_numpy(), dtype=torch.long)
        self.sample_series, self.augment = sample_series, augment

    def __len__(self) -> int:
        return len(self.discs)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        members = self.members[i]
        j = int(members[torch.randint(len(members), ()).item()]) if self.sample_series else int(members[0])
        volume, grades = self.volumes[j].float().div_(255.0), self.grades[j].clone()
        if self.augment is not None:
            volume, grades = self.augment(volume, grades)
        return volume.unsqueeze(0), grades, i

    def rows_used(self) -> pd.DataFrame:
        """The index row of the series each disc uses without sampling (for joining predictions)."""
        return self.rows.iloc[[int(m[0]) for m in self.members]].reset_index(drop=True)
