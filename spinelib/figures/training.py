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
    """Training and validation loss per epoch, and the learning rate, one line style per run."""
    fig, (ax_loss, ax_lr) = plt.subplots(1, 2, figsize=(10, 3.4))
    for name, history in histories.items():
        line, = ax_loss.plot(history["epoch"], history["train_loss"], marker="o", label=f"{name} train")
        ax_loss.plot(history["epoch"], history["val_loss"], marker="s", ls="--", color=line.get_color(),
                     label=f"{name} val")
        ax_lr.plot(history["epoch"], history["lr_0"], marker="o", color=line.get_color(), label=name)
    ax_loss.set(xlabel="epoch", ylabel="loss", title="multi-positive NT-Xent")
    ax_lr.set(xlabel="epoch", ylabel="learning rate", title="cosine annealing")
    ax_loss.legend(fontsize=7)
    ax_lr.legend(fontsize=7)
    fig.tight_layout()
    return fig


def embedding_scatter(embeddings: np.ndarray, grades: np.ndarray, title: str) -> plt.Figure:
    """First two principal components of the embeddings, coloured by grade (missing grades grey)."""
    fig, ax = plt.subplots(figsize=(4.6, 4.2))
    if len(embeddings) >= 2:
        xy = PCA(n_components=2, random_state=0).fit_transform(embeddings)
        for g, grade in [(-1, "missing"), *enumerate(GRADES)]:
            pick = grades == g
            ax.scatter(xy[pick, 0], xy[pick, 1], s=10, alpha=0.8, color=GRADE_COLOURS[grade], label=grade)
    ax.set(xlabel="PC 1", ylabel="PC 2", title=title)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def confusion_matrices(predictions: pd.DataFrame, by: str = "config") -> plt.Figure:
    """Row-normalised confusion matrix (true x predicted grade) per value of ``by``."""
    groups = list(predictions.groupby(by, sort=False))
    fig, axes = plt.subplots(1, len(groups), figsize=(3.6 * len(groups), 3.3), squeeze=False)
    for ax, (name, part) in zip(axes[0], groups):
        part = part[part["grade"] >= 0]
        counts = pd.crosstab(part["grade"], part["predicted"]).reindex(index=range(3), columns=range(3), fill_value=0)
        share = counts.div(counts.sum(axis=1).replace(0, 1), axis=0)
        sns.heatmap(share, annot=counts.to_numpy(), fmt="d", vmin=0, vmax=1, cmap="Blues", cbar=False, ax=ax,
                    xticklabels=["N/M", "Mod", "Sev"], yticklabels=["N/M", "Mod", "Sev"])
        ax.set(xlabel="predicted", ylabel="true", title=str(name))
    fig.tight_layout()
    return fig


def recall_curves(histories: dict[str, pd.DataFrame]) -> plt.Figure:
    """Validation recall of each grade over epochs, one panel per run."""
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
    """Error histogram and a few test slices with the annotated (green) and predicted (red) points."""
    fig, axes = plt.subplots(1, n + 1, figsize=(2.2 * (n + 1), 2.6))
    axes[0].hist(coordinates["error_px"], bins=30, color="#555555")
    axes[0].set(xlabel="error (px)", ylabel="discs")
    for ax, (i, row) in zip(axes[1:], coordinates.head(n).iterrows()):
        ax.imshow(images[i], cmap="gray")
        scale = images.shape[-1] / row["width"], images.shape[-2] / row["height"]
        ax.scatter(row["x"] * scale[0], row["y"] * scale[1], s=18, color="#3ddc84", label="annotated")
        ax.scatter(row["x_predicted"] * scale[0], row["y_predicted"] * scale[1], s=18, marker="x", color="#ff5a5f",
                   label="predicted")
        ax.set_axis_off()
        ax.set_title(f"{row['level'].upper().replace('_', '/')} {row['error_px']:.1f} px", fontsize=7)
    axes[-1].legend(fontsize=6, loc="lower right")
    fig.tight_layout()
    return fig
