"""spinelib.provenance: what models were trained on, and the warning when phantom models grade other data."""

from __future__ import annotations

import json
from dataclasses import dataclass

import yaml

from spinelib import provenance
from spinelib.params import Params, param


@dataclass(frozen=True)
class Tiny(Params):
    TINY = {"epochs": 1}

    epochs: int = param(3, paper=14, why="CPU: budget")
    lr: float = param(1e-3)


def test_phantom_root_is_recognised_with_its_version_and_dvc_hash(tmp_path):
    repo = tmp_path / "repo"
    root = repo / "data" / "phantom"
    root.mkdir(parents=True)
    (repo / "dvc.yaml").write_text("stages: {}\n")
    (root / "phantom_params.json").write_text(json.dumps({"version": "4", "seed": 0}))
    (repo / "dvc.lock").write_text(yaml.safe_dump({"schema": "2.0", "stages": {"phantom": {
        "cmd": "x", "outs": [{"path": "data/phantom", "md5": "abc.dir", "hash": "md5"}]}}}))
    record = provenance.data_provenance(root)
    assert record == {"data": "phantom", "data_root": "data/phantom", "dvc_md5": "abc.dir", "phantom_version": "4"}


def test_other_roots_are_real_and_untracked(tmp_path):
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    (tmp_path / "raw").mkdir()
    record = provenance.data_provenance(tmp_path / "raw")
    assert record["data"] == "real" and record["dvc_md5"] is None and record["phantom_version"] is None


def test_params_profile_names_default_paper_tiny_or_the_changed_fields():
    assert provenance.params_profile(Tiny()) == {"class": "Tiny", "profile": "default"}
    assert provenance.params_profile(Tiny.paper())["profile"] == "paper"
    assert provenance.params_profile(Tiny.tiny())["profile"] == "tiny"
    assert provenance.params_profile(Tiny(lr=0.5)) == {"class": "Tiny", "profile": "custom",
                                                        "differs_from_default": ["lr"]}


def test_written_record_is_read_back_and_described(tmp_path):
    (tmp_path / "data").mkdir()
    models = tmp_path / "models"
    models.mkdir()
    written = provenance.write_provenance(models, tmp_path / "data", Tiny())
    assert provenance.read_provenance(models) == written
    assert provenance.read_provenance(tmp_path) is None
    line = provenance.describe(written)
    assert "trained on: real data" in line and "Tiny default profile" in line
    assert "unknown" in provenance.describe(None)


def test_phantom_files_are_told_from_other_dicom(tmp_path, write_dicom, tiny_phantom):
    phantom_file = next((tiny_phantom / "train_images").rglob("*.dcm"))
    assert provenance.written_by_phantom(phantom_file)
    other = tmp_path / "other.dcm"
    write_dicom(other, __import__("numpy").zeros((4, 4), dtype="uint16"), instance_number=1, position=(0, 0, 0))
    assert not provenance.written_by_phantom(other)


def test_warning_only_when_phantom_models_grade_real_studies():
    phantom = {"data": "phantom"}
    assert provenance.mismatch_warning({"mil": phantom}, []) is None
    assert provenance.mismatch_warning({"mil": {"data": "real"}}, ["1", "2"]) is None
    warning = provenance.mismatch_warning({"localisation": phantom, "mil": phantom}, [str(i) for i in range(7)])
    assert warning.startswith("WARNING") and "7 graded studies" in warning and "and 2 more" in warning
    assert "1 graded study was" in provenance.mismatch_warning({"mil": phantom}, ["9"])


def test_a_store_without_a_recorded_data_root_gives_an_unknown_record(tmp_path):
    class Store:
        def config(self):
            raise FileNotFoundError("config.json")

    record = provenance.write_store_provenance(tmp_path, Store(), Tiny())
    assert record["data"] == "unknown" and provenance.read_provenance(tmp_path) == record
    assert "unknown data" in provenance.describe(record) or "unknown" in provenance.describe(record)


def test_an_unknown_root_is_recorded_by_the_one_writer(tmp_path):
    """``None`` (no recorded root) is decided by data_provenance and written by write_provenance, as a store's."""
    assert provenance.data_provenance(None) == {"data": "unknown", "data_root": None, "dvc_md5": None,
                                                "phantom_version": None}
    direct, via_store = tmp_path / "direct", tmp_path / "store"
    direct.mkdir(), via_store.mkdir()

    class Store:
        def config(self):
            return {}   # a config without data_root

    assert provenance.write_provenance(direct, None, Tiny()) == provenance.write_store_provenance(via_store, Store(),
                                                                                                   Tiny())
    assert (direct / provenance.FILE_NAME).read_bytes() == (via_store / provenance.FILE_NAME).read_bytes()
