"""Image transforms of the contrastive paper §4.2: stochastic views for pretraining, resizing for evaluation.

Inputs are single images as float tensors (C, H, W) in [0, 1] (C = 1 for MRI
ROIs). Contrastive views: random resized crop (area scale 0.8-1.0, torchvision's
default aspect-ratio range 3/4-4/3) to ``size`` x ``size``, horizontal flip with
p = 0.5, rotation by an angle uniform in [-rotation, rotation] degrees (corners
filled with 0), then brightness and contrast jitter. The paper also lists
saturation jitter; saturation is a colour property with no meaning for a
single-channel MRI slice, so it is left out. Randomness comes from torch's
global RNG (torchvision.transforms.v2 draws with torch), so ``torch.manual_seed``
makes a sequence of views reproducible; the training loop reseeds per epoch.
Normalisation to dataset statistics is the model's business, not done here.
"""

from __future__ import annotations

from typing import Callable

import torch
from torchvision.transforms import v2

Transform = Callable[[torch.Tensor], torch.Tensor]


def contrastive_transform(size: int, scale: tuple[float, float] = (0.8, 1.0), rotation: float = 15.0,
                          brightness: float = 0.2, contrast: float = 0.2) -> Transform:
    """One stochastic view (C, size, size) of a (C, H, W) float image in [0, 1] (§4.2)."""
    if not 0 < scale[0] <= scale[1] <= 1:
        raise ValueError(f"scale must satisfy 0 < low <= high <= 1, got {scale}")
    return v2.Compose([
        v2.RandomResizedCrop(size, scale=scale, antialias=True),
        v2.RandomHorizontalFlip(p=0.5),
        v2.RandomRotation(rotation),
        v2.ColorJitter(brightness=brightness, contrast=contrast),
    ])


def eval_transform(size: int) -> Transform:
    """Deterministic preprocessing for fine-tuning and evaluation: antialiased resize to size x size."""
    return v2.Resize((size, size), antialias=True)


def make_views(image: torch.Tensor, transform: Transform, views: int = 3) -> torch.Tensor:
    """``views`` independent draws of ``transform`` on one image, stacked: (views, C, size, size)."""
    if image.dim() != 3:
        raise ValueError(f"expected one image (C, H, W), got shape {tuple(image.shape)}")
    if views < 1:
        raise ValueError(f"views must be >= 1, got {views}")
    return torch.stack([transform(image) for _ in range(views)])
