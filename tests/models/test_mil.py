"""The Bi-LSTM attention MIL model: shapes, attention sums, and where the auxiliary loss sends gradient."""

from __future__ import annotations

import pytest
import torch

from spinelib.models.mil import BiLSTMAttentionMIL, MILGrader, slice_encoder


def test_aggregator_shapes_and_weights_sum_to_one():
    torch.manual_seed(0)
    mil = BiLSTMAttentionMIL(input_dim=16, hidden=8)
    pooled, weights, aux = mil(torch.randn(3, 5, 16))
    assert pooled.shape == (3, 16) and weights.shape == (3, 5) and aux.shape == (3, 5)
    assert torch.allclose(weights.sum(dim=1), torch.ones(3))
    assert mil.lstm.num_layers == 2 and mil.lstm.bidirectional


def test_grader_shapes():
    torch.manual_seed(0)
    model = MILGrader("resnet18", in_channels=1, num_classes=3, lstm_hidden=32).eval()
    out = model(torch.randn(2, 5, 1, 32, 48))
    assert out["logits"].shape == (2, 3) and out["attention"].shape == (2, 5) and out["aux_scores"].shape == (2, 5)


def test_the_two_attentions_share_no_parameters():
    mil = BiLSTMAttentionMIL(input_dim=8, hidden=4)
    primary = {id(p) for p in mil.attention.parameters()}
    auxiliary = {id(p) for p in mil.aux_attention.parameters()}
    assert primary and auxiliary and not primary & auxiliary


def test_auxiliary_loss_sends_no_gradient_to_primary_attention_or_head():
    torch.manual_seed(0)
    model = MILGrader("resnet18", lstm_hidden=16)
    out = model(torch.randn(2, 5, 1, 32, 32))
    aux_only = torch.nn.functional.cross_entropy(out["aux_scores"], torch.tensor([2, 1]))
    aux_only.backward()
    for name, module in (("attention", model.mil.attention), ("head", model.head)):
        for p in module.parameters():
            assert p.grad is None or torch.count_nonzero(p.grad) == 0, name
    # ...while it does reach the auxiliary attention, the LSTM and the encoder
    assert torch.count_nonzero(model.mil.aux_attention[1].weight.grad) > 0
    assert torch.count_nonzero(model.mil.lstm.weight_ih_l0.grad) > 0
    assert torch.count_nonzero(model.encoder.conv1.weight.grad) > 0


def test_unknown_encoder_is_named():
    with pytest.raises(ValueError, match="vgg"):
        slice_encoder("vgg")


def test_ablation_switches_change_only_what_they_name():
    torch.manual_seed(0)
    bags = torch.randn(3, 5, 16)
    attention_only = BiLSTMAttentionMIL(input_dim=16, hidden=8, lstm=False)
    pooled, weights, aux = attention_only(bags)
    assert attention_only.lstm is None and pooled.shape == (3, 16) and attention_only.output_dim == 16
    assert torch.allclose(pooled, torch.einsum("bn,bnf->bf", weights, bags), atol=1e-6)   # z = sum_n a_n h_n
    shared = BiLSTMAttentionMIL(input_dim=16, hidden=8, shared_attention=True)
    _, weights, aux = shared(bags)
    assert shared.aux_attention is None
    assert torch.allclose(torch.softmax(aux, dim=-1), weights)     # the auxiliary scores are the primary logits
    model = MILGrader("resnet18", lstm_hidden=16, shared_attention=True)
    out = model(torch.randn(2, 5, 1, 32, 32))
    torch.nn.functional.cross_entropy(out["aux_scores"], torch.tensor([2, 1])).backward()
    assert torch.count_nonzero(model.mil.attention[1].weight.grad) > 0   # shared: the aux loss trains the pooling
    with pytest.raises(ValueError, match="aggregator"):
        MILGrader("resnet18", aggregator="lstm_only")


def test_a_narrow_encoder_has_8_times_its_width_features_and_a_quarter_of_the_weights():
    torch.manual_seed(0)
    narrow, dim = slice_encoder("resnet18", 1, width=32)
    standard, standard_dim = slice_encoder("resnet18", 1)
    assert dim == 256 and standard_dim == 512
    assert narrow(torch.randn(3, 1, 64, 40)).shape == (3, 256)
    n_narrow, n_standard = (sum(p.numel() for p in m.parameters()) for m in (narrow, standard))
    assert 0.2 < n_narrow / n_standard < 0.3                   # weights (and multiply-adds) scale with width²
    model = MILGrader("resnet18", encoder_width=32)            # lstm_hidden None: input_dim / 2 (Listing 1)
    assert model.mil.lstm.hidden_size == 128
    with pytest.raises(ValueError, match="only available for resnet18"):
        slice_encoder("efficientnet_b0", 1, width=32)
