"""The multi-stage paper's Stage 1 networks: which slice shows each level (1a), and where on it (1b/1c) (§2.1).

* :class:`InstanceNet` (Stage 1a) reads the sagittal stack of ``depth`` = 32 slices with a 3D CNN. Its
  feature map is pooled in-plane only, so the slice axis keeps its positions: f (B, C, 32). Level-separated
  heads, trained together: classification logits_h (B, 32) = conv1x1_h(f), and regression of
  (x', y', z')_h = (x / W, y / H, z / 32).
* :class:`CoordNet` (Stages 1b/1c) reads the chosen slice and its two neighbours as 3 channels (S × S) with a
  2D CNN and regresses normalised (x', y')_h = (x / W, y / H) per head h.

The losses are in :mod:`spinelib.losses.localisation`, the training in :mod:`spinelib.studies.multistage`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from spinelib.models.mil import slice_encoder
from spinelib.models.resnet import ResNet3d


class InstanceNet(nn.Module):
    """3D ResNet (slice axis never strided) + per-head slice logits (B, H, D) and regression (B, H, 3)."""

    def __init__(self, num_heads: int, depth: int = 32, base_width: int = 16, blocks: tuple[int, ...] = (2, 2, 2, 2)):
        super().__init__()
        self.encoder = ResNet3d(1, base_width, blocks)
        channels = self.encoder.feature_dim
        self.num_heads = num_heads
        self.classify = nn.Conv1d(channels, num_heads, kernel_size=1)      # one logit per head and slice
        self.squeeze = nn.Conv1d(channels, 8, kernel_size=1)               # 8 channels per slice for the regression
        self.regress = nn.Linear(8 * depth, num_heads * 3)

    def forward(self, stacks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``stacks`` (B, 1, D, S, S) → (logits (B, H, D), regression (B, H, 3))."""
        features = self.encoder.feature_map(stacks).mean(dim=(3, 4))         # (B, C, D): in-plane mean only
        logits = self.classify(features)                                     # (B, H, D)
        regression = self.regress(F.relu(self.squeeze(features)).flatten(1))   # (B, 8·D) → (B, 3·H)
        return logits, regression.view(-1, self.num_heads, 3)


class CoordNet(nn.Module):
    """2D CNN encoder (3 channels) + a linear head of 2 outputs per (condition, level)."""

    def __init__(self, num_heads: int, encoder: str = "resnet18"):
        super().__init__()
        self.encoder, dim = slice_encoder(encoder, in_channels=3)
        self.num_heads = num_heads
        self.head = nn.Linear(dim, 2 * num_heads)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``images`` (B, 3, S, S) → normalised (x', y') per head (B, H, 2)."""
        return self.head(self.encoder(images)).view(-1, self.num_heads, 2)
