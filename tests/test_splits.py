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
