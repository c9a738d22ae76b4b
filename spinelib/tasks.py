"""The grading tasks of the ranking study and their labels per disc volume.

A task is a named ordinal grade with K_t grades indexed from 0. On the phantom
the tasks are the five RSNA conditions (K = 3) plus the phantom's Genodisc-like
extra tasks (Pfirrmann 1–5 → 0–4, disc narrowing 0–3), so unequal K_t are
exercised; on Genodisc they are its 11 tasks. Labels that a series type cannot
show are masked (−1) for that series, as the paper masks Pfirrmann and disc
narrowing on T1. Left/right task pairs swap when a volume is mirrored.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from spinelib.crops.store import CropStore


@dataclass(frozen=True)
class TaskSet:
    """Task names, their numbers of grades, and the left/right pairs (as index pairs)."""

    names: tuple[str, ...]         # task names, in the order of the model's task axis T
    num_grades: tuple[int, ...]    # K_t per task, same order

    @classmethod
    def from_params(cls, tasks: dict[str, int]) -> "TaskSet":
        """From the params' ``tasks`` mapping {name: K_t}; the mapping's order becomes the task order."""
        return cls(tuple(tasks), tuple(int(k) for k in tasks.values()))

    @property
    def swap_pairs(self) -> list[tuple[int, int]]:
        """(i, j) for every task named left_* whose right_* twin is present."""
        index = {n: i for i, n in enumerate(self.names)}
        # n[5:] strips "left_": "left_subarticular_stenosis" pairs with "right_subarticular_stenosis".
        return [(i, index["right_" + n[5:]]) for n, i in index.items()
                if n.startswith("left_") and "right_" + n[5:] in index]

    @property
    def mirror(self) -> np.ndarray:
        """Permutation of the task axis for a mirrored volume (left ↔ right)."""
        order = np.arange(len(self.names))
        for i, j in self.swap_pairs:
            order[i], order[j] = j, i
        return order


def volume_labels(store: CropStore, tasks: TaskSet, extra_csv: str | Path | None = None,
                  first_grade: dict[str, int] | None = None,
                  masked: dict[str, list[str]] | None = None) -> pd.DataFrame:
    """The volume index (status ok) with one grade-index column per task, −1 where missing or masked.

    ``extra_csv``: per-disc grades of further tasks (study_id, level, task columns),
    joined on (study_id, level); ``first_grade[task]`` is subtracted (Pfirrmann 1–5
    → 0–4); ``masked[series_description]`` lists the tasks hidden on that series.
    """
    # ---- the volumes that were cut successfully; "row" keeps each one's position in the store's arrays ----
    index = store.index("volume")
    index = index[index["status"] == "ok"].copy()
    index["row"] = index.index
    # ---- extra tasks (Genodisc-style grades) from a side table; columns already in the index win ----
    if extra_csv:
        extra = pd.read_csv(extra_csv)
        wanted = [n for n in tasks.names if n in extra.columns and n not in index.columns]
        index = index.merge(extra[["study_id", "level", *wanted]], on=["study_id", "level"], how="left")
    missing = [n for n in tasks.names if n not in index.columns]
    if missing:
        raise KeyError(f"tasks {missing} not found in {store.root / 'volume.csv'}"
                       + (f" or {extra_csv}" if extra_csv else "") + "; check `tasks` in params")
    # ---- every task column to int grade indices 0..K_t − 1, −1 where missing; out-of-range grades are errors ----
    for name, k in zip(tasks.names, tasks.num_grades):
        grade = pd.to_numeric(index[name], errors="coerce") - (first_grade or {}).get(name, 0)
        bad = grade.notna() & ~grade.between(0, k - 1)
        if bad.any():
            raise ValueError(f"task {name}: grades {sorted(grade[bad].unique())} outside 0..{k - 1}")
        index[name] = grade.fillna(-1).astype(int)
    # ---- hide the tasks a series type cannot show (e.g. Pfirrmann on T1) ----
    for series, names in (masked or {}).items():
        on = index["series_description"] == series
        for name in names:
            if name in index.columns:
                index.loc[on, name] = -1
    return index.reset_index(drop=True)
