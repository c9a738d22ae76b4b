"""Stages 04–07: the ranking study (ranking paper §2–3, Table 1) on disc volumes.

Phase 1 trains the 3D ResNet-18 encoder with per-task classification heads by
inverse-frequency-weighted cross-entropy (the CE result), once per seed. Phase 2
starts every other run from a phase-1 checkpoint; each run is a :class:`RunSpec`:

* ``finetune`` runs train their heads *and* the encoder (at ``encoder_lr``, the
  paper's 1e-4): SpineRankNet and, as the control with the same extra epochs and
  schedule, CE continued (``ce_continued``); repeated for every seed;
* ``frozen`` runs train only their heads on the seed's phase-1 encoder (the cheap
  comparison of objectives on identical features), plus the ranking-head and
  loss-component ablations of SpineRankNet.

Predictions are averaged over the deterministic TTA views; every run gives per
task a continuous ``score`` (the score itself, or the expected grade for CE and
CORN) and, for CE and CORN, the boundary probabilities P(grade > c).

Parameters come as the typed sections of :class:`spinelib.params.ranking.RankingParams`
(``params.volumes``, ``params.runs``, ``params.train``). The functions that other modules call with a section
read straight from a YAML file (:func:`load_data`, :func:`plan_runs`, :func:`build_model`, :class:`OrdinalTask`)
also accept that plain mapping; it is converted strictly (every key present, none unknown).

Shapes: B discs in a batch, T tasks, K_t grades of task t, M = max_t K_t − 1 boundaries (nan-padded for tasks with
fewer grades), D × H × W the volume (slices × height × width).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from spinelib.augment import VolumeAugment
from spinelib.constants import SAGITTAL_T2
from spinelib.crops.store import CropStore
from spinelib.datasets.discs import VolumeDataset
from spinelib.losses.ordinal import (corn_loss, corn_probabilities, inverse_frequency_weights, mae_loss,
                                     weighted_cross_entropy)
from spinelib.losses.ranking import deep_rank_svm_loss, ranknet_loss, spineranknet_loss
from spinelib.metrics import boundary_auc, recall_per_class
from spinelib.models.ranking import SCORE_OBJECTIVES, OrdinalModel
from spinelib.models.resnet import resnet3d18
from spinelib.params.ranking import (LossParams, Phase1Params, Phase2Params, RunsParams, TrainParams,
                                     VolumesParams)
from spinelib.paths import resolve
from spinelib.progress import progress_bar
from spinelib.tasks import TaskSet, volume_labels
from spinelib.train import FitResult, TrainConfig, fit, load_checkpoint, make_loader, resolve_device, seed_everything
from spinelib.tta import View, apply_view

SPLITS = ("train", "val", "test")

log = logging.getLogger(__name__)

# ---------------------------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------------------------

@dataclass
class RankingData:
    """Task set and the datasets: train (augmented, T1 or T2 drawn per disc), val and test (T2 only), and
    ``train_eval``, the training discs as evaluation sees them (T2, no augmentation: the pixel probe's input)."""

    tasks: TaskSet
    train: VolumeDataset
    val: VolumeDataset
    test: VolumeDataset
    train_eval: VolumeDataset


# ---- the cohort: the phantom's params, or what a converted store declares ----

# The ``volumes`` fields a converter store (spinelib.converters) fixes for its cohort, in the order they are logged.
STORE_VOLUME_FIELDS = ("tasks", "extra_tasks_csv", "first_grade", "masked", "train_series", "eval_series")


def store_volume_settings(config: Mapping[str, Any]) -> dict[str, Any] | None:
    """The ``volumes`` fields a crop store's ``config.json`` declares, or None for a phantom store.

    A converter store (SPIDER, Genodisc) names its ``tasks`` (task → number of grades); then every field of
    :data:`STORE_VOLUME_FIELDS` comes from the store: it has no extra-task CSV (its grades are columns of
    volume.csv), and ``first_grade`` / ``masked`` / ``train_series`` / ``eval_series`` are read from the config.
    A store converted before those four were recorded gets the neutral values (no offset, nothing masked, the
    series it cut for training, T2 at evaluation). The phantom's crop store (notebook 01) declares no tasks: its
    tasks are the params' (the RSNA conditions plus the phantom's extra-task CSV).
    """
    if "tasks" not in config:
        return None
    return {"tasks": {str(task): int(k) for task, k in config["tasks"].items()},
            "extra_tasks_csv": "",
            "first_grade": {str(task): int(g) for task, g in config.get("first_grade", {}).items()},
            "masked": {str(series): list(tasks) for series, tasks in config.get("masked", {}).items()},
            "train_series": list(config.get("train_series", config.get("series", [SAGITTAL_T2]))),
            "eval_series": list(config.get("eval_series", [SAGITTAL_T2]))}


def has_phantom_truth(config: Mapping[str, Any]) -> bool:
    """Whether the cohort behind a crop store's config has the phantom's true latents (truth_csv applies).

    A converter store says ``phantom_truth: false``; one converted before that key existed is recognised by its
    declared ``tasks``. Notebook 01's store declares neither: then the cohort is the phantom when its data root holds
    the generator's ``phantom_params.json`` (real RSNA data does not, so its truth columns switch off by themselves).
    """
    if "phantom_truth" in config or "tasks" in config:
        return bool(config.get("phantom_truth", False))
    data_root = config.get("data_root")
    return bool(data_root) and (resolve(data_root) / "phantom_params.json").is_file()


def volumes_for_store(store: CropStore, volumes: VolumesParams) -> VolumesParams:
    """``volumes`` with the store's declared cohort settings in place of the phantom-specific fields.

    A phantom store returns ``volumes`` itself (the same object: nothing changes for the phantom); a converter
    store replaces the fields of :data:`STORE_VOLUME_FIELDS` and logs one line naming the values taken.
    """
    config = store.config()
    settings = store_volume_settings(config)
    if settings is None:
        return volumes
    log.warning("crop store %s (%s) declares its cohort: volumes.%s taken from its config.json instead of params",
                store.root, config.get("source", "converted"),
                ", volumes.".join(f"{name}={settings[name]!r}" for name in STORE_VOLUME_FIELDS))
    return volumes.replace(**settings)


def load_data(store: CropStore, volumes: VolumesParams) -> RankingData:
    """Datasets of the ranking stage from the ``volumes`` section of params/ranking.yaml.

    On a converter store (SPIDER, Genodisc) the tasks, their grading conventions and the series come from the
    store's config.json instead (:func:`volumes_for_store`); the other fields (field, input size, augmentation,
    split column) stay the params'.
    """
    volumes = volumes_for_store(store, volumes)
    tasks = TaskSet.from_params(volumes.tasks)
    labels = volume_labels(store, tasks, volumes.extra_tasks_csv or None, volumes.first_grade, volumes.masked)
    # only the training split is augmented; the mirror permutation swaps left/right tasks when a flip mirrors
    # the patient
    augment = VolumeAugment(tasks.mirror.tolist(), volumes.max_slice_shift, volumes.flip_p, volumes.intensity_offset,
                            tuple(volumes.translate), volumes.scale, volumes.rotation)
    central_field = tuple(volumes.field) if volumes.field else None   # central part of the stored volume, stored px
    common = dict(labels=labels, task_names=tasks.names, size=tuple(volumes.input_size),
                  split_column=volumes.split_column, field=central_field)
    return RankingData(tasks,
                       VolumeDataset(store, split="train", series=volumes.train_series, sample_series=True,
                                     augment=augment, **common),
                       VolumeDataset(store, split="val", series=volumes.eval_series, **common),
                       VolumeDataset(store, split="test", series=volumes.eval_series, **common),
                       # the training discs once more, as validation sees them: the pixel probe is fitted on these
                       VolumeDataset(store, split="train", series=volumes.eval_series, **common))


# ---------------------------------------------------------------------------------------------------------------
# Outputs, losses and validation of one objective
# ---------------------------------------------------------------------------------------------------------------

def task_outputs(out: dict, objective: str, max_boundaries: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(score (B, T), boundary (B, T, M)) of one forward pass; boundary = P(grade > c), nan-padded / unused.

    CE: class probabilities p = softmax(z) (B, K_t); P(y > c) = Σ_{j > c} p_j, a reversed cumulative sum
    without its first column (which is Σ_j p_j = 1). CORN: its conditional heads give P(y > c) directly.
    For both the score is the expected grade E[y] = Σ_c P(y > c). Score objectives have no boundaries (all nan).
    """
    if objective == "ce" or objective == "corn":
        if objective == "ce":
            probs = [torch.softmax(z.float(), dim=1) for z in out["logits"]]          # T × (B, K_t)
            bounds = [p.flip(1).cumsum(1).flip(1)[:, 1:] for p in probs]             # T × (B, K_t − 1)
        else:
            bounds = [corn_probabilities(z.float()) for z in out["corn"]]            # T × (B, K_t − 1)
        score = torch.stack([b.sum(dim=1) for b in bounds], dim=1)  # expected grade = Σ_c P(y > c)
        padded = torch.full((score.shape[0], score.shape[1], max_boundaries), math.nan, device=score.device)
        for t, b in enumerate(bounds):
            padded[:, t, :b.shape[1]] = b
        return score, padded
    score = out["score"].float()
    return score, torch.full((*score.shape, max_boundaries), math.nan, device=score.device)


def objective_loss(out: dict, grades: torch.Tensor, objective: str, num_grades: list[int],
                   loss: LossParams, class_weights: list[torch.Tensor] | None = None
                   ) -> torch.Tensor:
    """The training loss of ``objective`` (see spinelib.losses) with the ``loss`` section of the params.

    ``out``: the model's outputs (``logits`` / ``corn``: T × (B, ·); ``score``: (B, T)); ``grades``: (B, T) grade
    indices, −1 where missing. The pair selection (``hard_fraction``, ``pair_fraction``, ``pair_budget``) applies to
    every pairwise objective; the SpineRankNet component switches (``severity_weight``, ``adaptive_margin`` with
    ``fixed_margin``) are its loss ablations.
    """
    mining = dict(hard_fraction=loss.hard_fraction, pair_fraction=loss.pair_fraction,
                  pair_budget=loss.pair_budget, reduction=loss.task_reduction)
    if objective == "ce":
        return weighted_cross_entropy(out["logits"], grades, class_weights)
    if objective == "corn":
        return corn_loss(out["corn"], grades)
    scores = out["score"]   # (B, T), soft-clamped to [0, S]
    if objective == "mae":
        return mae_loss(scores, grades, num_grades, loss.scale)
    if objective == "ranknet":
        return ranknet_loss(scores, grades, num_grades, sigma=loss.ranknet_sigma, **mining)
    if objective == "deep_rank_svm":
        return deep_rank_svm_loss(scores, grades, num_grades, margin=loss.svm_margin, lambda_dis=loss.lambda_dis,
                                  lambda_sim=loss.lambda_sim, **mining)
    return spineranknet_loss(scores, grades, num_grades, scale=loss.scale, m_base=loss.m_base,
                             m_scale=loss.m_scale, lambda_dis=loss.lambda_dis, lambda_sim=loss.lambda_sim,
                             severity_weight=loss.severity_weight, adaptive_margin=loss.adaptive_margin,
                             margin=loss.fixed_margin, **mining)


@dataclass
class OrdinalTask:
    """One objective's loss per batch; validation: mean over tasks of BA (class objectives) and boundary AUC."""

    objective: str
    num_grades: list[int]
    loss: LossParams
    class_weights: list[torch.Tensor] | None = None

    def train_step(self, model: torch.nn.Module, batch, device: torch.device) -> torch.Tensor:
        volumes, grades, _ = batch
        out = model(volumes.to(device, non_blocking=True))
        return objective_loss(out, grades.to(device), self.objective, self.num_grades, self.loss, self.class_weights)

    def evaluate(self, model: torch.nn.Module, loader, device: torch.device) -> dict[str, float]:
        """``auc``: mean over tasks of the per-boundary ROC-AUCs (on the score for score objectives, on
        P(grade > c) for CE and CORN); ``balanced_accuracy`` (class objectives only): mean over tasks of the
        mean per-grade recall of the objective's own decision rule."""
        # ---- predict the whole loader ----
        batch_scores, batch_boundaries, batch_grades = [], [], []
        for volumes, grades, _ in loader:
            score, boundary = task_outputs(model(volumes.to(device, non_blocking=True)), self.objective,
                                           max(self.num_grades) - 1)
            batch_scores.append(score.cpu())
            batch_boundaries.append(boundary.cpu())
            batch_grades.append(grades)
        score = torch.cat(batch_scores).numpy()           # (N, T)
        bound = torch.cat(batch_boundaries).numpy()       # (N, T, M)
        grade = torch.cat(batch_grades).numpy()           # (N, T), −1: missing or masked

        # ---- per-task metrics ----
        aucs, bas = [], []
        for t, k in enumerate(self.num_grades):
            columns = score[:, t:t + 1] if self.objective in SCORE_OBJECTIVES else bound[:, t, :k - 1]
            graded_once = len(np.unique(grade[grade[:, t] >= 0, t])) > 1   # an AUC needs two grades present
            aucs.append(np.nanmean(boundary_auc(grade[:, t], columns, k)) if graded_once else np.nan)
            if self.objective not in SCORE_OBJECTIVES:
                recalls = recall_per_class(grade[:, t], class_decision(bound[:, t, :k - 1], self.objective), k)
                bas.append(np.nanmean(recalls) if np.isfinite(recalls).any() else np.nan)
        metrics = {"auc": float(np.nanmean(aucs))}
        if bas:
            metrics["balanced_accuracy"] = float(np.nanmean(bas))
        return metrics


def class_decision(boundary: np.ndarray, objective: str) -> np.ndarray:
    """Grades from boundary probabilities (N, K − 1): CE argmax of the class probabilities, CORN Σ_c [P(y > c) > ½]."""
    if objective == "corn":
        return (boundary > 0.5).sum(axis=1)
    # CE: back from P(y > c) to class probabilities, p_c = P(y > c − 1) − P(y > c) with P(y > −1) = 1, P(y > K−1) = 0
    ones, zeros = np.ones((len(boundary), 1)), np.zeros((len(boundary), 1))
    probs = np.hstack([ones, boundary]) - np.hstack([boundary, zeros])     # (N, K)
    return probs.argmax(axis=1)


# ---------------------------------------------------------------------------------------------------------------
# The runs of the study
# ---------------------------------------------------------------------------------------------------------------

ENCODER_MODES = ("phase1", "finetune", "frozen")


@dataclass(frozen=True)
class RunSpec:
    """One trained model of the ranking study.

    ``encoder``: ``phase1`` (the CE run of phase 1 itself), ``finetune`` (phase 2 trains the encoder at
    ``encoder_lr`` too) or ``frozen`` (phase 2 trains only heads on the seed's phase-1 encoder).
    ``loss`` overrides fields of the ``loss`` params (the loss-component ablations); ``reference`` names the run an
    ablation is compared with (empty: the notebooks pick the fair reference from the encoder mode).
    """

    name: str
    objective: str
    head: str = "mlp"
    encoder: str = "frozen"
    seed: int = 0
    loss: dict = field(default_factory=dict)
    reference: str = ""
    phase1: str = "ce"   # the folder of the phase-1 run this run starts from (plan_runs sets it per seed)

    def __post_init__(self) -> None:
        if self.encoder not in ENCODER_MODES:
            raise ValueError(f"run {self.name!r}: encoder must be one of {ENCODER_MODES}, got {self.encoder!r}")
        if self.encoder == "phase1" and self.objective != "ce":
            raise ValueError(f"run {self.name!r}: phase 1 trains the CE objective only")


def _seeded(name: str, seed: int, first_seed: int) -> str:
    """Run name of a seed replicate: the first seed keeps the plain name, the others get ``_seed<k>``."""
    return name if seed == first_seed else f"{name}_seed{seed}"


def plan_runs(runs: RunsParams, seeds: list[int]) -> list[RunSpec]:
    """Every run of the ``runs`` params section, phase-1 runs first (one per seed).

    * ``finetuned``: objectives trained with the encoder, for every seed (``ce`` → ``ce_continued``,
      the control with the same extra epochs; others → ``<objective>_finetuned``);
    * ``frozen``: objectives trained as heads on the first seed's phase-1 encoder (named by the objective);
    * ``ablation_heads``: SpineRankNet with another ranking head (``spineranknet_<head>``);
    * ``loss_ablations``: SpineRankNet with loss keys overridden (``spineranknet_<ablation>``);

    the ablations train with the encoder mode ``ablation_encoder`` (``frozen`` or ``finetune``) on the first seed
    and are compared with the SpineRankNet run of that mode (which the plan must contain).
    """
    if not seeds:
        raise ValueError("train.seeds needs at least one seed")
    first = int(seeds[0])

    def run(**fields: Any) -> RunSpec:
        """A run that starts from the phase-1 run of its own seed."""
        return RunSpec(**fields, phase1=_seeded("ce", fields["seed"], first))

    # ---- phase 1, then the fine-tuned runs, per seed ----
    plan = [run(name=_seeded("ce", s, first), objective="ce", encoder="phase1", seed=s) for s in seeds]
    for s in seeds:
        for objective in runs.finetuned:
            base = "ce_continued" if objective == "ce" else f"{objective}_finetuned"
            plan.append(run(name=_seeded(base, s, first), objective=objective, encoder="finetune", seed=s))

    # ---- heads on the first seed's frozen phase-1 encoder ----
    for objective in runs.frozen:
        if objective == "ce":
            raise ValueError("runs.frozen: CE on the frozen phase-1 encoder is phase 1 itself; list it under "
                             "finetuned (ce_continued) instead")
        plan.append(run(name=objective, objective=objective, seed=first))

    # ---- SpineRankNet ablations, compared with the SpineRankNet run of their encoder mode ----
    mode = runs.ablation_encoder
    reference = "spineranknet" if mode == "frozen" else "spineranknet_finetuned"
    ablations = [dict(name=f"spineranknet_{head}", head=head) for head in runs.ablation_heads]
    ablations += [dict(name=f"spineranknet_{name}", loss=dict(overrides))
                  for name, overrides in runs.loss_ablations.items()]
    if ablations and reference not in {r.name for r in plan}:
        raise ValueError(f"the ablations are compared with {reference!r}: add spineranknet to runs."
                         f"{'frozen' if mode == 'frozen' else 'finetuned'}")
    for ablation in ablations:
        plan.append(run(objective="spineranknet", encoder=mode, seed=first, reference=reference, **ablation))

    # ---- every run has its own folder: names must be unique ----
    names = [r.name for r in plan]
    if len(set(names)) != len(names):
        raise ValueError(f"two runs share a name: {sorted(n for n in names if names.count(n) > 1)}")
    return plan


def write_plan(plan: list[RunSpec], path: Path) -> None:
    """The runs as JSON (notebooks 05–06 read it to pair each run with its reference)."""
    path.write_text(json.dumps([asdict(r) for r in plan], indent=1))


def read_plan(path: Path) -> pd.DataFrame:
    """The runs written by :func:`write_plan`, one row per run."""
    return pd.DataFrame(json.loads(Path(path).read_text()))


# ---------------------------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------------------------

def _config(training: TrainParams, phase: Phase1Params | Phase2Params, checkpoint_dir: Path, monitor: str,
            progress: bool, seed: int) -> TrainConfig:
    """The ``fit`` settings of one run: checkpoint by ``monitor`` (higher is better), early stopping by ``phase``."""
    return TrainConfig(epochs=phase.epochs, seed=seed, device=training.device, amp=training.amp,
                       channels_last=training.channels_last,   # channels_last_3d for the 3D convolutions
                       grad_clip=training.grad_clip, monitor=monitor, mode="max", patience=phase.patience,
                       min_epochs=phase.min_epochs, checkpoint_dir=checkpoint_dir, progress=progress)


def _loaders(data: RankingData, training: TrainParams, batch_size: int, seed: int):
    """(training loader, validation loader); the training order depends only on (seed, epoch)."""
    train = make_loader(data.train, batch_size, shuffle=True, seed=seed, num_workers=training.num_workers,
                        drop_last=True)   # every step a full batch: pairs per task and BN statistics depend on B
    return train, make_loader(data.val, batch_size, shuffle=False, num_workers=training.num_workers)


def train_phase1(data: RankingData, training: TrainParams, out_dir: Path, spec: RunSpec | None = None,
                 progress: bool = True) -> FitResult:
    """Encoder + classification heads with inverse-frequency-weighted CE; checkpoint by validation BA (argmax)."""
    spec = spec or RunSpec("ce", "ce", encoder="phase1", seed=training.seed)
    seed_everything(spec.seed)   # before the model: its initial weights are drawn from the seeded RNG
    model = OrdinalModel(resnet3d18(1, training.base_width), data.tasks.num_grades, "ce")
    phase = training.phase1
    # w_c = N_t / (K_t · N_t,c) per task, from the training grades
    weights = inverse_frequency_weights(data.train.grades.numpy(), data.tasks.num_grades)
    task = OrdinalTask("ce", list(data.tasks.num_grades), training.loss, weights)
    optimizer = torch.optim.AdamW(model.parameters(), lr=phase.lr, weight_decay=phase.weight_decay)
    train_loader, val_loader = _loaders(data, training, phase.batch_size, spec.seed)
    return fit(model, task, train_loader, val_loader, optimizer,
               _config(training, phase, out_dir / spec.name, "balanced_accuracy", progress, spec.seed))


def build_model(training: TrainParams, num_grades: tuple[int, ...], spec: RunSpec,
                out_dir: Path) -> OrdinalModel:
    """A model of ``spec`` whose encoder and classification heads are its phase-1 run's best weights.

    The objective heads are new (drawn from the RNG); a frozen-encoder model keeps the phase-1 encoder fixed.
    """
    phase1 = OrdinalModel(resnet3d18(1, training.base_width), num_grades, "ce")
    load_checkpoint(out_dir / spec.phase1 / "best.pt", phase1)
    if spec.encoder == "phase1":
        return phase1
    model = OrdinalModel(phase1.encoder, num_grades, spec.objective, head=spec.head, head_input=training.head_input,
                         hidden=training.head_hidden, scale=training.loss.scale, beta=training.soft_clamp_beta,
                         freeze_encoder=spec.encoder == "frozen")
    # the classification heads come along: CE continued trains on from them, the others keep them for logits input
    model.cls_heads.load_state_dict(phase1.cls_heads.state_dict())
    return model


def _parameter_groups(model: OrdinalModel, spec: RunSpec, phase: Phase2Params) -> list[dict]:
    """Optimiser groups (released code): the objective's heads at ``lr``; for ``finetune`` the encoder and the
    classification heads (those not already among the objective's heads) at ``encoder_lr``."""
    heads = model.objective_parameters()
    groups = [{"params": heads, "lr": phase.lr}]
    if spec.encoder == "finetune":
        own = {id(p) for p in heads}   # CE continued: its objective heads *are* the classification heads
        rest = [p for p in [*model.encoder.parameters(), *model.cls_heads.parameters()] if id(p) not in own]
        groups.append({"params": rest, "lr": phase.encoder_lr})
    return groups


def _run_loss(loss: LossParams, spec: RunSpec) -> LossParams:
    """The loss section with the run's overrides (a loss ablation) applied; an unknown key is an error."""
    unknown = {key for key in spec.loss if key not in LossParams.__dataclass_fields__}
    if unknown:
        raise KeyError(f"run {spec.name!r} overrides unknown loss keys {sorted(unknown)}")
    return loss.replace(**spec.loss)


def train_phase2(data: RankingData, training: TrainParams, spec: RunSpec, out_dir: Path, progress: bool = True
                 ) -> FitResult:
    """``spec``'s heads (and encoder, for ``finetune``) from its phase-1 checkpoint; checkpoint by val AUC.

    Optimiser groups (released code): the objective's heads at ``lr``; for ``finetune`` the encoder and the
    classification heads at ``encoder_lr`` (CE continued trains its classification heads at ``lr``, its encoder at
    ``encoder_lr``: the same schedule as every fine-tuned objective).
    """
    # ---- checks, before any work ----
    if spec.encoder == "phase1":
        raise ValueError(f"run {spec.name!r} is a phase-1 run: train it with train_phase1")
    phase = training.phase2
    if spec.encoder == "finetune" and phase.encoder_lr <= 0:
        raise ValueError(f"run {spec.name!r} fine-tunes the encoder but phase2.encoder_lr is {phase.encoder_lr}")

    # ---- model: phase-1 weights and new objective heads (seeded first: the heads draw from the RNG) ----
    seed_everything(spec.seed)
    model = build_model(training, data.tasks.num_grades, spec, out_dir)

    # ---- optimiser: AdamW, cosine annealing of every group to min_lr over the epoch budget ----
    optimizer = torch.optim.AdamW(_parameter_groups(model, spec, phase), weight_decay=phase.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(phase.epochs, 1),
                                                           eta_min=phase.min_lr)

    # ---- the objective: its loss settings, and CE's class weights (CE continued) ----
    loss = _run_loss(training.loss, spec)
    class_weights = (inverse_frequency_weights(data.train.grades.numpy(), data.tasks.num_grades)
                     if spec.objective == "ce" else None)
    task = OrdinalTask(spec.objective, list(data.tasks.num_grades), loss, class_weights)

    # ---- fit ----
    train_loader, val_loader = _loaders(data, training, phase.batch_size, spec.seed)
    return fit(model, task, train_loader, val_loader, optimizer,
               _config(training, phase, out_dir / spec.name, "auc", progress, spec.seed), scheduler)


def train_run(data: RankingData, training: TrainParams, spec: RunSpec, out_dir: Path, progress: bool = True
              ) -> FitResult:
    """Phase 1 or phase 2, as ``spec`` says."""
    if spec.encoder == "phase1":
        return train_phase1(data, training, out_dir, spec, progress)
    return train_phase2(data, training, spec, out_dir, progress)


# ---------------------------------------------------------------------------------------------------------------
# Loading and prediction
# ---------------------------------------------------------------------------------------------------------------

def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    """Whether two modules hold exactly the same tensors under the same names."""
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def load_models(training: TrainParams, num_grades: tuple[int, ...], plan: list[RunSpec], out_dir: Path
                ) -> dict[str, OrdinalModel]:
    """Best checkpoint of every run of ``plan``, each with the encoder weights it was evaluated with.

    Every run is loaded into a model of its own. Frozen-encoder runs then share their phase-1 run's encoder
    *instance* (so TTA computes that encoder's forward pass once for all of them), but only after checking
    that their checkpoint holds exactly those encoder weights; a run whose encoder was trained keeps its own.
    """
    models: dict[str, OrdinalModel] = {}
    for spec in plan:
        model = build_model(training, num_grades, spec, out_dir)
        load_checkpoint(out_dir / spec.name / "best.pt", model)
        models[spec.name] = model.eval()
    for spec in plan:
        if spec.encoder != "frozen":
            continue
        if spec.phase1 not in models:
            raise KeyError(f"run {spec.name!r} needs its phase-1 run {spec.phase1!r} in the plan")
        shared = models[spec.phase1].encoder
        if not _same_weights(models[spec.name].encoder, shared):
            raise ValueError(f"run {spec.name!r} is marked frozen but its encoder differs from {spec.phase1!r}'s")
        models[spec.name].encoder = shared
    return models


@dataclass
class _ViewSums:
    """Running sums over the TTA views of one run: Σ score (N, T), Σ score² (N, T), Σ P(grade > c) (N, T, M)."""

    score: np.ndarray
    score_sq: np.ndarray
    boundary: np.ndarray


def _encoder_groups(models: dict[str, OrdinalModel]) -> dict[int, list[str]]:
    """Run names grouped by encoder instance (frozen runs share the phase-1 encoder: one forward pass for all)."""
    groups: dict[int, list[str]] = {}
    for name, model in models.items():
        groups.setdefault(id(model.encoder), []).append(name)
    return groups


def _prediction_frames(name: str, objective: str, sums: _ViewSums, n_views: int, meta: pd.DataFrame,
                       grades: np.ndarray, tasks: TaskSet) -> list[pd.DataFrame]:
    """One run's long prediction rows, a frame per task: the view means and the score's std over the views.

    std = sqrt(E[s²] − E[s]²), clipped at 0 against rounding.
    """
    mean, mean_boundary = sums.score / n_views, sums.boundary / n_views          # (N, T), (N, T, M)
    std = np.sqrt(np.maximum(sums.score_sq / n_views - mean ** 2, 0.0))        # (N, T)
    frames = []
    for ti, task in enumerate(tasks.names):
        frame = pd.DataFrame({"run": name, "objective": objective, "study_id": meta["study_id"],
                              "level": meta["level"], "series_description": meta["series_description"],
                              "task": task, "num_grades": tasks.num_grades[ti], "grade": grades[:, ti],
                              "score": mean[:, ti], "score_std": std[:, ti]})
        for c in range(mean_boundary.shape[2]):
            frame[f"p_gt_{c}"] = mean_boundary[:, ti, c]
        frames.append(frame)
    return frames


@torch.no_grad()
def predict_tta(models: dict[str, OrdinalModel], dataset: VolumeDataset, tasks: TaskSet, views: list[View],
                batch_size: int = 32, device: str = "auto", progress: bool = True) -> pd.DataFrame:
    """Per (run, disc, task): score and boundary probabilities averaged over ``views``, and the score's std.

    A flipped view's task outputs are mirrored back (left ↔ right) before averaging.
    Models sharing an encoder instance share its forward pass.
    """
    # ---- models on the device, one running sum per run ----
    dev = resolve_device(device)
    for model in models.values():
        model.to(dev).eval()
    m = max(tasks.num_grades) - 1
    n, t = len(dataset), len(tasks.names)
    sums = {name: _ViewSums(np.zeros((n, t)), np.zeros((n, t)), np.zeros((n, t, m))) for name in models}
    mirror = torch.as_tensor(tasks.mirror, device=dev)     # task index → its left/right twin (itself otherwise)
    loader = make_loader(dataset, batch_size, shuffle=False)
    groups = _encoder_groups(models)

    # ---- every batch under every view, every run ----
    for x, _, idx in progress_bar(loader, show=progress, desc="TTA batches", mininterval=2.0):
        x, rows = x.to(dev), idx.numpy()
        for view in views:
            xv = apply_view(x, view)
            for names in groups.values():
                z = models[names[0]].encoder(xv).float()       # one encoder pass per group and view
                for name in names:
                    score, bound = task_outputs(models[name].heads(z), models[name].objective, m)
                    if view.flip:                              # the flip mirrored the patient: swap left/right back
                        score, bound = score[:, mirror], bound[:, mirror]
                    score, bound = score.cpu().numpy(), bound.cpu().numpy()
                    sums[name].score[rows] += score
                    sums[name].score_sq[rows] += score ** 2
                    sums[name].boundary[rows] += bound

    # ---- view means into one long table ----
    meta = dataset.rows_used()
    grades = dataset.grades[[int(members[0]) for members in dataset.members]].numpy()   # (N, T): a disc's grades
    frames = []
    for name, view_sums in sums.items():
        frames += _prediction_frames(name, models[name].objective, view_sums, len(views), meta, grades, tasks)
    return pd.concat(frames, ignore_index=True)
