"""Figures of the ranking study (notebooks 04–07): curves, score distributions, truth, uncertainty, Fig. 2."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns


def _grid(n: int, cols: int = 4, size: tuple[float, float] = (3.2, 2.6)) -> tuple[plt.Figure, np.ndarray]:
    rows = max(1, int(np.ceil(n / cols)))
    fig, axes = plt.subplots(rows, cols, figsize=(size[0] * cols, size[1] * rows), squeeze=False)
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    return fig, axes.ravel()


def training_curves(histories: dict[str, pd.DataFrame]) -> plt.Figure:
    """Training loss and the monitored validation metric per epoch, one panel each, one line per run."""
    fig, (ax_loss, ax_val) = plt.subplots(1, 2, figsize=(11, 3.4))
    for name, history in histories.items():
        line, = ax_loss.plot(history["epoch"], history["train_loss"], marker=".", label=name)
        metric = "balanced_accuracy" if name == "ce" else "auc"
        ax_val.plot(history["epoch"], history[metric], marker=".", color=line.get_color(),
                    label=f"{name} ({'BA' if metric == 'balanced_accuracy' else 'AUC'})")
    ax_loss.set(xlabel="epoch", ylabel="training loss", yscale="log", title="training loss")
    ax_val.set(xlabel="epoch", ylabel="validation metric", title="checkpoint choice (validation)")
    ax_loss.legend(fontsize=7)
    ax_val.legend(fontsize=7)
    fig.tight_layout()
    return fig


def score_distributions(decided: pd.DataFrame, run: str) -> plt.Figure:
    """Box plots of one run's score per grade, a panel per task (thresholds drawn when present)."""
    frame = decided[(decided["run"] == run) & (decided["grade"] >= 0)]
    tasks = list(frame["task"].unique())
    fig, axes = _grid(len(tasks))
    for ax, task in zip(axes, tasks):
        part = frame[frame["task"] == task]
        sns.boxplot(data=part, x="grade", y="score", ax=ax, color="#9ecae1", fliersize=1.5)
        ax.set(title=task.replace("_", " "), xlabel="true grade", ylabel="score")
        ax.title.set_fontsize(8)
    fig.suptitle(f"{run}: score by true grade (test split)", y=1.0)
    fig.tight_layout()
    return fig


def score_vs_truth(decided: pd.DataFrame, truth: pd.DataFrame, run: str) -> plt.Figure:
    """Predicted score against the phantom's true latent severity, per task, coloured by the rater's grade."""
    frame = decided[decided["run"] == run].merge(truth, on=["study_id", "level", "task"])
    tasks = list(frame["task"].unique())
    fig, axes = _grid(len(tasks))
    for ax, task in zip(axes, tasks):
        part = frame[frame["task"] == task]
        sns.scatterplot(data=part, x="latent", y="score", hue="grade", palette="viridis", s=10, ax=ax, legend=False)
        ax.set(title=task.replace("_", " "), xlabel="true latent severity", ylabel="score")
        ax.title.set_fontsize(8)
    fig.suptitle(f"{run}: score vs true severity (phantom, test split; colour = grade)", y=1.0)
    fig.tight_layout()
    return fig


def uncertainty_vs_margin(decided: pd.DataFrame, run: str) -> plt.Figure:
    """Per-disc std of the score over the TTA views against its distance to the nearest threshold."""
    frame = decided[(decided["run"] == run) & decided["margin"].notna()]
    fig, ax = plt.subplots(figsize=(5.2, 3.8))
    wrong = frame["pred"] != frame["grade"]
    ax.scatter(frame.loc[~wrong, "margin"], frame.loc[~wrong, "score_std"], s=6, alpha=0.5, label="correct grade")
    ax.scatter(frame.loc[wrong, "margin"], frame.loc[wrong, "score_std"], s=8, alpha=0.7, color="C3",
               label="wrong grade")
    ax.set(xlabel="|score − nearest threshold|", ylabel="score std over TTA views",
           title=f"{run}: borderline discs (test split, all tasks)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def score_ordered(images: np.ndarray, scores: np.ndarray, grades: np.ndarray, title: str, cols: int = 12) -> plt.Figure:
    """The ranking paper's Fig. 2 for one task: mid-slices ordered by score, score above, true grade below."""
    order = np.argsort(scores)
    fig, axes = plt.subplots(1, len(order), figsize=(1.25 * len(order), 2.0), squeeze=False)
    for ax, i in zip(axes[0], order):
        ax.imshow(images[i], cmap="gray")
        ax.set_xticks([]), ax.set_yticks([])
        ax.set_title(f"{scores[i]:.2f}", fontsize=8)
        ax.set_xlabel(f"grade {grades[i]}" if grades[i] >= 0 else "n/a", fontsize=8)
    fig.suptitle(title, fontsize=9, y=1.04)
    return fig


def thresholds_on_scores(val: pd.DataFrame, cuts: dict[str, list[float]], task: str, run: str) -> plt.Figure:
    """Validation score histograms per grade for one task, with each method's thresholds as vertical lines."""
    frame = val[(val["run"] == run) & (val["task"] == task) & (val["grade"] >= 0)]
    fig, ax = plt.subplots(figsize=(7, 3.4))
    sns.histplot(data=frame, x="score", hue="grade", palette="viridis", element="step", stat="density",
                 common_norm=False, bins=40, ax=ax)
    for i, (method, values) in enumerate(cuts.items()):
        for j, c in enumerate(values):
            ax.axvline(c, color=f"C{i + 3}", ls=["-", "--", ":", "-."][i % 4], lw=1.2, label=method if j == 0 else None)
    ax.legend(fontsize=7, loc="upper center")
    ax.set(title=f"{run}, {task.replace('_', ' ')}: validation scores and fitted thresholds", xlabel="score")
    fig.tight_layout()
    return fig
