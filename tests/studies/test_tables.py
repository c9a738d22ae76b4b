"""Table helpers of stage 03 and the localiser's pixel error."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from spinelib.studies.finetune import build_classifier, markdown_table, mean_std_table, metrics_json
from spinelib.studies.disc_localiser import rmse_of, rmse_pixels


def _metrics() -> pd.DataFrame:
    rows = []
    for seed, ba in enumerate([0.6, 0.7, 0.8]):
        rows.append({"split_column": "split_patient", "config": "finetune", "seed": seed, "recall_normal_mild": 0.9,
                     "recall_moderate": 0.5, "recall_severe": 0.7, "accuracy": 0.85, "balanced_accuracy": ba,
                     "severe_to_normal": 0.0})
    return pd.DataFrame(rows)


def test_mean_std_over_seeds():
    table = mean_std_table(_metrics())
    assert table.loc[("split_patient", "finetune"), "balanced_accuracy"] == "0.7 ± 0.1"
    assert table.loc[("split_patient", "finetune"), "seeds"] == 3
    assert metrics_json(_metrics())["split_patient/finetune/balanced_accuracy"] == pytest.approx(0.7)


def test_markdown_table_has_header_rule_and_rows():
    lines = markdown_table(mean_std_table(_metrics())).splitlines()
    assert lines[0].startswith("| split_column | config |") and lines[1].startswith("|---|")
    assert len(lines) == 3


def test_rmse_in_native_pixels():
    predicted = np.array([[0.5, 0.5], [0.0, 0.0]])
    target = np.array([[0.5, 0.6], [0.0, 0.0]])
    sizes = np.array([[200.0, 100.0], [300.0, 300.0]])  # width, height
    assert rmse_pixels(predicted, target, sizes) == pytest.approx(np.sqrt((10.0**2 + 0.0) / 2))
    assert rmse_of(pd.DataFrame({"error_px": [3.0, 4.0]})) == pytest.approx(np.sqrt(12.5))


def test_unknown_configuration_and_missing_encoder_are_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown configuration"):
        build_classifier("resnet50", None, {})
    with pytest.raises(FileNotFoundError, match="stage 02"):
        build_classifier("finetune", tmp_path / "none.pt", {})


def test_one_seed_has_no_spread():
    table = mean_std_table(_metrics().head(1))
    assert table.loc[("split_patient", "finetune"), "balanced_accuracy"] == "0.6"
