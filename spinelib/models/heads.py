"""Heads on the ResNet-18 encoder: projection (contrastive), Deep-Sets disc classifier, 2.5D localiser.

Contrastive paper: projection head g(.) of §4.3 with z = g(f(x)) (§3.4); the
permutation-invariant disc classifier and differential fine-tuning of §3.5 and
§4.4; the coordinate-regression localiser of §3.2 and §4.5.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from spinelib.models.encoders import FEATURE_DIM, resnet18_encoder

# §4.4: everything but the last residual stage (layer4) stays fixed during fine-tuning; the low-level filters
# learnt in pretraining transfer as they are, and only the most task-specific stage adapts.
DEFAULT_FROZEN = ("conv1", "bn1", "layer1", "layer2", "layer3")


class ProjectionHead(nn.Module):
    """g(h) = W_2 ReLU(BN(W_1 h + b_1)) + b_2: two fully connected layers with batch norm and ReLU (§4.3)."""

    def __init__(self, in_dim: int = FEATURE_DIM, hidden_dim: int = 512, out_dim: int = 128):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.BatchNorm1d(hidden_dim), nn.ReLU(inplace=True),
                                 nn.Linear(hidden_dim, out_dim))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """Project encoder features h (N, in_dim) to z (N, out_dim); BatchNorm1d needs N > 1 in training."""
        return self.net(h)


class ContrastiveModel(nn.Module):
    """z = g(f(x)) (§3.4): encoder f, then projection head g; (N, C, H, W) -> (N, out_dim).

    The loss normalises z itself (cosine similarity), so no normalisation here.
    """

    def __init__(self, encoder: nn.Module, head: ProjectionHead):
        super().__init__()
        self.encoder = encoder
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (N, C, H, W) -> E(x) (N, 512) -> g(E(x)) (N, out_dim), unnormalised."""
        return self.head(self.encoder(x))


class DiscClassifier(nn.Module):
    """Deep-Sets disc classifier (§3.5): logits = W (1/S sum_s E(x_s)) + b.

    Each of the S ROIs of a disc is embedded by the shared encoder E, the S
    embeddings are mean pooled (permutation invariant, any S), and a linear head
    maps the pooled 512-d vector to ``num_classes`` logits. The paper trains with
    S = 1; the same weights accept S > 1 without retraining.

    Layers named in ``frozen_layers`` (set by :func:`freeze_encoder_layers`) stay
    in eval mode when the model is put in training mode.
    """

    def __init__(self, encoder: nn.Module, num_classes: int = 3, embed_dim: int = FEATURE_DIM):
        super().__init__()
        self.encoder = encoder
        self.head = nn.Linear(embed_dim, num_classes)
        # Names of encoder children kept in eval mode; filled by freeze_encoder_layers, read by train().
        self.frozen_layers: tuple[str, ...] = ()

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled disc embedding (B, embed_dim) of x (B, C, H, W) (S = 1) or (B, S, C, H, W)."""
        if x.dim() == 4:
            return self.encoder(x)
        if x.dim() != 5:
            raise ValueError(f"expected (B, C, H, W) or (B, S, C, H, W), got shape {tuple(x.shape)}")
        batch, n_rois = x.shape[:2]
        # One encoder pass over all B·S ROIs (B·S, C, H, W) -> (B·S, D), then regroup to (B, S, D) and average
        # over S: the mean is what makes the classifier invariant to the order and number of ROIs.
        per_roi = self.encoder(x.flatten(0, 1))
        return per_roi.view(batch, n_rois, -1).mean(dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits (B, num_classes) of x (B, C, H, W) or (B, S, C, H, W)."""
        return self.head(self.embed(x))

    def train(self, mode: bool = True) -> "DiscClassifier":
        """``nn.Module.train``, except that frozen encoder layers stay in eval mode (fixed BN statistics)."""
        # requires_grad=False alone would still let BatchNorm update its running mean/var in train mode;
        # putting the frozen children back in eval mode after every train() call keeps them bit-identical.
        super().train(mode)
        for name in self.frozen_layers:
            getattr(self.encoder, name).eval()
        return self


def freeze_encoder_layers(model: DiscClassifier, frozen: Sequence[str] = DEFAULT_FROZEN) -> None:
    """Freeze the named encoder children (§4.4: conv1, bn1 and layers 1-3).

    Their parameters get ``requires_grad = False`` and their batch-norm layers
    stay in eval mode through later ``model.train()`` calls, so running
    statistics do not move either: a training step leaves them bit-identical.
    Repeated calls add to the frozen set.
    """
    children = dict(model.encoder.named_children())
    unknown = [name for name in frozen if name not in children]
    if unknown:
        raise ValueError(f"unknown encoder layers {unknown}; the encoder has {list(children)}")
    for name in frozen:
        children[name].requires_grad_(False)
    # dict.fromkeys: union of the old and new names without duplicates, keeping first-seen order.
    model.frozen_layers = tuple(dict.fromkeys((*model.frozen_layers, *frozen)))
    # Re-apply the current mode so the newly frozen layers switch to eval mode right away.
    model.train(model.training)


def finetune_param_groups(model: DiscClassifier, lr_backbone: float = 5e-5, lr_head: float = 5e-4) -> list[dict]:
    """Optimiser groups for differential fine-tuning (§4.4): trainable encoder params at ``lr_backbone``, head at ``lr_head``.

    Frozen parameters are left out; a group with no trainable parameter is
    dropped (e.g. the backbone group when the whole encoder is frozen).
    """
    # Frozen parameters are left out of the optimiser entirely: it then keeps no state for them, and the groups
    # list exactly what trains (the notebooks print them).
    backbone = [p for p in model.encoder.parameters() if p.requires_grad]
    head = [p for p in model.head.parameters() if p.requires_grad]
    if not backbone and not head:
        raise ValueError("model has no trainable parameters")
    groups = [{"params": backbone, "lr": lr_backbone, "name": "backbone"},
              {"params": head, "lr": lr_head, "name": "head"}]
    return [group for group in groups if group["params"]]


class Localiser(nn.Module):
    """Disc-centre regression (§3.2, §4.5): (x_norm, y_norm) = R(Dropout(ReLU(W [E(x); e_level] + b))).

    E is a ResNet-18 on a 2.5D input (3 consecutive slices as channels), e_level
    a learned ``level_dim``-d embedding of the disc level, concatenated with the
    512-d features; then FC ``hidden`` + ReLU + Dropout and a linear regression
    head R with two outputs (normalised x, y; unbounded, trained with Smooth L1).
    The paper starts E from ImageNet weights; here E is randomly initialised
    (no downloads), load weights with ``load_encoder_weights(model.encoder, path)``.
    """

    def __init__(self, num_levels: int = 5, level_dim: int = 32, hidden: int = 256, dropout: float = 0.5,
                 in_channels: int = 3):
        super().__init__()
        self.encoder = resnet18_encoder(in_channels)
        self.level_embedding = nn.Embedding(num_levels, level_dim)
        self.mlp = nn.Sequential(nn.Linear(FEATURE_DIM + level_dim, hidden), nn.ReLU(inplace=True),
                                 nn.Dropout(dropout))
        self.regressor = nn.Linear(hidden, 2)

    def forward(self, x: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
        """Normalised disc centre (B, 2) = (x, y) / image size, from slices x (B, 3, H, W) and level ids (B,) long."""
        if x.dim() != 4 or level.shape != (x.shape[0],):
            raise ValueError(f"expected x (B, C, H, W) and level (B,), got {tuple(x.shape)} and {tuple(level.shape)}")
        # [E(x); e_level]: (B, 512) image features beside (B, level_dim) level embedding -> (B, 512 + level_dim).
        # The level tells the regressor which of the five discs visible in the slice it must point at.
        features = torch.cat([self.encoder(x), self.level_embedding(level)], dim=1)
        return self.regressor(self.mlp(features))
