"""Cluster (patient) bootstrap: weights, weighted metrics against the materialised resample, paired intervals."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import kendalltau, spearmanr
from sklearn.metrics import cohen_kappa_score, matthews_corrcoef, roc_auc_score

from spinelib.bootstrap import (bootstrap_ordinal_weighted, paired_difference, patient_weights, percentile_interval,
                                weighted_auc, weighted_boundary_auc, weighted_confusion, weighted_spearman,
                                within_cell_kendall, within_cell_spearman)
from spinelib.metrics import boundary_auc, confusion

# three patients: a has three discs, b one, c two
PATIENTS = np.array(["a", "a", "a", "b", "c", "c"])


def _materialise(weights_row: np.ndarray) -> np.ndarray:
    """Row indices of one resample, each row repeated as often as its weight."""
    return np.repeat(np.arange(len(weights_row)), weights_row)


def test_weights_draw_patients_and_share_a_patients_weight():
    weights = patient_weights(PATIENTS, n_boot=50, seed=1)
    assert weights.shape == (50, 6) and weights.dtype.kind == "i"
    first_rows = [0, 3, 4]  # one row per patient: the per-patient counts
    assert (weights[:, first_rows].sum(axis=1) == 3).all()  # three patients drawn per resample
    assert (weights[:, 0] == weights[:, 1]).all() and (weights[:, 1] == weights[:, 2]).all()
    assert (weights[:, 4] == weights[:, 5]).all()
    assert (weights.sum(axis=1) == weights[:, first_rows] @ np.array([3, 1, 2])).all()  # discs follow their patient


def test_weights_are_reproducible_and_one_disc_per_patient_is_the_disc_bootstrap():
    assert (patient_weights(PATIENTS, 20, 7) == patient_weights(PATIENTS, 20, 7)).all()
    n = 9
    indices = np.random.default_rng(4).integers(0, n, size=(30, n))
    counts = np.stack([np.bincount(row, minlength=n) for row in indices])
    assert (patient_weights(np.arange(n), 30, 4) == counts).all()
    assert (patient_weights(np.arange(n), 30, 4).sum(axis=1) == n).all()


def test_weighted_confusion_is_the_confusion_of_the_materialised_resample():
    y_true = np.array([0, 1, 2, 2, -1, 1])
    y_pred = np.array([0, 2, 2, 0, 1, 1])
    weights = patient_weights(PATIENTS, 40, 0)
    got = weighted_confusion(y_true, y_pred, 3, weights)
    for b, row in enumerate(weights):
        idx = _materialise(row)
        assert (got[b] == confusion(y_true[idx], y_pred[idx], 3)).all()
    assert weighted_confusion([0, 1], [1, 1], 2, np.array([[2, 1]])).tolist() == [[[0, 2], [0, 1]]]


def test_ordinal_metrics_of_weights_agree_with_scikit_learn_on_the_resample():
    rng = np.random.default_rng(2)
    y_true, y_pred = rng.integers(0, 3, 30), rng.integers(0, 3, 30)
    patients = np.repeat(np.arange(10), 3)
    weights = patient_weights(patients, 5, 3)
    got = bootstrap_ordinal_weighted(y_true, y_pred, 3, weights)
    for b, row in enumerate(weights):
        t, p = y_true[_materialise(row)], y_pred[_materialise(row)]
        assert got["qwk"][b] == pytest.approx(cohen_kappa_score(t, p, labels=[0, 1, 2], weights="quadratic"))
        assert got["mcc"][b] == pytest.approx(matthews_corrcoef(t, p))
        assert got["accuracy"][b] == pytest.approx(np.mean(t == p))
        assert got["mae"][b] == pytest.approx(np.abs(t - p).mean())
        severe = t == 2
        assert np.isnan(got["severe_to_normal"][b]) if not severe.any() else \
            got["severe_to_normal"][b] == pytest.approx(np.mean(p[severe] == 0))


def test_weighted_auc_by_hand_and_against_scikit_learn_with_ties():
    # pos 0.8 beats neg 0.2 (×2 copies) and ties neg 0.8: (2·1 + ½) / (1 · 3)
    assert weighted_auc([1, 0, 0], [0.8, 0.2, 0.8], np.array([[1, 2, 1]]))[0] == pytest.approx(2.5 / 3)
    rng = np.random.default_rng(5)
    label = rng.integers(0, 2, 24)
    score = rng.integers(0, 4, 24).astype(float)  # many ties
    weights = patient_weights(np.repeat(np.arange(8), 3), 30, 1)
    got = weighted_auc(label, score, weights)
    for b, row in enumerate(weights):
        idx = _materialise(row)
        expected = roc_auc_score(label[idx], score[idx]) if len(np.unique(label[idx])) == 2 else np.nan
        assert got[b] == pytest.approx(expected, nan_ok=True)


def test_weighted_boundary_auc_of_unit_weights_is_boundary_auc():
    rng = np.random.default_rng(6)
    y = rng.integers(0, 3, 40)
    y[0] = -1
    score = y + rng.normal(0, 1, 40)
    ones = np.ones((1, 40), dtype=int)
    assert weighted_boundary_auc(y, score[:, None], 3, ones)[0] == pytest.approx(
        np.mean(boundary_auc(y, score[:, None], 3)))
    proba_like = np.stack([score, 2 * score], axis=1)
    assert weighted_boundary_auc(y, proba_like, 3, ones)[0] == pytest.approx(np.mean(boundary_auc(y, proba_like)))


def test_weighted_spearman_equals_scipy_on_the_materialised_resample_with_ties():
    x = np.array([1.0, 2.0, 2.0, 3.0, 5.0, 5.0, 4.0, 0.0])
    y = np.array([0.0, 1.0, 3.0, 3.0, 2.0, 6.0, 6.0, 1.0])
    patients = np.array([0, 0, 1, 1, 2, 3, 3, 4])
    weights = patient_weights(patients, 60, 2)
    got = weighted_spearman(x, y, weights)
    for b, row in enumerate(weights):
        idx = _materialise(row)
        constant = len(np.unique(x[idx])) < 2 or len(np.unique(y[idx])) < 2
        expected = np.nan if constant else spearmanr(x[idx], y[idx]).statistic
        assert got[b] == pytest.approx(expected, nan_ok=True)
    assert weighted_spearman(x, y, np.ones((1, 8), dtype=int))[0] == pytest.approx(spearmanr(x, y).statistic)


def test_within_cell_pools_by_size_and_skips_small_or_constant_cells():
    x = np.array([1, 2, 3, 4, 5, 1, 2, 3, 4, 5, 6, 7, 9, 9, 9, 9, 9], dtype=float)
    y = np.array([1, 2, 3, 4, 5, 7, 6, 5, 4, 3, 2, 1, 1, 2, 3, 4, 5], dtype=float)
    cells = ["up"] * 5 + ["down"] * 7 + ["flat"] * 5  # rho +1 over 5 discs, -1 over 7, x constant in "flat"
    point, per_cell, boot = within_cell_spearman(x, y, cells)
    assert point == pytest.approx((5 * 1 - 7 * 1) / 12) and boot is None
    assert per_cell["cell"].tolist() == ["up", "down", "flat"] and per_cell["n"].tolist() == [5, 7, 5]
    assert np.isnan(per_cell["rho"].iloc[2])
    assert np.isnan(within_cell_spearman(x, y, cells, min_n=6)[1]["rho"].iloc[0])  # 5 discs < min_n
    tau, _ = within_cell_kendall(x, y, cells)
    assert tau == pytest.approx((5 * kendalltau(x[:5], y[:5]).statistic + 7 * kendalltau(x[5:12], y[5:12]).statistic)
                                / 12)
    weights = np.ones((2, 17), dtype=int)
    weights[1, :5] = 3  # "up" counted three times in the second resample: (15 - 7) / 22
    _, _, boot = within_cell_spearman(x, y, cells, weights)
    assert boot == pytest.approx([point, 8 / 22])


def test_within_cell_accepts_two_column_cells():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=20), rng.normal(size=20)
    grade, level = np.repeat([0, 1], 10), np.tile(["l4_l5", "l5_s1"], 10)
    point, per_cell, _ = within_cell_spearman(x, y, pd.DataFrame({"grade": grade, "level": level}))
    assert len(per_cell) == 4 and per_cell["cell"].iloc[0] == (0, "l4_l5")
    rhos = [spearmanr(x[(grade == g) & (level == lv)], y[(grade == g) & (level == lv)]).statistic
            for g in (0, 1) for lv in ("l4_l5", "l5_s1")]
    assert point == pytest.approx(np.mean(rhos))


def test_paired_difference_of_a_run_with_itself_is_exactly_zero():
    boot = np.random.default_rng(1).normal(size=200)
    result = paired_difference(0.7, 0.7, boot, boot)
    assert result == {"diff": 0.0, "low": 0.0, "high": 0.0, "excludes_zero": False}


def test_pairing_removes_the_shared_patient_variation():
    """Method b is always one grade-step worse than a on the same discs: the paired interval is narrow."""
    rng = np.random.default_rng(3)
    patients = np.repeat(np.arange(30), 4)
    difficulty = rng.normal(size=30)[patients]
    score_a, score_b = difficulty + 0.1 * rng.normal(size=120), difficulty + 0.1 * rng.normal(size=120) - 0.3
    weights = patient_weights(patients, 400, 0)
    a, b = (weights * score_a).sum(1) / weights.sum(1), (weights * score_b).sum(1) / weights.sum(1)
    paired = paired_difference(score_a.mean(), score_b.mean(), a, b)
    low_a, high_a = percentile_interval(a)
    assert paired["excludes_zero"] and paired["low"] <= paired["diff"] <= paired["high"]
    assert paired["high"] - paired["low"] < 0.2 * (high_a - low_a)


def test_patient_interval_is_wider_when_discs_of_a_patient_agree():
    """20 patients × 5 discs, each patient all right or all wrong: the disc bootstrap is far too narrow."""
    patients = np.repeat(np.arange(20), 5)
    y_true = np.zeros(100, dtype=int)
    y_pred = np.where(patients % 2 == 0, 0, 1)  # half the patients wrong on all their discs
    disc = bootstrap_ordinal_weighted(y_true, y_pred, 2, patient_weights(np.arange(100), 1000, 0))["accuracy"]
    patient = bootstrap_ordinal_weighted(y_true, y_pred, 2, patient_weights(patients, 1000, 0))["accuracy"]
    disc_width, patient_width = np.subtract(*percentile_interval(disc)[::-1]), np.subtract(
        *percentile_interval(patient)[::-1])
    assert patient_width > 1.7 * disc_width  # sqrt(5) ≈ 2.2 in theory


def test_percentile_interval_ignores_nan_and_is_nan_when_empty():
    assert percentile_interval([np.nan, 1.0, 1.0]) == (1.0, 1.0)
    assert all(np.isnan(percentile_interval([np.nan, np.nan])))
