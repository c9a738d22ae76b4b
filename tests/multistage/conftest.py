"""A tiny phantom with unlabelled test studies, and Stage 1 + Stage 2 trained on it for one epoch (built once)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from spinelib.constants import LEVELS
from spinelib.multistage import stages
from spinelib.phantom import generate_phantom

TINY_MIL = {
    "split_column": "split_patient", "workers": 1, "bag_slices": 5, "max_shift": 2, "margin": 10, "slice_shift": True,
    "crop_scale": {"bag_scs": 0.25, "bag_nfn": 0.25, "bag_ss": 0.125},
    "ranges": {"spinal_canal_stenosis": [96, 32, 40, 40], "left_neural_foraminal_narrowing": [96, 64, 32, 32],
               "right_neural_foraminal_narrowing": [96, 64, 32, 32], "left_subarticular_stenosis": [48, 144, 96, 96],
               "right_subarticular_stenosis": [144, 48, 96, 96]},
    "encoders": ["resnet18"], "lstm_hidden": 16, "lstm_layers": 2, "lstm_dropout": 0.1, "head_dropout": 0.0,
    "aggregator": "bilstm", "shared_attention": False, "encoder_width": None,
    "folds": 1, "epochs": {"bag_scs": 1, "bag_nfn": 1, "bag_ss": 1}, "batch_size": 16, "lr": 3e-4,
    "weight_decay": 1e-4, "grad_clip": 1.0, "aux_weight": 1.0,
    "class_weights": [1.0, 2.0, 4.0], "brightness_contrast_p": 0.25, "brightness": 0.1, "contrast": 0.2,
    "shift_scale_rotate_p": 0.5, "ssr_shift": 0.0625, "ssr_scale": 0.1, "ssr_rotate": 15, "seed": 0, "device": "cpu",
    "amp": False,
}


@pytest.fixture(scope="session")
def tiny_phantom(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ms-phantom")
    generate_phantom(root, studies=6, seed=3, test_studies=1, progress=False)
    return root


def _splits(root: Path) -> pd.DataFrame:
    studies = sorted(pd.read_csv(root / "train.csv")["study_id"])
    split = {s: ("train", "train", "val", "test")[i % 4] for i, s in enumerate(studies)}
    return pd.DataFrame([(s, lv, split[s]) for s in studies for lv in LEVELS],
                        columns=["study_id", "level", "split_patient"])


@pytest.fixture(scope="session")
def trained(tiny_phantom, tmp_path_factory) -> tuple[Path, Path]:
    """(localisation dir, MIL dir) of one-epoch models on the tiny phantom."""
    splits = _splits(tiny_phantom)
    loc = tmp_path_factory.mktemp("ms-localisation")
    stages.run_localisation(tiny_phantom, splits, loc, stages.TINY_LOCALISATION, progress=False)
    mil = tmp_path_factory.mktemp("ms-mil")
    stages.run_mil(tiny_phantom, splits, loc, mil, TINY_MIL, progress=False)
    return loc, mil
