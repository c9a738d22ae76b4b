"""Stage 1 networks: output shapes of the instance-number and the coordinate networks."""

from __future__ import annotations

import torch

from spinelib.models.localisers import InstanceNet


def test_model_shapes():
    model = InstanceNet(num_heads=5, depth=32, base_width=4)
    logits, regression = model(torch.rand(2, 1, 32, 16, 16))
    assert logits.shape == (2, 5, 32) and regression.shape == (2, 5, 3)
