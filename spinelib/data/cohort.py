"""The labelled cohort, read once for the multi-stage paper's Stage 1: preprocessed series and the annotated points
with their slice index.

Every series of every study is read once (one pass over its DICOM files, in
``workers`` processes); splits are the patient-level split of the crop store
(``splits.csv``), so Stage 1 and Stage 2 train, validate and test on the same
patients as every other study.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from spinelib.data.rsna import image_dir, read_dataset
from spinelib.data.study_images import SeriesImages, read_study
from spinelib.parallel import process_map

log = logging.getLogger(__name__)


@dataclass
class Cohort:
    """``images`` by series id; ``series`` (study_id, series_id, series_description, split); ``points``."""

    root: Path
    images: dict[int, SeriesImages]
    series: pd.DataFrame
    points: pd.DataFrame
    problems: list[str]

    def study_images(self, study_id: int) -> dict[int, SeriesImages]:
        ids = self.series.loc[self.series["study_id"] == study_id, "series_id"]
        return {int(s): self.images[int(s)] for s in ids if int(s) in self.images}


def study_splits(splits: pd.DataFrame, split_column: str) -> pd.Series:
    """Split of each study (a patient-level column gives one split per study) by study_id."""
    per_study = splits.groupby("study_id")[split_column].agg(lambda s: s.mode().iloc[0])
    return per_study


def _read_one(args: tuple) -> tuple[int, dict[int, SeriesImages], list[str]]:
    """One study's series, preprocessed (a worker job of :func:`load_cohort`: one tuple in, so it pickles)."""
    folder, series, depth, size, slice_size = args
    images, _, problems = read_study(folder, series, depth, size, slice_size)
    return int(series["study_id"].iloc[0]), images, problems


def load_cohort(root: Path, splits: pd.DataFrame, split_column: str, stack_depth: int, stack_size: int,
                slice_size: int, workers: int = 1, progress: bool = True, studies: int | None = None) -> Cohort:
    """Read the labelled cohort at ``root`` (optionally its first ``studies`` studies) for Stage 1."""
    dataset = read_dataset(root)
    split_of = study_splits(splits, split_column)
    series = dataset.series[dataset.series["study_id"].isin(split_of.index)].copy()
    if studies is not None:
        series = series[series["study_id"].isin(sorted(series["study_id"].unique())[:studies])]
    series["split"] = series["study_id"].map(split_of)
    # one job per study, its series in id order, so that the images and the problems come back in a fixed order
    jobs = [(image_dir(root) / str(study), group.sort_values("series_id"), stack_depth, stack_size, slice_size)
            for study, group in series.groupby("study_id")]
    images: dict[int, SeriesImages] = {}
    problems: list[str] = []
    for study, found, failed in process_map(_read_one, jobs, workers, chunksize=4, progress=progress, desc="series"):
        images.update(found)
        problems.extend(f"study {study}: {p}" for p in failed)
    for problem in problems:
        log.warning(problem)
    return Cohort(Path(root), images, series.reset_index(drop=True), _points(dataset.labels, images, split_of),
                  problems)


def _points(labels: pd.DataFrame, images: dict[int, SeriesImages], split_of: pd.Series) -> pd.DataFrame:
    """Annotated points on a readable series, with slice index k, image size, pixel spacing and split."""
    points = labels[labels["series_id"].notna()].copy()
    points["series_id"] = points["series_id"].astype("int64")
    points = points[points["series_id"].isin(list(images)) & points["study_id"].isin(split_of.index)]
    k, height, width, spacing = [], [], [], []
    for row in points.itertuples():
        image = images[row.series_id]
        # the slice index k of the annotated instance number in the sorted series (−1: not in it, dropped below)
        hits = np.flatnonzero(image.instance_numbers == int(row.instance_number))
        k.append(int(hits[0]) if hits.size else -1)
        height.append(image.geometry.shape[1])
        width.append(image.geometry.shape[2])
        spacing.append(float(image.geometry.pixel_spacing[0]))
    points = points.assign(k=k, height=height, width=width, mm_per_px=spacing,
                           split=points["study_id"].map(split_of))
    inside = (points["k"] >= 0) & points["x"].between(0, points["width"], inclusive="left") \
        & points["y"].between(0, points["height"], inclusive="left")
    for row in points[~inside].itertuples():
        log.warning("study %s %s %s: annotated point not on series %s; dropped", row.study_id, row.condition,
                    row.level, row.series_id)
    return points[inside].reset_index(drop=True)


def fold_of(study_ids: pd.Series, folds: int, seed: int = 0) -> pd.Series:
    """A fold 0..folds−1 per study, from a seeded permutation of the sorted study ids."""
    unique = np.sort(study_ids.unique())   # sorted first: the folds do not depend on the row order
    order = np.random.default_rng(seed).permutation(len(unique))
    fold = dict(zip(unique[order], np.arange(len(unique)) % folds))
    return study_ids.map(fold)
