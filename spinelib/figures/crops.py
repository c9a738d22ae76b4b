"""Figures of the crop store (notebook 01): QC montages, volumes, bags, splits."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from spinelib.constants import GRADES, LEVEL_WORDS
from spinelib.crops.store import CropStore


def _mark_centre(ax: plt.Axes, row: float, col: float) -> None:
    """A small red cross (8 px arms) at (row, col): where the annotated coordinate lies in the crop."""
    ax.plot([col - 4, col + 4], [row, row], color="#ff5a5f", lw=0.8)
    ax.plot([col, col], [row - 4, row + 4], color="#ff5a5f", lw=0.8)


def roi_montage(store: CropStore, condition: str, per_grade: int = 8, seed: int = 0) -> plt.Figure:
    """QC montage of 2D ROIs: one row per grade, random examples, the coordinate marked."""
    index = store.index("roi")
    rois = store.array("roi")
    ok = index[(index["status"] == "ok") & (index["condition"] == condition)]
    rng = np.random.default_rng(seed)   # the same examples on every run of a seed
    fig, axes = plt.subplots(len(GRADES), per_grade, figsize=(1.3 * per_grade, 1.45 * len(GRADES)), squeeze=False)
    for g, grade in enumerate(GRADES):
        rows = ok.index[ok["grade_index"] == g].to_numpy()
        chosen = rng.choice(rows, size=min(per_grade, len(rows)), replace=False) if len(rows) else []
        for j, ax in enumerate(axes[g]):
            ax.set_axis_off()
            if j < len(chosen):
                ax.imshow(rois[chosen[j]], cmap="gray", vmin=0, vmax=255)
                height, width = rois.shape[1:]
                _mark_centre(ax, height // 2, width // 2)   # the centred box puts the point at (H // 2, W // 2)
                ax.set_title(LEVEL_WORDS[ok.loc[chosen[j], "level"]], fontsize=6)  # no identifiers in figures
        axes[g, 0].text(-0.1, 0.5, grade, transform=axes[g, 0].transAxes, ha="right", va="center", fontsize=8)
    fig.suptitle(f"ROIs, {condition.replace('_', ' ')}", fontsize=10)
    fig.tight_layout()
    return fig


def stack_strip(stack: np.ndarray, title: str, centre: int | None = None) -> plt.Figure:
    """The slices of one disc volume or MIL bag (S, H, W) uint8 side by side; slice ``centre`` outlined."""
    fig, axes = plt.subplots(1, len(stack), figsize=(1.5 * len(stack), 1.9), squeeze=False)
    for k, ax in enumerate(axes[0]):
        ax.imshow(stack[k], cmap="gray", vmin=0, vmax=255)
        ax.set_xticks([])
        ax.set_yticks([])
        if k == centre:
            for spine in ax.spines.values():
                spine.set_edgecolor("#ff5a5f")
                spine.set_linewidth(2)
        ax.set_title(str(k), fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def ordered_by_truth(store: CropStore, truth: pd.DataFrame, condition: str, n: int = 12) -> plt.Figure:
    """ROIs of one condition at evenly spaced quantiles of the true latent severity (phantom only)."""
    index = store.index("roi")
    ok = index[(index["status"] == "ok") & (index["condition"] == condition)]
    # reset_index keeps each ROI's row in the store's array (column "index") through the merge
    merged = ok.reset_index().merge(truth[["study_id", "condition", "level", "severity"]], on=["study_id", "condition", "level"]).sort_values("severity")
    # n ROIs at evenly spaced ranks, lowest to highest latent
    picks = merged.iloc[np.linspace(0, len(merged) - 1, n).round().astype(int)]
    rois = store.array("roi")
    fig, axes = plt.subplots(1, n, figsize=(1.3 * n, 1.8))
    for ax, row in zip(axes, picks.itertuples()):
        ax.imshow(rois[row.index], cmap="gray", vmin=0, vmax=255)
        ax.set_axis_off()
        ax.set_title(f"{row.severity:.2f}\n{row.grade if isinstance(row.grade, str) else 'missing'}", fontsize=6)
    fig.suptitle(f"{condition.replace('_', ' ')}: ROIs ordered by true latent severity (title: latent, grade)",
                 fontsize=9)
    fig.tight_layout()
    return fig


def split_table(index: pd.DataFrame, split_column: str = "split") -> pd.DataFrame:
    """Discs per split and grade for each condition (a missing grade is its own row, "missing")."""
    grade = index["grade"].astype("string").fillna("missing")
    return pd.crosstab([index["condition"], grade], index[split_column]).reindex(columns=["train", "val", "test"])
