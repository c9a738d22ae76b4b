"""Ranking heads φ_t: the KAN ablation head."""

import math

import pytest
import torch

from spinelib.losses import spineranknet_loss
from spinelib.models import OrdinalModel, ranking_head, resnet3d18
from spinelib.models.ranking import RANKING_HEADS, KANLayer


def test_kan_edge_is_silu_plus_gaussian_bumps():
    # centres linspace(-2, 2, 8): spacing h = 4/7; one input through base weight 1, the other through bump g_3 only
    layer = KANLayer(2, 1, grid_size=8)
    with torch.no_grad():
        layer.base.weight.copy_(torch.tensor([[1.0, 0.0]]))
        layer.base.bias.zero_()
        layer.coef.zero_()
        layer.coef[1, 3, 0] = 2.0
    g3, h = -2 + 3 * 4 / 7, 4 / 7
    x = torch.tensor([[1.0, g3], [0.0, g3 + h]])
    silu_1 = 1 / (1 + math.exp(-1))
    expected = [silu_1 + 2.0, 0.0 + 2.0 * math.exp(-1)]   # exp(-((x - g)/h)^2): 1 on the centre, e^-1 one step off
    assert layer(x)[:, 0].tolist() == pytest.approx(expected, rel=1e-5)


def test_kan_head_shape_gradients_and_size():
    assert "kan" in RANKING_HEADS
    head = ranking_head("kan", 32, hidden=64)
    out = head(torch.randn(5, 32))
    assert out.shape == (5, 1)
    out.square().sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in head.parameters())
    sizes = [sum(p.numel() for p in ranking_head(kind, 512, 256).parameters()) for kind in ("mlp", "kan")]
    assert 0.8 < sizes[1] / sizes[0] < 1.25     # comparable to the paper's MLP head


def test_kan_head_on_too_few_inputs_raises():
    with pytest.raises(ValueError, match="in_dim"):
        ranking_head("kan", 1)


def test_ordinal_model_with_kan_head_trains_spineranknet():
    torch.manual_seed(0)
    model = OrdinalModel(resnet3d18(1, 4), [3, 5], "spineranknet", head="kan", hidden=16)
    score = model(torch.randn(4, 1, 4, 32, 32))["score"]
    assert score.shape == (4, 2)
    spineranknet_loss(score, torch.tensor([[0, 1], [1, 4], [2, 0], [0, 2]]), [3, 5]).backward()
    assert all(p.grad is not None for p in model.objective_parameters())


def test_unknown_head_raises():
    with pytest.raises(ValueError, match="ranking head"):
        ranking_head("mamba", 8)
