"""The DVC pipeline and data.dvc are consistent with each other and with params/."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def _load(name: str) -> dict:
    return yaml.safe_load((ROOT / name).read_text())


def test_stages_read_the_data_root_parameter():
    stages = _load("dvc.yaml")["stages"]
    for name in ("explore", "crops"):
        assert "${data_root}" in stages[name]["deps"], name
        assert any("params/data.yaml" in (p if isinstance(p, str) else next(iter(p))) for p in stages[name]["params"])


def test_data_dvc_tracks_a_real_directory():
    (out,) = _load("data.dvc")["outs"]
    assert out["path"] == "data/raw"
    assert out["md5"].endswith(".dir") and len(out["md5"]) == 36
    assert out["nfiles"] > 1000 and out["size"] > 100_000_000


def test_data_dvc_pins_the_default_phantom_the_pipeline_writes():
    """As committed, data/raw is the default phantom: the same hash as the phantom stage's output in dvc.lock."""
    if _load("params/data.yaml")["data_root"] != "data/phantom":
        pytest.skip("the pipeline runs on other data; data.dvc tracks that download")
    lock = _load("dvc.lock")["stages"]["phantom"]
    (phantom_out,) = lock["outs"]
    assert lock["params"]["params/phantom.yaml"]["phantom"] == _load("params/phantom.yaml")["phantom"]
    (raw,) = _load("data.dvc")["outs"]
    assert raw["md5"] == phantom_out["md5"], "regenerate data/raw (README: Running on the real data) and dvc commit"
