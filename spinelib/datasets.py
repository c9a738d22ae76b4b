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
