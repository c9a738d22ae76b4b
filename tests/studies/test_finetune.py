"""Fine-tuning runs: a run that keeps only its predictions is read back, not trained again."""

from __future__ import annotations

import pandas as pd
import pytest

from spinelib.params.contrastive import FinetuneParams
from spinelib.studies import finetune as ft

# one configuration, two epochs on the CPU, sized for the 16 px, 10-disc training split of roi_store
HP = FinetuneParams.tiny().finetune.replace(configs=["scratch"], input_size=16, epochs=2, batch_size=4,
                                            frozen_layers=[], device="cpu", amp=False, channels_last=False)


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
