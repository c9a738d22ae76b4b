"""The competition metric on cases small enough to compute by hand."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from spinelib.competition import PROBABILITY_COLUMNS, competition_score, row_ids, split_row_id, weighted_log_loss
from spinelib.constants import CONDITIONS, LEVELS


def _frames(rows: list[tuple[str, int, tuple[float, float, float]]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    solution = pd.DataFrame({"row_id": [r for r, _, _ in rows], "grade_index": [g for _, g, _ in rows]})
    submission = pd.DataFrame([(r, *p) for r, _, p in rows], columns=["row_id", "normal_mild", "moderate", "severe"])
    return solution, submission


def test_weighted_log_loss_by_hand():
    # two rows: grade 0 with p=0.5 (w=1), grade 2 with p=0.25 (w=4)
    proba = np.array([[0.5, 0.25, 0.25], [0.5, 0.25, 0.25]])
    expected = -(1 * math.log(0.5) + 4 * math.log(0.25)) / 5
    assert weighted_log_loss(np.array([0, 2]), proba, np.array([1.0, 2.0, 4.0])) == pytest.approx(expected)


def test_groups_and_any_severe_by_hand():
    rows = [
        ("1_spinal_canal_stenosis_l1_l2", 0, (0.8, 0.1, 0.1)),
        ("1_spinal_canal_stenosis_l2_l3", 2, (0.2, 0.3, 0.5)),
        ("2_spinal_canal_stenosis_l1_l2", 1, (0.5, 0.4, 0.1)),
        ("1_left_neural_foraminal_narrowing_l1_l2", 1, (0.25, 0.5, 0.25)),
        ("1_right_subarticular_stenosis_l5_s1", 0, (0.9, 0.05, 0.05)),
    ]
    scores = competition_score(*_frames(rows))
    spinal = -(1 * math.log(0.8) + 4 * math.log(0.5) + 2 * math.log(0.4)) / 7
    assert scores["spinal"] == pytest.approx(spinal)
    assert scores["foraminal"] == pytest.approx(-math.log(0.5))
    assert scores["subarticular"] == pytest.approx(-math.log(0.9))
    # study 1: severe at l2_l3 -> target 1, q = max(0.1, 0.5) = 0.5, weight 4;
    # study 2: moderate, no severe -> target 0, q = 0.1, weight 2 (the largest spinal row weight; was 1 before)
    any_severe = -(4 * math.log(0.5) + 2 * math.log(0.9)) / 6
    assert scores["any_severe_spinal"] == pytest.approx(any_severe)
    assert scores["score"] == pytest.approx(np.mean([spinal, -math.log(0.5), -math.log(0.9), any_severe]))


def test_any_severe_weighs_a_moderate_study_two():
    rows = [
        ("10_spinal_canal_stenosis_l1_l2", 0, (0.7, 0.1, 0.2)),
        ("10_spinal_canal_stenosis_l2_l3", 1, (0.3, 0.4, 0.3)),  # moderate, no severe in study 10
        ("11_spinal_canal_stenosis_l1_l2", 0, (0.8, 0.1, 0.1)),  # all normal/mild in study 11
    ]
    scores = competition_score(*_frames(rows))
    # both targets 0; study 10: q = max(0.2, 0.3) = 0.3, weight max(1, 2) = 2; study 11: q = 0.1, weight 1
    expected = -(2 * math.log(1 - 0.3) + 1 * math.log(1 - 0.1)) / 3
    assert scores["any_severe_spinal"] == pytest.approx(expected)
    assert scores["any_severe_spinal"] != pytest.approx(-(math.log(0.7) + math.log(0.9)) / 2)  # the old 1/4 weights


def test_a_perfect_submission_scores_near_zero_and_missing_grades_are_ignored():
    rows = [("3_spinal_canal_stenosis_l4_l5", 2, (0.0, 0.0, 1.0)),
            ("3_spinal_canal_stenosis_l5_s1", 0, (1.0, 0.0, 0.0))]
    solution, submission = _frames(rows)
    solution.loc[len(solution)] = ["3_spinal_canal_stenosis_l3_l4", np.nan]
    assert competition_score(solution, submission)["score"] < 1e-9


def test_rows_must_sum_to_one_and_cover_the_solution():
    solution, submission = _frames([("1_spinal_canal_stenosis_l1_l2", 0, (0.5, 0.5, 0.5))])
    with pytest.raises(ValueError, match="sum to 1"):
        competition_score(solution, submission)
    solution, submission = _frames([("1_spinal_canal_stenosis_l1_l2", 0, (1.0, 0.0, 0.0))])
    solution.loc[1] = ["1_spinal_canal_stenosis_l2_l3", 0]
    with pytest.raises(KeyError, match="no prediction"):
        competition_score(solution, submission)


def test_row_ids_round_trip():
    ids = pd.Series(row_ids(42))
    assert len(ids) == 25 and ids.is_unique
    parts = split_row_id(ids)
    assert set(parts["study_id"]) == {42} and parts["level"].iloc[-1] == "l5_s1"
    assert parts["condition"].iloc[-1] == "right_subarticular_stenosis"


def test_study_terms_rescore_exactly_and_resamples_equal_scoring_the_repeated_rows():
    """The per-study terms give competition_score back, and a resample's score equals scoring its rows."""
    from spinelib.competition import bootstrap_scores, competition_score, study_terms

    rng = np.random.default_rng(0)
    studies = [11, 12, 13]
    rows = [f"{s}_{c}_{lv}" for s in studies for c in CONDITIONS for lv in LEVELS]
    solution = pd.DataFrame({"row_id": rows, "grade_index": rng.integers(0, 3, len(rows)).astype(float)})
    solution.loc[3, "grade_index"] = np.nan                        # an unlabelled row is dropped
    proba = rng.dirichlet(np.ones(3), len(rows))
    submission = pd.DataFrame(proba, columns=list(PROBABILITY_COLUMNS)).assign(row_id=rows)
    terms = study_terms(solution, submission)
    assert list(terms.index) == studies
    once = bootstrap_scores(terms, np.ones((1, 3)))[0]
    assert once == pytest.approx(competition_score(solution, submission)["score"])
    # study 11 twice, 12 never, 13 once == scoring those rows with study 11's rows renamed as a fourth study
    def as_study_99(frame):
        part = frame[frame["row_id"].str.startswith("11_")]
        return part.assign(row_id=part["row_id"].str.replace("11_", "99_", n=1))

    twice, sub_twice = as_study_99(solution), as_study_99(submission)
    keep = ~solution["row_id"].str.startswith("12_")
    resampled = competition_score(pd.concat([solution[keep], twice]), pd.concat([submission[keep], sub_twice]))
    assert bootstrap_scores(terms, np.array([[2, 0, 1]]))[0] == pytest.approx(resampled["score"])
