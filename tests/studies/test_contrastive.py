"""Contrastive pretraining: where its curve flattens, a finished run read back, and its strict parameters."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from spinelib.params import ParamsError
from spinelib.params.contrastive import ContrastiveParams
from spinelib.studies.contrastive import flattening_epoch

DEFAULT_PROFILE = Path(__file__).resolve().parents[2] / "params" / "contrastive.yaml"


def test_flattening_epoch_finds_the_plateau_and_refuses_a_falling_curve():
    # the 20-epoch validation curve of the default phantom run (rounded): flat from epoch 15 at 5 % of the drop
    curve = [4.78, 4.43, 3.20, 2.50, 2.30, 2.53, 2.07, 2.12, 1.81, 1.73, 1.68, 1.60, 1.61, 1.54, 1.46, 1.41, 1.40,
             1.36, 1.36, 1.36]
    assert flattening_epoch(curve) == 15
    assert flattening_epoch(curve, tolerance=0.2) < 15
    assert flattening_epoch(curve[:4]) is None                   # 4 epochs: still falling at the end
    assert flattening_epoch(np.linspace(3.0, 1.0, 10)) is None    # a straight descent has no plateau
    assert flattening_epoch([2.0, 1.0, 1.0, 1.0]) == 2
    assert flattening_epoch([2.0, float("nan"), 1.0, 1.0]) == 3
    assert flattening_epoch([1.0]) is None


def test_a_finished_pretraining_keeps_the_encoder_only_and_is_read_back(roi_store, tmp_path):
    import torch

    from spinelib.models.encoders import load_encoder_weights, resnet18_encoder
    from spinelib.studies.contrastive import pretrain

    # the tiny profile on the CPU, two views per disc, sized for the 16 px, 10-disc training split of roi_store
    p = ContrastiveParams.tiny().pretrain.replace(views=2, device="cpu", amp=False, channels_last=False,
                                                  input_size=16, batch_size=4, epochs=2)
    first = pretrain(p, roi_store.root, tmp_path / "models", "split_patient", progress=False)
    out = tmp_path / "models" / "split_patient"
    # no projection head copy; provenance.json records what the encoder was trained on
    assert {f.name for f in out.iterdir()} == {"encoder.pt", "history.csv", "last.pt", "provenance.json"}
    load_encoder_weights(resnet18_encoder(1), out / "encoder.pt")
    again = pretrain(p, roi_store.root, tmp_path / "models", "split_patient", progress=False)
    assert (again.best_epoch, again.best_metric) == (first.best_epoch, first.best_metric)
    assert len(again.history) == 2
    encoder = {k: v for k, v in first.best_state.items() if k.startswith("encoder.")}
    assert encoder.keys() == again.best_state.keys()
    assert all(torch.equal(encoder[k], again.best_state[k]) for k in encoder)


def test_a_misspelt_key_of_the_default_profile_fails_naming_it():
    values = yaml.safe_load(DEFAULT_PROFILE.read_text())
    assert ContrastiveParams.from_dict(values) == ContrastiveParams()
    values["pretrain"]["temprature"] = values["pretrain"].pop("temperature")
    with pytest.raises(ParamsError, match=r"pretrain\.temprature.*did you mean 'temperature'"):
        ContrastiveParams.from_dict(values)
