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

Transform = Callable[[torch.Tensor], torch.Tensor]     # image (C, H, W) -> image; a view or a resize


def contrastive_transform(size: int, scale: tuple[float, float] = (0.8, 1.0), rotation: float = 15.0,
                          brightness: float = 0.2, contrast: float = 0.2) -> Transform:
    """One stochastic view (C, size, size) of a (C, H, W) float image in [0, 1] (§4.2)."""
    if not 0 < scale[0] <= scale[1] <= 1:
        raise ValueError(f"scale must satisfy 0 < low <= high <= 1, got {scale}")
    # The order matters for reproducibility: each transform draws from torch's RNG in turn, so reordering them
    # changes every view a seed produces.
    return v2.Compose([
        v2.RandomResizedCrop(size, scale=scale, antialias=True),
        v2.RandomHorizontalFlip(p=0.5),
        v2.RandomRotation(rotation),                # corners outside the rotated image are filled with 0
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


# --- Disc volumes (ranking paper §3, training augmentation) ----------------------------------------------------

def shift_slices(volume: torch.Tensor, shift: int) -> torch.Tensor:
    """Move the slices of (D, H, W) by ``shift`` along D; slices shifted in from outside are zero."""
    out = torch.zeros_like(volume)
    depth = volume.shape[0]
    # A shift of the whole depth or more moves every slice out: the result stays all zeros.
    if abs(shift) < depth:
        if shift >= 0:
            out[shift:] = volume[:depth - shift]        # slice k lands at k + shift; the first ``shift`` stay 0
        else:
            out[:depth + shift] = volume[-shift:]       # slice k lands at k − |shift|; the last |shift| stay 0
    return out


def affine_slices(volume: torch.Tensor, angle: float, scale: float, dx: float, dy: float) -> torch.Tensor:
    """The same in-plane rotation (degrees), isotropic scale and translation (pixels) on every slice; zero fill.

    Args:
        volume: (D, H, W) float; the D slices are treated as the channels of one 2D image, so all move alike.
        angle: rotation in degrees; scale: zoom factor (> 1 enlarges); dx, dy: shift in pixels (x right, y down).

    Returns:
        (D, H, W), bilinearly resampled.
    """
    depth, height, width = volume.shape
    angle_rad = torch.deg2rad(torch.tensor(angle))
    # ``theta`` maps OUTPUT coordinates to INPUT coordinates (normalised to [−1, 1]), i.e. the inverse transform:
    # hence the division by ``scale`` and the minus sign of the translation. The h/w factors undo the
    # normalisation's different units along x and y, so that a rotation stays a rotation on a non-square image.
    cos, sin = torch.cos(angle_rad) / scale, torch.sin(angle_rad) / scale
    theta = torch.tensor([[cos, -sin * height / width, -2 * dx / width],
                          [sin * width / height, cos, -2 * dy / height]], dtype=volume.dtype)
    grid = torch.nn.functional.affine_grid(theta[None], [1, depth, height, width], align_corners=False)
    return torch.nn.functional.grid_sample(volume[None], grid, padding_mode="zeros", align_corners=False)[0]


class VolumeAugment:
    """Random training augmentation of a disc volume (D, H, W) in [0, 1] and its grades (T,).

    Slice shift in [−max_slice_shift, max_slice_shift] (boundary slices zeroed),
    slice-order flip with p = ``flip_p`` (mirrors the patient: grades permuted by
    ``mirror``), intensity offset in ±``intensity_offset``, translation up to
    ``translate`` = (horizontal, vertical) pixels, isotropic scaling in 1 ± ``scale``,
    rotation in ±``rotation`` degrees. Draws from torch's global RNG.
    """

    def __init__(self, mirror: list[int] | None = None, max_slice_shift: int = 2, flip_p: float = 0.5,
                 intensity_offset: float = 0.1, translate: tuple[float, float] = (32, 24), scale: float = 0.1,
                 rotation: float = 15.0):
        self.mirror = None if mirror is None else torch.as_tensor(mirror, dtype=torch.long)
        self.max_slice_shift, self.flip_p, self.intensity_offset = max_slice_shift, flip_p, intensity_offset
        self.translate, self.scale, self.rotation = translate, scale, rotation

    @staticmethod
    def _uniform(bound: float) -> float:
        """One draw uniform in [−bound, bound] from torch's global RNG."""
        return float((torch.rand(()) * 2 - 1) * bound)

    def __call__(self, volume: torch.Tensor, grades: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """An augmented copy of ``volume`` (D, H, W) and the grades (T,) that go with it."""
        # The draws happen in a fixed order (shift, flip, offset, rotation, scale, dx, dy) and every one is drawn
        # whatever the outcome of the others: the RNG stream, hence a seeded run, does not depend on the data.
        shift = int(torch.randint(-self.max_slice_shift, self.max_slice_shift + 1, ()))
        volume = shift_slices(volume, shift)
        if float(torch.rand(())) < self.flip_p:
            # Slices run across the patient (left to right on sagittal stacks): reversing them mirrors the
            # patient, so left-side grades become right-side ones.
            volume = volume.flip(0)
            if self.mirror is not None:
                grades = grades[self.mirror]
        volume = volume + self._uniform(self.intensity_offset)
        volume = affine_slices(volume, self._uniform(self.rotation), 1.0 + self._uniform(self.scale),
                               self._uniform(self.translate[0]), self._uniform(self.translate[1]))
        return volume, grades
