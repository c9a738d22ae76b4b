"""The RSNA 2024 competition metric (rsna-format.md, "The competition metric").

Rows are ``<study_id>_<condition>_<level>`` with probabilities ``normal_mild,
moderate, severe`` that must sum to 1 (the official scorer normalises nothing).
For each condition group g (spinal canal, foraminal, subarticular), over its
labelled rows i with true grade y_i and weight w_i = (1, 2, 4)[y_i]:

    L_g = - sum_i w_i log p_i[y_i] / sum_i w_i

``any_severe_spinal`` is one binary row per study s, over its labelled spinal
canal rows i: target t_s = 1 if any of them is severe, prediction
q_s = max_i p_i[severe], and weight v_s = max_i w_i, the largest grade weight
among them (as the official scorer does: 4 if any level is severe, else 2 if
any is moderate, else 1):

    L_any = - sum_s v_s [t_s log q_s + (1 - t_s) log(1 - q_s)] / sum_s v_s

The score is the mean of the four losses; lower is better. Probabilities are
clipped to [eps, 1 - eps] before the logarithm (as sklearn's log loss does).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from spinelib.constants import CONDITIONS, LEVELS

PROBABILITY_COLUMNS: tuple[str, ...] = ("normal_mild", "moderate", "severe")
# w = (1, 2, 4)[grade]: the official scorer weights a Moderate row twice and a Severe row four times a Normal/Mild one.
GRADE_WEIGHTS = np.array([1.0, 2.0, 4.0])
# The three condition groups, each one log loss of the score (left and right sides pooled).
GROUPS: dict[str, tuple[str, ...]] = {
    "spinal": ("spinal_canal_stenosis",),
    "foraminal": ("left_neural_foraminal_narrowing", "right_neural_foraminal_narrowing"),
    "subarticular": ("left_subarticular_stenosis", "right_subarticular_stenosis"),
}
EPS = 1e-15     # the probability clip of the official scorer (sklearn's log_loss): log(0) never happens


def row_ids(study_id: int) -> list[str]:
    """The 25 submission row ids of one study, conditions then levels, as in sample_submission.csv."""
    return [f"{int(study_id)}_{condition}_{level}" for condition in CONDITIONS for level in LEVELS]


def split_row_id(row_id: pd.Series) -> pd.DataFrame:
    """``<study_id>_<condition>_<level>`` → columns study_id (int), condition, level."""
    # The condition itself contains underscores, so anchor on the two ends: leading digits, trailing level.
    parts = row_id.str.extract(r"^(\d+)_(.+)_(l\d_[ls]\d)$")
    if parts.isna().any().any():
        bad = row_id[parts.isna().any(axis=1)].head(3).tolist()
        raise ValueError(f"row ids not of the form <study_id>_<condition>_<level>: {bad}")
    return pd.DataFrame({"study_id": parts[0].astype("int64"), "condition": parts[1], "level": parts[2]},
                        index=row_id.index)


def check_submission(submission: pd.DataFrame, atol: float = 1e-6) -> None:
    """Raise ``ValueError`` unless ``submission`` has row_id and the three columns, in [0, 1], rows summing to 1."""
    missing = [c for c in ("row_id", *PROBABILITY_COLUMNS) if c not in submission.columns]
    if missing:
        raise ValueError(f"submission lacks column(s) {missing}; has {list(submission.columns)}")
    proba = submission[list(PROBABILITY_COLUMNS)].to_numpy(dtype=float)
    if not np.isfinite(proba).all() or (proba < 0).any() or (proba > 1).any():
        raise ValueError("submission probabilities must be finite and in [0, 1]")
    sums = proba.sum(axis=1)
    bad = np.flatnonzero(np.abs(sums - 1.0) > atol)
    if bad.size:
        rows = submission["row_id"].iloc[bad[:3]].tolist()
        raise ValueError(f"{bad.size} submission rows do not sum to 1 (e.g. {rows}: {sums[bad[:3]].round(4).tolist()})")
    if submission["row_id"].duplicated().any():
        repeated = submission["row_id"][submission["row_id"].duplicated()]
        raise ValueError(f"duplicated row ids: {repeated.head(3).tolist()}")


def sample_weighted_log_loss(y_true: np.ndarray, proba: np.ndarray, weight: np.ndarray) -> float:
    """- sum_i v_i log p_i[y_i] / sum_i v_i with per-row weights v and p clipped to [EPS, 1 - EPS]."""
    y_true = np.asarray(y_true, dtype=np.int64)
    proba = np.clip(np.asarray(proba, dtype=float), EPS, 1 - EPS)
    weight = np.asarray(weight, dtype=float)
    picked = proba[np.arange(len(y_true)), y_true]     # p_i[y_i] (n,): the probability given to the true grade
    return float(-(weight * np.log(picked)).sum() / weight.sum())


def weighted_log_loss(y_true: np.ndarray, proba: np.ndarray, class_weights: np.ndarray) -> float:
    """- sum_i w[y_i] log p_i[y_i] / sum_i w[y_i] with p clipped to [EPS, 1 - EPS]."""
    y_true = np.asarray(y_true, dtype=np.int64)
    return sample_weighted_log_loss(y_true, proba, np.asarray(class_weights, dtype=float)[y_true])


def _labelled_rows(solution: pd.DataFrame, submission: pd.DataFrame) -> pd.DataFrame:
    """Labelled solution rows with their predictions and study_id, condition, level (KeyError: rows not predicted)."""
    check_submission(submission)
    labelled = solution[solution["grade_index"].notna()][["row_id", "grade_index"]]
    # Left merge keeps every labelled row; a row without prediction shows up as nan probabilities, caught below.
    merged = labelled.merge(submission, on="row_id", how="left")
    absent = merged[merged["normal_mild"].isna()]["row_id"]
    if len(absent):
        raise KeyError(f"{len(absent)} labelled rows have no prediction, e.g. {absent.head(3).tolist()}")
    return merged.join(split_row_id(merged["row_id"]))


def _any_severe_by_study(spinal: pd.DataFrame) -> pd.DataFrame:
    """The any_severe_spinal row of each study (index study_id, sorted): target t_s, prediction q_s, weight v_s.

    ``spinal`` holds the labelled spinal canal rows (``grade_index`` and the ``severe`` probability). Per study:
    t_s = any level severe, q_s = max_i p_i[severe], v_s = max_i w_i (module docstring). Shared by
    :func:`competition_score` and :func:`study_terms`, so both see the same per-study rows.
    """
    grade = spinal["grade_index"].to_numpy(dtype=np.int64)
    return spinal.assign(is_severe=grade == 2, weight=GRADE_WEIGHTS[grade]).groupby("study_id").agg(
        target=("is_severe", "max"), q=("severe", "max"), weight=("weight", "max"))


def competition_score(solution: pd.DataFrame, submission: pd.DataFrame) -> dict[str, float]:
    """The four group losses and their mean (``score``).

    ``solution``: row_id and ``grade_index`` (0, 1, 2; missing grades are
    dropped); ``submission``: row_id and the three probability columns. Every
    labelled row must have a prediction (a ``KeyError`` names the missing ones).

    Why this and :func:`study_terms` both exist (a review called them twins): they aggregate the same four
    losses, but to different ends, and one cannot be written as the other without changing result bits.
    This function follows the official scorer's arithmetic: it clips the two-column matrix [1 − q, q] and sums
    v_s log(...) over all studies in one pass. ``study_terms`` clips q and takes 1 − q, and keeps one sum per
    study so that a bootstrap can reweight studies; adding those per-study sums again (and the zero rows of
    studies without rows of a loss) groups the floating-point additions differently, and 1 − clip(q) differs
    from clip(1 − q) near q = 1. The two scores agree to rounding (tests/test_competition.py checks it with
    ``approx``), not bit for bit, so the reported score keeps this exact path and the bootstrap keeps its own.
    What they share, the per-study any_severe aggregation, lives in :func:`_any_severe_by_study`.
    """
    merged = _labelled_rows(solution, submission)
    y_true = merged["grade_index"].to_numpy(dtype=np.int64)
    proba = merged[list(PROBABILITY_COLUMNS)].to_numpy(dtype=float)
    scores: dict[str, float] = {}
    # ---- the three condition-group losses L_g (nan for a group without any labelled row) ----
    for group, conditions in GROUPS.items():
        rows = merged["condition"].isin(conditions).to_numpy()
        scores[group] = weighted_log_loss(y_true[rows], proba[rows], GRADE_WEIGHTS) if rows.any() else float("nan")
    # ---- any_severe_spinal: one binary row per study, a weighted log loss over studies ----
    spinal = merged[merged["condition"] == "spinal_canal_stenosis"]
    if len(spinal):
        per_study = _any_severe_by_study(spinal)
        q = per_study["q"].to_numpy()
        # As a two-class problem: column 0 = P(not severe) = 1 − q, column 1 = P(severe) = q.
        scores["any_severe_spinal"] = sample_weighted_log_loss(per_study["target"].to_numpy(dtype=np.int64),
                                                               np.stack([1 - q, q], axis=1),
                                                               per_study["weight"].to_numpy())
    else:
        scores["any_severe_spinal"] = float("nan")
    # ---- the score: mean of the four losses, skipping any that is undefined (nan) ----
    scores["score"] = float(np.nanmean([scores[g] for g in (*GROUPS, "any_severe_spinal")]))
    return scores


def study_terms(solution: pd.DataFrame, submission: pd.DataFrame) -> pd.DataFrame:
    """Per study, the numerator and denominator of each of the four losses (the score's additive parts).

    One row per study (index study_id), columns ``<loss>_num`` = Σ_i w_i (−log p_i[y_i]) and ``<loss>_den`` =
    Σ_i w_i over the study's rows of that loss, for loss in spinal, foraminal, subarticular, any_severe_spinal
    (one row of its own per study). :func:`competition_score` equals :func:`score_from_terms` of the column sums;
    a resample of studies weights these rows, which is how :func:`bootstrap_scores` rescoring stays exact.
    """
    merged = _labelled_rows(solution, submission)
    y_true = merged["grade_index"].to_numpy(dtype=np.int64)
    proba = np.clip(merged[list(PROBABILITY_COLUMNS)].to_numpy(dtype=float), EPS, 1 - EPS)
    # ---- per row: w_i (−log p_i[y_i]) and w_i, summed per study and loss below ----
    weight = GRADE_WEIGHTS[y_true]
    merged["_num"] = -weight * np.log(proba[np.arange(len(y_true)), y_true])
    merged["_den"] = weight
    # ``parts`` maps column name -> per-study Series; the insertion order is the frame's column order.
    parts = {}
    for group, conditions in GROUPS.items():
        rows = merged[merged["condition"].isin(conditions)].groupby("study_id")[["_num", "_den"]].sum()
        parts[f"{group}_num"], parts[f"{group}_den"] = rows["_num"], rows["_den"]
    # ---- any_severe_spinal: the study's one binary row, already a per-study term ----
    spinal = merged[merged["condition"] == "spinal_canal_stenosis"]
    per_study = _any_severe_by_study(spinal)
    q = np.clip(per_study["q"].to_numpy(dtype=float), EPS, 1 - EPS)
    log_likelihood = np.where(per_study["target"].to_numpy(dtype=bool), np.log(q), np.log(1 - q))
    parts["any_severe_spinal_num"] = pd.Series(-per_study["weight"].to_numpy() * log_likelihood, index=per_study.index)
    parts["any_severe_spinal_den"] = per_study["weight"]
    # A study without rows of some loss is missing from that loss's Series: the frame aligns the Series on
    # study_id and the gaps become 0 (nothing added to that loss's numerator or denominator).
    return pd.DataFrame(parts).fillna(0.0).sort_index()


LOSSES = (*GROUPS, "any_severe_spinal")      # the four losses, in the column order of study_terms


def score_from_terms(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """Competition score from summed terms (..., 4): the nan-mean over the four losses of num / den."""
    with np.errstate(invalid="ignore", divide="ignore"):
        # A loss with zero denominator (no row of it in the resample) is nan and left out of the mean.
        losses = np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)
    return np.nanmean(losses, axis=-1)


def bootstrap_scores(terms: pd.DataFrame, weights: np.ndarray) -> np.ndarray:
    """Competition scores (n_boot,) of resampled studies: study s counted ``weights[:, s]`` times (n_boot, S).

    Each loss of a resample is Σ_s c_s num_s / Σ_s c_s den_s, exactly what scoring the resampled studies' rows
    gives, computed for every resample at once.
    """
    # (n_boot, S) @ (S, 4): every resample's summed numerators (and denominators) in one matrix product.
    num = np.asarray(weights, dtype=float) @ terms[[f"{loss}_num" for loss in LOSSES]].to_numpy()
    den = np.asarray(weights, dtype=float) @ terms[[f"{loss}_den" for loss in LOSSES]].to_numpy()
    return score_from_terms(num, den)


def solution_from_labels(labels: pd.DataFrame) -> pd.DataFrame:
    """Long-form labels (study_id, condition, level, grade_index) → solution rows (row_id, grade_index)."""
    row_id = labels["study_id"].astype("int64").astype(str) + "_" + labels["condition"].astype(str) + "_" \
        + labels["level"].astype(str)
    return pd.DataFrame({"row_id": row_id, "grade_index": labels["grade_index"]}).reset_index(drop=True)
