"""Stage 1 losses: only annotated heads count."""

from __future__ import annotations

import torch

from spinelib.losses.localisation import instance_loss
from spinelib.models.localisers import InstanceNet


def test_masked_instance_loss():
    model = InstanceNet(num_heads=5, depth=32, base_width=4)
    logits, regression = model(torch.rand(2, 1, 32, 16, 16))
    z = torch.full((2, 5), -1)
    assert instance_loss(logits, regression, z, torch.zeros(2, 5, 2), 32, 2.0, 5.0).item() == 0.0
    z[0, 1] = 7
    assert instance_loss(logits, regression, z, torch.zeros(2, 5, 2), 32, 2.0, 5.0).item() > 0.0
