"""Splits: patient level leaks no patient, stays stratified and deterministic."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from spinelib.constants import CONDITIONS, LEVELS
from spinelib.splits import assign_splits, shared_patients, stratified_assign


def _labels(n_studies: int = 60, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = [(s, c, lv, int(rng.choice(3, p=[0.8, 0.15, 0.05]))) for s in range(1000, 1000 + n_studies)
            for c in CONDITIONS for lv in LEVELS]
    frame = pd.DataFrame(rows, columns=["study_id", "condition", "level", "grade_index"])
    frame["grade_index"] = frame["grade_index"].astype("Int64")
    frame.loc[frame.sample(frac=0.02, random_state=0).index, "grade_index"] = pd.NA
    return frame


def test_patient_split_puts_every_patient_in_one_split():
    discs = assign_splits(_labels(), CONDITIONS, "spinal_canal_stenosis", (0.7, 0.15, 0.15), seed=0)
    assert len(shared_patients(discs, "split_patient")) == 0
    assert set(discs["split_patient"]) == {"train", "val", "test"}


def test_disc_split_shares_patients_across_splits():
    discs = assign_splits(_labels(), CONDITIONS, "spinal_canal_stenosis", (0.7, 0.15, 0.15), seed=0)
    assert len(shared_patients(discs, "split_disc")) > 0


def test_split_is_deterministic_and_seed_dependent():
    labels = _labels()
    a = assign_splits(labels, CONDITIONS, "spinal_canal_stenosis", (0.7, 0.15, 0.15), seed=0)
    b = assign_splits(labels, CONDITIONS, "spinal_canal_stenosis", (0.7, 0.15, 0.15), seed=0)
    c = assign_splits(labels, CONDITIONS, "spinal_canal_stenosis", (0.7, 0.15, 0.15), seed=1)
    pd.testing.assert_frame_equal(a, b)
    assert not a["split_patient"].equals(c["split_patient"])


def test_stratified_assign_keeps_each_stratum_proportional():
    strata = pd.Series([0] * 80 + [1] * 20, index=range(100))
    split = stratified_assign(strata, (0.5, 0.25, 0.25), seed=3)
    counts = pd.crosstab(strata, split)
    assert counts.loc[0].to_dict() == {"test": 20, "train": 40, "val": 20}
    assert counts.loc[1].to_dict() == {"test": 5, "train": 10, "val": 5}


def test_bad_fractions_are_rejected():
    with pytest.raises(ValueError, match="sum"):
        stratified_assign(pd.Series([0, 1]), (0.5, 0.5, 0.5), seed=0)


def test_label_subsets_are_nested_stratified_and_skip_unlabelled():
    from spinelib.splits import nested_label_subset

    grades = np.array([0] * 80 + [1] * 15 + [2] * 5 + [-1] * 7)
    small, medium, full = (set(nested_label_subset(grades, f, seed=3).tolist()) for f in (0.1, 0.25, 1.0))
    assert small < medium < full                                      # nested
    assert full == set(np.flatnonzero(grades >= 0).tolist())           # 100 %: every labelled row, no unlabelled
    counts = np.bincount(grades[sorted(medium)], minlength=3)
    assert counts.tolist() == [20, 4, 1]                               # round(0.25 · n_g), at least one per grade
    assert np.bincount(grades[sorted(small)], minlength=3).tolist() == [8, 2, 1]
    other = set(nested_label_subset(grades, 0.25, seed=4).tolist())
    assert other != medium                                             # the seed draws the subset
    with pytest.raises(ValueError, match="label fraction"):
        nested_label_subset(grades, 0.0, seed=0)
