"""Task labels per disc volume and the volume dataset."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from spinelib.crops.store import allocate, open_store
from spinelib.datasets.discs import VolumeDataset
from spinelib.tasks import TaskSet, volume_labels

TASKS = TaskSet(("spinal_canal_stenosis", "left_nfn", "right_nfn", "pfirrmann"), (3, 3, 3, 5))


def _store(tmp_path):
    volumes = allocate(tmp_path, "volume", (5, 4, 8, 8))
    volumes[:] = np.arange(5, dtype=np.uint8)[:, None, None, None] * 50
    volumes.flush()
    pd.DataFrame({"study_id": [1, 1, 2, 2, 3], "level": ["l1_l2"] * 5,
                  "series_description": ["Sagittal T1", "Sagittal T2/STIR"] * 2 + ["Sagittal T1"],
                  "spinal_canal_stenosis": [0, 0, 2, 2, None], "left_nfn": [1, 1, 0, 0, 0],
                  "right_nfn": [2, 2, 0, 0, 0], "split": ["train", "train", "train", "train", "val"],
                  "status": ["ok"] * 4 + ["failed"]}).to_csv(tmp_path / "volume.csv", index=False)
    extra = tmp_path / "extra.csv"
    pd.DataFrame({"study_id": [1, 2], "level": ["l1_l2", "l1_l2"], "pfirrmann": [5, 1]}).to_csv(extra, index=False)
    return open_store(tmp_path), extra


def test_labels_join_extra_tasks_offset_and_mask(tmp_path):
    store, extra = _store(tmp_path)
    labels = volume_labels(store, TASKS, extra, {"pfirrmann": 1}, {"Sagittal T1": ["pfirrmann"]})
    assert len(labels) == 4                                       # the failed volume is left out
    t2 = labels[labels["series_description"] == "Sagittal T2/STIR"]
    assert t2["pfirrmann"].tolist() == [4, 0]
    assert (labels.loc[labels["series_description"] == "Sagittal T1", "pfirrmann"] == -1).all()


def test_labels_reject_out_of_range_grades_and_unknown_tasks(tmp_path):
    store, extra = _store(tmp_path)
    with pytest.raises(ValueError, match="pfirrmann"):
        volume_labels(store, TASKS, extra)                        # 5 is outside 0..4 without the offset
    with pytest.raises(KeyError, match="pfirrmann"):
        volume_labels(store, TASKS)


def test_dataset_one_item_per_disc_and_series_choice(tmp_path):
    store, extra = _store(tmp_path)
    labels = volume_labels(store, TASKS, extra, {"pfirrmann": 1}, {"Sagittal T1": ["pfirrmann"]})
    t2_only = VolumeDataset(store, labels, TASKS.names, "train", ["Sagittal T2/STIR", "Sagittal T1"], size=(4, 4))
    assert len(t2_only) == 2
    volume, grades, _ = t2_only[0]
    assert volume.shape == (1, 4, 4, 4) and volume.max().item() == pytest.approx(50 / 255)  # row 1 (T2 of study 1)
    assert grades.tolist() == [0, 1, 2, 4]
    sampled = VolumeDataset(store, labels, TASKS.names, "train", ["Sagittal T2/STIR", "Sagittal T1"],
                            sample_series=True)
    torch.manual_seed(0)
    seen = {round(sampled[0][0].max().item() * 255) for _ in range(30)}
    assert seen == {0, 50}                                        # T1 (row 0) and T2 (row 1) both drawn
    assert t2_only.rows_used()["series_description"].tolist() == ["Sagittal T2/STIR"] * 2
