"""ResNet-18 at any width, in 3D (the slice axis never strided) and in 2D."""

from __future__ import annotations

import pytest
import torch

from spinelib.models.resnet import ResNet, resnet2d18, resnet3d18


def test_resnet3d_keeps_the_slice_axis():
    net = resnet3d18(1, base_width=4)
    x = torch.randn(2, 1, 12, 64, 128)
    assert net.feature_map(x).shape == (2, 32, 12, 2, 4)
    assert net(x).shape == (2, 32)
    assert resnet3d18(1, 64).feature_dim == 512


def test_resnet2d_strides_both_axes_and_pools_to_8_times_the_width():
    net = resnet2d18(1, base_width=8)
    x = torch.randn(3, 1, 64, 128)
    assert net.feature_map(x).shape == (3, 64, 2, 4)
    assert net(x).shape == (3, 64) and net.feature_dim == 64
    assert all(not isinstance(m, torch.nn.Conv3d) for m in net.modules())


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="dims"):
        ResNet(1, 8, dims=1)
    with pytest.raises(ValueError, match="positive"):
        ResNet(0, 8)
