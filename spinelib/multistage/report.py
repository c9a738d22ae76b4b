"""Stage 1 over a split: predictions for every study and their errors against the annotations.

Errors are measured where the prediction sits on the annotated series:
slice error k̂ − k (slices), in-plane error ||(x̂, ŷ) − (x, y)|| in pixels and
in mm (× PixelSpacing); for every prediction, also the 3D distance in mm
between the predicted and the annotated patient positions.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from spinelib.multistage.cohort import Cohort
from spinelib.multistage.geometry import to_patient
from spinelib.multistage.instance import error_table
from spinelib.multistage.localisation import Localisers, localise_study
from spinelib.progress import progress_bar

KEYS = ["study_id", "condition", "level"]


def predict_split(cohort: Cohort, loc: Localisers, splits: tuple[str, ...] = ("val", "test"),
                  progress: bool = True) -> pd.DataFrame:
    """Stage 1 predictions of every study of ``splits`` (one row per condition and level located)."""
    studies = sorted(cohort.series.loc[cohort.series["split"].isin(splits), "study_id"].unique())
    frames = [localise_study(cohort.study_images(s), loc) for s in progress_bar(studies, show=progress, desc="localise")]
    frames = [f for f in frames if len(f)]
    out = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=[*KEYS, "series_id", "k", "x", "y"])
    split_of = cohort.series.drop_duplicates("study_id").set_index("study_id")["split"]
    return out.assign(split=out["study_id"].map(split_of))


def with_errors(predicted: pd.DataFrame, cohort: Cohort) -> pd.DataFrame:
    """Join predictions with the annotated points and add slice, in-plane and 3D errors."""
    truth = cohort.points[[*KEYS, "series_id", "k", "x", "y", "mm_per_px"]]
    both = predicted.merge(truth, on=KEYS, how="inner", suffixes=("", "_true"))
    same = both["series_id"] == both["series_id_true"]
    both["same_series"] = same
    for column in ("k", "k_cls", "k_reg"):
        both[f"{column}_error"] = np.where(same, both[column] - both["k_true"], np.nan)
    pixels = np.hypot(both["x"] - both["x_true"], both["y"] - both["y_true"])
    both["xy_error_px"] = np.where(same, pixels, np.nan)
    both["xy_error_mm"] = both["xy_error_px"] * both["mm_per_px"]
    both["error_3d_mm"] = [
        float(np.linalg.norm(to_patient(cohort.images[r.series_id].geometry, r.k, r.x, r.y)
                             - to_patient(cohort.images[r.series_id_true].geometry, r.k_true, r.x_true, r.y_true)))
        for r in both.itertuples()]
    return both


def table2(errors: pd.DataFrame, series_description: str) -> pd.DataFrame:
    """The paper's Table 2 for one series type: error distribution of each head and of their median."""
    rows = errors[(errors["series_description"] == series_description) & errors["same_series"]]
    return error_table({"classification": rows["k_cls_error"], "regression": rows["k_reg_error"],
                        "ensemble (median)": rows["k_error"]})


def coordinate_errors(errors: pd.DataFrame) -> pd.DataFrame:
    """Per condition: median and mean in-plane error (px, mm) on the annotated series, 3D error, slice hits."""
    grouped = errors.groupby("condition", sort=False)
    return pd.DataFrame({
        "n": grouped.size(),
        "on_annotated_series": grouped["same_series"].mean().round(3),
        "slice_exact": grouped["k_error"].apply(lambda e: float((e.dropna() == 0).mean())).round(3),
        "xy_median_px": grouped["xy_error_px"].median().round(2),
        "xy_mean_px": grouped["xy_error_px"].mean().round(2),
        "xy_median_mm": grouped["xy_error_mm"].median().round(2),
        "error_3d_median_mm": grouped["error_3d_mm"].median().round(2),
    })


def shift_probabilities(errors: pd.DataFrame, max_shift: int = 2) -> list[float]:
    """P(|Δk| = 0, 1, …, max_shift) of the ensemble's slice error on sagittal series (larger errors count as max_shift).

    Stage 2's pre-crop augmentation draws its instance-number shift from this.
    """
    error = np.abs(errors.loc[errors["series_description"] != "Axial T2", "k_error"].dropna().to_numpy())
    if error.size == 0:
        return [1.0] + [0.0] * max_shift
    counts = np.bincount(np.minimum(error.astype(int), max_shift), minlength=max_shift + 1)
    return (counts / counts.sum()).round(4).tolist()
