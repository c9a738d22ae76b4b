"""Table 1 metrics on small hand-checked cases, and bootstrap intervals."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score

from spinelib.metrics import (bootstrap_ci, classification_summary, confusion, recall_per_class,
                              severe_to_normal_rate, summary_with_ci)

# last entry has a missing grade (-1) and must be ignored everywhere
Y_TRUE = [0, 0, 0, 1, 1, 2, 2, -1]
Y_PRED = [0, 1, 0, 1, 2, 0, 2, 2]


def test_confusion_by_hand():
    assert confusion(Y_TRUE, Y_PRED).tolist() == [[2, 1, 0], [0, 1, 1], [1, 0, 1]]


def test_recall_and_summary_by_hand():
    assert np.allclose(recall_per_class(Y_TRUE, Y_PRED), [2 / 3, 1 / 2, 1 / 2])
    summary = classification_summary(np.array(Y_TRUE), np.array(Y_PRED))
    assert summary == pytest.approx({"recall_normal_mild": 2 / 3, "recall_moderate": 0.5, "recall_severe": 0.5,
                                     "accuracy": 4 / 7, "balanced_accuracy": 5 / 9, "severe_to_normal": 0.5})
    assert summary["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(Y_TRUE[:-1], Y_PRED[:-1]))


def test_severe_to_normal():
    assert severe_to_normal_rate([2, 2, 2, 2, 0], [0, 1, 2, 0, 0]) == 0.5
    assert math.isnan(severe_to_normal_rate([0, 1, -1], [0, 2, 0]))


def test_absent_grade_gives_nan_recall_and_balanced_accuracy_over_present():
    summary = classification_summary([0, 0, 1], [0, 1, 1])
    assert math.isnan(summary["recall_severe"])
    assert summary["balanced_accuracy"] == pytest.approx(0.75)


def test_out_of_range_prediction_raises():
    with pytest.raises(ValueError, match="outside"):
        confusion([0, 1], [0, 3])


def _accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    return float(np.mean(y_true == y_pred))


def _three_quarters_right(n: int) -> tuple[np.ndarray, np.ndarray]:
    y_true = np.tile([0, 1, 2, 0], n // 4)
    y_pred = np.tile([0, 1, 2, 1], n // 4)
    return y_true, y_pred


def test_bootstrap_contains_estimate_and_narrows():
    small, large = _three_quarters_right(40), _three_quarters_right(400)
    low_s, high_s = bootstrap_ci(*small, _accuracy, n_boot=500)
    low_l, high_l = bootstrap_ci(*large, _accuracy, n_boot=500)
    assert low_s <= 0.75 <= high_s and low_l <= 0.75 <= high_l
    assert high_l - low_l < 0.6 * (high_s - low_s)


def test_bootstrap_drops_undefined_resamples_and_ignores_missing():
    y_true = np.array([0] * 18 + [2, -1])
    y_pred = np.array([0] * 18 + [0, 1])
    low, high = bootstrap_ci(y_true, y_pred, severe_to_normal_rate, n_boot=200)
    assert (low, high) == (1.0, 1.0)


def test_summary_with_ci_matches_bootstrap_ci():
    y_true, y_pred = _three_quarters_right(80)
    table = summary_with_ci(y_true, y_pred, n_boot=300, seed=3)
    assert list(table.columns) == ["value", "ci_low", "ci_high"]
    assert table.loc["accuracy", "value"] == pytest.approx(0.75)
    assert (table["ci_low"] <= table["value"]).all() and (table["value"] <= table["ci_high"]).all()
    assert tuple(table.loc["accuracy", ["ci_low", "ci_high"]]) == pytest.approx(
        bootstrap_ci(y_true, y_pred, _accuracy, n_boot=300, seed=3))
    assert tuple(table.loc["balanced_accuracy", ["ci_low", "ci_high"]]) == pytest.approx(
        bootstrap_ci(y_true, y_pred, lambda t, p: classification_summary(t, p)["balanced_accuracy"],
                     n_boot=300, seed=3))


def test_ordinal_summary_agrees_with_scikit_learn():
    from sklearn.metrics import balanced_accuracy_score, cohen_kappa_score, matthews_corrcoef, roc_auc_score

    from spinelib.metrics import bootstrap_ordinal, ordinal_summary

    rng = np.random.default_rng(3)
    y = rng.integers(0, 4, 300)
    score = y + rng.normal(0, 1.2, 300)
    pred = np.clip(np.round(score), 0, 3).astype(int)
    got = ordinal_summary(y, pred, score[:, None], 4)
    assert got["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y, pred))
    assert got["qwk"] == pytest.approx(cohen_kappa_score(y, pred, weights="quadratic"))
    assert got["mcc"] == pytest.approx(matthews_corrcoef(y, pred))
    assert got["mae"] == pytest.approx(np.abs(y - pred).mean())
    assert got["roc_auc"] == pytest.approx(np.mean([roc_auc_score(y > c, score) for c in range(3)]))
    boot = bootstrap_ordinal(y, pred, 4, np.arange(300)[None])
    assert boot["qwk"][0] == pytest.approx(got["qwk"]) and boot["balanced_accuracy"][0] == pytest.approx(
        got["balanced_accuracy"])


def test_qwk_with_little_expected_disagreement_agrees_with_scikit_learn():
    """Σ W∘E below 1 (one disc off the majority grade): QWK = 1 − 0.25 / 0.25 = 0, as scikit-learn says."""
    from sklearn.metrics import cohen_kappa_score

    from spinelib.metrics import bootstrap_ordinal, ordinal_summary

    y, pred = np.array([0] * 9 + [1]), np.zeros(10, dtype=int)
    expected = cohen_kappa_score(y, pred, labels=[0, 1, 2], weights="quadratic")
    assert expected == pytest.approx(0.0)
    assert ordinal_summary(y, pred, None, 3)["qwk"] == pytest.approx(expected)
    assert bootstrap_ordinal(y, pred, 3, np.arange(10)[None])["qwk"][0] == pytest.approx(expected)


def test_confusion_of_only_missing_grades_is_all_zero():
    assert confusion([-1, -1], [0, 2], 3).tolist() == [[0] * 3] * 3
