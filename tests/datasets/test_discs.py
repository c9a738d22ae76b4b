"""Datasets over the crop store: shapes, scaling, views, missing grades."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from spinelib.crops.store import allocate, open_store
from spinelib.datasets.discs import LocaliserDataset, RoiDataset


def _store(tmp_path):
    rois = allocate(tmp_path, "roi", (4, 8, 8))
    rois[:] = np.arange(4, dtype=np.uint8)[:, None, None] * 60
    rois.flush()
    pd.DataFrame({"study_id": [1, 1, 2, 3], "condition": "spinal_canal_stenosis", "level": "l1_l2",
                  "grade_index": [0, None, 2, 1], "split": ["train", "train", "val", "train"],
                  "status": ["ok", "ok", "ok", "failed"]}).to_csv(tmp_path / "roi.csv", index=False)
    loc = allocate(tmp_path, "loc", (2, 3, 8, 8))
    loc.flush()
    pd.DataFrame({"study_id": [1, 2], "condition": "spinal_canal_stenosis", "level": ["l1_l2", "l5_s1"],
                  "x_norm": [0.25, 0.5], "y_norm": [0.75, 0.5], "split": "train", "status": "ok"}).to_csv(
        tmp_path / "loc.csv", index=False)
    return open_store(tmp_path)


def test_roi_dataset_scales_to_unit_range_and_keeps_missing_grades_missing(tmp_path):
    data = RoiDataset(_store(tmp_path), "spinal_canal_stenosis", "train", transform=lambda x: x)
    assert len(data) == 2  # the failed crop is not served
    image, grade, row = data[0]
    assert image.shape == (1, 8, 8) and image.dtype == torch.float32 and image.max() <= 1.0
    assert data[1][1].item() == -1 and grade.item() == 0 and row == 0
    assert data[1][0].max().item() == pytest.approx(60 / 255)


def test_roi_dataset_views_are_independent_draws(tmp_path):
    calls = iter(range(100))
    data = RoiDataset(_store(tmp_path), "spinal_canal_stenosis", "train", lambda x: x + next(calls), views=3)
    views, _, _ = data[0]
    assert views.shape == (3, 1, 8, 8)
    assert [v.min().item() for v in views] == [0.0, 1.0, 2.0]


def test_localiser_dataset_targets_and_levels(tmp_path):
    data = LocaliserDataset(_store(tmp_path), "train")
    image, level, target, _ = data[1]
    assert image.shape == (3, 8, 8) and level.item() == 4 and target.tolist() == [0.5, 0.5]


def test_portable_path_is_relative_inside_the_repository(tmp_path):
    from spinelib.paths import portable_path, repo_root

    root = repo_root()
    assert portable_path(root / "data" / "phantom") == "data/phantom"
    assert portable_path(tmp_path) == str(tmp_path.resolve())


def test_shifted_roi_dataset_moves_the_window_with_the_point(tmp_path):
    from spinelib.datasets.discs import ShiftedRoiDataset

    wide = allocate(tmp_path, "roi", (2, 12, 12))
    wide[:] = (np.arange(12, dtype=np.uint8)[None, None, :] + 12 * np.arange(12, dtype=np.uint8)[None, :, None])
    wide.flush()
    pd.DataFrame({"study_id": [1, 2], "condition": "spinal_canal_stenosis", "level": "l1_l2", "grade_index": [0, 2],
                  "split": "test", "status": "ok"}).to_csv(tmp_path / "roi.csv", index=False)
    store = open_store(tmp_path)
    centred = ShiftedRoiDataset(store, "spinal_canal_stenosis", "test", lambda x: x, margin=3)
    image, grade, _ = centred[1]
    assert image.shape == (1, 6, 6) and grade.item() == 2
    assert image[0, 0, 0].item() * 255 == pytest.approx(3 * 12 + 3)    # the centred window starts at (margin, margin)
    moved = ShiftedRoiDataset(store, "spinal_canal_stenosis", "test", lambda x: x, margin=3,
                              offsets=np.array([[2, -3], [0, 0]]))
    assert moved[0][0][0, 0, 0].item() * 255 == pytest.approx(0 * 12 + 5)   # dx = +2 right, dy = -3 up
    torch.manual_seed(0)
    jittered = ShiftedRoiDataset(store, "spinal_canal_stenosis", "test", lambda x: x, margin=3, jitter=3)
    corners = {round(jittered[0][0][0, 0, 0].item() * 255) for _ in range(40)}
    assert len(corners) > 5 and all(divmod(c, 12)[0] <= 6 and divmod(c, 12)[1] <= 6 for c in corners)
    with pytest.raises(ValueError, match="exceeds the crop margin"):
        ShiftedRoiDataset(store, "spinal_canal_stenosis", "test", lambda x: x, margin=3, jitter=4)
    with pytest.raises(ValueError, match="offsets"):
        ShiftedRoiDataset(store, "spinal_canal_stenosis", "test", lambda x: x, margin=3, offsets=np.full((2, 2), 4))
