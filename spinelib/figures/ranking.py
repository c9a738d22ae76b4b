"""Figures of the ranking study (notebooks 04–07): curves, score distributions, truth, uncertainty, Fig. 2."""

from __future__ import annotations

import warnings

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns


def _grid(n: int, cols: int = 4, size: tuple[float, float] = (3.2, 2.6)) -> tuple[plt.Figure, np.ndarray]:
    """A figure with ``n`` panels in rows of ``cols`` (``size`` each), the unused panels hidden; the axes flat."""
    rows = max(1, int(np.ceil(n / cols)))
    fig, axes = plt.subplots(rows, cols, figsize=(size[0] * cols, size[1] * rows), squeeze=False)
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    return fig, axes.ravel()


def training_curves(histories: dict[str, pd.DataFrame], monitors: dict[str, str] | None = None) -> plt.Figure:
    """Training loss and the monitored validation metric per epoch, one line per run.

    ``monitors`` names each run's checkpoint metric (``balanced_accuracy`` for phase 1, ``auc`` for
    phase 2; default: BA for a run named ``ce``, else AUC); BA runs and AUC runs get separate panels.
    """
    fig, axes = plt.subplots(1, 3, figsize=(16, 3.8))
    ax_loss, ax_ba, ax_auc = axes
    for name, history in histories.items():
        # a run's validation curve goes to the panel of the metric it was checkpointed by
        phase1 = (monitors or {}).get(name, "balanced_accuracy" if name == "ce" else "auc") == "balanced_accuracy"
        line, = ax_loss.plot(history["epoch"], history["train_loss"], marker=".", lw=1, label=name)
        ax = ax_ba if phase1 else ax_auc
        ax.plot(history["epoch"], history["balanced_accuracy" if phase1 else "auc"], marker=".", lw=1,
                color=line.get_color(), label=name)
    ax_loss.set(xlabel="epoch", ylabel="training loss", yscale="log", title="training loss")
    ax_ba.set(xlabel="epoch", ylabel="validation BA", title="phase 1 (checkpoint by BA)")
    ax_auc.set(xlabel="epoch", ylabel="validation AUC", title="phase 2 (checkpoint by AUC)")
    for ax in axes:
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    return fig


def paired_differences(paired: pd.DataFrame, metrics: tuple[str, ...] = ("balanced_accuracy", "qwk", "mae",
                                                                         "roc_auc", "within_grade_rho")) -> plt.Figure:
    """Forest plot: run − reference with its 95 % paired patient-bootstrap interval, one panel per metric.

    ``paired`` is :func:`spinelib.studies.ranking_eval.paired_table` output; filled markers for intervals
    that exclude zero.
    """
    metrics = [m for m in metrics if m in set(paired["metric"])]
    # one row per (run, reference) pair, in first-seen order (dict.fromkeys keeps order, drops repeats)
    labels = list(dict.fromkeys(f"{r} − {b}" for r, b in zip(paired["run"], paired["reference"])))
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.0 * len(metrics) + 2.5, 0.28 * len(labels) + 1.2),
                             sharey=True, squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        rows = paired[paired["metric"] == metric]
        y = [labels.index(f"{r} − {b}") for r, b in zip(rows["run"], rows["reference"])]
        ax.errorbar(rows["diff"], y, xerr=[rows["diff"] - rows["low"], rows["high"] - rows["diff"]], fmt="none",
                    ecolor="0.4", lw=1)
        filled = rows["excludes_zero"].to_numpy(dtype=bool)
        ax.scatter(rows["diff"][filled], np.asarray(y)[filled], color="C3", zorder=3, s=18)
        ax.scatter(rows["diff"][~filled], np.asarray(y)[~filled], facecolor="white", edgecolor="0.3", zorder=3, s=18)
        ax.axvline(0, color="k", lw=0.8)
        ax.set(title=metric.replace("_", " "), xlabel="difference")
    axes[0][0].set_yticks(range(len(labels)), labels, fontsize=7)
    axes[0][0].invert_yaxis()
    fig.tight_layout()
    return fig


def instrument_bars(rho: pd.DataFrame, columns: list[str]) -> plt.Figure:
    """Within-grade × level Spearman ρ per task (rows of ``rho``) for the score ``columns``, as grouped bars."""
    shown = rho[[c for c in columns if c in rho.columns]]
    fig, ax = plt.subplots(figsize=(max(7, 1.3 * len(shown)), 3.6))
    shown.plot.bar(ax=ax, width=0.8)
    ax.axhline(0, color="k", lw=0.8)
    ax.set(ylabel="within-grade × level Spearman ρ", xlabel="", title="who orders discs inside a grade?")
    ax.set_xticklabels([t.replace("_", " ").replace("neural ", "") for t in shown.index], rotation=20, ha="right",
                       fontsize=8)
    ax.legend(fontsize=7, ncol=3)
    fig.tight_layout()
    return fig


def score_distributions(decided: pd.DataFrame, run: str) -> plt.Figure:
    """Box plots of one run's score per grade, a panel per task (thresholds drawn when present)."""
    frame = decided[(decided["run"] == run) & (decided["grade"] >= 0)]
    tasks = list(frame["task"].unique())
    fig, axes = _grid(len(tasks))
    for ax, task in zip(axes, tasks):
        part = frame[frame["task"] == task]
        with warnings.catch_warnings():
            # seaborn 0.13 passes matplotlib 3.11 the deprecated `vert` argument: its warning, not ours
            warnings.filterwarnings("ignore", "vert: bool", category=DeprecationWarning)
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
    order = np.argsort(scores)   # left to right: lowest to highest score
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
