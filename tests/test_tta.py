"""Test-time views and volume augmentation."""

import torch

from spinelib.augment import VolumeAugment, shift_slices
from spinelib.tasks import TaskSet
from spinelib.tta import apply_view, tta_views


def test_54_distinct_views():
    views = tta_views(16, 1)
    assert len(views) == 54 and len(set(views)) == 54
    assert len(tta_views(0, 0, flips=False)) == 1


def test_view_translation_and_roll():
    x = torch.zeros(1, 1, 3, 5, 5)
    x[0, 0, 0, 2, 2] = 1
    view = next(v for v in tta_views(1, 1) if v == (True, 1, -1, 1))
    y = apply_view(x, view)
    # flip: slice 0 -> 2; roll +1: 2 -> 0; dx = +1 column, dy = -1 row
    assert y[0, 0, 0, 1, 3] == 1 and y.sum() == 1


def test_mirror_swaps_left_and_right_tasks():
    tasks = TaskSet(("spinal", "left_nfn", "right_nfn", "left_ss", "pfirrmann", "right_ss"), (3, 3, 3, 3, 5, 3))
    assert tasks.mirror.tolist() == [0, 2, 1, 5, 4, 3]


def test_flip_in_training_swaps_grades():
    torch.manual_seed(0)
    augment = VolumeAugment([1, 0], max_slice_shift=0, flip_p=1.0, intensity_offset=0, translate=(0, 0), scale=0,
                            rotation=0)
    volume = torch.arange(3.0)[:, None, None].expand(3, 4, 4).clone()
    out, grades = augment(volume, torch.tensor([0, 2]))
    assert grades.tolist() == [2, 0]
    assert torch.allclose(out[:, 2, 2], torch.tensor([2.0, 1.0, 0.0]), atol=1e-5)


def test_slice_shift_zeroes_the_boundary():
    v = torch.arange(1.0, 5.0)[:, None, None]
    assert shift_slices(v, 2)[:, 0, 0].tolist() == [0, 0, 1, 2]
    assert shift_slices(v, -1)[:, 0, 0].tolist() == [2, 3, 4, 0]
