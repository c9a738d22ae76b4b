"""Small CSV tables for `dvc plots`: training curves, ROC points, confusion rows, histogram counts.

Each notebook writes its tables under ``results/<NN_stage>/plots/`` (a DVC output with ``cache: false``, so
the CSVs are committed to git and ``dvc plots diff`` compares them across commits and experiments); the
top-level ``plots:`` section of ``dvc.yaml`` says how each is drawn. DVC colours lines by revision and file,
not by a column, so every curve is its own file in a folder (one chart per file): a column such as ``run``
would join the points of several curves into one zig-zag line.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

DIGITS = 4          # decimals kept in a plot CSV: enough for a chart, small in git
MAX_ROC_POINTS = 200


def file_stem(name: str) -> str:
    """A run or group name as a file stem: "split_patient/scratch/seed0" → "split_patient__scratch__seed0"."""
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", str(name).replace("/", "__")).strip("_")
    if not stem:
        raise ValueError(f"{name!r} gives an empty file name")
    return stem


def rounded(frame: pd.DataFrame, digits: int = DIGITS) -> pd.DataFrame:
    """``frame`` with its float columns rounded to ``digits`` decimals."""
    floats = frame.select_dtypes("floating").columns    # ints and strings are written as they are
    return frame.assign(**{c: frame[c].round(digits) for c in floats})


def curve(history: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """The ``epoch`` column and those of ``columns`` that ``history`` (a ``train.fit`` history) has, rounded.

    A missing column is left out rather than raising: runs of one stage differ in their validation
    metrics (e.g. phase-1 ranking runs report balanced accuracy, phase-2 runs only ROC-AUC).
    """
    if "epoch" not in history:
        raise KeyError(f"history has no 'epoch' column (columns: {list(history.columns)})")
    return rounded(history[["epoch", *[c for c in columns if c in history and c != "epoch"]]].reset_index(drop=True))


def roc_points(positive: np.ndarray, score: np.ndarray, max_points: int = MAX_ROC_POINTS) -> pd.DataFrame:
    """ROC curve of ``score`` for the binary target ``positive``: columns fpr, tpr, at most ``max_points`` rows.

    Points are the (FPR, TPR) pairs of every threshold (collinear ones dropped); when more remain, an evenly
    spaced subset is kept, always with the first (0, 0) and the last (1, 1). Empty when one class is absent.
    """
    from sklearn.metrics import roc_curve

    positive, score = np.asarray(positive, dtype=bool).ravel(), np.asarray(score, dtype=float).ravel()
    keep = np.isfinite(score)
    positive, score = positive[keep], score[keep]
    if positive.all() or not positive.any():
        return pd.DataFrame({"fpr": [], "tpr": []})
    fpr, tpr, _ = roc_curve(positive, score, drop_intermediate=True)
    if len(fpr) > max_points:
        # Evenly spaced positions along the curve's point list, rounded to indices; np.unique drops the repeats
        # rounding can make. Positions 0 and len − 1 are always included: the curve keeps its (0, 0) and (1, 1).
        index = np.unique(np.linspace(0, len(fpr) - 1, max(max_points, 2)).round().astype(int))
        fpr, tpr = fpr[index], tpr[index]
    return rounded(pd.DataFrame({"fpr": fpr, "tpr": tpr}))


def boundary_rocs(grades: np.ndarray, boundary_scores: np.ndarray, num_grades: int,
                  max_points: int = MAX_ROC_POINTS) -> dict[int, pd.DataFrame]:
    """ROC points per grade boundary c (target grade > c), as :func:`spinelib.metrics.boundary_auc` scores them.

    ``boundary_scores`` (N, K−1) holds one column per boundary, or (N, 1) a raw score that serves every
    boundary; unlabelled rows (grade < 0) are left out. Returns {c: frame with fpr, tpr, boundary}; a boundary
    with one side empty is missing.
    """
    grades = np.asarray(grades).astype(int).ravel()
    scores = np.asarray(boundary_scores, dtype=float).reshape(len(grades), -1)
    keep = grades >= 0
    grades, scores = grades[keep], scores[keep]
    out = {}
    for c in range(num_grades - 1):
        # min(c, ...): a single raw score column serves every boundary.
        points = roc_points(grades > c, scores[:, min(c, scores.shape[1] - 1)], max_points)
        if len(points):
            out[c] = points.assign(boundary=f"grade>{c}")
    return out


def confusion_rows(actual: np.ndarray, predicted: np.ndarray, labels: tuple[str, ...]) -> pd.DataFrame:
    """One row per labelled item, (actual, predicted) as grade names: what DVC's ``confusion`` template counts."""
    actual, predicted = np.asarray(actual).ravel(), np.asarray(predicted).ravel()
    if len(actual) != len(predicted):
        raise ValueError(f"{len(actual)} actual but {len(predicted)} predicted grades")
    # Through pandas so that None / strings become nan rather than raising; nan then fails the range test below.
    actual = pd.to_numeric(pd.Series(actual), errors="coerce").to_numpy(float)
    predicted = pd.to_numeric(pd.Series(predicted), errors="coerce").to_numpy(float)
    keep = (actual >= 0) & (actual < len(labels)) & (predicted >= 0) & (predicted < len(labels))  # nan, −1: unlabelled
    actual, predicted = actual[keep].astype(int), predicted[keep].astype(int)
    names = np.asarray(labels, dtype=object)
    return pd.DataFrame({"actual": names[actual], "predicted": names[predicted]})


def histogram_counts(values: np.ndarray, low: int, high: int) -> pd.DataFrame:
    """Counts of integer ``values`` clipped to [low, high], one row per value in that range (zeros kept).

    Columns: error, count. Clipping puts everything beyond the range in its end bins, as the notebooks'
    histograms do.
    """
    values = np.asarray(values, dtype=float).ravel()
    values = np.clip(np.round(values[np.isfinite(values)]), low, high).astype(int)
    bins = np.arange(low, high + 1)
    # values − low maps [low, high] onto bincount's 0..high − low; minlength keeps the empty top bins.
    return pd.DataFrame({"error": bins, "count": np.bincount(values - low, minlength=len(bins))})


def write_tables(tables: dict[str, pd.DataFrame], folder: Path, columns: list[str] | None = None) -> list[Path]:
    """Write each table as ``folder/<file_stem(name)>.csv``, after removing the folder's earlier CSVs.

    ``columns``, when given, must all be in every table (the fields ``dvc.yaml`` plots name): a table
    without them is an error that names it. Returns the paths written.
    """
    # Check every table before touching the folder: a bad table must not leave the folder half rewritten.
    for name, table in tables.items():
        missing = [c for c in columns or [] if c not in table.columns]
        if missing:
            raise KeyError(f"plot table {name!r} lacks {missing} (has {list(table.columns)})")
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.csv"):   # a run dropped from the params must not leave its old curve behind
        old.unlink()
    paths = []
    for name, table in tables.items():
        path = folder / f"{file_stem(name)}.csv"
        # Two names may sanitise to one stem ("a/b" and "a__b"): refuse rather than overwrite a curve silently.
        if path in paths:
            raise ValueError(f"{folder}: two tables map to {path.name}")
        rounded(table).to_csv(path, index=False)
        paths.append(path)
    return paths
