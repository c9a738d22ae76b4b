"""MIL bag dataset: the key slice follows the slice shift."""

from __future__ import annotations

import numpy as np

from spinelib.crops.bags import BagConfig, source_region
from spinelib.datasets.bags import BagDataset


def _volume() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.random((12, 120, 160)).astype(np.float32)


def test_dataset_key_slice_follows_the_slice_shift():
    cfg = BagConfig(scale={"bag_scs": 0.25, "bag_nfn": 0.25, "bag_ss": 0.25})
    region = source_region(_volume(), 6, 80.0, 60.0, "spinal_canal_stenosis", cfg)
    sources = np.stack([region] * 40)
    still = BagDataset(sources, np.zeros(40, dtype=int), cfg, "spinal_canal_stenosis")
    bag, _, key, _ = still[0]
    assert bag.shape == (5, 1, 20, 32) and key == 2
    always_two = BagDataset(sources, np.zeros(40, dtype=int), cfg, "spinal_canal_stenosis", [0.0, 0.0, 1.0])
    keys = {always_two[i][2] for i in range(40)}
    assert keys == {0, 4}                                   # shift ±2 moves the annotated slice to an end
