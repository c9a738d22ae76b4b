"""The linear probe and the latent ceiling: separable data scores high, noise scores near chance."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from spinelib.crops.store import allocate, open_store
from spinelib.probe import latent_ceiling, roi_probe


def _store(tmp_path, signal: float, n: int = 180, seed: int = 0):
    rng = np.random.default_rng(seed)
    grades = np.tile([0, 1, 2], n // 3)
    rois = allocate(tmp_path, "roi", (n, 24, 24))
    noise = rng.normal(100, 30, size=(n, 24, 24))
    noise[:, 8:16, 8:16] += signal * grades[:, None, None]  # brighter centre with the grade
    rois[:] = np.clip(noise, 0, 255).astype(np.uint8)
    rois.flush()
    pd.DataFrame({"study_id": np.arange(n), "condition": "spinal_canal_stenosis", "level": "l1_l2",
                  "grade_index": grades, "split": np.where(np.arange(n) % 3 == np.arange(n) // 3 % 3, "val", "train"),
                  "status": "ok"}).to_csv(tmp_path / "roi.csv", index=False)
    return open_store(tmp_path)


def test_probe_finds_a_visible_grade(tmp_path):
    scores = roi_probe(_store(tmp_path, signal=60.0), "spinal_canal_stenosis")
    assert scores["balanced_accuracy_val"] > 0.9
    assert scores["chance"] == pytest.approx(1 / 3, abs=1e-3)


def test_probe_is_near_chance_on_noise(tmp_path):
    scores = roi_probe(_store(tmp_path, signal=0.0), "spinal_canal_stenosis")
    assert scores["balanced_accuracy_val"] < 0.55


def test_latent_ceiling_is_one_without_rater_noise_and_lower_with_it():
    latent = np.linspace(0, 1, 300)
    clean = np.digitize(latent, [0.5, 0.8])
    noisy = np.digitize(latent + np.random.default_rng(0).normal(0, 0.1, latent.size), [0.5, 0.8])
    names = np.array(["Normal/Mild", "Moderate", "Severe"])
    truth = pd.DataFrame({"condition": ["a"] * 300 + ["b"] * 300, "severity": np.r_[latent, latent],
                          "grade": np.r_[names[clean], names[noisy]]})
    ceiling = latent_ceiling(truth)
    assert ceiling["a"] == 1.0 and ceiling["b"] < 0.95
