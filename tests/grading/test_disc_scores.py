"""Continuous scores of a study's discs for the grading report: the training cut, the views, the shape of the table."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch

from spinelib.crops.plan import CropConfig
from spinelib.data.dicom import read_series
from spinelib.data.rsna import read_dataset, series_dir
from spinelib.models import OrdinalModel, resnet3d18
from spinelib.grading.disc_scores import DiscScorer
from spinelib.tasks import TaskSet
from spinelib.tta import View, tta_views

TASKS = TaskSet.from_params({"spinal_canal_stenosis": 3, "left_neural_foraminal_narrowing": 3,
                             "right_neural_foraminal_narrowing": 3})
CROPS = CropConfig(volume_slices=4, volume_crop=(32, 64), volume_size=(16, 32))


def _scorer(views: list[View]) -> DiscScorer:
    torch.manual_seed(0)
    model = OrdinalModel(resnet3d18(1, 4), list(TASKS.num_grades), "spineranknet").eval()
    return DiscScorer(model, TASKS, views, CROPS, field=(8, 16), input_size=(8, 16), run="tiny")


def _canal(tiny_phantom: Path) -> tuple[object, pd.DataFrame]:
    """The first labelled study's Sagittal T2 volume and its annotated spinal canal points."""
    data = read_dataset(tiny_phantom)
    coords = data.labels.dropna(subset=["series_id"])
    canal = coords[coords["condition"] == "spinal_canal_stenosis"]
    study = int(canal["study_id"].iloc[0])
    canal = canal[canal["study_id"] == study]
    volume = read_series(series_dir(tiny_phantom, study, int(canal["series_id"].iloc[0])), normalise=None)
    return volume, canal[["level", "instance_number", "x", "y"]].reset_index(drop=True)


def test_scores_per_level_and_task_with_a_spread_over_the_views(tiny_phantom):
    volume, canal = _canal(tiny_phantom)
    scorer = _scorer(tta_views(0, 1, True))
    x, levels, skipped = scorer.inputs(volume, canal)
    assert x.shape == (len(canal), 1, CROPS.volume_slices, 8, 16) and 0 <= x.min() and x.max() <= 1
    assert levels == canal["level"].tolist() and skipped == []
    table, _ = scorer.score(volume, canal)
    assert list(table.columns) == ["level", "task", "score", "spread"]
    assert len(table) == len(canal) * len(TASKS.names) and (table["spread"] >= 0).all()
    assert table["spread"].max() > 0                                    # six different views do differ
    one_view, _ = _scorer([View(False, 0, 0, 0)]).score(volume, canal)
    assert (one_view["spread"] == 0).all()                               # one view: nothing to spread over
    assert _scorer(tta_views(0, 1, True)).score(volume, canal.iloc[:0])[0].empty
    off = canal.assign(y=canal["y"].where(canal.index != 0, -50.0))    # one point off the image: that level skipped
    table, skipped = scorer.score(volume, off)
    assert len(table) == (len(canal) - 1) * len(TASKS.names) and len(skipped) == 1
    assert skipped[0].startswith(canal["level"].iloc[0])


def test_load_names_what_is_missing(tmp_path):
    params = Path(__file__).resolve().parents[2] / "params"
    with pytest.raises(FileNotFoundError, match="run notebook 04"):
        DiscScorer.load(tmp_path, params)
    with pytest.raises(KeyError, match="no ranking run"):
        DiscScorer.load(tmp_path, params, run="nonexistent")
