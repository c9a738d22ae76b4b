"""ResNet-18 at any width, 3D for disc volumes and sagittal stacks (ranking paper §2.2; multi-stage Stage 1a) and
2D for slices (the default CPU profile's narrow slice encoder of multi-stage Stage 2).

3D: the slice axis is kept at full resolution: every stride is (1, s, s), so a volume of D slices still has D
positions after the last stage, and only the in-plane axes are downsampled. 2D: the usual strides. Global average
pooling over the remaining axes gives the embedding z of dimension 8 · ``base_width`` (512 at the standard
width 64; a network of width w costs about (w / 64)² of the standard one's multiply-adds).

Input (B, C, D, H, W) for 3D, (B, C, H, W) for 2D; output (B, 8 · base_width).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

# The layer classes of each dimensionality, (convolution, batch norm, max-pool): one code path builds both networks.
_LAYERS = {3: (nn.Conv3d, nn.BatchNorm3d, nn.MaxPool3d), 2: (nn.Conv2d, nn.BatchNorm2d, nn.MaxPool2d)}


def _stride(s: int, dims: int) -> tuple[int, ...]:
    """(1, s, s) in 3D (the slice axis is never strided), (s, s) in 2D."""
    return (1, s, s) if dims == 3 else (s, s)


def _conv(c_in: int, c_out: int, stride: int, dims: int) -> nn.Module:
    """3×3 (3×3×3) convolution, padding 1, no bias (a batch norm follows), in-plane stride ``stride``."""
    return _LAYERS[dims][0](c_in, c_out, kernel_size=3, stride=_stride(stride, dims), padding=1, bias=False)


class BasicBlock(nn.Module):
    """Two 3×3(×3) convolutions with batch norm and an identity (or 1×1(×1) projection) shortcut."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1, dims: int = 3):
        super().__init__()
        norm = _LAYERS[dims][1]
        # Only the first convolution strides; the second keeps the resolution.
        self.conv1, self.bn1 = _conv(c_in, c_out, stride, dims), norm(c_out)
        self.conv2, self.bn2 = _conv(c_out, c_out, 1, dims), norm(c_out)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = nn.Identity()
        # When the block changes resolution or width, x cannot be added as it is: a strided 1×1 convolution
        # (+ BN) maps it to the output's shape (He et al.'s projection shortcut, option B).
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(_LAYERS[dims][0](c_in, c_out, 1, stride=_stride(stride, dims), bias=False),
                                          norm(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """y = ReLU(BN(conv2(ReLU(BN(conv1(x))))) + shortcut(x)); (B, c_in, [D,] H, W) -> (B, c_out, [D,] H/s, W/s)."""
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNet(nn.Module):
    """ResNet: stem 7×7 (3×7×7 in 3D) stride 2, max-pool stride 2, four stages of basic blocks (in-plane strides)."""

    def __init__(self, in_channels: int = 1, base_width: int = 64, blocks: Sequence[int] = (2, 2, 2, 2),
                 dims: int = 3):
        super().__init__()
        if in_channels < 1 or base_width < 1:
            raise ValueError(f"in_channels and base_width must be positive, got {in_channels}, {base_width}")
        if dims not in _LAYERS:
            raise ValueError(f"dims must be 2 or 3, got {dims}")
        conv, norm, pool = _LAYERS[dims]
        # ---- stem: 7×7 convolution (3×7×7 in 3D: only 3 slices deep, so thin stacks keep their slices) ----
        kernel, padding = ((3, 7, 7), (1, 3, 3)) if dims == 3 else ((7, 7), (3, 3))
        self.stem = nn.Sequential(
            conv(in_channels, base_width, kernel_size=kernel, stride=_stride(2, dims), padding=padding, bias=False),
            norm(base_width), nn.ReLU(inplace=True),
            pool(kernel_size=(1, 3, 3) if dims == 3 else 3, stride=_stride(2, dims),
                 padding=(0, 1, 1) if dims == 3 else 1))
        # ---- four residual stages: widths w, 2w, 4w, 8w; every stage but the first halves H and W ----
        stages, c_in = [], base_width
        for stage_index, n_blocks in enumerate(blocks):
            c_out = base_width * 2**stage_index
            stride = 1 if stage_index == 0 else 2      # the stem's max-pool already downsampled before stage 1
            # Only the first block of a stage changes width and resolution; the others map c_out -> c_out.
            stages.append(nn.Sequential(*[BasicBlock(c_in if block_index == 0 else c_out, c_out,
                                                     stride if block_index == 0 else 1, dims)
                                          for block_index in range(n_blocks)]))
            c_in = c_out
        self.layers = nn.Sequential(*stages)
        self.feature_dim = c_in    # 8 · base_width: the embedding size that heads read (OrdinalModel, MIL)
        # ---- initialisation: He (fan_out) for convolutions, as torchvision's ResNet; BN keeps weight 1, bias 0 ----
        for module in self.modules():
            if isinstance(module, conv):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        """3D: (B, C, D, H, W) → (B, 8·w, D, H/32, W/32) (the slice axis D is never strided); 2D: (B, 8·w, H/32, W/32)."""
        return self.layers(self.stem(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Embedding z (B, 8·w): the feature map averaged over all its spatial (and slice) positions."""
        # flatten(2) merges (D, H', W') (or (H', W')) into one axis so one mean pools both dimensionalities.
        return self.feature_map(x).flatten(2).mean(dim=2)


ResNet3d = ResNet   # the 3D network's name where the code reads volumes


def resnet3d18(in_channels: int = 1, base_width: int = 64) -> ResNet:
    """3D ResNet-18 (2, 2, 2, 2 basic blocks); 512-d output at ``base_width`` 64."""
    return ResNet(in_channels, base_width, (2, 2, 2, 2), dims=3)


def resnet2d18(in_channels: int = 1, base_width: int = 64) -> ResNet:
    """2D ResNet-18 (2, 2, 2, 2 basic blocks); 512-d output at ``base_width`` 64."""
    return ResNet(in_channels, base_width, (2, 2, 2, 2), dims=2)
