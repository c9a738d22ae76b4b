"""Stage 02: multi-positive contrastive pretraining of the disc encoder (contrastive paper §3.4, §4.3).

Each training disc's ROI yields V stochastic views; views of one disc are
positives of each other, every other view in the batch a negative
(multi-positive NT-Xent, Eq. 3 and 5). Encoder ResNet-18 (1 channel, 512-d),
projection head of two FC layers with batch norm and ReLU, cosine annealing,
gradient-norm clipping. One encoder is pretrained per split column, on that
split's training discs only, so the disc-level and patient-level studies never
see their own test images, not even without labels.

Run in a notebook (``pretrain``) or from the shell, on one device or several:

    python -m spinelib.studies.contrastive --params params/contrastive.yaml
    torchrun --nproc_per_node=4 -m spinelib.studies.contrastive --params params/contrastive.yaml
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import torch

from spinelib.augment import contrastive_transform, eval_transform
from spinelib.crops.store import open_store
from spinelib.datasets.discs import RoiDataset
from spinelib.distributed import (cleanup_distributed, gather_with_grad, is_distributed, is_main_process,
                                  setup_distributed)
from spinelib.losses.contrastive import multi_positive_nt_xent
from spinelib.models.encoders import load_encoder_weights, resnet18_encoder
from spinelib.models.heads import ContrastiveModel, ProjectionHead
from spinelib.params.contrastive import ContrastiveParams, PretrainParams
from spinelib.paths import resolve
from spinelib.provenance import write_store_provenance
from spinelib.train import FitResult, TrainConfig, fit, make_loader, resolve_device


@dataclass
class ContrastiveTask:
    """NT-Xent over the V views of each disc in the batch (gathered over processes under torchrun)."""

    temperature: float

    def _loss(self, model: torch.nn.Module, views: torch.Tensor, device: torch.device) -> torch.Tensor:
        """Multi-positive NT-Xent of a batch of views (B, V, 1, S, S): the B·V projections, grouped by disc.

        The views are flattened disc-major, (B, V, ...) → (B·V, ...), so the group id of row i is i // V: the
        ``repeat_interleave`` below ([0, 0, 0, 1, 1, 1, ...] for V = 3) marks the V views of one disc as positives.
        """
        batch, n_views = views.shape[:2]
        z = model(views.flatten(0, 1).to(device, non_blocking=True))          # (B·V, projection_dim)
        groups = torch.arange(batch, device=device).repeat_interleave(n_views)  # (B·V,) disc id of each view
        if is_distributed():
            # every rank numbers its discs 0..B-1: offset them by rank so that the discs of two ranks never share
            # an id once gathered (the gathered batch then has every other rank's views as negatives too)
            rank = torch.distributed.get_rank()
            z, groups = gather_with_grad(z), gather_with_grad(groups + rank * batch * 1_000)
        return multi_positive_nt_xent(z, groups, self.temperature)

    def train_step(self, model: torch.nn.Module, batch, device: torch.device) -> torch.Tensor:
        # RoiDataset yields (views, grade, row); pretraining ignores the grade: it never sees a label
        return self._loss(model, batch[0], device)

    def evaluate(self, model: torch.nn.Module, loader, device: torch.device) -> dict[str, float]:
        losses = [self._loss(model, batch[0], device).item() for batch in loader]
        return {"val_loss": float(np.mean(losses)) if losses else float("nan")}


def encoder_path(out_dir: str | Path, split_column: str) -> Path:
    """Where the pretrained encoder of one split column is saved."""
    return resolve(out_dir) / split_column / "encoder.pt"


def pretrain(p: PretrainParams, crops_dir: str | Path, out_dir: str | Path, split_column: str,
             progress: bool = True) -> FitResult:
    """Pretrain one encoder on the training discs of ``split_column``; saves ``encoder.pt`` and the curves.

    ``p`` holds the hyper-parameters (the ``pretrain`` section of params/contrastive.yaml). A finished run keeps
    ``encoder.pt``, ``history.csv`` and the slim ``last.pt`` marker, not the projection head: nothing later uses
    it, and calling this again reads the finished run back (the result's ``best_state`` holds the encoder only).
    An interrupted run resumes from its checkpoints.
    """
    out = encoder_path(out_dir, split_column).parent
    # encoder.pt without best.pt: a finished run (best.pt is deleted last, below), so nothing to train
    if (out / "encoder.pt").exists() and not (out / "best.pt").exists():
        return _finished_run(out)

    # ---- data: V augmented views per training / validation disc ----
    store = open_store(resolve(crops_dir))
    augment = contrastive_transform(p.input_size, scale=tuple(p.crop_scale), rotation=p.rotation,
                                    brightness=p.brightness, contrast=p.contrast)
    data = {split: RoiDataset(store, p.condition, split, augment, split_column, views=p.views)
            for split in ("train", "val")}

    # ---- model, optimiser, schedule ----
    torch.manual_seed(p.seed)  # the initial weights: the same whatever ran before in this process
    model = ContrastiveModel(resnet18_encoder(1), ProjectionHead(512, p.hidden_dim, p.projection_dim))
    optimizer = torch.optim.AdamW(model.parameters(), lr=p.lr, weight_decay=p.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=p.epochs, eta_min=p.lr_min)
    config = TrainConfig(epochs=p.epochs, seed=p.seed, device=p.device, amp=p.amp,
                         channels_last=p.channels_last, grad_clip=p.grad_clip, monitor="val_loss", mode="min",
                         checkpoint_dir=out, progress=progress)

    # ---- train ----
    # drop_last: a short last training batch has few negatives per anchor (a noisy loss); it is kept when the
    # whole split is no larger than one batch, or the epoch would have no step at all
    loaders = [make_loader(data[s], p.batch_size, shuffle=s == "train", seed=p.seed,
                           num_workers=p.num_workers, drop_last=s == "train" and len(data[s]) > p.batch_size)
               for s in ("train", "val")]
    result = fit(model, ContrastiveTask(p.temperature), *loaders, optimizer, config, scheduler)

    # ---- keep the encoder only ----
    if is_main_process():
        encoder_state = {k.removeprefix("encoder."): v for k, v in result.best_state.items()
                         if k.startswith("encoder.")}
        torch.save(encoder_state, out / "encoder.pt")
        write_store_provenance(out, store, p)   # what the encoder was trained on (read by `spinelib grade`)
        (out / "best.pt").unlink()   # encoder + projection head: the encoder alone is what later stages load
    return result


def _finished_run(out: Path) -> FitResult:
    """A finished pretraining read back from its folder: the curves and the encoder's weights (no head)."""
    history = pd.read_csv(out / "history.csv")
    best = int(history["val_loss"].fillna(np.inf).to_numpy().argmin())   # fit keeps the first minimum
    encoder = torch.load(out / "encoder.pt", map_location="cpu", weights_only=True)
    # the keys fit's best_state would have (the model's "encoder." prefix), so callers see one layout either way
    return FitResult(history, best + 1, float(history["val_loss"].iloc[best]),
                     {f"encoder.{k}": v for k, v in encoder.items()}, out)


@torch.no_grad()
def embed(encoder_file: str | Path, crops_dir: str | Path, condition: str, split: str, split_column: str,
          input_size: int, device: str = "auto") -> tuple[np.ndarray, pd.DataFrame]:
    """512-d embeddings (N, 512) of one split's N ROIs under a pretrained encoder, and their N index rows."""
    data = RoiDataset(open_store(resolve(crops_dir)), condition, split, eval_transform(input_size), split_column)
    encoder = resnet18_encoder(1)
    load_encoder_weights(encoder, encoder_file)
    dev = resolve_device(device)
    encoder.to(dev).eval()
    # deterministic preprocessing (no augmentation), in dataset order: row i of the result is index row i
    chunks = [encoder(x.to(dev)).cpu() for x, _, _ in make_loader(data, 256, shuffle=False)]
    # an empty split still returns a (0, 512) array, so callers need no special case
    return (torch.cat(chunks).numpy() if chunks else np.zeros((0, 512), np.float32)), data.index


def flattening_epoch(losses: Sequence[float], tolerance: float = 0.05) -> int | None:
    """The epoch (1-based) from which the loss curve is flat, or None when it is still falling at the end.

    Epoch e counts as flat when no later epoch improves on it by more than ``tolerance`` times the whole drop
    of the curve: L_e − min_{t >= e} L_t <= tolerance · (L_1 − min_t L_t). The first such epoch is returned,
    unless it is the last one (a single final epoch is no plateau). NaN losses count as no improvement.
    """
    values = np.asarray(losses, dtype=float)
    if len(values) < 2 or not np.isfinite(values).any():
        return None
    filled = np.where(np.isfinite(values), values, np.inf)
    best_after = np.minimum.accumulate(filled[::-1])[::-1]         # min over t >= e
    drop = filled[0] - best_after[0]
    flat = np.flatnonzero(filled - best_after <= tolerance * max(drop, 0.0))
    return int(flat[0]) + 1 if len(flat) and flat[0] < len(values) - 1 else None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="contrastive pretraining (stage 02)")
    parser.add_argument("--params", default="params/contrastive.yaml")
    args = parser.parse_args(argv)
    params = ContrastiveParams.load(resolve(args.params))   # strict: a misspelt key fails before any work
    rank, _, _ = setup_distributed()
    try:
        for split_column in params.split_columns:
            pretrain(params.pretrain, params.crops_dir, params.out_dir, split_column, progress=rank == 0)
    finally:
        cleanup_distributed()


if __name__ == "__main__":
    main()
