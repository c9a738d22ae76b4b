"""Multi-task ordinal model of the ranking study: encoder, classification heads, one objective's heads.

    z = f_θ(x) ∈ R^d                                   (Eq. 4, the 3D ResNet-18 embedding)
    ŷ_t = W_t z ∈ R^{K_t}                               classification heads (phase 1, weighted CE)
    h_t = φ_t(z)  (or φ_t(ŷ_t), the released code)      ranking heads (Eq. 5)
    s_t = S · sp(βh) / (sp(βh) + sp(β(S − h)))          soft clamp to [0, S] (Eq. 6)

Objectives: ``ce`` (the classification heads themselves), ``corn`` (K_t − 1
conditional logits per task), and the score objectives ``mae``, ``ranknet``,
``deep_rank_svm``, ``spineranknet`` (one scalar score per task).
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

# Objectives whose outputs are per-grade logits (a class per grade) ...
CLASS_OBJECTIVES = ("ce", "corn")
# ... and those that output one severity score per task in [0, S], turned into grades by thresholds later.
SCORE_OBJECTIVES = ("mae", "ranknet", "deep_rank_svm", "spineranknet")
OBJECTIVES = CLASS_OBJECTIVES + SCORE_OBJECTIVES
# φ_t architectures: "mlp" is the paper's; the other three are its head ablation.
RANKING_HEADS = ("mlp", "linear", "transformer", "kan")


def soft_clamp(h: torch.Tensor, scale: float = 10.0, beta: float = 5.0) -> torch.Tensor:
    """σ_S(h) = S · sp(βh) / (sp(βh) + sp(β(S − h))) (Eq. 6): smooth, increasing, inside [0, S].

    Args:
        h: raw head outputs, any shape (here (B, T)).
        scale: S, the top of the score range.
        beta: β, the sharpness; as β → ∞ this tends to the hard clamp min(max(h, 0), S).

    Returns:
        Scores of h's shape in [0, S]. Unlike a hard clamp, the gradient never vanishes exactly outside the
        range, so a head that starts out of range can still learn its way back.
    """
    # sp(βh) is ≈ 0 for h ≪ 0 and sp(β(S − h)) ≈ 0 for h ≫ S: the ratio goes to 0 and to 1 at the two ends.
    softplus_low = F.softplus(beta * h)
    softplus_high = F.softplus(beta * (scale - h))
    return scale * softplus_low / (softplus_low + softplus_high)


class TransformerHead(nn.Module):
    """Ablation head: the input vector cut into ``tokens`` tokens, one transformer layer, mean-pooled to a scalar."""

    def __init__(self, in_dim: int, tokens: int = 8, width: int = 64, heads: int = 4):
        super().__init__()
        # The input is cut into equal chunks; when in_dim does not divide, fall back to one token (in_dim wide).
        if in_dim % tokens:
            tokens = 1
        self.tokens = tokens
        self.embed = nn.Linear(in_dim // tokens, width)
        self.position = nn.Parameter(torch.zeros(tokens, width))
        self.layer = nn.TransformerEncoderLayer(width, heads, dim_feedforward=2 * width, dropout=0.0,
                                                batch_first=True)
        self.out = nn.Linear(width, 1)

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        """v (B, in_dim) -> tokens (B, tokens, in_dim/tokens) -> (B, tokens, width) -> mean over tokens -> (B, 1)."""
        token_embeddings = self.embed(v.reshape(v.shape[0], self.tokens, -1)) + self.position
        return self.out(self.layer(token_embeddings).mean(dim=1))


class KANLayer(nn.Module):
    """Kolmogorov–Arnold layer: every edge i → o is its own learnable function of one input.

        φ_oi(x_i) = w_b[i, o] · silu(x_i) + Σ_g c[i, g, o] · exp(−((x_i − g)/h)²)
        y_o       = b_o + Σ_i φ_oi(x_i)

    with G fixed Gaussian centres g evenly spaced on [−grid_range, grid_range]
    and width h their spacing (neighbouring bumps overlap). Inputs are expected
    around unit scale (``KANHead`` normalises them). ``x`` (B, in) → basis
    (B, in, G) → einsum with c (in, G, out) plus the SiLU base branch → (B, out).
    """

    def __init__(self, in_dim: int, out_dim: int, grid_size: int = 8, grid_range: float = 2.0):
        super().__init__()
        if grid_size < 2:
            raise ValueError(f"grid_size must be >= 2, got {grid_size}")
        # Fixed (not learnt) Gaussian centres g and their common width h = the grid spacing; a buffer so that
        # .to(device) moves them with the module.
        self.register_buffer("centres", torch.linspace(-grid_range, grid_range, grid_size))
        self.width = 2 * grid_range / (grid_size - 1)
        self.base = nn.Linear(in_dim, out_dim)      # w_b and b_o
        # small spline coefficients: the layer starts close to its SiLU base branch
        self.coef = nn.Parameter(torch.randn(in_dim, grid_size, out_dim) * (0.1 / math.sqrt(in_dim)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """y (B, out) = SiLU base branch + Σ_i Σ_g c[i, g, o] · basis_g(x_i), from x (B, in)."""
        # x[..., None] (B, in, 1) against centres (G,) broadcasts to (B, in, G): one bump value per input and centre.
        basis = torch.exp(-((x[..., None] - self.centres) / self.width).square())    # (B, in, G)
        return self.base(F.silu(x)) + torch.einsum("big,igo->bo", basis, self.coef)


class KANHead(nn.Module):
    """Ablation head (paper §4): two KAN layers in → hidden → 1, each on a LayerNorm-ed input.

    ``hidden`` is the KAN width; ``ranking_head`` picks it so the parameter
    count, about in · hidden · (G + 1), matches the MLP head's in · hidden_mlp.
    LayerNorm puts each layer's input on the scale of the fixed grid.
    """

    def __init__(self, in_dim: int, hidden: int, grid_size: int = 8):
        super().__init__()
        if in_dim < 2 or hidden < 2:
            raise ValueError(f"a KAN head normalises over its inputs: needs in_dim and hidden >= 2, got {in_dim}, "
                             f"{hidden}")
        self.layers = nn.Sequential(nn.LayerNorm(in_dim), KANLayer(in_dim, hidden, grid_size),
                                    nn.LayerNorm(hidden), KANLayer(hidden, 1, grid_size))

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        """(B, in_dim) -> (B, 1)."""
        return self.layers(v)


def ranking_head(kind: str, in_dim: int, hidden: int = 256) -> nn.Module:
    """φ_t: two-layer MLP (paper), linear, transformer or KAN (ablations); maps (B, in_dim) → (B, 1).

    ``hidden`` is the MLP width; the KAN (grid 8) gets width max(2, round(hidden / 9)) so that
    both have about in_dim · hidden parameters.
    """
    if kind == "mlp":
        return nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, 1))
    if kind == "linear":
        return nn.Linear(in_dim, 1)
    if kind == "transformer":
        return TransformerHead(in_dim)
    if kind == "kan":
        # A KAN edge has G spline coefficients + 1 base weight, so width hidden / (G + 1) matches the MLP's size.
        grid_size = 8
        return KANHead(in_dim, max(2, round(hidden / (grid_size + 1))), grid_size)
    raise ValueError(f"unknown ranking head {kind!r}; choose one of {RANKING_HEADS}")


class OrdinalModel(nn.Module):
    """Encoder + per-task classification heads + the heads of one objective.

    ``forward`` returns a dict with ``logits`` (list of (B, K_t)) always,
    ``corn`` (list of (B, K_t − 1)) for CORN, and ``score`` (B, T) in [0, S]
    for the score objectives. ``freeze_encoder`` keeps the encoder fixed and in
    eval mode (no BN statistic updates) while the heads train.
    """

    def __init__(self, encoder: nn.Module, num_grades: Sequence[int], objective: str = "ce", *,
                 head: str = "mlp", head_input: str = "embedding", hidden: int = 256, scale: float = 10.0,
                 beta: float = 5.0, freeze_encoder: bool = False):
        super().__init__()
        if objective not in OBJECTIVES:
            raise ValueError(f"unknown objective {objective!r}; choose one of {OBJECTIVES}")
        if head_input not in ("embedding", "logits"):
            raise ValueError(f"head_input must be 'embedding' (Eq. 5) or 'logits' (released code), got {head_input!r}")
        self.encoder, self.objective, self.head_input = encoder, objective, head_input
        self.num_grades = [int(k) for k in num_grades]
        self.scale, self.beta, self.freeze_encoder = scale, beta, freeze_encoder
        feature_dim = int(encoder.feature_dim)
        # Classification heads W_t exist for every objective: phase 1 trains them (weighted CE) with the encoder,
        # and the score objectives' phase 2 starts from that encoder.
        self.cls_heads = nn.ModuleList(nn.Linear(feature_dim, k) for k in self.num_grades)
        if objective == "corn":
            # CORN: K_t − 1 conditional binary logits f_c ≈ logit P(y > c | y > c − 1) per task.
            self.corn_heads = nn.ModuleList(nn.Linear(feature_dim, k - 1) for k in self.num_grades)
        if objective in SCORE_OBJECTIVES:
            # φ_t reads z (Eq. 5, width d) or, as the released code does, task t's own logits ŷ_t (width K_t).
            self.rank_heads = nn.ModuleList(ranking_head(head, feature_dim if head_input == "embedding" else k,
                                                         hidden)
                                            for k in self.num_grades)
        if freeze_encoder:
            self.encoder.requires_grad_(False)

    def train(self, mode: bool = True) -> "OrdinalModel":
        """``nn.Module.train``, except that a frozen encoder stays in eval mode (BN statistics fixed)."""
        super().train(mode)
        if self.freeze_encoder:
            self.encoder.eval()
        return self

    def objective_parameters(self) -> list[nn.Parameter]:
        """The parameters this objective adds on top of phase 1 (the phase-2 heads); for CE its classification heads."""
        heads = {"ce": "cls_heads", "corn": "corn_heads"}.get(self.objective, "rank_heads")
        return list(getattr(self, heads).parameters())

    def heads(self, z: torch.Tensor) -> dict[str, object]:
        """Every output from the embedding z (B, d): lets several models share one encoder pass.

        Returns ``{"logits": [ (B, K_t) ] * T}`` plus ``"corn": [ (B, K_t − 1) ] * T`` for CORN or
        ``"score": (B, T)`` in [0, S] for the score objectives.
        """
        logits = [head(z) for head in self.cls_heads]
        out: dict[str, object] = {"logits": logits}
        if self.objective == "corn":
            out["corn"] = [head(z) for head in self.corn_heads]
        elif self.objective in SCORE_OBJECTIVES:
            inputs = [z] * len(logits) if self.head_input == "embedding" else logits
            # T heads each give (B, 1); side by side they are the raw scores h (B, T), then clamped (Eq. 6).
            raw_scores = torch.cat([head(v) for head, v in zip(self.rank_heads, inputs)], dim=1)
            out["score"] = soft_clamp(raw_scores, self.scale, self.beta)
        return out

    def forward(self, x: torch.Tensor) -> dict[str, object]:
        """Outputs of ``heads`` for a batch of volumes x (B, C, D, H, W)."""
        if self.freeze_encoder:
            # No graph through a frozen encoder: saves the activation memory of the whole backbone.
            with torch.no_grad():
                z = self.encoder(x)
        else:
            z = self.encoder(x)
        # .float(): on CUDA under autocast z comes out in bf16/fp16; the heads get a float32 input whatever
        # precision the encoder ran in (as they do when ``heads`` is called on a stored embedding).
        return self.heads(z.float())
