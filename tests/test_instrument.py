"""The instrument of the ranking study: pixel probe, shortcuts, pooled within-cell correlations."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from spinelib import instrument
from spinelib.datasets.discs import VolumeDataset

LEVELS = ("l1_l2", "l2_l3", "l3_l4", "l4_l5", "l5_s1")


def _dataset(latent: np.ndarray, rng: np.random.Generator, offset: int = 0) -> VolumeDataset:
    """Volumes whose central block brightness encodes the latent (plus noise); one disc per item."""
    n = len(latent)
    volumes = rng.uniform(0.2, 0.4, (n, 2, 6, 6))
    volumes[:, :, 2:4, 2:4] = latent[:, None, None, None] * 0.5 + 0.3 + 0.02 * rng.standard_normal((n, 2, 2, 2))
    data = VolumeDataset.__new__(VolumeDataset)
    data.volumes = torch.from_numpy((np.clip(volumes, 0, 1) * 255).astype(np.uint8))
    data.grades = torch.zeros(n, 1, dtype=torch.long)
    data.members = [np.array([i]) for i in range(n)]
    data.rows = pd.DataFrame({"study_id": offset + np.arange(n) // 5, "level": [LEVELS[i % 5] for i in range(n)],
                              "series_description": "Sagittal T2/STIR"})
    return data


def _truth(data: VolumeDataset, latent: np.ndarray) -> pd.DataFrame:
    return data.rows[["study_id", "level"]].assign(task="spinal_canal_stenosis", latent=latent)


def test_pixel_probe_recovers_a_latent_written_in_the_pixels():
    rng = np.random.default_rng(0)
    train_latent, val_latent = rng.uniform(0, 1, 200), rng.uniform(0, 1, 100)
    train, val = _dataset(train_latent, rng), _dataset(val_latent, rng, offset=1000)
    truth = pd.concat([_truth(train, train_latent), _truth(val, val_latent)])
    probe = instrument.pixel_probe(train, {"val": val}, truth, ("spinal_canal_stenosis",))
    assert len(probe) == 100 and set(probe["split"]) == {"val"}
    assert np.corrcoef(probe["score"], val_latent)[0, 1] > 0.9


def test_shortcuts_know_only_the_level_or_the_patient():
    rng = np.random.default_rng(1)
    latent = rng.uniform(0, 1, 50)
    train, val = _dataset(latent, rng), _dataset(latent[:25], rng, offset=1000)
    truth = pd.concat([_truth(train, latent), _truth(val, latent[:25])])
    degeneration = pd.concat([d.rows[["study_id", "level"]] for d in (train, val)]).assign(
        degeneration=lambda f: (f["study_id"] % 7) / 7.0)
    refs = instrument.reference_scores(train, {"val": val}, truth, degeneration, ("spinal_canal_stenosis",))
    per_level = refs.groupby("level")["level_only"].nunique()
    assert (per_level == 1).all()                                   # one value per level
    expected = _truth(train, latent).groupby("level")["latent"].mean()
    assert np.allclose(refs.groupby("level")["level_only"].first().reindex(expected.index), expected)
    assert (refs.groupby("study_id")["degeneration_only"].nunique() == 1).all()


def test_within_grade_pools_cells_and_leaves_out_constant_scores():
    rng = np.random.default_rng(2)
    n = 300
    frame = pd.DataFrame({"task": "t", "grade": rng.integers(0, 2, n), "level": rng.choice(LEVELS, n),
                          "latent": rng.uniform(0, 1, n)})
    frame["perfect"] = frame["latent"]
    frame["noise"] = rng.uniform(0, 1, n)
    frame["level_only"] = frame["level"].map({lv: i for i, lv in enumerate(LEVELS)}).astype(float)
    result = instrument.within_grade(frame, ["perfect", "noise", "level_only"]).set_index("score")
    assert result.loc["perfect", "rho"] == 1.0 and result.loc["perfect", "tau"] == 1.0
    assert abs(result.loc["noise", "rho"]) < 0.2
    assert np.isnan(result.loc["level_only", "rho"]) and result.loc["level_only", "cells"] == 0
    by_grade = instrument.within_grade(frame, ["level_only"], by_level=False).set_index("score")
    assert by_grade.loc["level_only", "cells"] == 2                # within grade only, the level is a score
    sizes = instrument.cell_sizes(frame)
    assert sizes.to_numpy().sum() == n
