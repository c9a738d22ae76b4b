"""Heads: projection, Deep-Sets disc classifier with partial freezing, 2.5D localiser."""

from __future__ import annotations

import pytest
import torch

from spinelib.models.encoders import resnet18_encoder
from spinelib.models.heads import (ContrastiveModel, DiscClassifier, Localiser, ProjectionHead,
                                   finetune_param_groups, freeze_encoder_layers)

FROZEN = ("conv1", "bn1", "layer1", "layer2", "layer3")


def _classifier(seed: int = 0) -> DiscClassifier:
    torch.manual_seed(seed)
    return DiscClassifier(resnet18_encoder(1), num_classes=3)


def test_contrastive_model_shape():
    model = ContrastiveModel(resnet18_encoder(1), ProjectionHead(512, 64, 16))
    assert model(torch.rand(4, 1, 32, 32)).shape == (4, 16)


def test_single_roi_input_equals_set_of_one():
    model = _classifier().eval()
    x = torch.rand(3, 1, 32, 32)
    with torch.no_grad():
        assert torch.allclose(model(x), model(x.unsqueeze(1)), atol=1e-6)
    assert model(x).shape == (3, 3)


def test_set_input_pools_the_mean_embedding():
    model = _classifier().eval()
    x = torch.rand(2, 4, 1, 32, 32)
    with torch.no_grad():
        per_roi = torch.stack([model.encoder(x[:, s]) for s in range(4)], dim=1)
        expected = model.head(per_roi.mean(dim=1))
        assert torch.allclose(model(x), expected, atol=1e-5)
        assert torch.allclose(model(x[:, [3, 1, 0, 2]]), expected, atol=1e-5)  # permutation invariant


def test_bad_input_rank_raises():
    with pytest.raises(ValueError, match="B, C, H, W"):
        _classifier()(torch.rand(1, 32, 32))


def _frozen_state(model: DiscClassifier) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.encoder.state_dict().items() if k.split(".")[0] in FROZEN}


def test_training_step_leaves_frozen_layers_bit_identical():
    model = _classifier()
    freeze_encoder_layers(model, FROZEN)
    groups = finetune_param_groups(model, lr_backbone=5e-5, lr_head=5e-4)
    frozen_before = _frozen_state(model)
    layer4_before = model.encoder.layer4[0].conv1.weight.clone()
    head_before = model.head.weight.clone()

    optimizer = torch.optim.SGD(groups, lr=1.0)
    model.train()
    assert not model.encoder.layer3[0].bn1.training and model.encoder.layer4[0].bn1.training
    loss = torch.nn.functional.cross_entropy(model(torch.rand(4, 1, 32, 32)), torch.tensor([0, 1, 2, 1]))
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()

    after = model.encoder.state_dict()
    assert frozen_before  # running stats included
    assert any(k.endswith("running_mean") for k in frozen_before)
    for key, value in frozen_before.items():
        assert torch.equal(after[key], value), key
    assert not torch.equal(model.encoder.layer4[0].conv1.weight, layer4_before)
    assert not torch.equal(model.head.weight, head_before)


def test_param_groups_have_two_rates_and_exclude_frozen():
    model = _classifier()
    freeze_encoder_layers(model)
    groups = finetune_param_groups(model, lr_backbone=5e-5, lr_head=5e-4)
    assert [g["lr"] for g in groups] == [5e-5, 5e-4]
    backbone_ids = {id(p) for p in groups[0]["params"]}
    assert backbone_ids == {id(p) for p in model.encoder.layer4.parameters()}
    assert {id(p) for p in groups[1]["params"]} == {id(p) for p in model.head.parameters()}


def test_unknown_layer_name_raises():
    with pytest.raises(ValueError, match="layer9"):
        freeze_encoder_layers(_classifier(), ("layer9",))


def test_localiser_shape_and_level_matters():
    torch.manual_seed(0)
    model = Localiser().eval()
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        out = model(x, torch.tensor([0, 1]))
        other = model(x, torch.tensor([4, 3]))
    assert out.shape == (2, 2)
    assert not torch.allclose(out, other)
