"""Stage 1 inputs of the multi-stage paper: sagittal stacks (Stage 1a) and 3-channel slices (Stages 1b/1c).

The arrays are the preprocessed uint8 images of :mod:`spinelib.data.study_images`; the targets are built per
series type by :mod:`spinelib.studies.multistage.localisation`.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from spinelib.data.study_images import three_channels


class StackDataset(Dataset):
    """Sagittal stacks (N, D, S, S) uint8 with targets z (N, H) (−1: not annotated) and (x', y') (N, H, 2).

    Item i: (stack (1, D, S, S) float in [0, 1], z (H,) long, xy (H, 2) float, i).
    """

    def __init__(self, stacks: np.ndarray, z: np.ndarray, xy: np.ndarray):
        self.stacks, self.z, self.xy = stacks, torch.as_tensor(z, dtype=torch.long), torch.as_tensor(xy).float()

    def __len__(self) -> int:
        return len(self.stacks)

    def __getitem__(self, i: int):
        stack = torch.from_numpy(np.asarray(self.stacks[i], dtype=np.float32) / 255.0)[None]   # one input channel
        return stack, self.z[i], self.xy[i], i


class SliceDataset(Dataset):
    """Samples (series slices, slice k) with targets (H, 2) and a mask (H,) of the annotated heads.

    ``slices`` maps a sample to its series' (D, S, S) uint8 array; ``shift`` > 0
    moves the in-plane target by a random integer shift of the image (in input
    pixels) as augmentation. Item i: (image (3, S, S) float in [0, 1], xy (H, 2), mask (H,) bool, i).
    """

    def __init__(self, slices: list[np.ndarray], k: np.ndarray, xy: np.ndarray, mask: np.ndarray, shift: int = 0):
        self.slices, self.k = slices, np.asarray(k, dtype=np.int64)
        self.xy, self.mask, self.shift = torch.as_tensor(xy).float(), torch.as_tensor(mask).bool(), shift

    def __len__(self) -> int:
        return len(self.k)

    def __getitem__(self, i: int):
        image = torch.from_numpy(three_channels(self.slices[i], int(self.k[i])).astype(np.float32) / 255.0)
        xy = self.xy[i].clone()
        if self.shift > 0:
            size = image.shape[-1]
            # numpy's global generator (seeded per epoch by ``fit``); the image wraps round (torch.roll)
            dx, dy = (int(v) for v in np.random.randint(-self.shift, self.shift + 1, size=2))
            image = torch.roll(image, shifts=(dy, dx), dims=(1, 2))
            xy += torch.tensor([dx / size, dy / size])      # targets are normalised: a shift of d px moves them d / S
        return image, xy, self.mask[i], i
