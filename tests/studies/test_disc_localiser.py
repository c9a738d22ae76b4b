"""Localisation cost: random shifts of the ROI centre and right/wrong-level localiser errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from spinelib.studies.disc_localiser import level_error_table, level_errors, random_offsets


def test_random_offsets_have_the_distance_and_depend_on_the_seed():
    offsets = random_offsets(500, 10.0, seed=1)
    assert offsets.shape == (500, 2) and offsets.dtype == np.int64
    assert np.allclose(np.hypot(*offsets.T), 10.0, atol=0.71)      # rounding to whole pixels only
    assert (offsets[:, 0] > 0).mean() == pytest.approx(0.5, abs=0.08)  # every direction
    assert np.array_equal(offsets, random_offsets(500, 10.0, seed=1))
    assert not np.array_equal(offsets, random_offsets(500, 10.0, seed=2))
    assert not random_offsets(4, 0.0, seed=0).any()


def test_level_errors_tell_a_wrong_level_from_a_small_miss():
    levels = ["l1_l2", "l2_l3", "l3_l4"]
    frame = pd.DataFrame({"study_id": 7, "condition": "spinal_canal_stenosis", "level": levels,
                          "x": [50.0, 52.0, 54.0], "y": [20.0, 40.0, 60.0]})
    frame["x_predicted"] = [51.0, 52.0, 54.0]
    frame["y_predicted"] = [24.0, 58.0, 61.0]      # l1/l2 off by 4 px; l2/l3 lands on l3/l4
    frame["error_px"] = np.hypot(frame["x_predicted"] - frame["x"], frame["y_predicted"] - frame["y"])
    other = frame.assign(study_id=8, y_predicted=frame["y"])   # another study: its points do not count
    errors = level_errors(pd.concat([frame, other], ignore_index=True))
    assert errors["wrong_level"].tolist() == [False, True, False, False, False, False]
    assert errors.loc[1, "nearest_level"] == "l3_l4"
    table = level_error_table(errors)
    assert table.loc["wrong level", "discs"] == 1 and table.loc["right level", "discs"] == 5
    assert table["share"].sum() == pytest.approx(1.0)
    assert table.loc["wrong level", "median_px"] == pytest.approx(18.0)
