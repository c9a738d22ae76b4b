"""Stage 1 end to end: train the localisers over a cohort, save/load them, localise one study.

Per sagittal type (T2/STIR for spinal canal, T1 for left/right foramina) an
instance-number model (Stage 1a) and an in-plane model (Stage 1b); for Axial
T2 an in-plane model (Stage 1c) whose slice comes from projecting the
sagittal canal point through the patient geometry (``geometry.project``).
Each is trained on the training patients (one model per fold), checkpoint
chosen on held-out patients (the validation split, or the held-out fold).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from spinelib.constants import AXIAL_T2, SAGITTAL_T1, SAGITTAL_T2
from spinelib.multistage.cohort import Cohort, fold_of
from spinelib.multistage.coords import CoordNet, CoordTask, SliceDataset, predict_slices
from spinelib.multistage.geometry import project, to_patient
from spinelib.multistage.inputs import SERIES_KEYS, SeriesImages, depth_scale, heads, three_channels
from spinelib.multistage.instance import (InstanceNet, InstanceTask, StackDataset, ensemble_native, predict_stacks,
                                          to_native)
from spinelib.train import TrainConfig, fit, load_checkpoint, make_loader

SAGITTAL = (SAGITTAL_T2, SAGITTAL_T1)


def _partition(frame: pd.DataFrame, folds: int, fold: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, held-out) rows: split train/val with one fold, else fold ``fold`` of the training patients held out."""
    if folds == 1:
        return frame[frame["split"] == "train"], frame[frame["split"] == "val"]
    train = frame[frame["split"] == "train"]
    held = fold_of(train["study_id"], folds, seed) == fold
    return train[~held], train[held]


def _fit(model, task, train_set, val_set, hp: dict, checkpoint_dir: Path, progress: bool):
    optimizer = torch.optim.AdamW(model.parameters(), lr=hp["lr"], weight_decay=hp["weight_decay"])
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(hp["epochs"], 1))
    has_val = len(val_set) > 0
    config = TrainConfig(epochs=hp["epochs"], seed=hp["seed"], device=hp["device"], amp=hp["amp"], channels_last=False,
                         monitor="val_loss" if has_val else "train_loss", mode="min", checkpoint_dir=checkpoint_dir,
                         progress=progress)
    train = make_loader(train_set, hp["batch_size"], shuffle=True, seed=hp["seed"])
    val = make_loader(val_set, hp["batch_size"], shuffle=False) if has_val else None
    result = fit(model, task, train, val, optimizer, config, scheduler)
    model.load_state_dict(result.best_state)
    (Path(checkpoint_dir) / "last.pt").unlink(missing_ok=True)  # finished: best.pt and history.csv are kept
    return result


def instance_targets(cohort: Cohort, series_type: str, depth: int) -> pd.DataFrame:
    """One row per annotated series of the type: input-index targets z (H,) (−1: none) and (x', y') (H, 2)."""
    order = {h: i for i, h in enumerate(heads(series_type))}
    points = cohort.points[cohort.points["series_description"] == series_type]
    rows = []
    for (study, series_id, split), group in points.groupby(["study_id", "series_id", "split"]):
        image = cohort.images[series_id]
        z, xy = np.full(len(order), -1), np.zeros((len(order), 2), dtype=np.float32)
        for p in group.itertuples():
            if (p.condition, p.level) in order:
                h = order[(p.condition, p.level)]
                z[h] = int(round(p.k * depth_scale(image.depth, depth)))
                xy[h] = (p.x / p.width, p.y / p.height)
        rows.append({"study_id": study, "series_id": series_id, "split": split, "z": z, "xy": xy})
    return pd.DataFrame(rows, columns=["study_id", "series_id", "split", "z", "xy"])


def slice_targets(cohort: Cohort, series_type: str) -> pd.DataFrame:
    """One row per annotated (series, slice): normalised targets (H, 2) and the mask of heads annotated there."""
    order = {h: i for i, h in enumerate(heads(series_type))}
    points = cohort.points[cohort.points["series_description"] == series_type]
    rows = []
    for (study, series_id, k, split), group in points.groupby(["study_id", "series_id", "k", "split"]):
        xy, mask = np.zeros((len(order), 2), dtype=np.float32), np.zeros(len(order), dtype=bool)
        for p in group.itertuples():
            if (p.condition, p.level) in order:
                xy[order[(p.condition, p.level)]] = (p.x / p.width, p.y / p.height)
                mask[order[(p.condition, p.level)]] = True
        rows.append({"study_id": study, "series_id": series_id, "k": k, "split": split, "xy": xy, "mask": mask})
    return pd.DataFrame(rows, columns=["study_id", "series_id", "k", "split", "xy", "mask"])


def _stacks(cohort: Cohort, frame: pd.DataFrame) -> StackDataset:
    stacks = np.stack([cohort.images[s].stack for s in frame["series_id"]]) if len(frame) else np.zeros((0, 1, 1, 1))
    return StackDataset(stacks, np.stack(frame["z"].tolist()) if len(frame) else np.zeros((0, 1)),
                        np.stack(frame["xy"].tolist()) if len(frame) else np.zeros((0, 1, 2)))


def _slices(cohort: Cohort, frame: pd.DataFrame, shift: int) -> SliceDataset:
    return SliceDataset([cohort.images[s].slices for s in frame["series_id"]], frame["k"].to_numpy(),
                        np.stack(frame["xy"].tolist()) if len(frame) else np.zeros((0, 1, 2)),
                        np.stack(frame["mask"].tolist()) if len(frame) else np.zeros((0, 1)), shift)


@dataclass
class Localisers:
    """Trained Stage 1 models by series type (one per fold, and per encoder for 1b/1c) and their input settings."""

    config: dict
    instance: dict[str, list[InstanceNet]]
    coords: dict[str, list[CoordNet]]

    def build_instance(self, series_type: str) -> InstanceNet:
        hp = self.config["instance"]
        if hp["architecture"] != "resnet3d18":
            raise ValueError(f"Stage 1a architecture {hp['architecture']!r} is not implemented (resnet3d18 is)")
        return InstanceNet(len(heads(series_type)), self.config["stack_depth"], hp["base_width"])

    @classmethod
    def load(cls, folder: Path) -> "Localisers":
        """Rebuild every model listed in ``folder/config.json`` from its ``best.pt``."""
        folder = Path(folder)
        path = folder / "config.json"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no localiser config; run notebook 08 (`dvc repro localisation`) first")
        loc = cls(json.loads(path.read_text()), {}, {})
        for series_type, checkpoints in loc.config["checkpoints"]["instance"].items():
            loc.instance[series_type] = [loc.build_instance(series_type) for _ in checkpoints]
            for model, ckpt in zip(loc.instance[series_type], checkpoints):
                load_checkpoint(folder / ckpt, model)
        for series_type, checkpoints in loc.config["checkpoints"]["coords"].items():
            loc.coords[series_type] = []
            for encoder, ckpt in checkpoints:
                model = CoordNet(len(heads(series_type)), encoder)
                load_checkpoint(folder / ckpt, model)
                loc.coords[series_type].append(model)
        return loc


def train_localisers(cohort: Cohort, hp: dict, out_dir: Path, progress: bool = True) -> tuple[Localisers, dict]:
    """Train Stage 1a (sagittal types) and 1b/1c (all types); write ``config.json``; return models and histories."""
    out_dir = Path(out_dir)
    config = {"stack_depth": hp["stack_depth"], "stack_size": hp["stack_size"], "slice_size": hp["slice_size"],
              "instance": {k: hp["instance"][k] for k in ("architecture", "base_width")},
              "checkpoints": {"instance": {}, "coords": {}}}
    loc, histories = Localisers(config, {}, {}), {}
    for series_type in SAGITTAL:
        targets = instance_targets(cohort, series_type, hp["stack_depth"])
        key = SERIES_KEYS[series_type]
        for fold in range(hp["folds"]):
            train, held = _partition(targets, hp["folds"], fold, hp["instance"]["seed"])
            if len(train) == 0:
                continue
            torch.manual_seed(hp["instance"]["seed"])  # initial weights: torch's default seed differs per process
            model = loc.build_instance(series_type)
            task = InstanceTask(hp["stack_depth"], hp["instance"]["z_weight"], hp["instance"]["reg_weight"])
            folder = out_dir / "instance" / key / f"fold{fold}"
            histories[f"instance/{key}/fold{fold}"] = _fit(model, task, _stacks(cohort, train), _stacks(cohort, held),
                                                           hp["instance"], folder, progress).history
            loc.instance.setdefault(series_type, []).append(model)
            checkpoint = str(folder.relative_to(out_dir) / "best.pt")
            config["checkpoints"]["instance"].setdefault(series_type, []).append(checkpoint)
    for series_type in (*SAGITTAL, AXIAL_T2):
        targets = slice_targets(cohort, series_type)
        key = SERIES_KEYS[series_type]
        for encoder in hp["coords"]["encoders"]:
            for fold in range(hp["folds"]):
                train, held = _partition(targets, hp["folds"], fold, hp["coords"]["seed"])
                if len(train) == 0:
                    continue
                torch.manual_seed(hp["coords"]["seed"])
                model = CoordNet(len(heads(series_type)), encoder)
                folder = out_dir / "coords" / key / encoder / f"fold{fold}"
                coords_hp = {**hp["coords"], "epochs": hp["coords"]["epochs"][key]}  # epochs per series type
                histories[f"coords/{key}/{encoder}/fold{fold}"] = _fit(
                    model, CoordTask(), _slices(cohort, train, hp["coords"]["shift"]), _slices(cohort, held, 0),
                    coords_hp, folder, progress).history
                loc.coords.setdefault(series_type, []).append(model)
                config["checkpoints"]["coords"].setdefault(series_type, []).append(
                    [encoder, str(folder.relative_to(out_dir) / "best.pt")])
    (out_dir / "config.json").write_text(json.dumps(config, indent=2))
    return loc, histories


def _first_of(images: dict[int, SeriesImages], series_type: str) -> SeriesImages | None:
    found = sorted((s for s in images.values() if s.description == series_type), key=lambda s: s.series_id)
    return found[0] if found else None


def _in_plane(models: list[CoordNet], image: SeriesImages, ks: list[int], head_index: list[int]) -> np.ndarray:
    """(x, y) in native pixels of head ``head_index[i]`` on slice ``ks[i]`` of ``image``."""
    inputs = np.stack([three_channels(image.slices, k) for k in ks])
    normalised = predict_slices(models, inputs)[np.arange(len(ks)), head_index]
    _, height, width = image.geometry.shape
    return normalised * np.array([width, height])


def localise_study(images: dict[int, SeriesImages], loc: Localisers) -> pd.DataFrame:
    """Stage 1 on one study: a row per (condition, level) the study's series allow, with series, slice k and (x, y)."""
    rows = []
    for series_type in SAGITTAL:
        image = _first_of(images, series_type)
        if image is None or series_type not in loc.instance or series_type not in loc.coords:
            continue
        depth, scale = loc.config["stack_depth"], depth_scale(image.depth, loc.config["stack_depth"])
        cls, reg, _ = predict_stacks(loc.instance[series_type], image.stack[None], depth)
        native = np.array([image.depth]), np.array([scale])
        k = ensemble_native(cls, reg, *native)[0]
        k_cls = np.rint(np.median(to_native(cls, *native), axis=0))[0]
        k_reg = np.rint(np.median(to_native(reg, *native), axis=0))[0]
        order = heads(series_type)
        xy = _in_plane(loc.coords[series_type], image, list(k), list(range(len(order))))
        for h, (condition, level) in enumerate(order):
            rows.append({"condition": condition, "level": level, "series_id": image.series_id,
                         "series_description": series_type, "k": int(k[h]), "k_cls": int(k_cls[h]),
                         "k_reg": int(k_reg[h]), "x": float(xy[h, 0]), "y": float(xy[h, 1]), "projection_mm": np.nan})
    rows += _axial(images, loc, pd.DataFrame(rows))
    frame = pd.DataFrame(rows, columns=["condition", "level", "series_id", "series_description", "k", "k_cls", "k_reg",
                                        "x", "y", "projection_mm"])
    frame["instance_number"] = [int(images[s].instance_numbers[k]) for s, k in zip(frame["series_id"], frame["k"])]
    study = next(iter(images.values())).study_id if images else -1
    return frame.assign(study_id=study)


def _canal_point(images: dict[int, SeriesImages], sagittal: pd.DataFrame, level: str) -> np.ndarray | None:
    """Patient position of the canal at ``level``: the spinal canal point, else the mid-point of the two foramina."""
    if sagittal.empty:
        return None
    at = sagittal[sagittal["level"] == level]
    scs = at[at["condition"] == "spinal_canal_stenosis"]
    chosen = scs if len(scs) else at[at["condition"].str.contains("foraminal")]
    if chosen.empty:
        return None
    points = [to_patient(images[r.series_id].geometry, r.k, r.x, r.y) for r in chosen.itertuples()]
    return np.mean(points, axis=0)


def _axial(images: dict[int, SeriesImages], loc: Localisers, sagittal: pd.DataFrame) -> list[dict]:
    """Stage 1c: the axial slice by projection of the sagittal canal point, then in-plane subarticular points."""
    axial = {s.series_id: s.geometry for s in images.values() if s.description == AXIAL_T2}
    if not axial or AXIAL_T2 not in loc.coords:
        return []
    order = heads(AXIAL_T2)
    rows = []
    for h, (condition, level) in enumerate(order):
        point = _canal_point(images, sagittal, level)
        hit = project(point, axial) if point is not None else None
        if hit is None:
            continue
        series_id, k, _, _, distance = hit
        xy = _in_plane(loc.coords[AXIAL_T2], images[series_id], [k], [h])[0]
        rows.append({"condition": condition, "level": level, "series_id": series_id, "series_description": AXIAL_T2,
                     "k": k, "k_cls": k, "k_reg": k, "x": float(xy[0]), "y": float(xy[1]), "projection_mm": distance})
    return rows
