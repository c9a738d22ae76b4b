"""Stage 1a: which sagittal slice ("instance number") shows each level (multi-stage paper §2.1.1, Table 2).

A 3D CNN reads the sagittal stack of ``depth`` = 32 slices. Its feature map is
pooled in-plane only, so the slice axis keeps its positions: f (B, C, 32).
Level-separated heads, trained together:

* classification: logits_h (B, 32) = conv1x1_h(f), loss CE(logits_h, z_h);
* regression: (x', y', z')_h = (x / W, y / H, z / 32), loss
  |Δx'| + |Δy'| + w_z |Δz'| (L1 with a weight on z').

L = CE + λ · L1, over the heads annotated on that series (others masked).
Prediction: argmax of the logits and 32 · z' mapped back to the native index;
the ensemble is the median over both heads and every fold.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from spinelib.models.resnet import ResNet3d


class InstanceNet(nn.Module):
    """3D ResNet (slice axis never strided) + per-head slice logits (B, H, D) and regression (B, H, 3)."""

    def __init__(self, num_heads: int, depth: int = 32, base_width: int = 16, blocks: tuple[int, ...] = (2, 2, 2, 2)):
        super().__init__()
        self.encoder = ResNet3d(1, base_width, blocks)
        channels = self.encoder.feature_dim
        self.num_heads = num_heads
        self.classify = nn.Conv1d(channels, num_heads, kernel_size=1)
        self.squeeze = nn.Conv1d(channels, 8, kernel_size=1)
        self.regress = nn.Linear(8 * depth, num_heads * 3)

    def forward(self, stacks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.encoder.feature_map(stacks).mean(dim=(3, 4))         # (B, C, D)
        logits = self.classify(features)                                     # (B, H, D)
        regression = self.regress(F.relu(self.squeeze(features)).flatten(1))
        return logits, regression.view(-1, self.num_heads, 3)


class StackDataset(Dataset):
    """Sagittal stacks (N, D, S, S) uint8 with targets z (N, H) (−1: not annotated) and (x', y') (N, H, 2)."""

    def __init__(self, stacks: np.ndarray, z: np.ndarray, xy: np.ndarray):
        self.stacks, self.z, self.xy = stacks, torch.as_tensor(z, dtype=torch.long), torch.as_tensor(xy).float()

    def __len__(self) -> int:
        return len(self.stacks)

    def __getitem__(self, i: int):
        stack = torch.from_numpy(np.asarray(self.stacks[i], dtype=np.float32) / 255.0)[None]
        return stack, self.z[i], self.xy[i], i


def instance_loss(logits: torch.Tensor, regression: torch.Tensor, z: torch.Tensor, xy: torch.Tensor,
                  depth: int, z_weight: float, reg_weight: float) -> torch.Tensor:
    """CE over the slice logits + λ · (|Δx'| + |Δy'| + w_z |Δz'|), on annotated heads only."""
    mask = z >= 0
    if not bool(mask.any()):
        return logits.sum() * 0.0
    ce = F.cross_entropy(logits[mask], z[mask])
    target = torch.cat([xy[mask], (z[mask].float() / depth)[:, None]], dim=1)
    error = (regression[mask] - target).abs()
    l1 = (error[:, 0] + error[:, 1] + z_weight * error[:, 2]).mean()
    return ce + reg_weight * l1


@dataclass
class InstanceTask:
    """Stage 1a for ``fit``: the loss above; validation reports loss and exact-slice accuracy of the ensemble."""

    depth: int
    z_weight: float
    reg_weight: float

    def train_step(self, model: nn.Module, batch, device: torch.device) -> torch.Tensor:
        stacks, z, xy, _ = batch
        logits, regression = model(stacks.to(device))
        return instance_loss(logits, regression, z.to(device), xy.to(device), self.depth, self.z_weight,
                             self.reg_weight)

    def evaluate(self, model: nn.Module, loader, device: torch.device) -> dict[str, float]:
        losses, hits, count = [], 0, 0
        for stacks, z, xy, _ in loader:
            logits, regression = model(stacks.to(device))
            z, xy = z.to(device), xy.to(device)
            losses.append(instance_loss(logits, regression, z, xy, self.depth, self.z_weight, self.reg_weight).item())
            mask = z >= 0
            cls, reg = logits.argmax(-1), (regression[..., 2] * self.depth).round().long()
            hits += int((cls[mask] == z[mask]).sum() + (reg[mask] == z[mask]).sum())
            count += 2 * int(mask.sum())
        return {"val_loss": float(np.mean(losses)) if losses else float("nan"),
                "slice_accuracy": hits / count if count else float("nan")}


@torch.no_grad()
def predict_stacks(models: list[nn.Module], stacks: np.ndarray, depth: int, batch_size: int = 16,
                   device: torch.device = torch.device("cpu")) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Input-index predictions (N, H) of each model: classification z, regression 32·z', and (x', y') (N, H, 2).

    Returns arrays with a leading model axis: cls (M, N, H), reg (M, N, H), xy (M, N, H, 2).
    """
    cls, reg, xy = [], [], []
    for model in models:
        model.eval().to(device)
        parts = []
        for start in range(0, len(stacks), batch_size):
            batch = torch.from_numpy(np.asarray(stacks[start:start + batch_size], dtype=np.float32) / 255.0)[:, None]
            logits, regression = model(batch.to(device))
            parts.append((logits.argmax(-1).cpu().numpy(), regression.cpu().numpy()))
        cls.append(np.concatenate([p[0] for p in parts]))
        regression = np.concatenate([p[1] for p in parts])
        reg.append(regression[..., 2] * depth)
        xy.append(regression[..., :2])
    return np.stack(cls), np.stack(reg), np.stack(xy)


def to_native(z: np.ndarray, native_depth: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Input index z → native slice index round(z / s), clipped to [0, D − 1] (per row: D and s broadcast)."""
    native = np.rint(np.asarray(z, dtype=float) / scale)
    return np.clip(native, 0, native_depth - 1).astype(np.int64)


def ensemble_native(cls: np.ndarray, reg: np.ndarray, native_depth: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Median over models and both heads of the native indices (M, N, H) → (N, H)."""
    members = np.concatenate([to_native(cls, native_depth, scale), to_native(reg, native_depth, scale)])
    return np.rint(np.median(members, axis=0)).astype(np.int64)


def error_table(errors: dict[str, np.ndarray]) -> pd.DataFrame:
    """Table 2: share (%) of slice errors 0, ±1, ±2 and beyond ±2, one row per model type."""
    rows = {}
    for name, error in errors.items():
        error = np.abs(np.asarray(error))
        rows[name] = {"error ±0": np.mean(error == 0), "error ±1": np.mean(error == 1),
                      "error ±2": np.mean(error == 2), "error > ±2": np.mean(error > 2), "n": len(error)}
    table = pd.DataFrame(rows).T
    share = ["error ±0", "error ±1", "error ±2", "error > ±2"]
    table[share] = (100 * table[share].astype(float)).round(2)
    table["n"] = table["n"].astype(int)
    return table
