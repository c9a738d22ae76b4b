"""Contrastive views and evaluation resizing (contrastive paper §4.2)."""

from __future__ import annotations

import pytest
import torch

from spinelib.augment import contrastive_transform, eval_transform, make_views


def _image() -> torch.Tensor:
    y, x = torch.meshgrid(torch.linspace(0, 1, 40), torch.linspace(0, 1, 48), indexing="ij")
    return (0.5 * x + 0.3 * y + 0.2 * (x > 0.5)).unsqueeze(0)


def test_view_shape_and_range():
    views = make_views(_image(), contrastive_transform(32), views=3)
    assert views.shape == (3, 1, 32, 32)
    assert views.min() >= 0 and views.max() <= 1


def test_deterministic_under_seed():
    transform = contrastive_transform(32)
    torch.manual_seed(5)
    first = make_views(_image(), transform)
    torch.manual_seed(5)
    assert torch.equal(make_views(_image(), transform), first)


def test_views_differ():
    torch.manual_seed(0)
    views = make_views(_image(), contrastive_transform(32), views=3)
    assert not torch.allclose(views[0], views[1]) and not torch.allclose(views[1], views[2])


def test_eval_transform_is_deterministic_resize():
    transform = eval_transform(24)
    out = transform(_image())
    assert out.shape == (1, 24, 24)
    assert torch.equal(transform(_image()), out)


def test_make_views_needs_one_image():
    with pytest.raises(ValueError, match="C, H, W"):
        make_views(torch.rand(2, 1, 8, 8), eval_transform(8))
