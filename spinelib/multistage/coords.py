"""Stages 1b and 1c: in-plane (x, y) on a chosen slice (multi-stage paper §2.1.2–2.1.3).

Input: the chosen slice and its two neighbours as 3 channels, resized to S × S.
A 2D CNN with level-separated regression heads predicts normalised
(x', y')_h = (x / W, y / H) per head h; L1 loss on the heads annotated on that
slice. The ensemble is the mean over folds (and encoders, where several).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from spinelib.models.mil import slice_encoder
from spinelib.multistage.inputs import three_channels


class CoordNet(nn.Module):
    """2D CNN encoder (3 channels) + a linear head of 2 outputs per (condition, level)."""

    def __init__(self, num_heads: int, encoder: str = "resnet18"):
        super().__init__()
        self.encoder, dim = slice_encoder(encoder, in_channels=3)
        self.num_heads = num_heads
        self.head = nn.Linear(dim, 2 * num_heads)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(images)).view(-1, self.num_heads, 2)


class SliceDataset(Dataset):
    """Samples (series slices, slice k) with targets (H, 2) and a mask (H,) of the annotated heads.

    ``slices`` maps a sample to its series' (D, S, S) uint8 array; ``shift`` > 0
    moves the in-plane target by a random integer shift of the image (in input
    pixels) as augmentation.
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
            dx, dy = (int(v) for v in np.random.randint(-self.shift, self.shift + 1, size=2))
            image = torch.roll(image, shifts=(dy, dx), dims=(1, 2))
            xy += torch.tensor([dx / size, dy / size])
        return image, xy, self.mask[i], i


def masked_l1(predicted: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """mean over annotated heads of |Δx'| + |Δy'|."""
    if not bool(mask.any()):
        return predicted.sum() * 0.0
    return (predicted[mask] - target[mask]).abs().sum(dim=1).mean()


@dataclass
class CoordTask:
    """Stages 1b/1c for ``fit``: masked L1; validation reports it as ``val_loss``."""

    def train_step(self, model: nn.Module, batch, device: torch.device) -> torch.Tensor:
        images, xy, mask, _ = batch
        return masked_l1(model(images.to(device)), xy.to(device), mask.to(device))

    def evaluate(self, model: nn.Module, loader, device: torch.device) -> dict[str, float]:
        total, count = 0.0, 0
        for images, xy, mask, _ in loader:
            loss = masked_l1(model(images.to(device)), xy.to(device), mask.to(device))
            total += loss.item() * int(mask.sum())
            count += int(mask.sum())
        return {"val_loss": total / count if count else float("nan")}


@torch.no_grad()
def predict_slices(models: list[nn.Module], images: np.ndarray, batch_size: int = 32,
                   device: torch.device = torch.device("cpu")) -> np.ndarray:
    """Mean over models of the normalised (x', y') of every head: images (N, 3, S, S) uint8 → (N, H, 2)."""
    outputs = []
    for model in models:
        model.eval().to(device)
        parts = [model(torch.from_numpy(np.asarray(images[s:s + batch_size], dtype=np.float32) / 255.0).to(device))
                 .cpu().numpy() for s in range(0, len(images), batch_size)]
        outputs.append(np.concatenate(parts) if parts else np.zeros((0, model.num_heads, 2)))
    return np.mean(outputs, axis=0)
