"""Stage 2 of the multi-stage paper (notebook 09): severity by Bi-LSTM attention MIL, one model per bag kind,
its training, prediction and evaluation (multi-stage paper §2.2.2–2.2.3).

Kinds: ``bag_scs`` (spinal canal, Sagittal T2), ``bag_nfn`` (both foramina,
Sagittal T1), ``bag_ss`` (both subarticular sides, Axial T2, left mirrored).
Loss L = CE(logits, grade; class weights) + λ · CE(aux scores, key slice);
checkpoint chosen on the validation split by the competition's weighted log
loss (weights 1/2/4). Evaluation: the grading metrics of the other studies
per condition and level, and the competition metric.

Intervals of the grading metrics (:func:`metrics_by` with ``n_boot``) resample
patients (``study_id``), not discs; :func:`paired_metrics_by` compares two
sets of predictions (e.g. annotated vs predicted points) on their common discs
and the same patient resamples.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from spinelib.bootstrap import bootstrap_ordinal_weighted, paired_difference, patient_weights, percentile_interval
from spinelib.competition import (GRADE_WEIGHTS, PROBABILITY_COLUMNS, bootstrap_scores, competition_score,
                                  study_terms, weighted_log_loss)
from spinelib.constants import CONDITIONS, LEVELS
from spinelib.crops.bags import BagConfig
from spinelib.data.cohort import fold_of
from spinelib.datasets.bags import BagDataset
from spinelib.losses.mil import mil_loss
from spinelib.metrics import ORDINAL_COLUMNS, boundary_scores_from_proba, ordinal_summary
from spinelib.models.mil import MILGrader
from spinelib.params.multistage import MilParams
from spinelib.train import TrainConfig, fit, load_checkpoint, make_loader

KINDS = ("bag_scs", "bag_nfn", "bag_ss")   # spinal canal, neural foramina, subarticular: one model each


# ---- bags and models from the parameters -------------------------------------------------------------------------

def bag_config(p: MilParams) -> BagConfig:
    """The bag geometry of notebook 09's parameters."""
    return BagConfig(bag_slices=p.bag_slices, max_shift=p.max_shift, margin=p.margin,
                     scale=dict(p.crop_scale), ranges={k: tuple(v) for k, v in p.ranges.items()})


MODEL_KEYS = ("lstm_hidden", "lstm_layers", "lstm_dropout", "head_dropout", "aggregator", "shared_attention",
              "encoder_width")


def model_settings(p: MilParams) -> dict[str, Any]:
    """The model settings (:data:`MODEL_KEYS`, in that order) that ``config.json`` stores and :func:`build_grader`
    reads."""
    return {k: getattr(p, k) for k in MODEL_KEYS}


def build_grader(settings: Mapping[str, Any], encoder: str) -> MILGrader:
    """A MIL grader with the model settings ``settings`` (:data:`MODEL_KEYS`: :func:`model_settings`, or the
    ``model`` entry of a ``config.json`` read back)."""
    return MILGrader(encoder, 1, 3, settings["lstm_hidden"], settings["lstm_layers"], settings["lstm_dropout"],
                     settings["head_dropout"], aggregator=settings["aggregator"],
                     shared_attention=settings["shared_attention"], encoder_width=settings["encoder_width"])


# ---- training -------------------------------------------------------------------------------------------------------


@dataclass
class MILTask:
    """CE + λ · auxiliary CE; validation: weighted log loss (the competition's per-row weighting) and BA."""

    aux_weight: float
    class_weights: torch.Tensor

    def train_step(self, model: nn.Module, batch, device: torch.device) -> torch.Tensor:
        bags, grade, key, _ = batch
        out = model(bags.to(device))
        return mil_loss(out, grade.to(device), key.to(device), self.aux_weight, self.class_weights.to(device))

    def evaluate(self, model: nn.Module, loader, device: torch.device) -> dict[str, float]:
        proba, grades = [], []
        for bags, grade, _, _ in loader:
            proba.append(torch.softmax(model(bags.to(device))["logits"].float(), -1).cpu().numpy())
            grades.append(grade.numpy())
        proba, grades = np.concatenate(proba), np.concatenate(grades)       # (N, 3), (N,)
        # BA of the arg-max grade; AUC etc. from the two boundary scores P(grade > 0), P(grade > 1)
        metrics = ordinal_summary(grades, proba.argmax(1), boundary_scores_from_proba(proba), 3)
        return {"val_wll": weighted_log_loss(grades, proba, GRADE_WEIGHTS), "val_ba": metrics["balanced_accuracy"]}


def labelled(sources: np.ndarray, index: pd.DataFrame, split: str | None = None) -> tuple[np.ndarray, pd.DataFrame]:
    """Rows whose region was made and whose grade is known (optionally of one split)."""
    keep = (index["status"] == "ok") & index["grade_index"].notna()
    if split is not None:
        keep &= index["split"] == split
    rows = np.flatnonzero(keep.to_numpy())
    return sources[rows], index.iloc[rows].reset_index(drop=True)


AUGMENT_KEYS = ("brightness_contrast_p", "brightness", "contrast", "shift_scale_rotate_p", "ssr_shift", "ssr_scale",
                "ssr_rotate")   # the post-crop augmentation settings BagDataset reads


def train_grader(train: tuple[np.ndarray, pd.DataFrame], held: tuple[np.ndarray, pd.DataFrame], cfg: BagConfig,
                 p: MilParams, encoder: str, epochs: int, shift_probabilities: list[float] | None, folder: Path,
                 progress: bool = True):
    """Train one MIL model on ``train`` (regions, index), checkpoint by the weighted log loss on ``held``.

    ``epochs`` is given apart from ``p`` because notebook 09 sets it per bag kind.
    """
    (train_x, train_i), (val_x, val_i) = train, held
    condition = train_i["condition"].iloc[0]
    augment = {k: getattr(p, k) for k in AUGMENT_KEYS}
    # training bags are jittered and augmented; validation bags are cut exactly at their points
    train = BagDataset(train_x, train_i["grade_index"].to_numpy(int), cfg, condition, shift_probabilities, augment)
    val = BagDataset(val_x, val_i["grade_index"].to_numpy(int), cfg, condition)
    torch.manual_seed(p.seed)   # initial weights: torch's default seed differs per process
    model = build_grader(model_settings(p), encoder)
    optimizer = torch.optim.AdamW(model.parameters(), lr=p.lr, weight_decay=p.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(epochs, 1))
    has_val = len(val) > 0
    config = TrainConfig(epochs=epochs, seed=p.seed, device=p.device, amp=p.amp, channels_last=p.channels_last,
                         monitor="val_wll" if has_val else "train_loss", mode="min", checkpoint_dir=folder,
                         grad_clip=p.grad_clip, progress=progress)
    task = MILTask(p.aux_weight, torch.tensor(p.class_weights, dtype=torch.float32))
    result = fit(model, task, make_loader(train, p.batch_size, shuffle=True, seed=p.seed),
                 make_loader(val, p.batch_size, shuffle=False) if has_val else None, optimizer, config, scheduler)
    model.load_state_dict(result.best_state)
    (Path(folder) / "last.pt").unlink(missing_ok=True)  # finished: best.pt and history.csv are kept
    return model, result


# ---- prediction -----------------------------------------------------------------------------------------------------

@torch.no_grad()
def predict_bags(models: list[nn.Module], bags: torch.Tensor | np.ndarray,
                 batch_size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """Mean probabilities (N, 3) over models and the first model's primary attention (N, n) for bags (N, n, 1, h, w)."""
    bags = torch.as_tensor(bags)
    proba, attention = [], []
    for m, model in enumerate(models):
        model.eval()
        outs = [model(bags[s:s + batch_size]) for s in range(0, len(bags), batch_size)]
        proba.append(torch.cat([torch.softmax(o["logits"], -1) for o in outs]).numpy())
        if m == 0:
            attention = torch.cat([o["attention"] for o in outs]).numpy()
    return np.mean(proba, axis=0), attention


def dataset_bags(dataset: BagDataset) -> torch.Tensor:
    """All bags of a dataset stacked (no jitter there: the bags at the points)."""
    return torch.stack([dataset[i][0] for i in range(len(dataset))]) if len(dataset) else torch.zeros(0)


def predict_rows(models: list[nn.Module], sources: np.ndarray, index: pd.DataFrame, cfg: BagConfig) -> pd.DataFrame:
    """``index`` rows with the three probabilities and the attention over the bag's slices."""
    condition = index["condition"].iloc[0] if len(index) else CONDITIONS[0]
    dataset = BagDataset(sources, np.zeros(len(sources), dtype=int), cfg, condition)
    proba, attention = np.zeros((0, 3)), np.zeros((0, 1))
    if len(dataset):
        proba, attention = predict_bags(models, dataset_bags(dataset))
    out = index.copy()
    out[list(PROBABILITY_COLUMNS)] = proba.astype(np.float64)
    out["attention"] = [json.dumps(np.round(a, 4).tolist()) for a in attention]
    return out


# ---- evaluation -----------------------------------------------------------------------------------------------------

def grade_prior(labels: pd.DataFrame) -> pd.DataFrame:
    """Grade frequencies per condition and level on the labels given (e.g. the training split), Laplace-smoothed."""
    rows = []
    for condition in CONDITIONS:
        for level in LEVELS:
            grades = labels.loc[(labels["condition"] == condition) & (labels["level"] == level), "grade_index"].dropna()
            counts = np.bincount(grades.astype(int), minlength=3) + 1.0
            proba = dict(zip(PROBABILITY_COLUMNS, counts / counts.sum()))
            rows.append({"condition": condition, "level": level, **proba})
    return pd.DataFrame(rows)


def _graded(group: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(true grade, predicted grade, boundary scores) of labelled prediction rows."""
    proba = group[list(PROBABILITY_COLUMNS)].to_numpy(float)
    return group["grade_index"].to_numpy(int), proba.argmax(1), boundary_scores_from_proba(proba)


def _point_and_boot(group: pd.DataFrame, weights: np.ndarray | None) -> tuple[dict, dict | None]:
    """ordinal_summary of the rows, and the same metrics on each resample of ``weights`` (None: no resampling)."""
    y, pred, scores = _graded(group)
    point = ordinal_summary(y, pred, scores, 3)
    if weights is None:
        return point, None
    return point, bootstrap_ordinal_weighted(y, pred, 3, weights, scores)


def metrics_by(predictions: pd.DataFrame, by: list[str], n_boot: int = 0, seed: int = 0,
               level: float = 0.95) -> pd.DataFrame:
    """BA, ROC-AUC, QWK, MAE, MCC (and n) per group of labelled predictions.

    With ``n_boot`` > 0, also ``<metric>_low`` / ``<metric>_high``: percentile intervals from
    ``n_boot`` resamples of the group's patients (``study_id``; all discs of a drawn patient come along).
    """
    rows = {}
    for key, group in predictions.dropna(subset=["grade_index"]).groupby(by, sort=False):
        weights = patient_weights(group["study_id"].to_numpy(), n_boot, seed) if n_boot > 0 else None
        point, boot = _point_and_boot(group, weights)
        row = {**point, "n": len(group)}
        if boot is not None:
            for name in ORDINAL_COLUMNS:
                row[f"{name}_low"], row[f"{name}_high"] = percentile_interval(boot[name], level)
        rows[key if len(by) > 1 else key[0]] = row
    table = pd.DataFrame(rows).T
    table.index.names = by
    return table


def paired_metrics_by(predictions: pd.DataFrame, by: list[str], column: str = "coordinates", a: str = "annotated",
                      b: str = "predicted", n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> pd.DataFrame:
    """Metric of a minus metric of b per group, on the labelled rows both graded, with a paired patient interval.

    ``column`` tells the two sets apart (rows with value ``a`` or ``b``); rows are matched by
    (study_id, condition, level), and both sets are scored on the same patient resamples
    (:func:`spinelib.bootstrap.paired_difference`). Index: ``by`` + metric; columns diff, low, high,
    excludes_zero and n (the common discs of the group).
    """
    keys = ["study_id", "condition", "level"]
    labelled_rows = predictions.dropna(subset=["grade_index"])
    sides = {name: labelled_rows[labelled_rows[column] == name] for name in (a, b)}
    for name, side in sides.items():
        if side.duplicated(keys).any():
            raise ValueError(f"{column} = {name!r}: several predictions for one (study_id, condition, level)")
    common = sides[a][keys + [c for c in by if c not in keys]].merge(sides[b][keys], on=keys)
    rows = []
    for key, group in common.groupby(by, sort=False):
        key = key if isinstance(key, tuple) else (key,)
        weights = patient_weights(group["study_id"].to_numpy(), n_boot, seed)
        scored = {name: _point_and_boot(group.merge(side, on=keys, how="left"), weights)
                  for name, side in sides.items()}
        for name in ORDINAL_COLUMNS:
            (point_a, boot_a), (point_b, boot_b) = scored[a], scored[b]
            rows.append({**dict(zip(by, key)), "metric": name, "n": len(group),
                         **paired_difference(point_a[name], point_b[name], boot_a[name], boot_b[name], level)})
    table = pd.DataFrame(rows, columns=[*by, "metric", "diff", "low", "high", "excludes_zero", "n"])
    return table.set_index([*by, "metric"])


def submission_score(predictions: pd.DataFrame, labels: pd.DataFrame, prior: pd.DataFrame) -> dict[str, float]:
    """Competition metric over every labelled row of the studies in ``labels``; rows not predicted get the prior."""
    solution, submission, missing = scored_rows(predictions, labels, prior)
    return {**competition_score(solution, submission), "rows_from_prior": missing}


def scored_rows(predictions: pd.DataFrame, labels: pd.DataFrame,
                prior: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    """(solution, submission, rows filled from the prior) of the labelled rows, as the competition scores them."""
    keys = ["study_id", "condition", "level"]
    rows = labels[keys + ["grade_index"]].merge(predictions[keys + list(PROBABILITY_COLUMNS)], on=keys, how="left")
    rows[list(PROBABILITY_COLUMNS)] = rows[list(PROBABILITY_COLUMNS)].astype(np.float64)
    filled = rows[keys].merge(prior, on=["condition", "level"], how="left")
    missing = rows["normal_mild"].isna()
    rows.loc[missing, list(PROBABILITY_COLUMNS)] = filled.loc[missing, list(PROBABILITY_COLUMNS)].to_numpy()
    proba = rows[list(PROBABILITY_COLUMNS)].to_numpy(float)
    rows[list(PROBABILITY_COLUMNS)] = proba / proba.sum(axis=1, keepdims=True)
    row_id = rows["study_id"].astype(str) + "_" + rows["condition"] + "_" + rows["level"]
    return (pd.DataFrame({"row_id": row_id, "grade_index": rows["grade_index"]}),
            rows[list(PROBABILITY_COLUMNS)].assign(row_id=row_id), int(missing.sum()))


def paired_score_differences(predictions: pd.DataFrame, labels: pd.DataFrame, prior: pd.DataFrame,
                             column: str = "model", reference: str = "full", n_boot: int = 1000, seed: int = 0,
                             level: float = 0.95) -> pd.DataFrame:
    """Competition score of each ``column`` value minus the ``reference``'s, per coordinates, with paired intervals.

    ``predictions`` holds rows of every model (``column``) and ``coordinates``; each model's rows are scored as
    :func:`submission_score` does. The studies of ``labels`` are resampled with replacement (one study per
    patient: the patient bootstrap), the same resamples for every model, and each resample is rescored exactly
    from per-study loss terms (:func:`spinelib.competition.bootstrap_scores`). Index (model, coordinates); columns
    score, reference_score, diff, low, high, excludes_zero (a positive diff: the model scores worse, lower is
    better).
    """
    studies = np.sort(labels["study_id"].unique())
    weights = patient_weights(studies, n_boot, seed)            # (n_boot, S): one study per patient
    rows = []
    for coordinates, group in predictions.groupby("coordinates", sort=False):
        scored = {}
        for model, part in group.groupby(column, sort=False):
            terms = study_terms(*scored_rows(part, labels, prior)[:2]).reindex(studies, fill_value=0.0)
            point = float(bootstrap_scores(terms, np.ones((1, len(terms))))[0])   # every study once: the score
            scored[model] = (point, bootstrap_scores(terms, weights))
        if reference not in scored:
            raise KeyError(f"no {column} {reference!r} among {list(scored)} ({coordinates} points)")
        for model, (point, boot) in scored.items():
            if model == reference:
                continue
            difference = paired_difference(point, scored[reference][0], boot, scored[reference][1], level)
            rows.append({column: model, "coordinates": coordinates, "score": point,
                         "reference_score": scored[reference][0], **difference})
    return pd.DataFrame(rows).set_index([column, "coordinates"])


# ---- training every kind, and reading the models back ---------------------------------------------------------------

def train_graders(sources: dict[str, tuple[np.ndarray, pd.DataFrame]], cfg: BagConfig, p: MilParams,
                  shift_probabilities: list[float] | None, out_dir: Path, progress: bool = True):
    """One model per kind, encoder and fold (fold f holds out a part of the training patients; one fold: the val split).

    ``shift_probabilities`` None trains without the pre-crop jitter (the no-jitter ablation).

    Writes ``config.json`` (bag geometry, model settings, checkpoints) for :func:`load_graders`.
    """
    out_dir = Path(out_dir)
    models, histories, checkpoints = {}, {}, {}
    for kind, (regions, index) in sources.items():
        x, i = labelled(regions, index)
        for encoder in p.encoders:
            for fold in range(p.folds):
                # ---- which labelled bags train and which choose the checkpoint ----
                if p.folds == 1:
                    train, held = (i["split"] == "train").to_numpy(), (i["split"] == "val").to_numpy()
                else:
                    in_fold = fold_of(i["study_id"], p.folds, p.seed) == fold
                    held = ((i["split"] == "train") & in_fold).to_numpy()
                    train = (i["split"] == "train").to_numpy() & ~held
                if not train.any():
                    continue
                folder = out_dir / kind / encoder / f"fold{fold}"
                model, result = train_grader((x[train], i[train].reset_index(drop=True)),
                                             (x[held], i[held].reset_index(drop=True)), cfg, p, encoder,
                                             p.epochs[kind],   # epochs per bag kind
                                             shift_probabilities, folder, progress)
                models.setdefault(kind, []).append(model.eval())
                histories[f"{kind}/{encoder}/fold{fold}"] = result.history
                checkpoints.setdefault(kind, []).append([encoder, str(folder.relative_to(out_dir) / "best.pt")])
    # ---- config.json: everything load_graders needs to rebuild the models ----
    config = {"bags": {"bag_slices": cfg.bag_slices, "max_shift": cfg.max_shift, "margin": cfg.margin,
                       "scale": cfg.scale, "ranges": cfg.ranges},
              "model": model_settings(p), "checkpoints": checkpoints,
              "shift_probabilities": shift_probabilities}
    (out_dir / "config.json").write_text(json.dumps(config, indent=2))
    return models, histories


def load_graders(folder: Path) -> tuple[dict[str, list[MILGrader]], BagConfig, pd.DataFrame]:
    """MIL models by kind from ``folder/config.json``, the bag configuration and the grade prior."""
    folder = Path(folder)
    path = folder / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no MIL config; run notebook 09 (`dvc repro mil`) first")
    config = json.loads(path.read_text())
    # JSON has no tuples: the Table 1 ranges come back as lists
    cfg = BagConfig(**{**config["bags"], "ranges": {k: tuple(v) for k, v in config["bags"]["ranges"].items()}})
    models = {}
    # models written before the ablation switches and the encoder width existed are the paper's design
    settings = {"aggregator": "bilstm", "shared_attention": False, "encoder_width": None, **config["model"]}
    for kind, checkpoints in config["checkpoints"].items():
        models[kind] = []
        for encoder, ckpt in checkpoints:
            model = build_grader(settings, encoder)
            load_checkpoint(folder / ckpt, model)
            models[kind].append(model.eval())
    return models, cfg, pd.read_csv(folder / "prior.csv")
