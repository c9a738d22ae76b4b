"""The dataset-summary metrics of notebook 00 (a DVC metrics file)."""

from __future__ import annotations

import pandas as pd

from spinelib.constants import GRADES


def grade_percentages(labels: pd.DataFrame) -> dict[str, dict[str, float]]:
    """Per condition, the share (%) of each grade among its non-missing labels."""
    graded = labels.dropna(subset=["grade"])
    shares = pd.crosstab(graded["condition"], graded["grade"], normalize="index").reindex(columns=list(GRADES),
                                                                                         fill_value=0.0)
    return {c: {g: round(100 * float(v), 2) for g, v in row.items()} for c, row in shares.iterrows()}


def dataset_metrics(report: dict, labels: pd.DataFrame) -> dict:
    """Numbers worth tracking across runs: counts from the check report and the grade mix."""
    counts = ("studies", "instances_read", "labels", "labels_missing", "coordinates", "coordinates_duplicated",
              "coordinates_unmatched")
    metrics = {key: report[key] for key in counts}
    metrics["series"] = dict(report["series"])
    metrics["instances_failed"] = len(report["instances_failed"])
    metrics["problems"] = len(report["problems"])
    metrics["grade_percent"] = grade_percentages(labels)
    return metrics
