"""Soft clamp, the 3D ResNet-18 and the ordinal model's heads."""

import pytest
import torch

from spinelib.models import OrdinalModel, resnet3d18, soft_clamp


def test_soft_clamp_is_bounded_and_increasing():
    h = torch.linspace(-100, 100, 2001, dtype=torch.float64)
    s = soft_clamp(h)
    assert s.min() >= 0 and s.max() <= 10
    assert (s.diff() >= 0).all()
    assert soft_clamp(torch.tensor(5.0)).item() == pytest.approx(5.0)   # symmetric about S/2
    assert soft_clamp(torch.tensor(3.0), scale=6.0, beta=1.0).item() == pytest.approx(3.0)
    assert soft_clamp(torch.tensor(2.0)).item() == pytest.approx(2.0, abs=1e-3)  # ~identity inside (0, S)


@pytest.mark.parametrize("head", ["mlp", "linear", "transformer", "kan"])
def test_score_heads_give_bounded_scores(head):
    model = OrdinalModel(resnet3d18(1, 4), [3, 5], "spineranknet", head=head)
    out = model(torch.randn(3, 1, 4, 32, 32))
    assert out["score"].shape == (3, 2) and (out["score"] >= 0).all() and (out["score"] <= 10).all()
    assert [z.shape[1] for z in out["logits"]] == [3, 5]


def test_frozen_encoder_gets_no_gradient_and_keeps_bn_statistics():
    model = OrdinalModel(resnet3d18(1, 4), [3], "ranknet", head_input="logits", freeze_encoder=True).train()
    before = {k: v.clone() for k, v in model.encoder.state_dict().items()}
    model(torch.randn(4, 1, 4, 32, 32))["score"].sum().backward()
    assert all(p.grad is None for p in model.encoder.parameters())
    assert all(torch.equal(before[k], v) for k, v in model.encoder.state_dict().items())
    assert all(p.grad is not None for p in model.objective_parameters())


def test_unknown_objective_raises():
    with pytest.raises(ValueError, match="objective"):
        OrdinalModel(resnet3d18(1, 4), [3], "hinge")
