"""Figures of the multi-stage study: Stage 1 curves and examples, slice errors, MIL attention over slices."""

from __future__ import annotations

import json

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from spinelib.crops.plan import BAG_KIND
from spinelib.crops.bags import BagConfig, cut_bag


def loss_curves(histories: dict[str, pd.DataFrame]) -> plt.Figure:
    """Training (solid) and monitored validation (dashed) loss per run."""
    fig, ax = plt.subplots(figsize=(7, 3.6))
    for name, history in histories.items():
        line, = ax.plot(history["epoch"], history["train_loss"], label=name)
        val = next((c for c in ("val_loss", "val_wll") if c in history), None)
        if val is not None:
            ax.plot(history["epoch"], history[val], "--", color=line.get_color())
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss (dashed: validation)")
    ax.legend(fontsize=7, ncol=2)
    return fig


def slice_error_histogram(errors: pd.DataFrame) -> plt.Figure:
    """Signed slice error of each Stage 1a head and the ensemble, per sagittal series type."""
    types = [t for t in ("Sagittal T2/STIR", "Sagittal T1") if (errors["series_description"] == t).any()]
    fig, axes = plt.subplots(1, max(len(types), 1), figsize=(5 * max(len(types), 1), 3.2), squeeze=False)
    for ax, series_type in zip(axes[0], types):
        rows = errors[(errors["series_description"] == series_type) & errors["same_series"]]
        bins = np.arange(-4.5, 5.5)
        for column, label in (("k_cls_error", "classification"), ("k_reg_error", "regression"), ("k_error", "median")):
            ax.hist(rows[column].clip(-4, 4), bins=bins, histtype="step", lw=1.5, label=label)
        ax.set_title(series_type)
        ax.set_xlabel("predicted − annotated slice (clipped at ±4)")
    axes[0][0].legend(fontsize=8)
    return fig


def localisation_examples(cohort, errors: pd.DataFrame, series_type: str, n: int = 4) -> plt.Figure:
    """Annotated (green) and predicted (red) points of the first ``n`` test studies on their annotated slice."""
    rows = errors[(errors["series_description"] == series_type) & errors["same_series"] & (errors["split"] == "test")]
    studies = sorted(rows["study_id"].unique())[:n]
    fig, axes = plt.subplots(1, max(len(studies), 1), figsize=(3.2 * max(len(studies), 1), 3.6), squeeze=False)
    for ax, study in zip(axes[0], studies):
        at = rows[rows["study_id"] == study]
        image = cohort.images[int(at["series_id_true"].iloc[0])]
        k = int(at["k_true"].mode().iloc[0])
        _, height, width = image.geometry.shape
        ax.imshow(image.slices[k], cmap="gray", extent=(0, width, height, 0))
        ax.scatter(at["x_true"], at["y_true"], s=18, c="lime", label="annotated")
        ax.scatter(at["x"], at["y"], s=18, c="red", marker="x", label="predicted")
        ax.set_title(f"{study}, slice {k}", fontsize=8)
        ax.axis("off")
    axes[0][0].legend(fontsize=7, loc="lower left")
    return fig


def attention_examples(predictions: pd.DataFrame, sources: dict, cfg: BagConfig, n: int = 4) -> plt.Figure:
    """Bags of test discs (one per row, most severe first) with the primary attention weight of each slice."""
    chosen = predictions[predictions["coordinates"] == "annotated"].sort_values("grade_index", ascending=False)
    chosen = chosen.groupby("condition", sort=False).head(1).head(n)
    slices = cfg.bag_slices
    fig, axes = plt.subplots(max(len(chosen), 1), slices, figsize=(1.8 * slices, 2.0 * max(len(chosen), 1)),
                             squeeze=False)
    for r, row in enumerate(chosen.itertuples()):
        regions, index = sources[BAG_KIND[row.condition]]
        match = index[(index["study_id"] == row.study_id) & (index["condition"] == row.condition)
                      & (index["level"] == row.level)].index[0]
        bag = cut_bag(regions[match], 0, 0, 0, slices, cfg.max_shift, cfg.margin_px(row.condition))
        weights = json.loads(row.attention)
        for s in range(slices):
            axes[r][s].imshow(bag[s], cmap="gray")
            colour = "red" if s == int(np.argmax(weights)) else "k"
            axes[r][s].set_title(f"a = {weights[s]:.2f}", fontsize=8, color=colour)
            axes[r][s].axis("off")
        axes[r][0].text(-0.1, 0.5, f"{row.condition.replace('_', ' ')}\n{row.level}, grade {int(row.grade_index)}",
                        transform=axes[r][0].transAxes, ha="right", va="center", fontsize=7)
    return fig
