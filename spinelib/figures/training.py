"""Figures of training runs (notebooks 02-03): curves, embeddings, confusion matrices, localisation."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from sklearn.decomposition import PCA

from spinelib.constants import GRADES
from spinelib.figures.data import GRADE_COLOURS


def loss_and_lr_curves(histories: dict[str, pd.DataFrame]) -> plt.Figure:
    """Training and validation loss per epoch, and the learning rate, one line style per run.

    ``histories``: run name -> ``train.fit`` history (columns epoch, train_loss, val_loss, lr_0).
    """
    fig, (ax_loss, ax_lr) = plt.subplots(1, 2, figsize=(10, 3.4))
    for name, history in histories.items():
        # Both panels reuse the colour matplotlib picked for this run's train line: one colour per run.
        line, = ax_loss.plot(history["epoch"], history["train_loss"], marker="o", label=f"{name} train")
        ax_loss.plot(history["epoch"], history["val_loss"], marker="s", ls="--", color=line.get_color(),
                     label=f"{name} val")
        # lr_0: the first optimiser group's rate only (a second group, e.g. a head at its own rate, is not drawn).
        ax_lr.plot(history["epoch"], history["lr_0"], marker="o", color=line.get_color(), label=name)
    ax_loss.set(xlabel="epoch", ylabel="loss", title="multi-positive NT-Xent")
    ax_lr.set(xlabel="epoch", ylabel="learning rate", title="cosine annealing")
    ax_loss.legend(fontsize=7)
    ax_lr.legend(fontsize=7)
    fig.tight_layout()
    return fig


def embedding_scatter(embeddings: np.ndarray, grades: np.ndarray, title: str) -> plt.Figure:
    """First two principal components of the embeddings, coloured by grade (missing grades grey).

    ``embeddings`` (N, D) encoder outputs, ``grades`` (N,) grade indices with −1 for missing.
    """
    fig, ax = plt.subplots(figsize=(4.6, 4.2))
    # PCA needs two points; with fewer the axes are drawn empty rather than failing inside a notebook.
    if len(embeddings) >= 2:
        # random_state only matters for the randomised solver on large inputs; fixed so the figure is reproducible.
        xy = PCA(n_components=2, random_state=0).fit_transform(embeddings)      # (N, 2)
        # Missing first, so the graded points are drawn on top of the grey ones.
        for grade_index, grade in [(-1, "missing"), *enumerate(GRADES)]:
            pick = grades == grade_index
            ax.scatter(xy[pick, 0], xy[pick, 1], s=10, alpha=0.8, color=GRADE_COLOURS[grade], label=grade)
    ax.set(xlabel="PC 1", ylabel="PC 2", title=title)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def confusion_matrices(predictions: pd.DataFrame, by: str = "config") -> plt.Figure:
    """Row-normalised confusion matrix (true x predicted grade) per value of ``by``.

    ``predictions`` has columns grade (−1: missing), predicted and ``by``; one panel per ``by`` value, in order
    of first appearance. Colour = share of the true grade's discs (recall on the diagonal); the numbers are counts.
    """
    groups = list(predictions.groupby(by, sort=False))
    # squeeze=False: ``axes`` is always 2-D, also for a single panel.
    fig, axes = plt.subplots(1, len(groups), figsize=(3.6 * len(groups), 3.3), squeeze=False)
    for ax, (name, part) in zip(axes[0], groups):
        part = part[part["grade"] >= 0]
        # reindex: all three grades on both axes even when one never occurs (a zero row or column, not a gap).
        counts = pd.crosstab(part["grade"], part["predicted"]).reindex(index=range(3), columns=range(3), fill_value=0)
        # Divide each row by its total; an empty row is divided by 1 and stays 0 instead of nan.
        share = counts.div(counts.sum(axis=1).replace(0, 1), axis=0)
        sns.heatmap(share, annot=counts.to_numpy(), fmt="d", vmin=0, vmax=1, cmap="Blues", cbar=False, ax=ax,
                    xticklabels=["N/M", "Mod", "Sev"], yticklabels=["N/M", "Mod", "Sev"])
        ax.set(xlabel="predicted", ylabel="true", title=str(name))
    fig.tight_layout()
    return fig


def recall_curves(histories: dict[str, pd.DataFrame]) -> plt.Figure:
    """Validation recall of each grade over epochs, one panel per run.

    ``histories``: run name -> ``train.fit`` history with the recall_* columns of ``metrics.SUMMARY_COLUMNS``.
    """
    fig, axes = plt.subplots(1, len(histories), figsize=(3.6 * len(histories), 3.0), squeeze=False, sharey=True)
    for ax, (name, history) in zip(axes[0], histories.items()):
        for column, grade in zip(("recall_normal_mild", "recall_moderate", "recall_severe"), GRADES):
            ax.plot(history["epoch"], history[column], marker="o", color=GRADE_COLOURS[grade], label=grade)
        ax.set(xlabel="epoch", title=name, ylim=(-0.02, 1.02))
    axes[0, 0].set_ylabel("validation recall")
    axes[0, -1].legend(fontsize=7)
    fig.tight_layout()
    return fig


def localisation_errors(coordinates: pd.DataFrame, images: np.ndarray, n: int = 6) -> plt.Figure:
    """Error histogram and a few test slices with the annotated (green) and predicted (red) points.

    ``coordinates``: one row per disc with x, y (annotated), x_predicted, y_predicted, error_px, width, height
    (of the original image) and level; ``images`` (N, H', W'): the slices as shown, the row with index label
    i drawn on ``images[i]`` (so a default RangeIndex); the first ``n`` rows are drawn.
    """
    fig, axes = plt.subplots(1, n + 1, figsize=(2.2 * (n + 1), 2.6))
    axes[0].hist(coordinates["error_px"], bins=30, color="#555555")
    axes[0].set(xlabel="error (px)", ylabel="discs")
    for ax, (i, row) in zip(axes[1:], coordinates.head(n).iterrows()):
        ax.imshow(images[i], cmap="gray")
        # Points are in the original image's pixels; the slice shown may be resized: scale x and y separately.
        scale = images.shape[-1] / row["width"], images.shape[-2] / row["height"]
        ax.scatter(row["x"] * scale[0], row["y"] * scale[1], s=18, color="#3ddc84", label="annotated")
        ax.scatter(row["x_predicted"] * scale[0], row["y_predicted"] * scale[1], s=18, marker="x", color="#ff5a5f",
                   label="predicted")
        ax.set_axis_off()
        ax.set_title(f"{row['level'].upper().replace('_', '/')} {row['error_px']:.1f} px", fontsize=7)
    axes[-1].legend(fontsize=6, loc="lower right")
    fig.tight_layout()
    return fig


def _metric_lines(ax: plt.Axes, table: pd.DataFrame, x: str, metric: str) -> None:
    """One line per configuration: the pooled metric with its patient-bootstrap interval as a band."""
    # ``table``: index levels config and ``x``; columns <metric>_pooled, <metric>_low, <metric>_high.
    frame = table.reset_index()
    for config, part in frame.groupby("config", sort=False):
        part = part.sort_values(x)      # lines must run left to right, whatever the table's row order
        ax.plot(part[x], part[f"{metric}_pooled"], marker="o", label=config)
        ax.fill_between(part[x], part[f"{metric}_low"], part[f"{metric}_high"], alpha=0.15)


def label_fraction_curve(table: pd.DataFrame) -> plt.Figure:
    """Balanced accuracy against the share of training labels, per configuration (table of ``pooled_table``)."""
    fig, ax = plt.subplots(figsize=(5.2, 3.6))
    _metric_lines(ax, table, "fraction", "balanced_accuracy")
    fractions = sorted(table.index.get_level_values("fraction").unique())
    ax.set(xscale="log", xlabel="share of training labels (log scale)", ylabel="test balanced accuracy",
           title="Label fraction: seeds pooled, 95 % patient-bootstrap band")
    # Ticks at the fractions actually run, labelled as percentages (a log axis would label powers of ten).
    ax.set_xticks(fractions, [f"{f:.0%}" for f in fractions])
    # Chance level of balanced accuracy with three grades.
    ax.axhline(1 / 3, color="grey", lw=0.8, ls=":")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def shift_curve(table: pd.DataFrame, errors: pd.DataFrame | None = None) -> plt.Figure:
    """Balanced accuracy against the ROI's shift (left) beside the localiser's errors by level outcome (right)."""
    fig, axes = plt.subplots(1, 2 if errors is not None else 1, figsize=(10 if errors is not None else 5.2, 3.6),
                             squeeze=False)
    ax = axes[0, 0]
    _metric_lines(ax, table, "distance", "balanced_accuracy")
    ax.set(xlabel="ROI centre moved from the annotated point (px)", ylabel="test balanced accuracy",
           title="Shift curve: seeds and directions pooled")
    ax.axhline(1 / 3, color="grey", lw=0.8, ls=":")     # chance level with three grades
    ax.legend(fontsize=8)
    # ---- right panel: how far the localiser actually misses, to read the shift curve against ----
    if errors is not None:
        ax = axes[0, 1]
        top = max(float(errors["error_px"].max()), 1.0)     # at least 1 px wide, also when every error is 0
        bins = np.linspace(0, top, 31)                      # 30 bins shared by both histograms
        for wrong, part in errors.groupby("wrong_level"):
            ax.hist(part["error_px"], bins=bins, alpha=0.7, label=f"{'wrong' if wrong else 'right'} level ({len(part)})")
        # Dotted lines at the tested shifts: errors left of a line are covered by that point of the curve.
        for distance in table.index.get_level_values("distance").unique():
            ax.axvline(distance, color="grey", lw=0.6, ls=":")
        ax.set(xlabel="localiser error (px)", ylabel="test discs", title="Localiser errors (dotted: shifts tested)")
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
