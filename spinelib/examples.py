"""Tiny inputs for notebooks run with their parameters-cell defaults (what the notebook tests do).

A notebook whose input paths are left empty builds what it needs here, in a
temporary folder, in seconds: a few-study phantom, its crop store, encoders
pretrained for one epoch. The DVC stages always pass real paths from params/.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from spinelib.crops.extract import extract_crops
from spinelib.crops.plan import CropConfig
from spinelib.paths import data_root_or_tiny_phantom

TINY_CROPS = CropConfig(volume_slices=4, volume_size=(32, 64), bag_scale=0.25, loc_size=(64, 64))
TINY_PRETRAIN = {"condition": "spinal_canal_stenosis", "input_size": 32, "views": 2, "temperature": 0.1,
                 "epochs": 1, "batch_size": 16, "lr": 1e-3, "lr_min": 0.0, "weight_decay": 1e-4, "grad_clip": 1.0,
                 "hidden_dim": 64, "projection_dim": 32, "crop_scale": [0.8, 1.0], "rotation": 15,
                 "brightness": 0.2, "contrast": 0.2, "seed": 0, "num_workers": 0, "device": "cpu", "amp": False,
                 "channels_last": False}


def tiny_crop_store(studies: int = 12) -> Path:
    """A crop store of a ``studies``-study phantom in a temporary folder."""
    root = data_root_or_tiny_phantom("", studies=studies)
    out = Path(tempfile.mkdtemp(prefix="spinelib-crops-"))
    extract_crops(root, out, TINY_CROPS, fractions=(0.5, 0.25, 0.25), progress=False)
    return out


def tiny_encoders(crops_dir: Path, split_columns: list[str]) -> Path:
    """Encoders pretrained for one epoch per split column, in a temporary folder."""
    from spinelib.stages.contrastive import pretrain

    out = Path(tempfile.mkdtemp(prefix="spinelib-encoders-"))
    for split_column in split_columns:
        pretrain(TINY_PRETRAIN, crops_dir, out, split_column, progress=False)
    return out
