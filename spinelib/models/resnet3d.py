"""3D ResNet-18 for disc volumes and sagittal stacks (ranking paper §2.2; multi-stage Stage 1a).

The slice axis is kept at full resolution: every stride is (1, s, s), so a
volume of D slices still has D positions after the last stage, and only the
in-plane axes are downsampled. Global average pooling over (D, H, W) gives
the embedding z of dimension 8 · ``base_width`` (512 at the standard width 64).

Input (B, C, D, H, W); output (B, 8 · base_width).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn


def _conv(c_in: int, c_out: int, stride: int) -> nn.Conv3d:
    return nn.Conv3d(c_in, c_out, kernel_size=3, stride=(1, stride, stride), padding=1, bias=False)


class BasicBlock3d(nn.Module):
    """Two 3×3×3 convolutions with batch norm and an identity (or 1×1×1 projection) shortcut."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1):
        super().__init__()
        self.conv1, self.bn1 = _conv(c_in, c_out, stride), nn.BatchNorm3d(c_out)
        self.conv2, self.bn2 = _conv(c_out, c_out, 1), nn.BatchNorm3d(c_out)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv3d(c_in, c_out, 1, stride=(1, stride, stride), bias=False),
                                          nn.BatchNorm3d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNet3d(nn.Module):
    """ResNet with (1, s, s) strides: stem 3×7×7 stride (1, 2, 2), max-pool (1, 2, 2), four stages."""

    def __init__(self, in_channels: int = 1, base_width: int = 64, blocks: Sequence[int] = (2, 2, 2, 2)):
        super().__init__()
        if in_channels < 1 or base_width < 1:
            raise ValueError(f"in_channels and base_width must be positive, got {in_channels}, {base_width}")
        self.stem = nn.Sequential(
            nn.Conv3d(in_channels, base_width, kernel_size=(3, 7, 7), stride=(1, 2, 2), padding=(1, 3, 3), bias=False),
            nn.BatchNorm3d(base_width), nn.ReLU(inplace=True),
            nn.MaxPool3d(kernel_size=(1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1)))
        stages, c_in = [], base_width
        for i, n in enumerate(blocks):
            c_out = base_width * 2**i
            stride = 1 if i == 0 else 2
            stages.append(nn.Sequential(*[BasicBlock3d(c_in if j == 0 else c_out, c_out, stride if j == 0 else 1)
                                          for j in range(n)]))
            c_in = c_out
        self.layers = nn.Sequential(*stages)
        self.feature_dim = c_in
        for m in self.modules():
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, D, H, W) → (B, 8·w, D, H/32, W/32) (the slice axis D is never strided)."""
        return self.layers(self.stem(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.feature_map(x).mean(dim=(2, 3, 4))


def resnet3d18(in_channels: int = 1, base_width: int = 64) -> ResNet3d:
    """3D ResNet-18 (2, 2, 2, 2 basic blocks); 512-d output at ``base_width`` 64."""
    return ResNet3d(in_channels, base_width, (2, 2, 2, 2))
