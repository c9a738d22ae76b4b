"""Stage 2's comparison tables: annotated vs predicted coordinates, with patient-bootstrap intervals and paired differences."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from spinelib.competition import PROBABILITY_COLUMNS
from spinelib.metrics import ORDINAL_COLUMNS
from spinelib.studies.multistage.notebooks import annotated_minus_predicted, side_by_side

CERTAIN = np.eye(3)  # row g: probability 1 on grade g


def _graded(grades, predicted, coordinates: str) -> pd.DataFrame:
    """Six patients with two spinal-canal discs each (12 rows), graded with certainty."""
    return pd.DataFrame({"study_id": np.repeat(np.arange(6), 2), "condition": "spinal_canal_stenosis",
                         "level": ["l4_l5", "l5_s1"] * 6, "grade_index": np.asarray(grades, dtype=float),
                         "coordinates": coordinates, **dict(zip(PROBABILITY_COLUMNS, CERTAIN[predicted].T))})


GRADES = [0, 0, 1, 1, 2, 2, 0, 1, 2, 0, 1, 2]


def _both(predicted_grades) -> pd.DataFrame:
    return pd.concat([_graded(GRADES, GRADES, "annotated"), _graded(GRADES, predicted_grades, "predicted")],
                     ignore_index=True)


def test_blocks_per_coordinates_without_bootstrap():
    table = side_by_side(_both([0] * 12), ["condition"])  # predicted: everything Normal/Mild
    assert list(table.columns.get_level_values(0).unique()) == ["annotated", "predicted"]
    assert list(table["annotated"].columns) == [*ORDINAL_COLUMNS, "n"]
    assert table.loc["spinal_canal_stenosis", ("annotated", "balanced_accuracy")] == 1.0
    assert table.loc["spinal_canal_stenosis", ("predicted", "balanced_accuracy")] == pytest.approx(1 / 3, abs=1e-3)


def test_bootstrap_puts_each_interval_beside_its_metric():
    frame = _both([0] * 12)
    plain = side_by_side(frame, ["condition"])
    table = side_by_side(frame, ["condition"], n_boot=200, seed=1)
    assert list(table["predicted"].columns[:4]) == ["balanced_accuracy", "balanced_accuracy_low",
                                                    "balanced_accuracy_high", "roc_auc"]
    assert table["predicted"].columns[-1] == "n"
    row = table.loc["spinal_canal_stenosis"]
    for name in ORDINAL_COLUMNS:
        assert row[("annotated", name)] == plain.loc["spinal_canal_stenosis", ("annotated", name)]
        for block in ("annotated", "predicted"):
            assert row[(block, f"{name}_low")] <= row[(block, name)] <= row[(block, f"{name}_high")]
    # perfect grading is perfect on every resample of the patients: a zero-width interval
    assert (row["annotated"][["balanced_accuracy_low", "balanced_accuracy_high"]] == 1.0).all()


def test_paired_difference_is_annotated_minus_predicted_on_common_discs():
    frame = _both([0] * 12)
    table = annotated_minus_predicted(frame, ["condition"], n_boot=200, seed=0)
    assert table.index.names == ["condition", "metric"]
    ba = table.loc[("spinal_canal_stenosis", "balanced_accuracy")]
    assert ba["diff"] == pytest.approx(1 - 1 / 3, abs=1e-3) and ba["n"] == 12
    assert ba["low"] <= ba["diff"] <= ba["high"] and ba["excludes_zero"]  # BA 1 vs 1/3 on every resample
    assert table.loc[("spinal_canal_stenosis", "mae"), "diff"] < 0  # annotated points err less

    missing = frame.drop(index=frame.index[(frame["coordinates"] == "predicted") & (frame["study_id"] == 0)])
    assert annotated_minus_predicted(missing, ["condition"], n_boot=50).loc[
        ("spinal_canal_stenosis", "qwk"), "n"] == 10  # patient 0 not located: left out of both sides


def test_identical_gradings_differ_by_nothing():
    table = annotated_minus_predicted(_both(GRADES), ["condition"], n_boot=100)
    assert (table[["diff", "low", "high"]] == 0).all().all() and not table["excludes_zero"].any()


def test_ablation_differences_are_ablation_minus_full_per_coordinates():
    from spinelib.studies.multistage.notebooks import ablation_differences

    full = _both(GRADES).assign(model="full")                  # perfect on both blocks
    worse = _both([0] * 12).assign(model="no_aux_loss")        # perfect on annotated, all Normal/Mild on predicted
    table = ablation_differences(pd.concat([full, worse], ignore_index=True), n_boot=100)
    assert table.index.names == ["model", "coordinates", "condition", "metric"]
    assert set(table.index.get_level_values("metric")) == {"balanced_accuracy", "roc_auc"}
    row = table.loc[("no_aux_loss", "predicted", "spinal_canal_stenosis", "balanced_accuracy")]
    assert row["diff"] == pytest.approx(1 / 3 - 1, abs=1e-3) and row["excludes_zero"]
    same = table.loc[("no_aux_loss", "annotated", "spinal_canal_stenosis", "balanced_accuracy")]
    assert same["diff"] == 0 and not same["excludes_zero"]
