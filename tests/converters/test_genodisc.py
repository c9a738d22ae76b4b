"""The Genodisc reader on a tiny fixture in the released code's layout: index, volumes, store, bad input."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pandas as pd
import pytest

from spinelib.crops.store import open_store
from spinelib.converters.genodisc import (
    GENODISC_TASKS,
    SOURCE_KEYS,
    GenodiscFormatError,
    crop_volume,
    genodisc_to_store,
    main,
    parse_key,
    read_index,
)
from spinelib.tasks import TaskSet, volume_labels

STORED = (192, 320, 15)  # H, W, slices as the released data stores them
MARKED = "GENODISC_002_L4_L5"  # its T2 volume carries a bright 4 x 4 block at the centre of the middle slice


def _score(**overrides) -> dict:
    score = {key: 0.0 for key in SOURCE_KEYS.values()}
    score["Pfirrmann"] = 1.0
    score.update(overrides)
    return score


def _index() -> dict:
    """2-3 IVDs per split; subject 003's test IVD lists a T1 volume whose file is missing."""
    return {
        "Train": {
            "GENODISC_001_L4_L5": {"sequence": ["T2_S1", "T1_S1"], "score": _score(Pfirrmann=4.0, Herniation=2.0)},
            "GENODISC_001_L5_S1": {"sequence": ["T2_S1"], "score": _score(Pfirrmann=5.0, Spondylolisthesis=4.0)},
            MARKED: {"sequence": ["T2_S1"], "score": _score(Narrowing=float("nan"), ForaminalStenosisLeft=3.0)},
        },
        "Val": {
            "GENODISC_004_L3_L4": {"sequence": ["T2_S1"], "score": _score(CentralCanalStenosis=1.0)},
            "GENODISC_004_T12_L1": {"sequence": ["T2_S1", "T1_S1"], "score": _score()},
        },
        "Test": {
            "GENODISC_003_L1_L2": {"sequence": ["T2_S1", "T1_S1"], "score": _score(Pfirrmann=np.nan)},
            "GENODISC_003_L2_L3": {"sequence": ["T2_S1"], "score": _score(AnteriorBulging=3.0)},
        },
    }


@pytest.fixture
def genodisc_root(tmp_path):
    root = tmp_path / "GENODISCv2"
    volumes = root / "IVDs-numpy"
    volumes.mkdir(parents=True)
    index = _index()
    (root / "geno_ivd_v1.pkl").write_bytes(pickle.dumps(index))
    rng = np.random.default_rng(0)
    for split in index.values():
        for key, entry in split.items():
            for sequence in entry["sequence"]:
                if (key, sequence) == ("GENODISC_003_L1_L2", "T1_S1"):
                    continue  # the missing file
                volume = rng.uniform(0.0, 1.0, STORED)
                if (key, sequence) == (MARKED, "T2_S1"):
                    volume = _banded(rng.uniform(0.25, 0.75, STORED))
                    volume[94:98, 158:162, 7] = 1.0  # centred on row 95.5 of 0-191, column 159.5 of 0-319, slice 7
                np.save(volumes / f"{key}_{sequence}.npy", volume.astype(np.float32))
    return root


def _banded(background: np.ndarray) -> np.ndarray:
    """``background`` (H, W, slices) in [0.25, 0.75) with rows 0-5 at 0 and rows 186-191 at 1, outside the crop.

    The bands pin the 1st / 99th percentile window to [0, 1], so inside the crop
    only voxels set to 1 become 255.
    """
    volume = background.copy()
    volume[:6], volume[-6:] = 0.0, 1.0
    return volume


def _marker_centre(stack: np.ndarray) -> tuple[float, ...]:
    """Centroid (slice, row, column) of the voxels at 255 in a (D, H, W) uint8 stack."""
    return tuple(float(c) for c in np.argwhere(stack == 255).mean(axis=0))


def test_key_names_give_subject_and_level():
    assert parse_key("GENODISC_001_L3_L4") == ("GENODISC_001", "l3_l4")
    assert parse_key("S12_t12_l1") == ("S12", "t12_l1")
    assert parse_key("disc17") == ("disc17", "unknown")
    assert parse_key("S1_L1_L5") == ("S1_L1_L5", "unknown")


def test_the_index_gives_one_row_per_ivd_and_sequence_with_zero_based_grades(genodisc_root):
    index = read_index(genodisc_root / "geno_ivd_v1.pkl")
    assert len(index) == 10
    first = index[(index.ivd_key == "GENODISC_001_L4_L5") & (index.sequence == "T1_S1")].iloc[0]
    assert (first.study_id, first.level, first.series_description) == ("GENODISC_001", "l4_l5", "Sagittal T1")
    assert first.pfirrmann == 3 and first.herniation == 2  # Pfirrmann 4 → index 3
    row = index[index.ivd_key == "GENODISC_001_L5_S1"].iloc[0]
    assert row.pfirrmann == 4 and row.spondylolisthesis == 2  # Pfirrmann 5 → 4; spondylolisthesis 4 merged into 2
    assert pd.isna(index[index.ivd_key == MARKED].iloc[0].disc_narrowing)
    assert index.groupby("split").ivd_key.nunique().to_dict() == {"train": 3, "val": 2, "test": 2}


def test_store_shapes_dtypes_columns_and_splits(genodisc_root, tmp_path):
    out = genodisc_to_store(genodisc_root, tmp_path / "store")
    volumes = np.load(out / "volume.npy", mmap_mode="r")
    assert volumes.shape == (10, 12, 128, 256) and volumes.dtype == np.uint8
    index = pd.read_csv(out / "volume.csv")
    assert {"study_id", "level", "ivd_key", "series_description", "split", "split_patient", "split_disc", "status",
            "condition", *GENODISC_TASKS} <= set(index.columns)
    assert set(index.series_description) == {"Sagittal T1", "Sagittal T2/STIR"}
    assert (index.condition == "all").all()
    splits = index.drop_duplicates("ivd_key").set_index("ivd_key")
    assert splits.loc["GENODISC_001_L4_L5", "split_patient"] == "train"
    assert splits.loc["GENODISC_004_T12_L1", "split_patient"] == "val"
    assert splits.loc["GENODISC_003_L2_L3", "split_patient"] == "test"
    assert (index.split == index.split_patient).all() and (index.split == index.split_disc).all()
    ok = index.status == "ok"
    assert np.all(volumes[np.flatnonzero(~ok)] == 0) and all(volumes[i].max() > 0 for i in np.flatnonzero(ok))
    config = json.loads((out / "config.json").read_text())
    assert config["source"] == "genodisc" and config["tasks"] == GENODISC_TASKS
    assert config["crop"] == [12, 128, 256] and config["size"] == [128, 256]
    assert "root" in config
    # what the ranking study takes from the store (spinelib.studies.ranking.store_volume_settings)
    assert config["first_grade"] == {} and config["masked"] == {"Sagittal T1": ["pfirrmann", "disc_narrowing"]}
    assert config["train_series"] == ["Sagittal T2/STIR", "Sagittal T1"] and config["eval_series"] == ["Sagittal T2/STIR"]
    assert config["phantom_truth"] is False


def test_missing_file_is_reported_not_fatal(genodisc_root, tmp_path, capsys):
    assert main([str(genodisc_root), str(tmp_path / "store")]) == 0
    index = pd.read_csv(tmp_path / "store" / "volume.csv")
    bad = index[index.status != "ok"]
    assert bad[["ivd_key", "sequence"]].values.tolist() == [["GENODISC_003_L1_L2", "T1_S1"]]
    assert "missing file GENODISC_003_L1_L2_T1_S1.npy" in bad.status.iloc[0]
    printed = capsys.readouterr().out
    assert "9 of 10 volumes written" in printed and "GENODISC_003_L1_L2 T1_S1: missing file" in printed
    log = pd.read_csv(tmp_path / "store" / "crop_log.csv")
    assert log.reason.str.contains("missing file").tolist() == [True]


def test_corrupt_volume_is_marked_with_the_reason(genodisc_root, tmp_path):
    (genodisc_root / "IVDs-numpy" / "GENODISC_004_L3_L4_T2_S1.npy").write_bytes(b"not a numpy file")
    np.save(genodisc_root / "IVDs-numpy" / "GENODISC_004_T12_L1_T1_S1.npy", np.zeros((192, 320)))
    index = pd.read_csv(genodisc_to_store(genodisc_root, tmp_path / "store") / "volume.csv").set_index(
        ["ivd_key", "sequence"])
    assert index.loc[("GENODISC_004_L3_L4", "T2_S1"), "status"].startswith("unreadable file")
    assert "expected 3-D" in index.loc[("GENODISC_004_T12_L1", "T1_S1"), "status"]
    assert (index.status == "ok").sum() == 7


def test_the_crop_is_centred(genodisc_root, tmp_path):
    out = genodisc_to_store(genodisc_root, tmp_path / "store")
    index = pd.read_csv(out / "volume.csv")
    row = int(np.flatnonzero((index.ivd_key == MARKED) & (index.sequence == "T2_S1"))[0])
    volumes = np.load(out / "volume.npy")
    assert _marker_centre(volumes[row]) == (6, 63.5, 127.5)  # the centre of 12 x 128 x 256 (slice 7 − 1)
    small = genodisc_to_store(genodisc_root, tmp_path / "small", size=(64, 128))
    assert _marker_centre(np.load(small / "volume.npy")[row]) == (6, 31.5, 63.5)


def test_crop_volume_keeps_slices_first_and_the_released_margins():
    volume = _banded(np.full(STORED, 0.5))
    volume[32, 32, 1] = volume[159, 287, 12] = 1.0  # first and last voxel of the crop
    volume[31, 32, 1] = volume[32, 32, 0] = volume[160, 288, 13] = 1.0  # just outside it
    stack = crop_volume(volume, (12, 128, 256), (128, 256))
    assert stack.shape == (12, 128, 256) and stack.dtype == np.uint8
    assert np.argwhere(stack == 255).tolist() == [[0, 0, 0], [11, 127, 255]]
    assert np.all((stack == 255) | (stack == 128))  # background 0.5 of the window [0, 1]


def test_the_ranking_stage_reads_the_store(genodisc_root, tmp_path):
    store = open_store(genodisc_to_store(genodisc_root, tmp_path / "store"))
    volumes, index = store.load("volume", split="train")
    assert volumes.shape == (4, 12, 128, 256) and volumes.dtype == np.uint8
    assert set(index.study_id) == {"GENODISC_001", "GENODISC_002"}
    labels = volume_labels(store, TaskSet.from_params(GENODISC_TASKS), masked={"Sagittal T1": ["pfirrmann"]})
    assert len(labels) == 9
    t1 = labels[(labels.ivd_key == "GENODISC_001_L4_L5") & (labels.series_description == "Sagittal T1")].iloc[0]
    assert t1.pfirrmann == -1 and t1.herniation == 2
    assert labels.loc[labels.ivd_key == MARKED, "disc_narrowing"].tolist() == [-1]


@pytest.mark.parametrize("damage, message", [
    (lambda index: index.pop("Val"), r"split\(s\) \['Val'\] missing"),
    (lambda index: index["Train"]["GENODISC_001_L4_L5"].pop("score"), "should hold 'sequence' and 'score'"),
    (lambda index: index["Test"]["GENODISC_003_L2_L3"]["score"].pop("Herniation"), r"score lacks \['Herniation'\]"),
    (lambda index: index["Test"]["GENODISC_003_L2_L3"]["score"].update(Herniation=7.0), "outside 0..3"),
    (lambda index: index["Test"]["GENODISC_003_L2_L3"]["score"].update(Pfirrmann=0.0), "outside 1..5"),
    (lambda index: index["Val"].update({"GENODISC_001_L4_L5": index["Train"]["GENODISC_001_L4_L5"]}),
     "in both 'Train' and 'Val'"),
])
def test_bad_index_raises_naming_file_and_problem(genodisc_root, tmp_path, damage, message):
    index = _index()
    damage(index)
    (genodisc_root / "geno_ivd_v1.pkl").write_bytes(pickle.dumps(index))
    with pytest.raises(GenodiscFormatError, match=message) as err:
        genodisc_to_store(genodisc_root, tmp_path / "store")
    assert "geno_ivd_v1.pkl" in str(err.value)


def test_missing_index_or_volume_folder_is_named(tmp_path):
    (tmp_path / "IVDs-numpy").mkdir()
    with pytest.raises(GenodiscFormatError, match="geno_ivd_v1.pkl: no such index file"):
        genodisc_to_store(tmp_path, tmp_path / "store")
    with pytest.raises(GenodiscFormatError, match="no such volume folder"):
        genodisc_to_store(tmp_path, tmp_path / "store", volume_dir="volumes")
    assert main([str(tmp_path), str(tmp_path / "store")]) == 2
