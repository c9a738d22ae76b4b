"""Stage 03b: the disc localisation module (contrastive paper §3.2, §4.5).

A ResNet-18 on a 2.5D input (three consecutive sagittal T2 slices, whole
image resized) with the disc level embedded in 32 dimensions, FC 256 with
dropout 0.5, regressing the normalised (x, y) of the disc's spinal canal
coordinate; Smooth L1 loss, AdamW (lr 1e-4, weight decay 0.01),
ReduceLROnPlateau (patience 3, factor 0.1) on the validation loss.
Reported: RMSE in native pixels on the test split, and the predicted
coordinates so crops can be cut where the model, not the annotator, points.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from spinelib.crops.extract import extract_crops
from spinelib.crops.plan import CropConfig
from spinelib.crops.store import CropStore, open_store
from spinelib.datasets.discs import LocaliserDataset
from spinelib.models.heads import Localiser
from spinelib.params.contrastive import LocaliserParams
from spinelib.paths import resolve
from spinelib.provenance import write_store_provenance
from spinelib.studies.finetune import predict_split
from spinelib.train import FitResult, TrainConfig, fit, make_loader, resolve_device


@dataclass
class LocaliseTask:
    """Smooth L1 on normalised coordinates; validation reports the loss and the RMSE in native pixels."""

    sizes: torch.Tensor  # (N, 2) native (width, height) of each validation row, to turn errors into pixels

    def train_step(self, model: torch.nn.Module, batch, device: torch.device) -> torch.Tensor:
        # images (B, 3, H, W): three consecutive slices; levels (B,) level index; targets (B, 2) in [0, 1]
        images, levels, targets, _ = batch
        return F.smooth_l1_loss(model(images.to(device), levels.to(device)), targets.to(device))

    def evaluate(self, model: torch.nn.Module, loader, device: torch.device) -> dict[str, float]:
        predicted, targets, rows = predict(model, loader, device)
        if len(rows) == 0:
            return {"val_loss": float("nan"), "rmse_px": float("nan")}
        loss = F.smooth_l1_loss(torch.as_tensor(predicted), torch.as_tensor(targets)).item()
        # ``rows`` are the validation dataset's row numbers, so each error is scaled by its own image's size
        return {"val_loss": loss, "rmse_px": rmse_pixels(predicted, targets, self.sizes[rows].numpy())}


def rmse_pixels(predicted: np.ndarray, targets: np.ndarray, sizes: np.ndarray) -> float:
    """sqrt(mean over discs of the squared Euclidean error), errors scaled by each image's (width, height).

    ``predicted``, ``targets``: (N, 2) normalised (x, y); ``sizes``: (N, 2) native (width, height) in px.
    RMSE = sqrt(1/N · Σ_i ‖(p_i − t_i) ⊙ s_i‖²), the error of each disc in its own image's pixels.
    """
    error = (predicted - targets) * sizes
    return float(np.sqrt(np.mean(np.sum(error**2, axis=1))))


@torch.no_grad()
def predict(model: torch.nn.Module, loader, device: torch.device) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Predicted and true normalised coordinates, (N, 2) each, and the N dataset rows, over a loader.

    The rows say which dataset item each prediction belongs to (a sharded or shuffled loader need not keep the
    dataset's order); an empty loader gives empty arrays of the same shapes.
    """
    model.eval()
    predicted, targets, rows = [], [], []
    for images, levels, target, row in loader:
        predicted.append(model(images.to(device), levels.to(device)).float().cpu())
        targets.append(target)
        rows.append(row)
    if not rows:
        return np.zeros((0, 2)), np.zeros((0, 2)), np.zeros(0, dtype=np.int64)
    return torch.cat(predicted).numpy(), torch.cat(targets).numpy(), torch.cat(rows).numpy()


def _sizes(dataset: LocaliserDataset) -> torch.Tensor:
    """(N, 2) float native (width, height) of each of the dataset's N images, in dataset row order."""
    return torch.as_tensor(dataset.index[["width", "height"]].to_numpy(), dtype=torch.float32)


def train_localiser(store: CropStore, hp: LocaliserParams, split_column: str, checkpoint_dir: Path,
                    progress: bool = True) -> tuple[FitResult, Localiser, dict[str, LocaliserDataset]]:
    """Train the localiser on one split column's training discs; returns the fit, best model and datasets.

    ``hp`` is the ``localiser`` section of params/finetune.yaml.
    """
    data = {split: LocaliserDataset(store, split, split_column) for split in ("train", "val", "test")}
    torch.manual_seed(hp.seed)   # the initial weights: the same whatever ran before in this process
    # five lumbar levels (L1/L2 .. L5/S1), each embedded in level_dim dimensions beside the image features
    model = Localiser(num_levels=5, level_dim=hp.level_dim, hidden=hp.hidden, dropout=hp.dropout)
    optimizer = torch.optim.AdamW(model.parameters(), lr=hp.lr, weight_decay=hp.weight_decay)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", patience=hp.plateau_patience,
                                                           factor=hp.plateau_factor)
    config = TrainConfig(epochs=hp.epochs, seed=hp.seed, device=hp.device, amp=hp.amp,
                         channels_last=hp.channels_last, monitor="val_loss", mode="min",
                         checkpoint_dir=checkpoint_dir, progress=progress)
    train = make_loader(data["train"], hp.batch_size, shuffle=True, seed=hp.seed, num_workers=hp.num_workers)
    val = make_loader(data["val"], 64, shuffle=False)   # evaluation only: its batch size changes no result
    result = fit(model, LocaliseTask(_sizes(data["val"])), train, val, optimizer, config, scheduler)
    model.load_state_dict(result.best_state)   # fit leaves the last epoch's weights; keep the best validation loss
    write_store_provenance(checkpoint_dir, store, hp)
    return result, model, data


def predicted_coordinates(model: Localiser, dataset: LocaliserDataset, device: str = "auto") -> pd.DataFrame:
    """Per disc: annotated and predicted (x, y) in native pixels of the annotated instance, and the error."""
    dev = resolve_device(device)
    predicted, targets, rows = predict(model.to(dev), make_loader(dataset, 64, shuffle=False), dev)
    sizes = _sizes(dataset).numpy()[rows]    # (N, 2): back from normalised to native pixels
    columns = ["study_id", "condition", "level", "x", "y", "width", "height"]
    out = dataset.index.iloc[rows][columns].reset_index(drop=True)
    out[["x_predicted", "y_predicted"]] = predicted * sizes
    out["error_px"] = np.hypot(out["x_predicted"] - out["x"], out["y_predicted"] - out["y"])
    return out


def rmse_of(coordinates: pd.DataFrame) -> float:
    """RMSE (px) of the Euclidean distance between predicted and annotated points."""
    return float(np.sqrt(np.mean(coordinates["error_px"] ** 2))) if len(coordinates) else float("nan")


def _recut_rois(store: CropStore, condition: str, out_dir: Path, coordinates: pd.DataFrame | None = None,
                margin: int = 0) -> CropStore:
    """ROIs of ``condition`` cut again from ``store``'s data root with its split and crop settings.

    ``coordinates`` (study_id, condition, level, x, y) replaces the annotated points; ``margin`` widens the ROI
    by that many px on every side (the window at offset 0 is the original ROI).
    """
    built = store.config()   # how the store was made: data root, split, crop settings (reused, so ROIs match)
    height, width = built["crops"]["roi_size"]
    # only this condition's ROIs (and, below, only the ROI kind): nothing else of the store is needed again
    config = CropConfig(**{**built["crops"], "roi_conditions": (condition,),
                           "roi_size": (height + 2 * margin, width + 2 * margin)})
    # same split unit, fractions and seed: every disc lands in the split it had in ``store``
    extract_crops(resolve(built["data_root"]), out_dir, config, split_unit=built["split_unit"],
                  fractions=tuple(built["fractions"]), seed=built["seed"], progress=False, kinds=("roi",),
                  coordinates=coordinates)
    return open_store(out_dir)


def crops_at_predictions(store: CropStore, coordinates: pd.DataFrame, condition: str, out_dir: Path) -> CropStore:
    """ROIs of ``condition`` re-cut at the predicted points, same data root, split and crop sizes as ``store``."""
    # extract_crops reads the point from columns x, y: hand it the predicted point under those names
    predicted = coordinates[["study_id", "condition", "level"]].assign(x=coordinates["x_predicted"],
                                                                       y=coordinates["y_predicted"])
    return _recut_rois(store, condition, out_dir, predicted)


def wide_rois(store: CropStore, condition: str, margin: int, out_dir: Path) -> CropStore:
    """ROIs of ``condition`` at the annotated points, ``margin`` px wider on every side (every split).

    Read by :class:`spinelib.datasets.discs.ShiftedRoiDataset`: windows of the original size moved by a controlled
    offset (the shift curve) or a random one (shift augmentation), with real anatomy, not padding, at the edge.
    """
    return _recut_rois(store, condition, out_dir, margin=margin)


def random_offsets(n: int, distance: float, seed: int) -> np.ndarray:
    """(n, 2) integer offsets (dx, dy) of length ``distance`` px in uniformly random directions.

    (dx, dy) = round(distance · (cos θ, sin θ)), θ ~ U[0, 2π) from ``np.random.default_rng(seed)``.
    """
    theta = np.random.default_rng(seed).uniform(0.0, 2.0 * np.pi, n)   # (n,) one direction per disc
    # whole pixels: the shifted window is cut from the stored crop by integer slicing
    return np.rint(distance * np.stack([np.cos(theta), np.sin(theta)], axis=1)).astype(np.int64)


@torch.no_grad()
def shift_predictions(models: dict[tuple[str, int], torch.nn.Module], make_dataset, n: int,
                      distances: list[float], draws: int, seed: int = 0, device: str = "auto") -> pd.DataFrame:
    """Test predictions of every model on ROIs whose centre is moved by each distance (the shift curve).

    ``models`` maps (config, seed) to a classifier; ``make_dataset(offsets)`` returns the test
    :class:`~spinelib.datasets.discs.ShiftedRoiDataset` with those (n, 2) offsets. Distance 0 is drawn once, every other
    distance ``draws`` times (directions from ``(seed, distance, draw)``); every model sees the same shifted ROIs.
    One row per (config, seed, distance, draw, disc): study_id, level, grade, predicted.
    """
    rows = []
    for distance in distances:
        for draw in range(1 if distance == 0 else draws):   # distance 0 has one direction only: the centre
            # one seed per (seed, distance, draw): a draw's directions do not depend on which distances are listed
            offsets = random_offsets(n, distance, int(np.random.default_rng([seed, int(distance * 100), draw])
                                                      .integers(1 << 31)))
            dataset = make_dataset(offsets)
            for (config, model_seed), model in models.items():
                rows.append(predict_split(model, dataset, device)[["study_id", "level", "grade", "predicted"]]
                            .assign(config=config, seed=model_seed, distance=distance, draw=draw))
    return pd.concat(rows, ignore_index=True)


def level_errors(coordinates: pd.DataFrame) -> pd.DataFrame:
    """Each predicted point classed as right-level or wrong-level, with its error.

    ``coordinates`` (from :func:`predicted_coordinates`) holds the annotated (x, y) of every level of the test
    studies; a prediction is *wrong-level* when it lies nearer to another level's annotated point of the same
    study than to its own. Adds ``nearest_level`` and ``wrong_level``.
    """
    out = coordinates.reset_index(drop=True)   # a 0..N-1 index, so that a study's index addresses ``nearest``
    nearest = np.empty(len(out), dtype=object)
    for _, study in out.groupby(["study_id", "condition"], sort=False):
        # (predictions, annotated points) distances within one study: row i's nearest annotated level
        distance = np.hypot(study["x_predicted"].to_numpy()[:, None] - study["x"].to_numpy()[None, :],
                            study["y_predicted"].to_numpy()[:, None] - study["y"].to_numpy()[None, :])
        nearest[study.index] = study["level"].to_numpy()[distance.argmin(axis=1)]
    out["nearest_level"] = nearest
    out["wrong_level"] = out["nearest_level"] != out["level"]
    return out


def level_error_table(errors: pd.DataFrame) -> pd.DataFrame:
    """Discs, share, median and 90th-percentile error (px) of right-level and wrong-level predictions."""
    groups = errors.groupby(errors["wrong_level"].map({False: "right level", True: "wrong level"}))["error_px"]
    table = pd.DataFrame({"discs": groups.size(), "median_px": groups.median(), "p90_px": groups.quantile(0.9)})
    table.insert(1, "share", table["discs"] / table["discs"].sum())
    return table.rename_axis("prediction")
