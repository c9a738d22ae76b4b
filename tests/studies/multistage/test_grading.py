import numpy as np
import pandas as pd
from sklearn.metrics import balanced_accuracy_score

from spinelib.competition import PROBABILITY_COLUMNS
from spinelib.studies.multistage.grading import metrics_by


def _predictions() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    proba = rng.dirichlet(np.ones(3), size=40)
    return pd.DataFrame({"condition": ["spinal_canal_stenosis"] * 20 + ["left_subarticular_stenosis"] * 20,
                         "level": ["l1_l2", "l2_l3"] * 20, "grade_index": rng.integers(0, 3, 40).astype(float),
                         **dict(zip(PROBABILITY_COLUMNS, proba.T))}).assign(
        grade_index=lambda f: f["grade_index"].where(f.index != 0))  # one unlabelled row: left out


def test_one_key_gives_plain_labels_and_sklearn_accuracy():
    frame = _predictions()
    table = metrics_by(frame, ["condition"])
    assert list(table.index) == ["spinal_canal_stenosis", "left_subarticular_stenosis"]
    assert table.loc["spinal_canal_stenosis", "n"] == 19
    part = frame[(frame["condition"] == "left_subarticular_stenosis")]
    expected = balanced_accuracy_score(part["grade_index"].astype(int), part[list(PROBABILITY_COLUMNS)].to_numpy().argmax(1))
    assert np.isclose(table.loc["left_subarticular_stenosis", "balanced_accuracy"], expected)


def test_two_keys_give_a_two_level_index():
    table = metrics_by(_predictions(), ["condition", "level"])
    assert table.index.names == ["condition", "level"] and len(table) == 4


def test_intervals_resample_patients_and_bracket_the_value():
    from spinelib.bootstrap import patient_weights, percentile_interval, weighted_confusion
    from spinelib.metrics import ordinal_from_confusion

    frame = _predictions().assign(study_id=np.repeat(np.arange(20), 2))
    table = metrics_by(frame, ["condition"], n_boot=200, seed=4)
    assert list(table.columns[:6]) == ["balanced_accuracy", "roc_auc", "qwk", "mae", "mcc", "n"]
    part = frame[frame["condition"] == "left_subarticular_stenosis"]
    weights = patient_weights(part["study_id"].to_numpy(), 200, 4)  # the ten patients of this condition
    boot = ordinal_from_confusion(weighted_confusion(part["grade_index"].astype(int),
                                                     part[list(PROBABILITY_COLUMNS)].to_numpy().argmax(1), 3, weights))
    assert tuple(table.loc["left_subarticular_stenosis", ["qwk_low", "qwk_high"]]) == \
        tuple(percentile_interval(boot["qwk"]))
    for name in ("balanced_accuracy", "roc_auc", "mae", "mcc"):
        assert (table[f"{name}_low"] <= table[name]).all() and (table[name] <= table[f"{name}_high"]).all()
    assert "qwk_low" not in metrics_by(frame, ["condition"]).columns  # no n_boot: the table of before


def test_paired_comparison_of_coordinates():
    from spinelib.studies.multistage.grading import paired_metrics_by

    annotated = _predictions().assign(study_id=np.repeat(np.arange(20), 2), coordinates="annotated")
    predicted = annotated.assign(coordinates="predicted").iloc[5:]  # five discs not located: left out of the pair
    same = paired_metrics_by(pd.concat([annotated, predicted]), ["condition"], n_boot=100)
    assert same.index.names == ["condition", "metric"]
    assert same.loc[("spinal_canal_stenosis", "qwk"), "n"] == 15  # rows 0–4 not located (row 0 is also unlabelled)
    assert (same[["diff", "low", "high"]].fillna(0) == 0).all().all() and not same["excludes_zero"].any()
    wrong = predicted.assign(normal_mild=1.0, moderate=0.0, severe=0.0)  # everything Normal/Mild
    versus = paired_metrics_by(pd.concat([annotated, wrong]), ["condition"], n_boot=100)
    assert (versus.xs("mae", level="metric")["diff"] != 0).any()


def test_paired_score_differences_rescore_each_model_on_the_same_study_resamples():
    from spinelib.constants import CONDITIONS, LEVELS
    from spinelib.studies.multistage.grading import paired_score_differences, submission_score

    rng = np.random.default_rng(1)
    keys = pd.DataFrame([(s, c, lv) for s in range(30) for c in CONDITIONS for lv in LEVELS],
                        columns=["study_id", "condition", "level"])
    labels = keys.assign(grade_index=rng.choice([0, 1, 2], len(keys), p=[0.7, 0.2, 0.1]).astype(float))
    truth = np.eye(3)[labels["grade_index"].astype(int)]
    good = keys.assign(**dict(zip(PROBABILITY_COLUMNS, (0.8 * truth + 0.2 / 3).T)))
    noisy = keys.assign(**dict(zip(PROBABILITY_COLUMNS, rng.dirichlet(np.ones(3), len(keys)).T)))
    prior = keys[["condition", "level"]].drop_duplicates().assign(normal_mild=0.7, moderate=0.2, severe=0.1)
    frame = pd.concat([good.assign(model="full"), noisy.assign(model="noisy"), good.assign(model="same")])
    table = paired_score_differences(frame.assign(coordinates="annotated"), labels, prior, n_boot=200)
    assert list(table.index) == [("noisy", "annotated"), ("same", "annotated")]
    noisy_row, same_row = table.loc[("noisy", "annotated")], table.loc[("same", "annotated")]
    assert np.isclose(noisy_row["score"], submission_score(noisy, labels, prior)["score"])   # the point: the score
    assert noisy_row["diff"] > 0 and noisy_row["low"] > 0 and noisy_row["excludes_zero"]  # worse, and shown so
    assert same_row["diff"] == 0 and same_row["low"] == 0 == same_row["high"]          # paired: identical models
