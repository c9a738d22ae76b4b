"""Stage 1a: index mapping, the median ensemble, Table 2 shares, model shapes."""

from __future__ import annotations

import numpy as np
import torch

from spinelib.multistage.instance import InstanceNet, ensemble_native, error_table, instance_loss, to_native


def test_to_native_undoes_the_depth_scale_and_clips():
    assert to_native(np.array([31.0, 15.5, -3.0]), np.array(63), np.array(0.5)).tolist() == [62, 31, 0]


def test_ensemble_is_the_median_of_both_heads_over_folds():
    cls = np.array([[[3]], [[4]], [[9]]])       # three folds, one series, one head
    reg = np.array([[[4.2]], [[3.9]], [[4.4]]])
    assert ensemble_native(cls, reg, np.array(16), np.array(1.0))[0, 0] == 4


def test_error_table_shares():
    table = error_table({"m": np.array([0, 0, 1, -1, 2, -5, 0, 3])})
    assert table.loc["m", "error ±0"] == 37.5 and table.loc["m", "error ±1"] == 25.0
    assert table.loc["m", "error ±2"] == 12.5 and table.loc["m", "error > ±2"] == 25.0 and table.loc["m", "n"] == 8


def test_model_shapes_and_masked_loss():
    model = InstanceNet(num_heads=5, depth=32, base_width=4)
    logits, regression = model(torch.rand(2, 1, 32, 16, 16))
    assert logits.shape == (2, 5, 32) and regression.shape == (2, 5, 3)
    z = torch.full((2, 5), -1)
    assert instance_loss(logits, regression, z, torch.zeros(2, 5, 2), 32, 2.0, 5.0).item() == 0.0
    z[0, 1] = 7
    assert instance_loss(logits, regression, z, torch.zeros(2, 5, 2), 32, 2.0, 5.0).item() > 0.0
