"""Figures of the cohort (notebook 00): grades, missing labels, acquisitions, example slices."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from spinelib.constants import CONDITIONS, GRADES, LEVEL_WORDS, LEVELS, SERIES_TYPES
from spinelib.data.dicom import read_series
from spinelib.data.rsna import series_dir

# one colour per grade (green -> amber -> red with severity), grey for a missing label, in every figure
GRADE_COLOURS = {"Normal/Mild": "#8fb996", "Moderate": "#f2b134", "Severe": "#d1495b", "missing": "#bbbbbb"}
CONDITION_COLOURS = dict(zip(CONDITIONS, sns.color_palette("tab10", len(CONDITIONS))))


def grade_table(labels: pd.DataFrame) -> pd.DataFrame:
    """Counts of each grade (and missing) per condition and level."""
    grade = labels["grade"].astype("string").fillna("missing")   # missing is a column of its own, not dropped
    table = pd.crosstab([labels["condition"], labels["level"]], grade)
    return table.reindex(columns=[*GRADES, "missing"], fill_value=0)


def grade_distribution(labels: pd.DataFrame) -> plt.Figure:
    """Stacked bars of grade counts per level, one panel per condition: the class imbalance."""
    table = grade_table(labels)
    fig, axes = plt.subplots(1, len(CONDITIONS), figsize=(3.2 * len(CONDITIONS), 3.2), sharey=True)
    for ax, condition in zip(axes, CONDITIONS):
        # a condition without any label (a tiny cohort) leaves its panel empty
        counts = table.loc[condition].reindex(LEVELS, fill_value=0) if condition in table.index else None
        if counts is None:
            continue
        bottom = np.zeros(len(LEVELS))   # stacked bars: each grade starts where the previous ended
        for grade in table.columns:
            ax.bar([LEVEL_WORDS[lv] for lv in LEVELS], counts[grade], bottom=bottom, color=GRADE_COLOURS[grade],
                   label=grade)
            bottom += counts[grade].to_numpy()
        ax.set_title(condition.replace("_", " "), fontsize=9)
        ax.tick_params(axis="x", labelrotation=45, labelsize=8)
    axes[0].set_ylabel("discs")
    axes[-1].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)
    fig.tight_layout()
    return fig


def missing_heatmap(labels: pd.DataFrame) -> plt.Figure:
    """Missing labels per condition and level (they stay missing; no stage fills them)."""
    missing = labels.assign(missing=labels["grade"].isna()).pivot_table(
        index="condition", columns="level", values="missing", aggfunc="sum").reindex(index=CONDITIONS, columns=LEVELS)
    fig, ax = plt.subplots(figsize=(6, 3))
    sns.heatmap(missing.fillna(0).astype(int), annot=True, fmt="d", cmap="Greys", cbar=False, ax=ax)
    ax.set_xticklabels([LEVEL_WORDS[lv] for lv in LEVELS])
    ax.set_xlabel("")
    ax.set_ylabel("")
    ax.set_title("missing labels")
    fig.tight_layout()
    return fig


def acquisition_by_centre(headers: pd.DataFrame) -> plt.Figure:
    """Pixel spacing, matrix and slice thickness per centre and series type: the centre effect."""
    columns = [c for c in ("pixel_spacing", "rows", "slice_thickness") if c in headers]
    fig, axes = plt.subplots(1, len(columns), figsize=(4.2 * len(columns), 3.4))
    for ax, column in zip(np.atleast_1d(axes), columns):
        # one legend (last panel) for the three series types. seaborn draws the strip jitter from NumPy's global
        # generator: seed it for this call (and put its state back), so the figure is the same on every run
        state = np.random.get_state()
        np.random.seed(0)
        sns.stripplot(data=headers, x="centre", y=column, hue="series_description", dodge=True, size=3, ax=ax,
                      legend=ax is np.atleast_1d(axes)[-1])
        np.random.set_state(state)
        ax.tick_params(axis="x", labelrotation=30, labelsize=8)
    fig.tight_layout()
    return fig


def _annotated_instance(points: pd.DataFrame) -> int:
    """The instance carrying the most coordinates of a series (ties: the lowest number)."""
    counts = points["instance_number"].value_counts()
    return int(counts[counts == counts.max()].index.min())


def series_examples(root: Path, labels: pd.DataFrame, series: pd.DataFrame, study_id: int,
                    split: str = "train") -> plt.Figure:
    """The study's three series types, each on its most-annotated slice, with the coordinates drawn.

    Filled markers lie on the slice shown, hollow ones on other slices of the series.
    """
    points = labels[(labels["study_id"] == study_id) & labels["series_id"].notna()]
    study_series = series[series["study_id"] == study_id]
    fig, axes = plt.subplots(1, len(SERIES_TYPES), figsize=(4.3 * len(SERIES_TYPES), 4.6))
    for ax, stype in zip(axes, SERIES_TYPES):
        ax.set_axis_off()
        ax.set_title(stype)
        on_type = points[points["series_description"] == stype]
        # the annotated series of the type, else the study's first of that type, else none (the panel says so)
        sid = int(on_type["series_id"].iloc[0]) if len(on_type) else (
            int(study_series.loc[study_series["series_description"] == stype, "series_id"].iloc[0])
            if (study_series["series_description"] == stype).any() else None)
        if sid is None:
            ax.text(0.5, 0.5, "no series", ha="center", transform=ax.transAxes)
            continue
        volume = read_series(series_dir(root, study_id, sid, split))
        on_series = on_type[on_type["series_id"] == sid]
        # the slice with most coordinates; an unannotated series shows its middle slice
        instance = _annotated_instance(on_series) if len(on_series) else int(volume.instance_numbers[len(volume.instance_numbers) // 2])
        ax.imshow(volume.pixels[volume.index_of(instance)], cmap="gray", vmin=0, vmax=1)
        for p in on_series.itertuples():
            same = int(p.instance_number) == instance
            colour = CONDITION_COLOURS[p.condition]
            ax.scatter(p.x, p.y, s=36, marker="o", facecolors=colour if same else "none", edgecolors=colour)
            ax.annotate(LEVEL_WORDS[p.level], (p.x, p.y), xytext=(5, -5), textcoords="offset points",
                        fontsize=7, color=colour)
        ax.set_title(f"{stype}\ninstance {instance}", fontsize=9)
    handles = [plt.Line2D([], [], marker="o", ls="", color=c, label=k.replace("_", " ")) for k, c in CONDITION_COLOURS.items()]
    fig.legend(handles=handles, loc="lower center", ncol=3, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    return fig

