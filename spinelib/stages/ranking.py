"""Stages 04–07: the ranking study (ranking paper §2–3, Table 1) on disc volumes.

Phase 1 trains the 3D ResNet-18 encoder with per-task classification heads by
inverse-frequency-weighted cross-entropy (the CE result); phase 2 starts every
other objective from that checkpoint and trains its heads (CORN logits, or a
ranking head + soft clamp for MAE, RankNet, Deep-RankSVM and SpineRankNet)
while the encoder is fine-tuned at a lower rate, or kept frozen when its rate
is 0 (the CPU profile). Predictions are averaged over the deterministic TTA
views; every objective gives per task a continuous ``score`` (the score itself,
or the expected grade for CE and CORN) and, for CE and CORN, the boundary
probabilities P(grade > c).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from spinelib.augment import VolumeAugment
from spinelib.crops.store import CropStore
from spinelib.datasets import VolumeDataset
from spinelib.losses.ordinal import (corn_loss, corn_probabilities, inverse_frequency_weights, mae_loss,
                                     weighted_cross_entropy)
from spinelib.losses.ranking import deep_rank_svm_loss, ranknet_loss, spineranknet_loss
from spinelib.metrics import boundary_auc, recall_per_class
from spinelib.models.ranking import SCORE_OBJECTIVES, OrdinalModel
from spinelib.models.resnet3d import resnet3d18
from spinelib.tasks import TaskSet, volume_labels
from spinelib.train import FitResult, TrainConfig, fit, load_checkpoint, make_loader, resolve_device, seed_everything
from spinelib.tta import View, apply_view

SPLITS = ("train", "val", "test")


@dataclass
class RankingData:
    """Task set and the train (augmented, T1 or T2 drawn per disc), val and test (T2 only) datasets."""

    tasks: TaskSet
    train: VolumeDataset
    val: VolumeDataset
    test: VolumeDataset


def load_data(store: CropStore, p: dict) -> RankingData:
    """Datasets of the ranking stage from the ``data`` section of params/ranking.yaml."""
    tasks = TaskSet.from_params(p["tasks"])
    labels = volume_labels(store, tasks, p.get("extra_tasks_csv") or None, p.get("first_grade"), p.get("masked"))
    augment = VolumeAugment(tasks.mirror.tolist(), p["max_slice_shift"], p["flip_p"], p["intensity_offset"],
                            tuple(p["translate"]), p["scale"], p["rotation"])
    common = dict(labels=labels, task_names=tasks.names, size=tuple(p["input_size"]), split_column=p["split_column"])
    return RankingData(tasks,
                       VolumeDataset(store, split="train", series=p["train_series"], sample_series=True,
                                     augment=augment, **common),
                       VolumeDataset(store, split="val", series=p["eval_series"], **common),
                       VolumeDataset(store, split="test", series=p["eval_series"], **common))


def task_outputs(out: dict, objective: str, max_boundaries: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(score (B, T), boundary (B, T, M)) of one forward pass; boundary = P(grade > c), nan-padded / unused."""
    if objective == "ce" or objective == "corn":
        if objective == "ce":
            probs = [torch.softmax(z.float(), dim=1) for z in out["logits"]]
            bounds = [p.flip(1).cumsum(1).flip(1)[:, 1:] for p in probs]
        else:
            bounds = [corn_probabilities(z.float()) for z in out["corn"]]
        score = torch.stack([b.sum(dim=1) for b in bounds], dim=1)  # expected grade = Σ_c P(y > c)
        padded = torch.full((score.shape[0], score.shape[1], max_boundaries), math.nan, device=score.device)
        for t, b in enumerate(bounds):
            padded[:, t, :b.shape[1]] = b
        return score, padded
    score = out["score"].float()
    return score, torch.full((*score.shape, max_boundaries), math.nan, device=score.device)


def objective_loss(out: dict, grades: torch.Tensor, objective: str, num_grades: list[int], loss: dict,
                   class_weights: list[torch.Tensor] | None = None) -> torch.Tensor:
    """The training loss of ``objective`` (see spinelib.losses) with the ``loss`` section of the params."""
    mining = dict(hard_fraction=loss["hard_fraction"], pair_fraction=loss["pair_fraction"],
                  reduction=loss["task_reduction"])
    if objective == "ce":
        return weighted_cross_entropy(out["logits"], grades, class_weights)
    if objective == "corn":
        return corn_loss(out["corn"], grades)
    s = out["score"]
    if objective == "mae":
        return mae_loss(s, grades, num_grades, loss["scale"])
    if objective == "ranknet":
        return ranknet_loss(s, grades, num_grades, sigma=loss["ranknet_sigma"], **mining)
    if objective == "deep_rank_svm":
        return deep_rank_svm_loss(s, grades, num_grades, margin=loss["svm_margin"], lambda_dis=loss["lambda_dis"],
                                  lambda_sim=loss["lambda_sim"], **mining)
    return spineranknet_loss(s, grades, num_grades, scale=loss["scale"], m_base=loss["m_base"],
                             m_scale=loss["m_scale"], lambda_dis=loss["lambda_dis"], lambda_sim=loss["lambda_sim"],
                             **mining)


def _to_device(x: torch.Tensor, device: torch.device, channels_last: bool) -> torch.Tensor:
    x = x.to(device, non_blocking=True)
    return x.contiguous(memory_format=torch.channels_last_3d) if channels_last and device.type == "cuda" else x


@dataclass
class OrdinalTask:
    """One objective's loss per batch; validation: mean over tasks of BA (class objectives) and boundary AUC."""

    objective: str
    num_grades: list[int]
    loss: dict
    class_weights: list[torch.Tensor] | None = None
    channels_last: bool = False

    def train_step(self, model: torch.nn.Module, batch, device: torch.device) -> torch.Tensor:
        x, grades, _ = batch
        out = model(_to_device(x, device, self.channels_last))
        return objective_loss(out, grades.to(device), self.objective, self.num_grades, self.loss, self.class_weights)

    def evaluate(self, model: torch.nn.Module, loader, device: torch.device) -> dict[str, float]:
        scores, bounds, grades = [], [], []
        for x, y, _ in loader:
            s, b = task_outputs(model(_to_device(x, device, self.channels_last)), self.objective,
                                max(self.num_grades) - 1)
            scores.append(s.cpu()), bounds.append(b.cpu()), grades.append(y)
        score, bound, grade = torch.cat(scores).numpy(), torch.cat(bounds).numpy(), torch.cat(grades).numpy()
        aucs, bas = [], []
        for t, k in enumerate(self.num_grades):
            columns = score[:, t:t + 1] if self.objective in SCORE_OBJECTIVES else bound[:, t, :k - 1]
            aucs.append(np.nanmean(boundary_auc(grade[:, t], columns, k)) if len(np.unique(grade[grade[:, t] >= 0, t])) > 1
                        else np.nan)
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
    ones, zeros = np.ones((len(boundary), 1)), np.zeros((len(boundary), 1))
    probs = np.hstack([ones, boundary]) - np.hstack([boundary, zeros])
    return probs.argmax(axis=1)


def _config(hp: dict, phase: dict, checkpoint_dir: Path, monitor: str, progress: bool) -> TrainConfig:
    return TrainConfig(epochs=phase["epochs"], seed=hp["seed"], device=hp["device"], amp=hp["amp"],
                       channels_last=False,  # 3D: channels_last_3d is set by this stage (fit's hook is 2D only)
                       grad_clip=hp.get("grad_clip"), monitor=monitor, mode="max", patience=phase["patience"],
                       min_epochs=phase["min_epochs"], checkpoint_dir=checkpoint_dir, progress=progress)


def _prepare(model: OrdinalModel, hp: dict) -> OrdinalModel:
    if hp["channels_last"] and resolve_device(hp["device"]).type == "cuda":
        model.to(memory_format=torch.channels_last_3d)
    return model


def _loaders(data: RankingData, hp: dict, batch_size: int):
    train = make_loader(data.train, batch_size, shuffle=True, seed=hp["seed"], num_workers=hp["num_workers"],
                        drop_last=True)
    return train, make_loader(data.val, batch_size, shuffle=False, num_workers=hp["num_workers"])


def train_phase1(data: RankingData, hp: dict, out_dir: Path, progress: bool = True) -> FitResult:
    """Encoder + classification heads with inverse-frequency-weighted CE; checkpoint by validation BA (argmax)."""
    seed_everything(hp["seed"])
    model = _prepare(OrdinalModel(resnet3d18(1, hp["base_width"]), data.tasks.num_grades, "ce"), hp)
    phase = hp["phase1"]
    weights = inverse_frequency_weights(data.train.grades.numpy(), data.tasks.num_grades)
    task = OrdinalTask("ce", list(data.tasks.num_grades), hp["loss"], weights, hp["channels_last"])
    optimizer = torch.optim.AdamW(model.parameters(), lr=phase["lr"], weight_decay=phase["weight_decay"])
    train, val = _loaders(data, hp, phase["batch_size"])
    return fit(model, task, train, val, optimizer, _config(hp, phase, out_dir / "ce", "balanced_accuracy", progress))


def build_model(hp: dict, num_grades: tuple[int, ...], objective: str, head: str, phase1_dir: Path,
                encoder: torch.nn.Module | None = None) -> OrdinalModel:
    """A phase-2 model of ``objective`` whose encoder and classification heads are phase 1's best weights.

    Pass ``encoder`` to share one (frozen) encoder instance between several models.
    """
    frozen = hp["phase2"]["encoder_lr"] == 0
    phase1 = OrdinalModel(resnet3d18(1, hp["base_width"]), num_grades, "ce")
    load_checkpoint(phase1_dir / "best.pt", phase1)
    model = OrdinalModel(encoder if encoder is not None else phase1.encoder, num_grades, objective, head=head,
                         head_input=hp["head_input"], hidden=hp["head_hidden"], scale=hp["loss"]["scale"],
                         beta=hp["soft_clamp_beta"], freeze_encoder=frozen)
    model.cls_heads.load_state_dict(phase1.cls_heads.state_dict())
    return model


def train_phase2(data: RankingData, hp: dict, objective: str, head: str, out_dir: Path,
                 progress: bool = True) -> FitResult:
    """Objective heads from phase 1's checkpoint; encoder at ``encoder_lr`` (0: frozen); checkpoint by val AUC."""
    seed_everything(hp["seed"])
    model = _prepare(build_model(hp, data.tasks.num_grades, objective, head, out_dir / "ce"), hp)
    phase = hp["phase2"]
    groups = [{"params": model.objective_parameters(), "lr": phase["lr"]}]
    if phase["encoder_lr"] > 0:
        groups.append({"params": [*model.encoder.parameters(), *model.cls_heads.parameters()],
                       "lr": phase["encoder_lr"]})
    optimizer = torch.optim.AdamW(groups, weight_decay=phase["weight_decay"])
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(phase["epochs"], 1),
                                                           eta_min=phase["min_lr"])
    task = OrdinalTask(objective, list(data.tasks.num_grades), hp["loss"], None, hp["channels_last"])
    train, val = _loaders(data, hp, phase["batch_size"])
    return fit(model, task, train, val, optimizer, _config(hp, phase, out_dir / run_name(objective, head), "auc",
                                                           progress), scheduler)


def run_name(objective: str, head: str = "mlp") -> str:
    """Checkpoint folder of one run: the objective, plus the head for the ablation runs."""
    return objective if head == "mlp" or objective not in SCORE_OBJECTIVES else f"{objective}_{head}"


def load_models(hp: dict, num_grades: tuple[int, ...], runs: list[tuple[str, str]], out_dir: Path
                ) -> dict[str, OrdinalModel]:
    """Best checkpoints of ``runs`` (objective, head); frozen-encoder runs share one encoder instance."""
    models: dict[str, OrdinalModel] = {}
    shared = None
    for objective, head in runs:
        name = run_name(objective, head)
        model = build_model(hp, num_grades, objective, head, out_dir / "ce", shared)
        load_checkpoint(out_dir / name / "best.pt", model)
        if model.freeze_encoder or objective == "ce":
            shared = shared or model.encoder
        models[name] = model.eval()
    return models


@torch.no_grad()
def predict_tta(models: dict[str, OrdinalModel], dataset: VolumeDataset, tasks: TaskSet, views: list[View],
                batch_size: int = 32, device: str = "auto", progress: bool = True) -> pd.DataFrame:
    """Per (run, disc, task): score and boundary probabilities averaged over ``views``, and the score's std.

    A flipped view's task outputs are mirrored back (left ↔ right) before averaging.
    Models sharing an encoder instance share its forward pass.
    """
    dev = resolve_device(device)
    for model in models.values():
        model.to(dev).eval()
    m = max(tasks.num_grades) - 1
    n, t = len(dataset), len(tasks.names)
    sums = {name: [np.zeros((n, t)), np.zeros((n, t)), np.zeros((n, t, m))] for name in models}
    mirror = torch.as_tensor(tasks.mirror, device=dev)
    loader = make_loader(dataset, batch_size, shuffle=False)
    groups: dict[int, list[str]] = {}
    for name, model in models.items():
        groups.setdefault(id(model.encoder), []).append(name)
    for x, _, idx in tqdm(loader, desc="TTA batches", disable=not progress, mininterval=2.0):
        x = x.to(dev)
        for view in views:
            xv = apply_view(x, view)
            for names in groups.values():
                z = models[names[0]].encoder(xv).float()
                for name in names:
                    score, bound = task_outputs(models[name].heads(z), models[name].objective, m)
                    if view.flip:
                        score, bound = score[:, mirror], bound[:, mirror]
                    acc = sums[name]
                    acc[0][idx.numpy()] += score.cpu().numpy()
                    acc[1][idx.numpy()] += score.cpu().numpy() ** 2
                    acc[2][idx.numpy()] += bound.cpu().numpy()
    meta = dataset.rows_used()
    grades = dataset.grades[[int(mm[0]) for mm in dataset.members]].numpy()
    frames = []
    for name, (s, s2, b) in sums.items():
        v = len(views)
        mean, mean_b = s / v, b / v
        std = np.sqrt(np.maximum(s2 / v - mean ** 2, 0.0))
        for ti, task in enumerate(tasks.names):
            frame = pd.DataFrame({"run": name, "objective": models[name].objective, "study_id": meta["study_id"],
                                  "level": meta["level"], "series_description": meta["series_description"],
                                  "task": task, "num_grades": tasks.num_grades[ti], "grade": grades[:, ti],
                                  "score": mean[:, ti], "score_std": std[:, ti]})
            for c in range(m):
                frame[f"p_gt_{c}"] = mean_b[:, ti, c]
            frames.append(frame)
    return pd.concat(frames, ignore_index=True)
