"""Table 1 metrics on small hand-checked cases, and bootstrap intervals."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import balanced_accuracy_score

from spinelib import metrics
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

    from spinelib.bootstrap import bootstrap_ordinal_weighted
    from spinelib.metrics import ordinal_summary

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
    boot = bootstrap_ordinal_weighted(y, pred, 4, np.ones((1, 300)))   # the one "resample" that is the data
    assert boot["qwk"][0] == pytest.approx(got["qwk"]) and boot["balanced_accuracy"][0] == pytest.approx(
        got["balanced_accuracy"])


def test_qwk_with_little_expected_disagreement_agrees_with_scikit_learn():
    """Σ W∘E below 1 (one disc off the majority grade): QWK = 1 − 0.25 / 0.25 = 0, as scikit-learn says."""
    from sklearn.metrics import cohen_kappa_score

    from spinelib.bootstrap import bootstrap_ordinal_weighted
    from spinelib.metrics import ordinal_summary

    y, pred = np.array([0] * 9 + [1]), np.zeros(10, dtype=int)
    expected = cohen_kappa_score(y, pred, labels=[0, 1, 2], weights="quadratic")
    assert expected == pytest.approx(0.0)
    assert ordinal_summary(y, pred, None, 3)["qwk"] == pytest.approx(expected)
    assert bootstrap_ordinal_weighted(y, pred, 3, np.ones((1, 10)))["qwk"][0] == pytest.approx(expected)


def test_confusion_of_only_missing_grades_is_all_zero():
    assert confusion([-1, -1], [0, 2], 3).tolist() == [[0] * 3] * 3


# --- Patient-level intervals -------------------------------------------------------------------------------------


def test_intervals_without_groups_are_the_disc_bootstrap_of_before():
    """groups=None: each disc its own patient, the same draws as rng.integers(0, n, (n_boot, n))."""
    y_true, y_pred = _three_quarters_right(40)
    indices = np.random.default_rng(5).integers(0, 40, size=(200, 40))
    by_index = np.array([_accuracy(y_true[idx], y_pred[idx]) for idx in indices])
    expected = tuple(np.percentile(by_index, [2.5, 97.5]))
    assert bootstrap_ci(y_true, y_pred, _accuracy, n_boot=200, seed=5) == pytest.approx(expected)
    assert tuple(summary_with_ci(y_true, y_pred, n_boot=200, seed=5).loc["accuracy", ["ci_low", "ci_high"]]) == \
        pytest.approx(expected)


def test_groups_resample_patients_and_agree_between_summary_and_bootstrap_ci():
    """Ten patients of four discs, each all right or all wrong: a patient resample has accuracy k/10 only."""
    patients = np.repeat(np.arange(10), 4)
    y_true = np.zeros(40, dtype=int)
    y_pred = np.where(patients < 7, 0, 1)
    y_true[0] = -1  # a missing grade is dropped with its row
    table = summary_with_ci(y_true, y_pred, n_boot=300, seed=2, groups=patients)
    low, high = bootstrap_ci(y_true, y_pred, _accuracy, n_boot=300, seed=2, groups=patients)
    assert tuple(table.loc["accuracy", ["ci_low", "ci_high"]]) == pytest.approx((low, high))
    disc_low, disc_high = bootstrap_ci(y_true, y_pred, _accuracy, n_boot=300, seed=2)
    assert high - low > 1.5 * (disc_high - disc_low)
    with pytest.raises(ValueError, match="groups"):
        summary_with_ci(y_true, y_pred, groups=patients[:-1])


def test_weighted_ordinal_bootstrap_equals_metrics_of_the_drawn_discs():
    from spinelib.bootstrap import bootstrap_ordinal_weighted, patient_weights
    from spinelib.metrics import ordinal_summary

    rng = np.random.default_rng(1)
    y, pred = rng.integers(-1, 3, 30), rng.integers(0, 3, 30)
    weights = patient_weights(np.arange(30), 50, 9)                      # one disc per patient: the disc bootstrap
    indices = np.random.default_rng(9).integers(0, 30, size=(50, 30))
    boot = bootstrap_ordinal_weighted(y, pred, 3, weights)
    for b in (0, 17, 49):
        drawn = ordinal_summary(y[indices[b]][y[indices[b]] >= 0], pred[indices[b]][y[indices[b]] >= 0], None, 3)
        for name in ("balanced_accuracy", "qwk", "mae"):
            assert boot[name][b] == pytest.approx(drawn[name], nan_ok=True)


# --- Table 1 intervals per configuration (spinelib.studies.finetune) ----------------------------------------------


def _two_configs() -> pd.DataFrame:
    patients = np.repeat(np.arange(12), 3)
    grade = np.tile([0, 1, 2], 12)
    better = grade.copy()
    worse = np.where(patients % 3 == 0, 0, grade)  # a third of the patients graded all Normal/Mild
    frame = pd.DataFrame({"study_id": patients, "level": np.tile(["l3_l4", "l4_l5", "l5_s1"], 12), "grade": grade})
    return pd.concat([frame.assign(config="finetune", predicted=better),
                      frame.assign(config="scratch", predicted=worse)], ignore_index=True)


def test_finetune_intervals_resample_patients():
    from spinelib.studies.finetune import intervals_by

    predictions = _two_configs()
    table = intervals_by(predictions, "config", n_boot=200, seed=1)
    scratch = predictions[predictions["config"] == "scratch"]
    expected = summary_with_ci(scratch["grade"], scratch["predicted"], 200, 1, groups=scratch["study_id"])
    assert table.loc["scratch"].equals(expected)
    assert tuple(table.loc[("finetune", "accuracy"), ["ci_low", "ci_high"]]) == (1.0, 1.0)


def test_finetune_paired_differences():
    from spinelib.studies.finetune import paired_differences

    predictions = _two_configs()
    table = paired_differences(predictions, "scratch", n_boot=300, seed=0)
    assert list(table.index.get_level_values("config").unique()) == ["finetune"]
    row = table.loc[("finetune", "accuracy")]
    assert row["diff"] == pytest.approx(8 / 36) and row["low"] <= row["diff"] <= row["high"]
    assert row["excludes_zero"]
    scratch = predictions[predictions["config"] == "scratch"]
    copy = pd.concat([scratch, scratch.assign(config="copy")], ignore_index=True)
    itself = paired_differences(copy, "scratch", n_boot=50)
    assert (itself[["diff", "low", "high"]] == 0).all().all() and not itself["excludes_zero"].any()
    with pytest.raises(ValueError, match="one run"):
        paired_differences(pd.concat([predictions, predictions]), "scratch")


def test_pooled_table_and_differences_by_pool_runs_pair_by_pair():
    from spinelib.studies.finetune import differences_by, pooled_table

    one = _two_configs()
    # two seeds: seed 1's scratch is perfect, so the pooled difference is half of seed 0's
    runs = pd.concat([one.assign(seed=0), one.assign(seed=1, predicted=np.where(one["config"] == "scratch",
                                                                                 one["grade"], one["predicted"]))])
    runs = pd.concat([runs.assign(fraction=0.1), runs.assign(fraction=1.0)], ignore_index=True)
    table = pooled_table(runs, ["fraction", "config"], ["seed"], n_boot=200)
    row = table.loc[(0.1, "scratch")]
    assert row["runs"] == 2
    per_seed = [classification_summary(p["grade"], p["predicted"])["balanced_accuracy"]
                for _, p in runs[(runs["fraction"] == 0.1) & (runs["config"] == "scratch")].groupby("seed")]
    assert row["balanced_accuracy_mean"] == pytest.approx(np.mean(per_seed))
    assert row["balanced_accuracy_std"] == pytest.approx(np.std(per_seed, ddof=1))
    assert row["balanced_accuracy_low"] <= row["balanced_accuracy_pooled"] <= row["balanced_accuracy_high"]
    diffs = differences_by(runs, "fraction", "finetune", "scratch", ("seed",), n_boot=200)
    assert list(diffs.index.get_level_values("fraction").unique()) == [0.1, 1.0]
    assert diffs.loc[(0.1, "accuracy"), "diff"] == pytest.approx(4 / 36)   # (8/36 + 0) / 2
    with pytest.raises(ValueError, match="one run"):
        differences_by(runs, "fraction", "finetune", "scratch", (), n_boot=10)   # seeds not in the keys


def test_fraction_repeats_keep_the_optimiser_steps():
    from spinelib.studies.finetune import fraction_repeats

    assert [fraction_repeats(f, True) for f in (0.1, 0.25, 1.0)] == [10, 4, 1]
    assert fraction_repeats(0.1, False) == 1


def test_matthews_from_confusion_matches_sklearn_and_is_zero_for_one_grade():
    import warnings

    from sklearn.metrics import matthews_corrcoef

    rng = np.random.default_rng(0)
    y_true, y_pred = rng.integers(0, 3, 200), rng.integers(0, 3, 200)
    y_pred[:120] = y_true[:120]
    cm = metrics.confusion_from_codes(3 * y_true + y_pred, 3)
    assert metrics.matthews_from_confusion(cm) == pytest.approx(matthews_corrcoef(y_true, y_pred))
    with warnings.catch_warnings():
        warnings.simplefilter("error")   # a subset with one grade must not warn
        out = metrics.ordinal_summary(np.zeros(5, int), np.zeros(5, int), None, 3)
    assert out["mcc"] == 0.0
