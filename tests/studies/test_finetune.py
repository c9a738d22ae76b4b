"""Fine-tuning runs: a run that keeps only its predictions is read back, not trained again."""

from __future__ import annotations

import pandas as pd
import pytest

from spinelib.studies import finetune as ft

HP = {"condition": "spinal_canal_stenosis", "configs": ["scratch"], "input_size": 16, "epochs": 2, "batch_size": 4,
      "lr_backbone": 5e-5, "lr_head": 5e-4, "lr_scratch": 5e-4, "frozen_layers": [], "weight_decay": 1e-4,
      "focal_gamma": 2.0, "focal_alpha": [0.8, 4.0, 5.0], "plateau_patience": 4, "plateau_factor": 0.5,
      "num_workers": 0, "device": "cpu", "amp": False, "channels_last": False}


def test_a_run_without_weights_is_read_back_from_its_predictions(roi_store, tmp_path):
    data = ft.datasets(roi_store, HP, "split_patient")
    run = tmp_path / "run"
    first = ft.run_and_predict("scratch", data, None, HP, 0, run, keep_weights=False, progress=False)
    assert first.model is None and not (run / "best.pt").exists() and not (run / "last.pt").exists()
    assert (run / "test_predictions.csv").exists() and len(first.test) == 4
    again = ft.run_and_predict("scratch", data, None, HP, 0, run, keep_weights=False, progress=False)
    pd.testing.assert_frame_equal(again.test, first.test, check_dtype=False)
    pd.testing.assert_frame_equal(again.history, first.history, check_dtype=False)   # nothing trained again
    assert (again.best_epoch, again.best_metric) == pytest.approx((first.best_epoch, first.best_metric))
    kept = ft.run_and_predict("scratch", data, None, HP, 0, tmp_path / "kept", progress=False)
    assert kept.model is not None and (tmp_path / "kept" / "best.pt").exists()
    pd.testing.assert_frame_equal(kept.test, first.test)                               # same seed, same run


def test_drop_checkpoints_keeps_curves(tmp_path):
    for run in ("a/seed0", "b/seed1"):
        (tmp_path / run).mkdir(parents=True)
        for name in ("best.pt", "last.pt", "history.csv"):
            (tmp_path / run / name).write_text("x")
    assert ft.drop_checkpoints(tmp_path) == 4
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["history.csv", "history.csv"]
