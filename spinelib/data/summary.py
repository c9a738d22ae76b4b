"""The dataset-summary metrics of notebook 00 (a DVC metrics file)."""

from __future__ import annotations

import pandas as pd

from spinelib.constants import GRADES
from spinelib.data.check import DatasetReport


def grade_percentages(labels: pd.DataFrame) -> dict[str, dict[str, float]]:
    """Per condition, the share (%) of each grade among its non-missing labels (rounded to 0.01 %).

    Every grade is a column even where no label has it (a share of 0.0), so the file's keys never depend on
    the cohort.
    """
    graded = labels.dropna(subset=["grade"])
    shares = pd.crosstab(graded["condition"], graded["grade"], normalize="index").reindex(columns=list(GRADES),
                                                                                         fill_value=0.0)
    return {c: {g: round(100 * float(v), 2) for g, v in row.items()} for c, row in shares.iterrows()}


def dataset_metrics(report: DatasetReport, labels: pd.DataFrame) -> dict:
    """Numbers worth tracking across runs: counts from the check report and the grade mix.

    The key order is the order of ``dataset_summary.json`` (a DVC metrics file: keep it stable).
    """
    metrics = {"studies": report.studies, "instances_read": report.instances_read, "labels": report.labels,
               "labels_missing": report.labels_missing, "coordinates": report.coordinates,
               "coordinates_duplicated": report.coordinates_duplicated,
               "coordinates_unmatched": report.coordinates_unmatched}
    metrics["series"] = dict(report.series)
    # lists in the report, counts here: the metrics file tracks how many, the report says which
    metrics["instances_failed"] = len(report.instances_failed)
    metrics["problems"] = len(report.problems)
    metrics["grade_percent"] = grade_percentages(labels)
    return metrics
