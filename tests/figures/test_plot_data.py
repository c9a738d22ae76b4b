"""The plot tables that notebooks write for `dvc plots`."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from spinelib.figures import plot_data as pdata
from spinelib.metrics import boundary_auc


def test_file_stem_flattens_run_names():
    assert pdata.file_stem("split_patient/scratch/seed0") == "split_patient__scratch__seed0"
    assert pdata.file_stem("Sagittal T2/STIR") == "Sagittal_T2__STIR"
    with pytest.raises(ValueError):
        pdata.file_stem("///")


def test_curve_keeps_epoch_and_present_columns_rounded():
    history = pd.DataFrame({"epoch": [1, 2], "train_loss": [0.123456, 0.1], "auc": [0.5, 0.61111111], "seconds": [1, 2]})
    out = pdata.curve(history, ["train_loss", "balanced_accuracy", "auc"])
    assert list(out.columns) == ["epoch", "train_loss", "auc"]
    assert out["train_loss"].tolist() == [0.1235, 0.1] and out["auc"].iloc[1] == 0.6111
    with pytest.raises(KeyError, match="epoch"):
        pdata.curve(history.drop(columns="epoch"), ["auc"])


def test_roc_points_match_the_auc_and_are_capped():
    rng = np.random.default_rng(0)
    grades = rng.integers(0, 3, 2000)
    score = grades + rng.normal(0, 1.0, grades.size)
    full = pdata.boundary_rocs(grades, score[:, None], 3, max_points=10_000)
    aucs = boundary_auc(grades, score[:, None], 3)
    for c, points in full.items():
        assert points["boundary"].eq(f"grade>{c}").all()
        assert np.trapezoid(points["tpr"], points["fpr"]) == pytest.approx(aucs[c], abs=1e-3)
    capped = pdata.roc_points(grades > 0, score, max_points=50)
    assert len(capped) <= 50
    assert capped.iloc[0].tolist() == [0.0, 0.0] and capped.iloc[-1].tolist() == [1.0, 1.0]
    assert capped["fpr"].is_monotonic_increasing and capped["tpr"].is_monotonic_increasing


def test_roc_of_one_class_is_empty_and_such_a_boundary_is_missing():
    assert pdata.roc_points(np.ones(5, bool), np.arange(5.0)).empty
    assert set(pdata.boundary_rocs(np.array([0, 0, 1, 1, -1]), np.array([0.1, 0.2, 0.8, 0.9, 0.5]), 3)) == {0}


def test_confusion_rows_name_grades_and_skip_unlabelled():
    out = pdata.confusion_rows(np.array([0, 2, -1, np.nan, 1]), np.array([0, 1, 1, 0, 1]), ("normal", "moderate", "severe"))
    assert out.values.tolist() == [["normal", "normal"], ["severe", "moderate"], ["moderate", "moderate"]]
    with pytest.raises(ValueError):
        pdata.confusion_rows(np.zeros(2), np.zeros(3), ("a",))


def test_histogram_counts_clip_into_end_bins_and_keep_zeros():
    out = pdata.histogram_counts(np.array([0, 0, 1, -7, 9, np.nan]), -2, 2)
    assert out["error"].tolist() == [-2, -1, 0, 1, 2]
    assert out["count"].tolist() == [1, 0, 2, 1, 1]


def test_write_tables_replaces_old_csvs_and_checks_columns(tmp_path):
    (tmp_path / "stale.csv").write_text("epoch\n1\n")
    paths = pdata.write_tables({"a/b": pd.DataFrame({"epoch": [1], "x": [0.123456]})}, tmp_path, ["epoch", "x"])
    assert [p.name for p in paths] == ["a__b.csv"] and sorted(p.name for p in tmp_path.iterdir()) == ["a__b.csv"]
    assert (tmp_path / "a__b.csv").read_text() == "epoch,x\n1,0.1235\n"
    with pytest.raises(KeyError, match="lacks"):
        pdata.write_tables({"c": pd.DataFrame({"epoch": [1]})}, tmp_path, ["epoch", "x"])
