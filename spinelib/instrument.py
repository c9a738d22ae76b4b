"""Is the phantom sharp enough to test within-grade ordering? The instrument of the ranking study.

The ranking paper claims that a score learned from pairs of graded discs orders
discs *within* a grade. On the phantom the true severity behind every grade is
known, so the claim can be measured, but only if the images carry the
within-grade differences at the resolution of the model's input, and only
against baselines that could reach the same correlation without looking at the
disc. This module gives those references, each a per-disc score:

* **pixel probe**: ridge regression from the model's input voxels (the
  validation/test input, no augmentation) to the true latent, fitted on the
  training discs only; what a linear read-out of the pixels can order;
* **level only**: the training mean of the latent at the disc's level; it
  knows where a disc is, nothing about the disc;
* **degeneration only**: the patient's mean disc degeneration (the phantom's
  shared patient factor); it knows the patient, nothing about the disc;
* **rater**: the score the phantom's rater perceived (latent + centre shift +
  noise), from which the grade was cut: a model that learned the rater
  perfectly would reach this.

Correlations are computed inside cells (grade, or grade × level, so that the
level is no shortcut) and pooled (:func:`spinelib.bootstrap.within_cell_spearman`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.linear_model import RidgeCV

from spinelib.bootstrap import within_cell_kendall, within_cell_spearman
from spinelib.datasets.discs import VolumeDataset

RIDGE_ALPHAS = np.logspace(-2, 5, 15)   # chosen per task by generalised cross-validation on the training discs


def _voxels(dataset: VolumeDataset) -> np.ndarray:
    """(n_discs, D·H·W) float32 input voxels of each disc's first listed series (what evaluation feeds the model)."""
    first = [int(m[0]) for m in dataset.members]
    return dataset.volumes[first].reshape(len(first), -1).float().div_(255.0).numpy()


def _keys(dataset: VolumeDataset) -> pd.DataFrame:
    """(study_id, level) of each disc of ``dataset``, in the order of :func:`_voxels`' rows."""
    return dataset.rows_used()[["study_id", "level"]].reset_index(drop=True)


def pixel_probe(train: VolumeDataset, evaluate: dict[str, VolumeDataset], truth: pd.DataFrame,
                tasks: tuple[str, ...]) -> pd.DataFrame:
    """Ridge probe from input voxels to the latent, per task; scores of the ``evaluate`` splits.

    ``truth`` has columns study_id, level, task, latent (:func:`spinelib.studies.ranking_eval.truth_table`).
    Voxels are standardised with the training mean and std. Returns one row per (split, disc, task):
    split, study_id, level, task, score, and the chosen ridge ``alpha``.
    """
    # ---- voxels standardised per voxel with the training statistics only (nothing of val/test leaks in) ----
    x_train = _voxels(train)                                        # (N_train, V), V = D·H·W
    mean, std = x_train.mean(axis=0), x_train.std(axis=0) + 1e-3   # + 1e-3: constant (padding) voxels
    x_train = (x_train - mean) / std
    x_eval = {split: (_voxels(d) - mean) / std for split, d in evaluate.items()}
    keys_train = _keys(train)

    # ---- one ridge read-out per task: latent ≈ x·w + b, penalty α chosen by GCV on the training discs ----
    frames = []
    for task in tasks:
        latent = keys_train.merge(truth[truth["task"] == task], on=["study_id", "level"], how="left")["latent"]
        known = latent.notna().to_numpy()
        if known.sum() < 10:    # too few training discs with a latent for a read-out worth reporting
            continue
        model = RidgeCV(alphas=RIDGE_ALPHAS).fit(x_train[known], latent[known].to_numpy())
        for split, x in x_eval.items():
            frames.append(_keys(evaluate[split]).assign(split=split, task=task, score=model.predict(x),
                                                        alpha=float(model.alpha_)))
    return pd.concat(frames, ignore_index=True)


def reference_scores(train: VolumeDataset, evaluate: dict[str, VolumeDataset], truth: pd.DataFrame,
                     degeneration: pd.DataFrame, tasks: tuple[str, ...]) -> pd.DataFrame:
    """The instrument's reference scores of the ``evaluate`` splits, one row per (split, disc, task).

    Columns: split, study_id, level, task, ``pixel_probe`` (:func:`pixel_probe`; its ridge ``alpha``),
    ``level_only`` (training mean of the latent at the disc's level) and ``degeneration_only`` (the
    patient's mean disc degeneration; ``degeneration`` has study_id, level, degeneration, e.g. the
    phantom's extra-task CSV).
    """
    probe = pixel_probe(train, evaluate, truth, tasks).rename(columns={"score": "pixel_probe"})
    # level only: learnt on the training discs, so it is a fair (if blind) predictor of val/test discs
    train_truth = _keys(train).merge(truth, on=["study_id", "level"])
    level_mean = train_truth.groupby(["task", "level"])["latent"].mean().rename("level_only")
    # degeneration only: the patient's mean over its discs, the phantom's shared patient factor
    patient = degeneration.groupby("study_id")["degeneration"].mean().rename("degeneration_only")
    return probe.join(level_mean, on=["task", "level"]).join(patient, on="study_id")


def instrument_frame(predictions: pd.DataFrame, references: pd.DataFrame, truth: pd.DataFrame,
                     runs: list[str]) -> pd.DataFrame:
    """One row per (disc, task) of one split: grade, level, latent, rater score, each run's score and the references.

    ``predictions`` is a TTA prediction table (run, study_id, level, task, grade, score) of that split,
    ``references`` the same split's rows of :func:`reference_scores`.
    """
    keys = ["study_id", "level", "task"]
    frame = predictions.drop_duplicates(keys)[keys + ["grade"]]     # every run saw the same discs and grades
    chosen = predictions[predictions["run"].isin(runs)]
    if len(chosen):
        frame = frame.merge(chosen.pivot_table(index=keys, columns="run", values="score").reset_index(), on=keys)
    columns = [c for c in ("latent", "rater") if c in truth.columns]
    frame = frame.merge(truth[keys + columns], on=keys, how="left")
    refs = references[keys + ["pixel_probe", "level_only", "degeneration_only"]]
    return frame.merge(refs, on=keys, how="left")


def within_grade(scores: pd.DataFrame, columns: list[str], by_level: bool = True, min_n: int = 5,
                 ) -> pd.DataFrame:
    """Pooled within-cell Spearman ρ and Kendall τ of each score column with the latent, per task.

    ``scores`` has task, grade, level, latent and the ``columns``; rows with a missing grade are dropped.
    Cells are grade × level (``by_level``) or grade alone. Returns one row per (task, score) with rho, tau,
    the number of discs in the pooled cells and the number of cells.
    """
    rows = []
    for task, frame in scores[scores["grade"] >= 0].groupby("task", sort=False):
        # grade × level cells: inside one, neither the grade nor the level can explain the order of the latents
        cells = frame[["grade", "level"]] if by_level else frame["grade"].to_numpy()
        for column in columns:
            rho, per_cell, _ = within_cell_spearman(frame[column].to_numpy(), frame["latent"].to_numpy(), cells,
                                                    min_n=min_n)
            tau, _ = within_cell_kendall(frame[column].to_numpy(), frame["latent"].to_numpy(), cells, min_n=min_n)
            used = per_cell[per_cell["rho"].notna()]   # cells that entered the pooled ρ (n ≥ min_n, not constant)
            rows.append({"task": task, "score": column, "rho": rho, "tau": tau, "n": int(used["n"].sum()),
                         "cells": len(used)})
    return pd.DataFrame(rows)


def cell_sizes(frame: pd.DataFrame) -> pd.DataFrame:
    """Discs per grade × level cell and task (graded discs only): the n behind each within-cell ρ."""
    graded = frame[frame["grade"] >= 0]
    return graded.groupby(["task", "grade", "level"]).size().unstack("level", fill_value=0)
