"""Crop geometry: the annotated point lands at the crop centre; borders are padded."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from spinelib.crops.geometry import Box, crop_plane, crop_stack, resize_stack, slice_window
from spinelib.params.data import CropsParams


def _dot_image(x: int, y: int, shape=(50, 70)) -> np.ndarray:
    image = np.zeros(shape, dtype=np.float32)
    image[y, x] = 1.0
    return image


@pytest.mark.parametrize("x, y", [(30, 20), (2, 3), (68, 48)])
def test_point_lands_at_the_centre_of_a_centred_box(x, y):
    patch = crop_plane(_dot_image(x, y), x + 0.3, y - 0.2, Box.centred(16, 16))
    assert patch.shape == (16, 16)
    assert np.argwhere(patch == 1.0).tolist() == [[8, 8]]


def test_asymmetric_box_puts_the_point_at_up_left():
    box = Box(left=96, right=32, up=40, down=40)  # Table 1, spinal canal on sagittal T2
    patch = crop_plane(_dot_image(60, 25, shape=(200, 300)), 60, 25, box)
    assert patch.shape == (80, 128)
    assert np.argwhere(patch == 1.0).tolist() == [[40, 96]]


def test_outside_the_image_is_constant_padding():
    image = np.ones((10, 10), dtype=np.float32)
    patch = crop_plane(image, 0, 0, Box.centred(6, 6), fill=0.0)
    assert patch[:3].sum() == 0 and patch[:, :3].sum() == 0
    assert patch[3:, 3:].sum() == 9


def test_integer_images_cut_as_float32_keep_a_fractional_fill():
    """Stored integers are cut as float32, so the padding is the window's low end, not its truncation."""
    image = np.arange(100, dtype=np.uint16).reshape(10, 10)
    patch = crop_plane(image, 0, 0, Box.centred(4, 4), fill=2.5, dtype=np.float32)
    assert patch.dtype == np.float32 and patch[0, 0] == 2.5 and patch[2, 2] == 0.0
    stack, _ = crop_stack(image[None], centre=0, n_slices=3, x=9, y=9, box=Box.centred(4, 4), fill=2.5,
                          dtype=np.float32)
    assert stack.dtype == np.float32 and stack[0].max() == 2.5 and stack[1, 2, 2] == 99.0


def test_crop_stack_pads_missing_slices_and_centres_the_window():
    volume = np.stack([np.full((8, 8), k, dtype=np.float32) for k in range(4)])
    stack, padded = crop_stack(volume, centre=0, n_slices=5, x=4, y=4, box=Box.centred(4, 4), fill=-1)
    assert padded == 2
    assert stack[:, 2, 2].tolist() == [-1, -1, 0, 1, 2]


def test_slice_window_for_even_length_takes_the_extra_slice_after():
    index, inside = slice_window(5, 4, 10)
    assert index.tolist() == [4, 5, 6, 7] and inside.all()


def test_resize_stack_block_mean_and_interpolation():
    stack = np.arange(16, dtype=np.float32).reshape(1, 4, 4)
    assert resize_stack(stack, (2, 2))[0].tolist() == [[2.5, 4.5], [10.5, 12.5]]
    assert resize_stack(stack, (3, 5)).shape == (1, 3, 5)


@pytest.mark.parametrize("size", [(2, 2), (3, 3)])   # block mean; bilinear
def test_resize_stack_rounds_integer_stacks_to_the_nearest(size):
    stack = np.array([[[1, 2, 2, 2], [2, 2, 2, 2], [0, 255, 255, 255], [255, 255, 255, 255]]], dtype=np.uint8)
    expected = resize_stack(stack.astype(np.float32), size)
    resized = resize_stack(stack, size)
    assert resized.dtype == np.uint8 and np.array_equal(resized, np.clip(np.rint(expected), 0, 255))
    assert resize_stack(stack, (2, 2))[0, 0, 0] == 2   # mean 1.75: a bare cast would give 1


def test_paper_profile_gives_the_papers_crop_sizes():
    cfg = CropsParams.load(Path(__file__).resolve().parents[2] / "params/paper/crops.yaml").crop_config()
    assert cfg.roi_size == (96, 96)
    assert (cfg.volume_slices, *cfg.volume_size) == (12, 128, 256)
    assert cfg.bag_slices == 5 and cfg.bag_size("bag_scs") == (80, 128) and cfg.bag_size("bag_ss") == (192, 192)
