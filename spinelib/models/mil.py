"""Bi-LSTM attention MIL severity model (multi-stage paper §2.2.2, Listing 1, Figs. 8–9).

A bag is a sequence of N slice crops around one disc. A shared 2D CNN encodes
every instance, h_n = E(x_n); a two-layer bidirectional LSTM adds the context of
neighbouring slices, u_1..u_N = BiLSTM(h_1..h_N). Two attentions with separate
parameters score the instances:

    primary   a_n = softmax_n(w^T tanh(u_n) + b)          z = sum_n a_n u_n,   logits = W z + c
    auxiliary s_n = v^T tanh(u_n) + d                      (scores, supervised on their own)

The auxiliary scores receive a cross-entropy loss against the bag position of
the annotated slice (``aux_loss``). Because the branches share no parameter,
that loss reaches the auxiliary attention, the LSTM and the encoder, never the
primary attention or the classification head. The loss itself is
:func:`spinelib.losses.mil.mil_loss`.

Two ablations of the paper's design are switches of :class:`MILGrader`:
``aggregator="attention"`` drops the Bi-LSTM (the primary and auxiliary
attentions read the encoder features h_n directly, z = sum_n a_n h_n), and
``shared_attention=True`` lets one attention serve both roles (s_n is the
primary attention's logit, so the auxiliary loss also trains the pooling).
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision import models as tv

from spinelib.models.resnet import resnet2d18

ENCODERS = ("resnet18", "resnet34", "efficientnet_b0", "efficientnet_v2_s", "efficientnet_v2_l", "convnext_small",
            "convnext_base")
AGGREGATORS = ("bilstm", "attention")   # the paper's Bi-LSTM + attention, or attention alone (ablation)


def slice_encoder(name: str, in_channels: int = 1, width: int | None = None) -> tuple[nn.Module, int]:
    """A randomly initialised 2D CNN (no download) mapping (B, C, H, W) → (B, F); returns it and F.

    The torchvision network ``name``; with ``width`` (ResNet-18 only), this library's 2D ResNet-18 of that base
    width instead (F = 8 · width), for a CPU budget: torchvision's ResNet-18 has the standard width 64 only.
    """
    if width is not None:
        if name != "resnet18":
            raise ValueError(f"a width is only available for resnet18, got {name!r} with width {width}")
        net = resnet2d18(in_channels, width)
        return net, net.feature_dim
    # torchvision's networks expect 3-channel RGB: each branch swaps the stem convolution for one of ``in_channels``
    # and replaces the classifier by the identity, so that the network returns its pooled features
    if name in ENCODERS and name.startswith("resnet"):
        net = getattr(tv, name)(weights=None)
        old = net.conv1
        net.conv1 = nn.Conv2d(in_channels, old.out_channels, old.kernel_size, old.stride, old.padding, bias=False)
        dim = net.fc.in_features
        net.fc = nn.Identity()
        return net, dim
    if name in ENCODERS and name.startswith("efficientnet"):
        net = getattr(tv, name)(weights=None)
        first = net.features[0][0]
        net.features[0][0] = nn.Conv2d(in_channels, first.out_channels, first.kernel_size, first.stride,
                                       first.padding, bias=False)
        dim = net.classifier[-1].in_features
        net.classifier = nn.Identity()
        return net, dim
    if name in ENCODERS and name.startswith("convnext"):
        net = getattr(tv, name)(weights=None)
        first = net.features[0][0]
        net.features[0][0] = nn.Conv2d(in_channels, first.out_channels, first.kernel_size, first.stride, first.padding)
        dim = net.classifier[-1].in_features
        net.classifier[-1] = nn.Identity()     # keep ConvNeXt's LayerNorm + flatten before the (removed) linear layer
        return net, dim
    raise ValueError(f"unknown encoder {name!r}; choose one of {ENCODERS}")


class BiLSTMAttentionMIL(nn.Module):
    """Listing 1's aggregator: BiLSTM over instances, primary attention pooling, separate auxiliary scores.

    Input (B, N, F); returns pooled z (B, 2·hidden), primary weights a (B, N), auxiliary scores s (B, N).
    """

    def __init__(self, input_dim: int, hidden: int, num_layers: int = 2, dropout: float = 0.1,
                 lstm: bool = True, shared_attention: bool = False):
        super().__init__()
        # lstm=False: the attention-only ablation, u_n = h_n
        self.lstm = (nn.LSTM(input_dim, hidden, num_layers=num_layers, batch_first=True,
                             dropout=dropout if num_layers > 1 else 0.0, bidirectional=True) if lstm else None)
        self.output_dim = 2 * hidden if lstm else input_dim
        self.attention = nn.Sequential(nn.Tanh(), nn.Linear(self.output_dim, 1))      # primary: weighted sum
        # auxiliary: own parameters (paper), or the primary attention itself (shared-attention ablation)
        self.aux_attention = None if shared_attention else nn.Sequential(nn.Tanh(), nn.Linear(self.output_dim, 1))

    def forward(self, bags: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        context = self.lstm(bags)[0] if self.lstm is not None else bags     # u: (B, N, 2h), or h: (B, N, F)
        logits = self.attention(context).squeeze(-1)                        # (B, N)
        weights = torch.softmax(logits, dim=-1)
        aux_scores = logits if self.aux_attention is None else self.aux_attention(context).squeeze(-1)
        pooled = torch.bmm(weights.unsqueeze(1), context).squeeze(1)        # z = sum_n a_n u_n
        return pooled, weights, aux_scores


class MILGrader(nn.Module):
    """Encoder per slice → BiLSTM attention MIL → linear head over the grades.

    Input (B, N, C, H, W); returns a dict with ``logits`` (B, K), ``attention``
    (B, N: primary weights) and ``aux_scores`` (B, N: auxiliary logits).
    """

    def __init__(self, encoder: str = "resnet18", in_channels: int = 1, num_classes: int = 3,
                 lstm_hidden: int | None = None, lstm_layers: int = 2, lstm_dropout: float = 0.1,
                 head_dropout: float = 0.0, aggregator: str = "bilstm", shared_attention: bool = False,
                 encoder_width: int | None = None):
        super().__init__()
        if aggregator not in AGGREGATORS:
            raise ValueError(f"unknown aggregator {aggregator!r}; choose one of {AGGREGATORS}")
        self.encoder, dim = slice_encoder(encoder, in_channels, encoder_width)
        self.mil = BiLSTMAttentionMIL(dim, lstm_hidden or dim // 2, lstm_layers, lstm_dropout,
                                      lstm=aggregator == "bilstm", shared_attention=shared_attention)
        self.head = nn.Sequential(nn.Dropout(head_dropout), nn.Linear(self.mil.output_dim, num_classes))

    def forward(self, bags: torch.Tensor) -> dict[str, torch.Tensor]:
        batch, n = bags.shape[:2]
        # every slice of every bag through the shared encoder at once: (B·N, C, H, W) → (B·N, F) → (B, N, F)
        features = self.encoder(bags.flatten(0, 1)).view(batch, n, -1)
        pooled, weights, aux_scores = self.mil(features)
        return {"logits": self.head(pooled), "attention": weights, "aux_scores": aux_scores}
