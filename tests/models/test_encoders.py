"""ResNet-18 encoder: 512-d output, random init without downloads, strict checkpoint loading."""

from __future__ import annotations

import pytest
import torch

from spinelib.models.encoders import load_encoder_weights, resnet18_encoder


def test_single_channel_input_gives_512_features():
    encoder = resnet18_encoder(1).eval()
    with torch.no_grad():
        out = encoder(torch.rand(2, 1, 64, 64))
    assert out.shape == (2, 512)
    assert encoder.conv1.in_channels == 1


def test_no_weights_downloaded(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("tried to download weights")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)
    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
    resnet18_encoder(1)
    resnet18_encoder(3)


def test_load_round_trip_plain_and_wrapped(tmp_path):
    source, target = resnet18_encoder(1), resnet18_encoder(1)
    torch.save({"encoder": source.state_dict()}, tmp_path / "wrapped.pt")
    load_encoder_weights(target, tmp_path / "wrapped.pt")
    assert torch.equal(source.conv1.weight, target.conv1.weight)
    torch.save(source.state_dict(), tmp_path / "plain.pt")
    load_encoder_weights(resnet18_encoder(1), tmp_path / "plain.pt")


def test_mismatched_keys_are_named(tmp_path):
    state = resnet18_encoder(1).state_dict()
    state["extra.weight"] = torch.zeros(1)
    del state["layer4.1.bn2.bias"]
    torch.save({"model": state}, tmp_path / "bad.pt")
    with pytest.raises(RuntimeError, match=r"layer4\.1\.bn2\.bias.*extra\.weight"):
        load_encoder_weights(resnet18_encoder(1), tmp_path / "bad.pt")


def test_channel_mismatch_is_named(tmp_path):
    torch.save(resnet18_encoder(3).state_dict(), tmp_path / "rgb.pt")
    with pytest.raises(RuntimeError, match=r"conv1\.weight"):
        load_encoder_weights(resnet18_encoder(1), tmp_path / "rgb.pt")


def test_missing_file_raises(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_encoder_weights(resnet18_encoder(1), tmp_path / "absent.pt")
