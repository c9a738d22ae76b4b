"""ResNet-18 disc encoder E(.) (contrastive paper §3.3, Eq. 1): z_i = E(x_i), 512-d.

torchvision's ResNet-18 built with ``weights=None`` (random initialisation; this
module never downloads anything), its first convolution rebuilt for
``in_channels`` (1 for single-channel MRI) and its final fully connected layer
replaced by the identity, so the output is the 512-d global-average-pooled
feature.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torchvision.models import resnet18

# Width of ResNet-18's pooled feature (the input width of its removed ``fc``): the size of z_i in Eq. 1.
FEATURE_DIM = 512
# Keys under which a wrapping checkpoint may hold the encoder's state dict: ``train.fit`` writes
# {"model": ...}; a pretraining export may write {"encoder": ...}. Tried in this order.
CHECKPOINT_KEYS = ("model", "encoder")


def resnet18_encoder(in_channels: int = 1) -> nn.Module:
    """A randomly initialised ResNet-18 encoder E(.) (Eq. 1).

    Args:
        in_channels: channels C of the input (1 for a single MRI slice, 3 for a 2.5D stack of slices).

    Returns:
        A module mapping x (B, C, H, W) to z (B, 512): the global-average-pooled last-stage features.
    """
    if in_channels < 1:
        raise ValueError(f"in_channels must be positive, got {in_channels}")
    # weights=None: never download ImageNet weights; pretrained ones are loaded explicitly from a local file.
    encoder = resnet18(weights=None)
    # torchvision's stem expects RGB; rebuild it for ``in_channels`` with the same geometry (7x7, stride 2, pad 3).
    old = encoder.conv1
    encoder.conv1 = nn.Conv2d(in_channels, old.out_channels, kernel_size=old.kernel_size, stride=old.stride,
                              padding=old.padding, bias=False)
    # Drop the 1000-way ImageNet classifier: the encoder's output is the pooled 512-d feature itself.
    encoder.fc = nn.Identity()
    return encoder


def _state_dict_of(checkpoint: object, path: Path) -> dict[str, torch.Tensor]:
    """The encoder state dict inside a checkpoint: the dict itself or its ``model`` / ``encoder`` entry."""
    if not isinstance(checkpoint, dict):
        raise TypeError(f"{path}: expected a state dict, found {type(checkpoint).__name__}")
    for key in CHECKPOINT_KEYS:
        if key in checkpoint and isinstance(checkpoint[key], dict):
            return checkpoint[key]
    return checkpoint


def load_encoder_weights(encoder: nn.Module, path: str | Path) -> None:
    """Load encoder weights from a local checkpoint, strictly.

    The file holds a state dict, or a dict with the state dict under ``"model"``
    or ``"encoder"``. Missing or unexpected keys and shape mismatches raise a
    ``RuntimeError`` naming them.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"encoder checkpoint not found: {path}")
    # weights_only: a checkpoint is data, never code to unpickle; map to CPU so a GPU-written file loads anywhere.
    state = _state_dict_of(torch.load(path, map_location="cpu", weights_only=True), path)
    # Compare key sets and shapes first so that one error lists every problem at once
    # (load_state_dict would stop at the first shape mismatch).
    own = encoder.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    mismatched = sorted(k for k in set(own) & set(state) if tuple(own[k].shape) != tuple(state[k].shape))
    if missing or unexpected or mismatched:
        problems = [f"{label}: {', '.join(keys)}" for label, keys in
                    (("missing keys", missing), ("unexpected keys", unexpected),
                     ("shape mismatch", [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in mismatched]))
                    if keys]
        raise RuntimeError(f"{path} does not match the encoder; " + "; ".join(problems))
    encoder.load_state_dict(state, strict=True)
