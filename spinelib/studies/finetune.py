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
from torch.utils.data import Subset

from spinelib.augment import eval_transform
from spinelib.bootstrap import paired_difference, patient_weights, weighted_confusion
from spinelib.crops.store import CropStore
from spinelib.datasets.discs import RoiDataset, ShiftedRoiDataset
from spinelib.losses.focal import focal_loss
from spinelib.metrics import classification_summary, summary_from_confusion, summary_with_ci
from spinelib.models.encoders import load_encoder_weights, resnet18_encoder
from spinelib.models.heads import DiscClassifier, finetune_param_groups, freeze_encoder_layers
from spinelib.params.contrastive import ClassifierParams
from spinelib.provenance import write_store_provenance
from spinelib.splits import nested_label_subset
from spinelib.train import FitResult, TrainConfig, fit, load_checkpoint, make_loader, resolve_device

CONFIGS: tuple[str, ...] = ("scratch", "linear_probe", "finetune")
ALL_LAYERS = ("conv1", "bn1", "layer1", "layer2", "layer3", "layer4")   # the whole encoder: the linear probe's freeze
# Table 1's columns, in the paper's order (severe_to_normal: share of truly severe discs predicted Normal/Mild)
TABLE_COLUMNS = ("recall_normal_mild", "recall_moderate", "recall_severe", "accuracy", "balanced_accuracy",
                 "severe_to_normal")
SPLITS = ("train", "val", "test")


# ---- the task: loss and validation of one classifier ---------------------------------------------------------------

@dataclass
class ClassifyTask:
    """Weighted focal loss on disc logits; validation reports the Table 1 columns and the loss."""

    alpha: tuple[float, ...]   # per-grade weights (Normal/Mild, Moderate, Severe)
    gamma: float               # focusing exponent: (1 − p_t)^γ down-weights discs already classified well

    def train_step(self, model: torch.nn.Module, batch, device: torch.device) -> torch.Tensor:
        """Focal loss of a batch: images (B, 1, S, S), grades (B,) in {0, 1, 2} (−1: unlabelled, ignored)."""
        images, grades, _ = batch
        return focal_loss(model(images.to(device, non_blocking=True)), grades.to(device), self.alpha, self.gamma)

    def evaluate(self, model: torch.nn.Module, loader, device: torch.device) -> dict[str, float]:
        probs, grades = predict(model, loader, device)
        # focal_loss takes logits; log-probabilities are valid logits (softmax(log p) = p since Σ p = 1), so the
        # validation loss is computed from the probabilities predict() already returns, without a second pass
        logp = torch.log(torch.as_tensor(probs).clamp_min(1e-12))
        loss = focal_loss(logp, torch.as_tensor(grades), self.alpha, self.gamma).item() if len(grades) else np.nan
        return {"val_loss": loss, **classification_summary(grades, probs.argmax(axis=1))}


@torch.no_grad()
def predict(model: torch.nn.Module, loader, device: torch.device) -> tuple[np.ndarray, np.ndarray]:
    """Class probabilities (N, K) and true grades (N,) over a loader of (image, grade, row)."""
    model.eval()
    probs, grades = [], []
    for images, batch_grades, _ in loader:
        # .float(): under AMP the logits may be float16; softmax and the tables want float32
        probs.append(torch.softmax(model(images.to(device)).float(), dim=1).cpu())
        grades.append(batch_grades)
    if not probs:
        return np.zeros((0, 3), np.float32), np.zeros(0, np.int64)
    return torch.cat(probs).numpy(), torch.cat(grades).numpy()


def predict_split(model: DiscClassifier, dataset: RoiDataset, device: str = "auto") -> pd.DataFrame:
    """One row per test disc: study, level, true grade, predicted grade and class probabilities."""
    dev = resolve_device(device)
    # an unshuffled single-process loader keeps the dataset's order, so row i of probs is index row i
    probs, grades = predict(model.to(dev), make_loader(dataset, 256, shuffle=False), dev)
    out = dataset.index[["study_id", "level"]].copy()
    out["grade"], out["predicted"] = grades, probs.argmax(axis=1)
    out[["p_normal_mild", "p_moderate", "p_severe"]] = probs
    return out


# ---- one run: model, data, training -------------------------------------------------------------------------------

def build_classifier(config: str, encoder_file: str | Path | None,
                     hp: ClassifierParams) -> tuple[DiscClassifier, list[dict]]:
    """The model and optimiser parameter groups of one configuration.

    ``scratch``: every layer at ``lr_scratch``; ``linear_probe``: the whole encoder frozen, the head at
    ``lr_head``; ``finetune``: ``frozen_layers`` frozen, the rest of the encoder at ``lr_backbone``, the head at
    ``lr_head``. The configuration and the encoder file are checked before ``hp`` is read.
    """
    if config not in CONFIGS:
        raise ValueError(f"unknown configuration {config!r}; choose one of {CONFIGS}")
    encoder = resnet18_encoder(1)
    if config != "scratch":
        if encoder_file is None or not Path(encoder_file).exists():
            raise FileNotFoundError(f"{config} needs a pretrained encoder; {encoder_file} not found (run stage 02)")
        load_encoder_weights(encoder, encoder_file)
    model = DiscClassifier(encoder, num_classes=3)
    if config == "scratch":
        return model, [{"params": list(model.parameters()), "lr": hp.lr_scratch}]
    if config == "linear_probe":
        freeze_encoder_layers(model, ALL_LAYERS)
        return model, [{"params": [q for q in model.parameters() if q.requires_grad], "lr": hp.lr_head}]
    freeze_encoder_layers(model, tuple(hp.frozen_layers))
    return model, finetune_param_groups(model, lr_backbone=hp.lr_backbone, lr_head=hp.lr_head)


def datasets(store: CropStore, hp: ClassifierParams, split_column: str) -> dict[str, RoiDataset]:
    """Train / val / test ROIs of the condition, deterministic preprocessing only (paper §4.2)."""
    transform = eval_transform(hp.input_size)
    return {split: RoiDataset(store, hp.condition, split, transform, split_column) for split in SPLITS}


def shifted_datasets(store: CropStore, hp: ClassifierParams, split_column: str, margin: int,
                     jitter: int) -> dict[str, ShiftedRoiDataset]:
    """Train ROIs with shift augmentation (uniform ±``jitter`` px), val/test ROIs centred, from wide crops."""
    transform = eval_transform(hp.input_size)
    # validation and test stay centred: the checkpoint is chosen, and the model scored, as for the other rows
    return {split: ShiftedRoiDataset(store, hp.condition, split, transform, margin, split_column,
                                     jitter=jitter if split == "train" else 0)
            for split in SPLITS}


def train_classifier(config: str, data: dict[str, RoiDataset], encoder_file: Path | None, hp: ClassifierParams,
                     seed: int, checkpoint_dir: Path, progress: bool = True) -> tuple[FitResult, DiscClassifier]:
    """Train one configuration with one seed; returns the fit and the model holding the best weights."""
    torch.manual_seed(seed)  # the head's initialisation
    model, groups = build_classifier(config, encoder_file, hp)
    optimizer = torch.optim.AdamW(groups, weight_decay=hp.weight_decay)   # each group carries its own lr
    # mode "max": the plateau is judged on validation balanced accuracy, which should rise
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="max", patience=hp.plateau_patience,
                                                           factor=hp.plateau_factor)
    fit_config = TrainConfig(epochs=hp.epochs, seed=seed, device=hp.device, amp=hp.amp,
                             channels_last=hp.channels_last, monitor="balanced_accuracy", mode="max",
                             checkpoint_dir=checkpoint_dir, progress=progress)
    train = make_loader(data["train"], hp.batch_size, shuffle=True, seed=seed, num_workers=hp.num_workers)
    val = make_loader(data["val"], 256, shuffle=False)   # evaluation only: its batch size changes no result
    task = ClassifyTask(tuple(hp.focal_alpha), hp.focal_gamma)
    result = fit(model, task, train, val, optimizer, fit_config, scheduler)
    model.load_state_dict(result.best_state)   # fit leaves the last epoch's weights; Table 1 uses the best ones
    return result, model


@dataclass
class RunOutcome:
    """What the tables need from one trained run: its test predictions, curves and checkpoint choice."""

    test: pd.DataFrame            # one row per test disc (predict_split's columns)
    history: pd.DataFrame
    best_epoch: int
    best_metric: float            # validation balanced accuracy of the kept checkpoint
    model: DiscClassifier | None  # None when the run was read back without weights


def run_and_predict(config: str, data: dict[str, RoiDataset], encoder_file: Path | None, hp: ClassifierParams,
                    seed: int, checkpoint_dir: Path, keep_weights: bool = True, progress: bool = True) -> RunOutcome:
    """Train (or resume) one run and predict its test split once; the predictions are kept beside the curves.

    With ``keep_weights`` False the checkpoints are deleted once ``test_predictions.csv`` is written (runs that
    nothing reloads: label fractions, the disc-level split), and a later call reads the predictions back
    instead of training again. An interrupted run still resumes from its checkpoints.
    """
    saved = Path(checkpoint_dir) / "test_predictions.csv"
    # predictions without best.pt: a finished run whose weights were dropped; with best.pt, fit() reads the
    # finished (or interrupted) run back itself
    if saved.exists() and not (Path(checkpoint_dir) / "best.pt").exists():
        return _read_back_run(Path(checkpoint_dir))
    result, model = train_classifier(config, data, encoder_file, hp, seed, checkpoint_dir, progress)
    test = predict_split(model, data["test"], hp.device)
    test.to_csv(saved, index=False)
    if not keep_weights:
        for name in ("best.pt", "last.pt"):
            (Path(checkpoint_dir) / name).unlink(missing_ok=True)
    return RunOutcome(test, result.history, result.best_epoch, result.best_metric, model if keep_weights else None)


def _read_back_run(checkpoint_dir: Path) -> RunOutcome:
    """A finished run without weights, from its curves and test predictions."""
    history = pd.read_csv(checkpoint_dir / "history.csv")
    best = int(history["balanced_accuracy"].fillna(-np.inf).to_numpy().argmax())  # fit: the first maximum
    return RunOutcome(pd.read_csv(checkpoint_dir / "test_predictions.csv"), history, best + 1,
                      float(history["balanced_accuracy"].iloc[best]), None)


def load_classifier(checkpoint_dir: Path) -> DiscClassifier:
    """The best checkpoint of a finished run (``best.pt`` written by the training loop)."""
    model = DiscClassifier(resnet18_encoder(1), num_classes=3)
    load_checkpoint(checkpoint_dir / "best.pt", model)
    return model.eval()


def drop_checkpoints(folder: Path) -> int:
    """Delete every ``best.pt`` and ``last.pt`` under ``folder`` (curves and predictions stay); returns the count.

    For runs whose weights nothing reloads once the notebook has used them (the shift-augmented runs, the
    localiser): running their cell again trains them again from scratch, with the same result (same seed).
    """
    paths = [p for name in ("best.pt", "last.pt") for p in Path(folder).rglob(name)]
    for path in paths:
        path.unlink()
    return len(paths)


# ---- Table 1: every configuration x split column x seed ------------------------------------------------------------

def run_experiments(store: CropStore, encoder_dir: Path, out_dir: Path, hp: ClassifierParams,
                    split_columns: dict[str, list[int]], progress: bool = True, keep_weights: str = "split_patient"
                    ) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, pd.DataFrame]]:
    """Every configuration x split column x seed: test metrics, test predictions and training curves.

    ``split_columns`` maps a split column to its seeds. Returns (metrics: one row per run, predictions: one
    row per test disc and run, histories keyed "split/config/seed"). Only the runs of the ``keep_weights``
    split column keep their checkpoints (the shift curve, the label fractions and the predicted-coordinate
    table reload them); the others keep their curves and test predictions (:func:`run_and_predict`).
    """
    metrics, predictions, histories = [], [], {}
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    write_store_provenance(out_dir, store, hp)   # what these classifiers are trained on (read by `spinelib grade`)
    for split_column, seeds in split_columns.items():
        data = datasets(store, hp, split_column)
        # each split column has its own encoder, pretrained on that column's training discs only (stage 02)
        encoder_file = encoder_dir / split_column / "encoder.pt"
        for config in hp.configs:
            for seed in seeds:
                run = f"{split_column}/{config}/seed{seed}"
                outcome = run_and_predict(config, data, encoder_file, hp, seed, out_dir / run,
                                          keep_weights=split_column == keep_weights, progress=progress)
                test = outcome.test.assign(split_column=split_column, config=config, seed=seed)
                metrics.append(_table1_row(split_column, config, seed, outcome, test))
                predictions.append(test)
                histories[run] = outcome.history
    return pd.DataFrame(metrics), pd.concat(predictions, ignore_index=True), histories


def _table1_row(split_column: str, config: str, seed: int, outcome: RunOutcome, test: pd.DataFrame) -> dict:
    """One run's row of the metrics table: its identity, checkpoint choice and test metrics (column order fixed)."""
    summary = classification_summary(test["grade"], test["predicted"])
    return {"split_column": split_column, "config": config, "seed": seed, "best_epoch": outcome.best_epoch,
            "val_balanced_accuracy": outcome.best_metric, **summary}


# ---- label fractions: the same configurations on fewer labels -----------------------------------------------------

def fraction_repeats(fraction: float, equal_steps: bool) -> int:
    """How often an epoch passes over a ``fraction`` label subset: round(1 / fraction), or 1.

    With ``equal_steps`` an epoch on 10 % of the labels shows each of them 10 times, so it takes about as many
    optimiser steps as an epoch on all of them: every fraction gets the 100 % run's steps, learning-rate schedule
    and validations (the comparison is about labels, not about training time).
    """
    return max(1, int(round(1.0 / fraction))) if equal_steps else 1


def run_label_fractions(store: CropStore, encoder_dir: Path, out_dir: Path, hp: ClassifierParams, split_column: str,
                        fractions: list[float], seeds: list[int], equal_steps: bool = True,
                        progress: bool = True) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every configuration trained on nested, grade-stratified subsets of the training labels.

    For each seed the subset of fraction f is :func:`spinelib.splits.nested_label_subset` (the 10 % subset lies
    inside the 25 % one); every configuration of that seed trains on the same subset, starts from the same
    pretrained encoder, is checkpointed on the full validation split and predicts the full test split.
    Fraction 1.0 is the full training split in :func:`run_experiments`' folder ``out_dir/<split column>/<config>/
    seed<k>``, so after that function it is read back, not trained again. Returns (metrics: one row per run,
    predictions: one row per test disc and run), both with a ``fraction`` column.
    """
    data = datasets(store, hp, split_column)
    encoder_file = encoder_dir / split_column / "encoder.pt"
    grades = data["train"].grades.numpy()
    metrics, predictions = [], []
    for fraction in fractions:
        repeats = fraction_repeats(fraction, equal_steps)
        for seed in seeds:
            rows = nested_label_subset(grades, fraction, seed)
            full = fraction >= 1.0   # Table 1's run (same data, seed and folder): resuming it trains nothing
            subset = data if full else _with_training_subset(data, rows, repeats)
            for config in hp.configs:
                run = _fraction_run_dir(out_dir, split_column, config, seed, fraction, full)
                # 100 %: Table 1's run, whose weights the shift curve reloads; fractions keep predictions only
                outcome = run_and_predict(config, subset, encoder_file, hp, seed, run, keep_weights=full,
                                          progress=progress)
                test = outcome.test.assign(fraction=fraction, config=config, seed=seed)
                metrics.append({"fraction": fraction, "config": config, "seed": seed, "labelled_discs": len(rows),
                                "repeats": 1 if full else repeats, "best_epoch": outcome.best_epoch,
                                **classification_summary(test["grade"], test["predicted"])})
                predictions.append(test)
    return pd.DataFrame(metrics), pd.concat(predictions, ignore_index=True)


def _with_training_subset(data: dict[str, RoiDataset], rows: np.ndarray, repeats: int) -> dict:
    """``data`` with its training split cut to ``rows``, each listed ``repeats`` times (validation, test whole).

    The list is tiled ([r1, r2, ..., r1, r2, ...]), so an epoch has ``repeats`` · len(rows) items, about as many
    as the full split (see :func:`fraction_repeats`); the loader's seeded shuffle then orders them.
    """
    return {**data, "train": Subset(data["train"], np.tile(rows, repeats).tolist())}


def _fraction_run_dir(out_dir: Path, split_column: str, config: str, seed: int, fraction: float, full: bool) -> Path:
    """``<split>/<config>/seed<k>`` for 100 % (Table 1's own folder), ``<split>/fraction<pct>/<config>/seed<k>``
    for a subset."""
    name = config if full else f"fraction{round(100 * fraction)}/{config}"
    return out_dir / split_column / name / f"seed{seed}"


# ---- tables -------------------------------------------------------------------------------------------------------

def mean_std_table(metrics: pd.DataFrame) -> pd.DataFrame:
    """Table 1 as 'mean ± std' over seeds, one row per (split column, configuration)."""
    grouped = metrics.groupby(["split_column", "config"], sort=False)[list(TABLE_COLUMNS)]
    mean, std, seeds = grouped.mean(), grouped.std(ddof=1), grouped.size()
    table = mean.round(3).astype(str)
    several = seeds > 1  # one seed has no spread to report
    table[several] = table[several] + " ± " + std[several].round(3).astype(str)
    table["seeds"] = seeds
    return table


def markdown_table(table: pd.DataFrame) -> str:
    """A DataFrame as a GitHub Markdown table (index included)."""
    frame = table.reset_index()
    lines = ["| " + " | ".join(map(str, frame.columns)) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(map(str, row)) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def metrics_json(metrics: pd.DataFrame) -> dict[str, float]:
    """Mean over seeds of each Table 1 column, keyed ``<split column>/<config>/<metric>`` (for dvc metrics)."""
    means = metrics.groupby(["split_column", "config"], sort=False)[list(TABLE_COLUMNS)].mean()
    # JSON has no NaN: a metric undefined on this test split (e.g. no severe disc) is written as null
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


# ---- intervals and paired differences: patients resampled, not discs ----------------------------------------------

def intervals_by(predictions: pd.DataFrame, by: str | list[str] = "config", n_boot: int = 1000, seed: int = 0,
                 level: float = 0.95) -> pd.DataFrame:
    """Table 1 columns with percentile bootstrap intervals per group, resampling patients (``study_id``).

    Index (group, metric), columns value, ci_low, ci_high (see :func:`spinelib.metrics.summary_with_ci`).
    Pass the predictions of one run per group (one split column, one seed).
    """
    return pd.concat({name: summary_with_ci(part["grade"], part["predicted"], n_boot, seed, level,
                                            groups=part["study_id"].to_numpy())
                      for name, part in predictions.groupby(by, sort=False)})


def pooled_table(predictions: pd.DataFrame, by: list[str], runs: list[str], n_boot: int = 1000, seed: int = 0,
                 columns: tuple[str, ...] = ("balanced_accuracy", "severe_to_normal")) -> pd.DataFrame:
    """Per group of ``by``: mean ± std over its runs (``runs`` columns, e.g. seed) and a pooled patient interval.

    ``<metric>_mean``/``_std`` summarise the runs' test metrics; ``<metric>_pooled`` is the metric of all the
    group's predictions together, with a percentile interval (``_low``, ``_high``) that resamples patients over
    the discs of every run at once (a patient's discs of all runs move as one cluster), so it reflects both the
    test-set sampling and the spread between runs.
    """
    rows = []
    for key, part in predictions.groupby(by, sort=False):
        per_run = pd.DataFrame([classification_summary(run["grade"], run["predicted"])
                                for _, run in part.groupby(runs, sort=False)])
        ci = summary_with_ci(part["grade"], part["predicted"], n_boot, seed, groups=part["study_id"].to_numpy())
        # groupby yields a scalar key for one column and a tuple for several: name the group's columns either way
        row = dict(zip(by, key if isinstance(key, tuple) else (key,))) | {"runs": len(per_run)}
        for column in columns:
            row[f"{column}_mean"], row[f"{column}_std"] = per_run[column].mean(), per_run[column].std(ddof=1)
            row[f"{column}_pooled"] = ci.loc[column, "value"]
            row[f"{column}_low"], row[f"{column}_high"] = ci.loc[column, "ci_low"], ci.loc[column, "ci_high"]
        rows.append(row)
    return pd.DataFrame(rows).set_index(by)


def paired_differences(predictions: pd.DataFrame, reference: str, n_boot: int = 1000, seed: int = 0,
                       level: float = 0.95, keys: tuple[str, ...] = ("study_id", "level")) -> pd.DataFrame:
    """Each configuration minus ``reference`` on every Table 1 column, with a paired patient-bootstrap interval.

    Both configurations are scored on their common labelled test rows (``keys``: a disc, or a disc of one seed
    and one shift draw when ``keys`` adds those columns, so that several runs are pooled pair by pair) and on
    the same resamples of patients, so the interval is that of the difference
    (:func:`spinelib.bootstrap.paired_difference`). Index (config, metric); columns diff, low, high,
    excludes_zero.
    """
    runs = _runs_by_config(predictions, reference, list(keys))
    rows = {}
    for config, run in runs.items():
        if config == reference:
            continue
        rows |= _paired_rows(config, run, reference, runs[reference], n_boot, seed, level)
    table = pd.DataFrame.from_dict(rows, orient="index", columns=["diff", "low", "high", "excludes_zero"])
    table.index = pd.MultiIndex.from_tuples(table.index, names=["config", "metric"]) if rows else table.index
    return table


def _runs_by_config(predictions: pd.DataFrame, reference: str, keys: list[str]) -> dict[str, pd.DataFrame]:
    """Each configuration's (grade, predicted) indexed by ``keys``, checked: one prediction per key, the reference
    present, the patient first (the bootstrap resamples the first index level)."""
    if keys[0] != "study_id":
        raise ValueError(f"the first key must be the patient (study_id), got {keys}")
    runs = {config: part.set_index(keys)[["grade", "predicted"]]
            for config, part in predictions.groupby("config", sort=False)}
    if reference not in runs:
        raise ValueError(f"reference configuration {reference!r} not among {list(runs)}")
    for config, run in runs.items():
        if run.index.duplicated().any():
            raise ValueError(f"{config}: several predictions per {keys}; pass one run per config or add keys")
    return runs


def _paired_rows(config: str, run: pd.DataFrame, reference: str, reference_run: pd.DataFrame, n_boot: int,
                 seed: int, level: float) -> dict[tuple[str, str], dict]:
    """``config`` − ``reference`` per Table 1 column, keyed (config, metric), on their common labelled rows."""
    both = reference_run.merge(run, how="inner", left_index=True, right_index=True, suffixes=("_ref", ""))
    both = both[both["grade"] >= 0]   # unlabelled discs (grade −1) score no configuration
    if (both["grade"] != both["grade_ref"]).any():
        raise ValueError(f"{config} and {reference} disagree on the true grade of some discs")
    grade = both["grade"].to_numpy(int)
    # one set of patient resamples (n_boot, rows) for both configurations: what makes the interval paired
    weights = patient_weights(both.index.get_level_values("study_id").to_numpy(), n_boot, seed)
    point = {name: classification_summary(grade, both[column].to_numpy(int))
             for name, column in ((config, "predicted"), (reference, "predicted_ref"))}
    boot = {name: summary_from_confusion(weighted_confusion(grade, both[column].to_numpy(int), 3, weights))
            for name, column in ((config, "predicted"), (reference, "predicted_ref"))}
    return {(config, metric): paired_difference(point[config][metric], point[reference][metric],
                                                boot[config][metric], boot[reference][metric], level)
            for metric in TABLE_COLUMNS}


def differences_by(predictions: pd.DataFrame, by: str, config: str, reference: str, runs: tuple[str, ...] = ("seed",),
                   n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """``config`` − ``reference`` per value of ``by`` (e.g. label fraction, shift distance), runs pooled pair by pair.

    Pairs are (patient, disc, *runs*): the same disc predicted by both configurations in the same seed (and
    draw); see :func:`paired_differences`. Index (``by``, metric); columns diff, low, high, excludes_zero.
    """
    parts = {value: paired_differences(part[part["config"].isin([config, reference])], reference, n_boot, seed,
                                       keys=("study_id", "level", *runs)).loc[config]
             for value, part in predictions.groupby(by, sort=True)}
    return pd.concat(parts, names=[by])
