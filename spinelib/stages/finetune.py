"""Stage 03: disc-level grading from the contrastive encoder (contrastive paper §3.5, §4.4, Table 1).

Three configurations on the same split, same loss and same budget:

* ``scratch``: ResNet-18 from random weights, every layer trained;
* ``linear_probe``: the pretrained encoder frozen, only the linear head trained;
* ``finetune``: the pretrained encoder with layers 1-3 frozen, layer4 at ``lr_backbone``
  (5e-5) and the head at ``lr_head`` (5e-4).

Loss: weighted focal loss (Eq. 2, gamma = 2, alpha = [0.8, 4.0, 5.0]); ReduceLROnPlateau
(patience 4, factor 0.5) on validation balanced accuracy; the checkpoint with the best
validation balanced accuracy is kept; the test split is predicted once, by that checkpoint.

Intervals (:func:`intervals_by`) and differences between configurations
(:func:`paired_differences`) resample patients (``study_id``), not discs: the
discs of one patient are correlated. Differences are paired: both configurations
are scored on the same test discs and the same patient resamples.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from spinelib.augment import eval_transform
from spinelib.crops.store import CropStore
from spinelib.datasets import RoiDataset
from spinelib.losses.focal import focal_loss
from spinelib.bootstrap import paired_difference, patient_weights, weighted_confusion
from spinelib.metrics import classification_summary, summary_from_confusion, summary_with_ci
from spinelib.models.encoders import load_encoder_weights, resnet18_encoder
from spinelib.models.heads import DiscClassifier, finetune_param_groups, freeze_encoder_layers
from spinelib.train import FitResult, TrainConfig, fit, load_checkpoint, make_loader, resolve_device

CONFIGS: tuple[str, ...] = ("scratch", "linear_probe", "finetune")
ALL_LAYERS = ("conv1", "bn1", "layer1", "layer2", "layer3", "layer4")


@dataclass
class ClassifyTask:
    """Weighted focal loss on disc logits; validation reports the Table 1 columns and the loss."""

    alpha: tuple[float, ...]
    gamma: float

    def train_step(self, model: torch.nn.Module, batch, device: torch.device) -> torch.Tensor:
        images, grades, _ = batch
        return focal_loss(model(images.to(device, non_blocking=True)), grades.to(device), self.alpha, self.gamma)

    def evaluate(self, model: torch.nn.Module, loader, device: torch.device) -> dict[str, float]:
        probs, grades = predict(model, loader, device)
        logp = torch.log(torch.as_tensor(probs).clamp_min(1e-12))
        loss = focal_loss(logp, torch.as_tensor(grades), self.alpha, self.gamma).item() if len(grades) else np.nan
        return {"val_loss": loss, **classification_summary(grades, probs.argmax(axis=1))}


@torch.no_grad()
def predict(model: torch.nn.Module, loader, device: torch.device) -> tuple[np.ndarray, np.ndarray]:
    """Class probabilities (N, K) and true grades (N,) over a loader of (image, grade, row)."""
    model.eval()
    probs, grades = [], []
    for images, batch_grades, _ in loader:
        probs.append(torch.softmax(model(images.to(device)).float(), dim=1).cpu())
        grades.append(batch_grades)
    if not probs:
        return np.zeros((0, 3), np.float32), np.zeros(0, np.int64)
    return torch.cat(probs).numpy(), torch.cat(grades).numpy()


def build_classifier(config: str, encoder_file: str | Path | None, hp: dict) -> tuple[DiscClassifier, list[dict]]:
    """The model and optimiser parameter groups of one configuration."""
    if config not in CONFIGS:
        raise ValueError(f"unknown configuration {config!r}; choose one of {CONFIGS}")
    encoder = resnet18_encoder(1)
    if config != "scratch":
        if encoder_file is None or not Path(encoder_file).exists():
            raise FileNotFoundError(f"{config} needs a pretrained encoder; {encoder_file} not found (run stage 02)")
        load_encoder_weights(encoder, encoder_file)
    model = DiscClassifier(encoder, num_classes=3)
    if config == "scratch":
        return model, [{"params": list(model.parameters()), "lr": hp["lr_scratch"]}]
    if config == "linear_probe":
        freeze_encoder_layers(model, ALL_LAYERS)
        return model, [{"params": [q for q in model.parameters() if q.requires_grad], "lr": hp["lr_head"]}]
    freeze_encoder_layers(model, tuple(hp["frozen_layers"]))
    return model, finetune_param_groups(model, lr_backbone=hp["lr_backbone"], lr_head=hp["lr_head"])


def datasets(store: CropStore, hp: dict, split_column: str) -> dict[str, RoiDataset]:
    """Train / val / test ROIs of the condition, deterministic preprocessing only (paper §4.2)."""
    transform = eval_transform(hp["input_size"])
    return {split: RoiDataset(store, hp["condition"], split, transform, split_column)
            for split in ("train", "val", "test")}


def train_classifier(config: str, data: dict[str, RoiDataset], encoder_file: Path | None, hp: dict, seed: int,
                     checkpoint_dir: Path, progress: bool = True) -> tuple[FitResult, DiscClassifier]:
    """Train one configuration with one seed; returns the fit and the model holding the best weights."""
    torch.manual_seed(seed)  # the head's initialisation
    model, groups = build_classifier(config, encoder_file, hp)
    optimizer = torch.optim.AdamW(groups, weight_decay=hp["weight_decay"])
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="max", patience=hp["plateau_patience"],
                                                           factor=hp["plateau_factor"])
    config_ = TrainConfig(epochs=hp["epochs"], seed=seed, device=hp["device"], amp=hp["amp"],
                          channels_last=hp["channels_last"], monitor="balanced_accuracy", mode="max",
                          checkpoint_dir=checkpoint_dir, progress=progress)
    train = make_loader(data["train"], hp["batch_size"], shuffle=True, seed=seed, num_workers=hp["num_workers"])
    val = make_loader(data["val"], 256, shuffle=False)
    task = ClassifyTask(tuple(hp["focal_alpha"]), hp["focal_gamma"])
    result = fit(model, task, train, val, optimizer, config_, scheduler)
    model.load_state_dict(result.best_state)
    return result, model


def predict_split(model: DiscClassifier, dataset: RoiDataset, device: str = "auto") -> pd.DataFrame:
    """One row per test disc: study, level, true grade, predicted grade and class probabilities."""
    dev = resolve_device(device)
    probs, grades = predict(model.to(dev), make_loader(dataset, 256, shuffle=False), dev)
    out = dataset.index[["study_id", "level"]].copy()
    out["grade"], out["predicted"] = grades, probs.argmax(axis=1)
    out[["p_normal_mild", "p_moderate", "p_severe"]] = probs
    return out


TABLE_COLUMNS = ("recall_normal_mild", "recall_moderate", "recall_severe", "accuracy", "balanced_accuracy",
                 "severe_to_normal")


def run_experiments(store: CropStore, encoder_dir: Path, out_dir: Path, hp: dict, split_columns: dict[str, list[int]],
                    progress: bool = True) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, pd.DataFrame]]:
    """Every configuration x split column x seed: test metrics, test predictions and training curves.

    ``split_columns`` maps a split column to its seeds. Returns (metrics: one row per run, predictions: one
    row per test disc and run, histories keyed "split/config/seed").
    """
    metrics, predictions, histories = [], [], {}
    for split_column, seeds in split_columns.items():
        data = datasets(store, hp, split_column)
        encoder_file = encoder_dir / split_column / "encoder.pt"
        for config in hp["configs"]:
            for seed in seeds:
                run = f"{split_column}/{config}/seed{seed}"
                result, model = train_classifier(config, data, encoder_file, hp, seed, out_dir / run, progress)
                test = predict_split(model, data["test"], hp["device"]).assign(
                    split_column=split_column, config=config, seed=seed)
                summary = classification_summary(test["grade"], test["predicted"])
                metrics.append({"split_column": split_column, "config": config, "seed": seed,
                                "best_epoch": result.best_epoch, "val_balanced_accuracy": result.best_metric,
                                **summary})
                predictions.append(test)
                histories[run] = result.history
    return pd.DataFrame(metrics), pd.concat(predictions, ignore_index=True), histories


def mean_std_table(metrics: pd.DataFrame) -> pd.DataFrame:
    """Table 1 as 'mean ± std' over seeds, one row per (split column, configuration)."""
    grouped = metrics.groupby(["split_column", "config"], sort=False)[list(TABLE_COLUMNS)]
    mean, std, seeds = grouped.mean(), grouped.std(ddof=1), grouped.size()
    table = mean.round(3).astype(str)
    several = seeds > 1  # one seed has no spread to report
    table[several] = table[several] + " ± " + std[several].round(3).astype(str)
    table["seeds"] = seeds
    return table


def load_classifier(checkpoint_dir: Path) -> DiscClassifier:
    """The best checkpoint of a finished run (``best.pt`` written by the training loop)."""
    model = DiscClassifier(resnet18_encoder(1), num_classes=3)
    load_checkpoint(checkpoint_dir / "best.pt", model)
    return model.eval()


def markdown_table(table: pd.DataFrame) -> str:
    """A DataFrame as a GitHub Markdown table (index included)."""
    frame = table.reset_index()
    lines = ["| " + " | ".join(map(str, frame.columns)) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(map(str, row)) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def metrics_json(metrics: pd.DataFrame) -> dict[str, float]:
    """Mean over seeds of each Table 1 column, keyed ``<split column>/<config>/<metric>`` (for dvc metrics)."""
    means = metrics.groupby(["split_column", "config"], sort=False)[list(TABLE_COLUMNS)].mean()
    return {f"{split}/{config}/{name}": None if np.isnan(value) else round(float(value), 4)
            for (split, config), row in means.iterrows() for name, value in row.items()}


def summary_by(predictions: pd.DataFrame, by: str | list[str]) -> pd.DataFrame:
    """Table 1 columns computed on the predictions of each group (e.g. per configuration)."""
    rows = {name: classification_summary(part["grade"], part["predicted"])
            for name, part in predictions.groupby(by, sort=False)}
    return pd.DataFrame(rows).T[list(TABLE_COLUMNS)]


def predict_with_checkpoints(models_dir: Path, split_column: str, configs: list[str], seed: int,
                             dataset: RoiDataset, device: str = "auto") -> pd.DataFrame:
    """Test predictions of each configuration's saved best checkpoint on ``dataset`` (e.g. re-cut crops)."""
    return pd.concat([predict_split(load_classifier(models_dir / split_column / config / f"seed{seed}"), dataset,
                                    device).assign(config=config) for config in configs], ignore_index=True)


def intervals_by(predictions: pd.DataFrame, by: str | list[str] = "config", n_boot: int = 1000, seed: int = 0,
                 level: float = 0.95) -> pd.DataFrame:
    """Table 1 columns with percentile bootstrap intervals per group, resampling patients (``study_id``).

    Index (group, metric), columns value, ci_low, ci_high (see :func:`spinelib.metrics.summary_with_ci`).
    Pass the predictions of one run per group (one split column, one seed).
    """
    return pd.concat({name: summary_with_ci(part["grade"], part["predicted"], n_boot, seed, level,
                                            groups=part["study_id"].to_numpy())
                      for name, part in predictions.groupby(by, sort=False)})


def paired_differences(predictions: pd.DataFrame, reference: str, n_boot: int = 1000, seed: int = 0,
                       level: float = 0.95) -> pd.DataFrame:
    """Each configuration minus ``reference`` on every Table 1 column, with a paired patient-bootstrap interval.

    Both configurations are scored on their common labelled test discs (``study_id``, ``level``) and on the
    same resamples of patients, so the interval is that of the difference
    (:func:`spinelib.bootstrap.paired_difference`). Index (config, metric); columns diff, low, high,
    excludes_zero. Pass one run per configuration.
    """
    keys = ["study_id", "level"]
    runs = {config: part.set_index(keys)[["grade", "predicted"]]
            for config, part in predictions.groupby("config", sort=False)}
    if reference not in runs:
        raise ValueError(f"reference configuration {reference!r} not among {list(runs)}")
    for config, run in runs.items():
        if run.index.duplicated().any():
            raise ValueError(f"{config}: several predictions per disc; pass one run (split column, seed) per config")
    rows = {}
    for config, run in runs.items():
        if config == reference:
            continue
        both = runs[reference].merge(run, how="inner", left_index=True, right_index=True, suffixes=("_ref", ""))
        both = both[both["grade"] >= 0]
        if (both["grade"] != both["grade_ref"]).any():
            raise ValueError(f"{config} and {reference} disagree on the true grade of some discs")
        grade = both["grade"].to_numpy(int)
        weights = patient_weights(both.index.get_level_values("study_id").to_numpy(), n_boot, seed)
        point = {name: classification_summary(grade, both[column].to_numpy(int))
                 for name, column in ((config, "predicted"), (reference, "predicted_ref"))}
        boot = {name: summary_from_confusion(weighted_confusion(grade, both[column].to_numpy(int), 3, weights))
                for name, column in ((config, "predicted"), (reference, "predicted_ref"))}
        for metric in TABLE_COLUMNS:
            rows[(config, metric)] = paired_difference(point[config][metric], point[reference][metric],
                                                       boot[config][metric], boot[reference][metric], level)
    table = pd.DataFrame.from_dict(rows, orient="index", columns=["diff", "low", "high", "excludes_zero"])
    table.index = pd.MultiIndex.from_tuples(table.index, names=["config", "metric"]) if rows else table.index
    return table
