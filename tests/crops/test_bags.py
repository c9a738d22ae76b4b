"""MIL bag regions: the unshifted cut is the Table 1 box; shifts move it; the left side is mirrored."""

from __future__ import annotations

import numpy as np

from spinelib.crops.geometry import Box, crop_stack, to_uint8
from spinelib.crops.bags import BagConfig, cut_bag, source_region


def _volume() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.random((12, 120, 160)).astype(np.float32)


def test_unshifted_cut_is_the_table1_box_around_the_point():
    cfg = BagConfig(scale={"bag_scs": 1.0, "bag_nfn": 1.0, "bag_ss": 1.0})
    volume = _volume()
    region = source_region(volume, 6, 80.0, 60.0, "spinal_canal_stenosis", cfg)
    bag = cut_bag(region, 0, 0, 0, 5, cfg.max_shift, cfg.margin_px("spinal_canal_stenosis"))
    expected, _ = crop_stack(volume, 6, 5, 80.0, 60.0, Box(96, 32, 40, 40))
    assert bag.shape == (5, 80, 128)
    assert np.array_equal(bag, to_uint8(expected))
    shifted = cut_bag(region, 1, 3, -2, 5, cfg.max_shift, cfg.margin_px("spinal_canal_stenosis"))
    moved, _ = crop_stack(volume, 7, 5, 78.0, 63.0, Box(96, 32, 40, 40))
    assert np.array_equal(shifted, to_uint8(moved))


def test_left_subarticular_is_mirrored_onto_the_right_box():
    cfg = BagConfig(scale={"bag_scs": 1.0, "bag_nfn": 1.0, "bag_ss": 1.0})
    volume = _volume()
    left = source_region(volume, 6, 100.0, 60.0, "left_subarticular_stenosis", cfg)
    right = source_region(volume[:, :, ::-1], 6, 159 - 100.0, 60.0, "right_subarticular_stenosis", cfg)
    assert np.array_equal(left, right)
    assert cfg.bag_size("left_subarticular_stenosis") == cfg.bag_size("right_subarticular_stenosis") == (192, 192)
