"""Train / validation / test splits at patient or disc level, stratified by grade.

Patient level (the default) keeps every disc of a study in one split, so no
patient's anatomy is seen in training and evaluation alike. Disc level (the
contrastive paper's choice) treats each (study, level) as a unit; it leaks
patient anatomy across splits and is offered to measure that effect.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

SPLITS: tuple[str, ...] = ("train", "val", "test")


def _check_fractions(fractions: Sequence[float]) -> np.ndarray:
    """``fractions`` (train, val, test) as a (3,) array; raises unless non-negative and summing to 1."""
    frac = np.asarray(fractions, dtype=float)
    if frac.shape != (3,) or (frac < 0).any() or not np.isclose(frac.sum(), 1.0):
        raise ValueError(f"split fractions must be three non-negative numbers summing to 1, got {list(fractions)}")
    return frac


def stratified_assign(strata: pd.Series, fractions: Sequence[float], seed: int) -> pd.Series:
    """Assign each unit (the index of ``strata``) to train/val/test.

    Units are taken in index order (callers sort it). Within each stratum they are shuffled by a generator seeded with
    ``seed`` and cut at the cumulative fractions (largest-remainder rounding),
    so every split keeps the stratum proportions and the result is deterministic.
    """
    frac = _check_fractions(fractions)
    # one generator for all strata, drawn in a fixed stratum order: the split depends on the seed only
    rng = np.random.default_rng(seed)
    keys = strata.fillna(-1).to_numpy()   # unlabelled units form their own stratum (-1)
    out = np.empty(len(strata), dtype=object)
    for stratum in sorted(set(keys.tolist()), key=str):
        units = np.flatnonzero(keys == stratum)  # positions, in index order
        rng.shuffle(units)
        # largest remainder: counts_i = floor(f_i * n), then the units left over go to the largest f_i * n - counts_i
        # (ties to the earlier split), so the counts sum to n and each is within one of f_i * n
        counts = np.floor(frac * len(units)).astype(int)
        remainder = frac * len(units) - counts
        for i in np.argsort(-remainder, kind="stable")[: len(units) - counts.sum()]:
            counts[i] += 1
        for name, part in zip(SPLITS, np.split(units, np.cumsum(counts)[:-1])):
            out[part] = name
    return pd.Series(out, index=strata.index)


def worst_grade(labels: pd.DataFrame, conditions: Sequence[str]) -> pd.Series:
    """Each study's worst grade index over ``conditions`` (missing grades ignored, -1 if none)."""
    sub = labels[labels["condition"].isin(conditions)]
    # the worst grade stratifies patients: the few severe studies are spread over every split, not drawn by chance
    worst = sub.groupby("study_id")["grade_index"].max()
    studies = pd.Index(sorted(labels["study_id"].unique()), name="study_id")
    return worst.reindex(studies).fillna(-1).astype(int)


def patient_split(labels: pd.DataFrame, conditions: Sequence[str], fractions: Sequence[float], seed: int) -> pd.Series:
    """Split studies (patients), stratified by each study's worst grade over ``conditions``.

    Returns a Series indexed by study_id with values train/val/test.
    """
    return stratified_assign(worst_grade(labels, conditions), fractions, seed).rename("split")


def disc_split(labels: pd.DataFrame, condition: str, fractions: Sequence[float], seed: int) -> pd.Series:
    """Split discs (study, level) independently, stratified by the grade of ``condition``.

    Returns a Series indexed by (study_id, level). Discs of one patient can land
    in different splits: this is the contrastive paper's protocol, not leak-free.
    """
    sub = labels[labels["condition"] == condition].set_index(["study_id", "level"]).sort_index()
    strata = sub["grade_index"].fillna(-1).astype(int)
    return stratified_assign(strata, fractions, seed).rename("split")


def assign_splits(labels: pd.DataFrame, conditions: Sequence[str], disc_condition: str,
                  fractions: Sequence[float], seed: int) -> pd.DataFrame:
    """One row per disc (study_id, level) with both ``split_patient`` and ``split_disc``.

    Both splits are stored so that a later stage can choose (``split_column``) and compare them; the patient
    split is stratified over ``conditions``, the disc split by the grade of ``disc_condition``.
    """
    discs = labels[["study_id", "level"]].drop_duplicates().sort_values(["study_id", "level"])
    by_patient = patient_split(labels, conditions, fractions, seed)
    by_disc = disc_split(labels, disc_condition, fractions, seed)
    discs["split_patient"] = discs["study_id"].map(by_patient)
    discs = discs.merge(by_disc.rename("split_disc").reset_index(), on=["study_id", "level"], how="left")
    return discs.reset_index(drop=True)


def shared_patients(discs: pd.DataFrame, split_column: str) -> pd.Index:
    """Studies (patients) whose discs fall in more than one split under ``split_column``: the leak."""
    n_splits = discs.dropna(subset=[split_column]).groupby("study_id")[split_column].nunique()
    return n_splits.index[n_splits > 1]


def nested_label_subset(grades: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Positions of a grade-stratified ``fraction`` of the labelled rows (grade >= 0), for a label-fraction study.

    Per grade g with n_g labelled rows, the first max(1, round(fraction · n_g)) rows of a permutation of that
    grade's rows fixed by (``seed``, g). The subsets of one seed are therefore nested: the 10 % subset lies inside
    the 25 % one, which lies inside 100 %. Unlabelled rows (grade -1) are never chosen. Returns sorted positions.
    """
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"label fraction must be in (0, 1], got {fraction}")
    grades = np.asarray(grades)
    chosen = []
    for grade in np.unique(grades[grades >= 0]):
        rows = np.flatnonzero(grades == grade)
        # a generator per (seed, grade): a grade's permutation does not depend on how many rows other grades have
        order = np.random.default_rng([seed, int(grade), 8191]).permutation(rows)
        chosen.append(order[: max(1, int(round(fraction * len(rows))))])
    return np.sort(np.concatenate(chosen)) if chosen else np.zeros(0, dtype=np.int64)
