"""Stage 1 of the multi-stage paper end to end: train the localisers, save/load them, localise a study, and
measure the errors over a split (notebook 08; multi-stage paper §2.1, Table 2).

Per sagittal type (T2/STIR for spinal canal, T1 for left/right foramina) an
instance-number model (Stage 1a) and an in-plane model (Stage 1b); for Axial
T2 an in-plane model (Stage 1c) whose slice comes from projecting the
sagittal canal point through the patient geometry
(:func:`spinelib.data.patient_geometry.project`). Each is trained on the
training patients (one model per fold), checkpoint chosen on held-out patients
(the validation split, or the held-out fold).

Stage 1a (:class:`spinelib.models.localisers.InstanceNet`): L = CE + λ · L1
(:func:`spinelib.losses.localisation.instance_loss`) over the heads annotated
on that series. Prediction: argmax of the logits and 32 · z' mapped back to the
native index; the ensemble is the median over both heads and every fold.
Stages 1b/1c (:class:`spinelib.models.localisers.CoordNet`): masked L1 on the
heads annotated on that slice; the ensemble is the mean over folds (and
encoders, where several).

Errors are measured where the prediction sits on the annotated series:
slice error k̂ − k (slices), in-plane error ||(x̂, ŷ) − (x, y)|| in pixels and
in mm (× PixelSpacing); for every prediction, also the 3D distance in mm
between the predicted and the annotated patient positions.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from spinelib.constants import AXIAL_T2, SAGITTAL_T1, SAGITTAL_T2
from spinelib.data.cohort import Cohort, fold_of
from spinelib.data.patient_geometry import project, to_patient
from spinelib.data.study_images import SERIES_KEYS, SeriesImages, depth_scale, heads, three_channels
from spinelib.datasets.stacks import SliceDataset, StackDataset
from spinelib.losses.localisation import instance_loss, masked_l1
from spinelib.models.localisers import CoordNet, InstanceNet
from spinelib.params.multistage import CoordsParams, InstanceParams, LocalisationParams
from spinelib.progress import progress_bar
from spinelib.train import TrainConfig, fit, load_checkpoint, make_loader

SAGITTAL = (SAGITTAL_T2, SAGITTAL_T1)
KEYS = ["study_id", "condition", "level"]


# ---- training tasks (what ``fit`` calls) ---------------------------------------------------------------------------

@dataclass
class InstanceTask:
    """Stage 1a for ``fit``: :func:`instance_loss`; validation reports the loss and the exact-slice accuracy of
    both heads (each head's guess counts once)."""

    depth: int
    z_weight: float
    reg_weight: float

    def train_step(self, model: nn.Module, batch, device: torch.device) -> torch.Tensor:
        stacks, z, xy, _ = batch
        logits, regression = model(stacks.to(device))
        return instance_loss(logits, regression, z.to(device), xy.to(device), self.depth, self.z_weight,
                             self.reg_weight)

    def evaluate(self, model: nn.Module, loader, device: torch.device) -> dict[str, float]:
        losses, hits, count = [], 0, 0
        for stacks, z, xy, _ in loader:
            logits, regression = model(stacks.to(device))
            z, xy = z.to(device), xy.to(device)
            losses.append(instance_loss(logits, regression, z, xy, self.depth, self.z_weight, self.reg_weight).item())
            mask = z >= 0                                       # (B, H) annotated heads
            # the two guesses of each head in input slices: the arg-max logit and the regressed z' · depth
            cls, reg = logits.argmax(-1), (regression[..., 2] * self.depth).round().long()
            hits += int((cls[mask] == z[mask]).sum() + (reg[mask] == z[mask]).sum())
            count += 2 * int(mask.sum())
        return {"val_loss": float(np.mean(losses)) if losses else float("nan"),
                "slice_accuracy": hits / count if count else float("nan")}


@dataclass
class CoordTask:
    """Stages 1b/1c for ``fit``: masked L1; validation reports it as ``val_loss``."""

    def train_step(self, model: nn.Module, batch, device: torch.device) -> torch.Tensor:
        images, xy, mask, _ = batch
        return masked_l1(model(images.to(device)), xy.to(device), mask.to(device))

    def evaluate(self, model: nn.Module, loader, device: torch.device) -> dict[str, float]:
        total, count = 0.0, 0
        for images, xy, mask, _ in loader:
            loss = masked_l1(model(images.to(device)), xy.to(device), mask.to(device))
            # weighted by the annotated heads of the batch: the mean over every annotated head of the split
            total += loss.item() * int(mask.sum())
            count += int(mask.sum())
        return {"val_loss": total / count if count else float("nan")}


# ---- prediction with an ensemble --------------------------------------------------------------------------------

@torch.no_grad()
def predict_stacks(models: list[nn.Module], stacks: np.ndarray, depth: int, batch_size: int = 16,
                   device: torch.device = torch.device("cpu")) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Input-index predictions (N, H) of each model: classification z, regression 32·z', and (x', y') (N, H, 2).

    Returns arrays with a leading model axis: cls (M, N, H), reg (M, N, H), xy (M, N, H, 2).
    """
    cls, reg, xy = [], [], []
    for model in models:
        model.eval().to(device)
        parts = []
        for start in range(0, len(stacks), batch_size):
            # uint8 (b, D, S, S) → float (b, 1, D, S, S) in [0, 1]
            batch = torch.from_numpy(np.asarray(stacks[start:start + batch_size], dtype=np.float32) / 255.0)[:, None]
            logits, regression = model(batch.to(device))
            parts.append((logits.argmax(-1).cpu().numpy(), regression.cpu().numpy()))
        cls.append(np.concatenate([p[0] for p in parts]))
        regression = np.concatenate([p[1] for p in parts])
        reg.append(regression[..., 2] * depth)     # z' · depth: the regressed input index (not rounded yet)
        xy.append(regression[..., :2])
    return np.stack(cls), np.stack(reg), np.stack(xy)


def to_native(z: np.ndarray, native_depth: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Input index z → native slice index round(z / s), clipped to [0, D − 1] (per row: D and s broadcast)."""
    native = np.rint(np.asarray(z, dtype=float) / scale)
    return np.clip(native, 0, native_depth - 1).astype(np.int64)


def ensemble_native(cls: np.ndarray, reg: np.ndarray, native_depth: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Median over models and both heads of the native indices (M, N, H) → (N, H)."""
    # (2M, N, H): every model's classification and regression guess, as equal members of the median
    members = np.concatenate([to_native(cls, native_depth, scale), to_native(reg, native_depth, scale)])
    return np.rint(np.median(members, axis=0)).astype(np.int64)


@torch.no_grad()
def predict_slices(models: list[nn.Module], images: np.ndarray, batch_size: int = 32,
                   device: torch.device = torch.device("cpu")) -> np.ndarray:
    """Mean over models of the normalised (x', y') of every head: images (N, 3, S, S) uint8 → (N, H, 2)."""
    outputs = []
    for model in models:
        model.eval().to(device)
        # uint8 (b, 3, S, S) → float in [0, 1] → (b, H, 2) per batch
        parts = [model(torch.from_numpy(np.asarray(images[s:s + batch_size], dtype=np.float32) / 255.0).to(device))
                 .cpu().numpy() for s in range(0, len(images), batch_size)]
        outputs.append(np.concatenate(parts) if parts else np.zeros((0, model.num_heads, 2)))
    return np.mean(outputs, axis=0)


# ---- training ----------------------------------------------------------------------------------------------------

def _partition(frame: pd.DataFrame, folds: int, fold: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, held-out) rows: split train/val with one fold, else fold ``fold`` of the training patients held out."""
    if folds == 1:   # no cross-validation: the patient-level split's validation patients choose the checkpoint
        return frame[frame["split"] == "train"], frame[frame["split"] == "val"]
    train = frame[frame["split"] == "train"]
    held = fold_of(train["study_id"], folds, seed) == fold
    return train[~held], train[held]


def _fit(model, task, train_set, val_set, p: InstanceParams | CoordsParams, epochs: int, checkpoint_dir: Path,
         progress: bool):
    """Train ``model`` with AdamW and a cosine schedule, keep the best checkpoint (lowest validation loss).

    ``p`` is the section of the model family (Stage 1a or 1b/1c); ``epochs`` is given apart because the
    coordinate models take theirs per series type. Without held-out samples the training loss is monitored.
    """
    optimizer = torch.optim.AdamW(model.parameters(), lr=p.lr, weight_decay=p.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(epochs, 1))
    has_val = len(val_set) > 0
    config = TrainConfig(epochs=epochs, seed=p.seed, device=p.device, amp=p.amp, channels_last=p.channels_last,
                         monitor="val_loss" if has_val else "train_loss", mode="min", checkpoint_dir=checkpoint_dir,
                         progress=progress)
    train = make_loader(train_set, p.batch_size, shuffle=True, seed=p.seed)
    val = make_loader(val_set, p.batch_size, shuffle=False) if has_val else None
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
                z[h] = int(round(p.k * depth_scale(image.depth, depth)))   # native slice k → input index z
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
    """The Stage 1a dataset of :func:`instance_targets` rows (an empty frame: an empty dataset of the right rank)."""
    stacks = np.stack([cohort.images[s].stack for s in frame["series_id"]]) if len(frame) else np.zeros((0, 1, 1, 1))
    return StackDataset(stacks, np.stack(frame["z"].tolist()) if len(frame) else np.zeros((0, 1)),
                        np.stack(frame["xy"].tolist()) if len(frame) else np.zeros((0, 1, 2)))


def _slices(cohort: Cohort, frame: pd.DataFrame, shift: int) -> SliceDataset:
    """The Stage 1b/1c dataset of :func:`slice_targets` rows, image shift ``shift`` px (0: no augmentation)."""
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
        """A fresh Stage 1a network for ``series_type`` as ``config`` describes it (its heads: the type's levels)."""
        instance = self.config["instance"]   # read back from config.json: a plain dict
        if instance["architecture"] != "resnet3d18":
            raise ValueError(f"Stage 1a architecture {instance['architecture']!r} is not implemented (resnet3d18 is)")
        return InstanceNet(len(heads(series_type)), self.config["stack_depth"], instance["base_width"])

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


def train_localisers(cohort: Cohort, p: LocalisationParams, out_dir: Path,
                     progress: bool = True) -> tuple[Localisers, dict]:
    """Train Stage 1a (sagittal types) and 1b/1c (all types); write ``config.json``; return models and histories.

    ``config.json`` holds what :meth:`Localisers.load` needs to rebuild the models (input sizes, the Stage 1a
    architecture) and every checkpoint, relative to ``out_dir``. Histories are keyed
    ``instance/<series key>/fold<f>`` and ``coords/<series key>/<encoder>/fold<f>``.
    """
    out_dir = Path(out_dir)
    config = {"stack_depth": p.stack_depth, "stack_size": p.stack_size, "slice_size": p.slice_size,
              "instance": {k: getattr(p.instance, k) for k in ("architecture", "base_width")},
              "checkpoints": {"instance": {}, "coords": {}}}
    loc, histories = Localisers(config, {}, {}), {}
    # ---- Stage 1a: one instance-number model per sagittal type and fold ----
    for series_type in SAGITTAL:
        targets = instance_targets(cohort, series_type, p.stack_depth)
        key = SERIES_KEYS[series_type]
        for fold in range(p.folds):
            train, held = _partition(targets, p.folds, fold, p.instance.seed)
            if len(train) == 0:
                continue
            torch.manual_seed(p.instance.seed)  # initial weights: torch's default seed differs per process
            model = loc.build_instance(series_type)
            task = InstanceTask(p.stack_depth, p.instance.z_weight, p.instance.reg_weight)
            folder = out_dir / "instance" / key / f"fold{fold}"
            histories[f"instance/{key}/fold{fold}"] = _fit(model, task, _stacks(cohort, train), _stacks(cohort, held),
                                                           p.instance, p.instance.epochs, folder, progress).history
            loc.instance.setdefault(series_type, []).append(model)
            checkpoint = str(folder.relative_to(out_dir) / "best.pt")
            config["checkpoints"]["instance"].setdefault(series_type, []).append(checkpoint)
    # ---- Stages 1b/1c: one in-plane model per series type, encoder and fold ----
    for series_type in (*SAGITTAL, AXIAL_T2):
        targets = slice_targets(cohort, series_type)
        key = SERIES_KEYS[series_type]
        for encoder in p.coords.encoders:
            for fold in range(p.folds):
                train, held = _partition(targets, p.folds, fold, p.coords.seed)
                if len(train) == 0:
                    continue
                torch.manual_seed(p.coords.seed)
                model = CoordNet(len(heads(series_type)), encoder)
                folder = out_dir / "coords" / key / encoder / f"fold{fold}"
                histories[f"coords/{key}/{encoder}/fold{fold}"] = _fit(
                    model, CoordTask(), _slices(cohort, train, p.coords.shift), _slices(cohort, held, 0),
                    p.coords, p.coords.epochs[key], folder, progress).history   # epochs per series type
                loc.coords.setdefault(series_type, []).append(model)
                config["checkpoints"]["coords"].setdefault(series_type, []).append(
                    [encoder, str(folder.relative_to(out_dir) / "best.pt")])
    (out_dir / "config.json").write_text(json.dumps(config, indent=2))
    return loc, histories


def _first_of(images: dict[int, SeriesImages], series_type: str) -> SeriesImages | None:
    """The study's series of ``series_type`` with the lowest id (a study may hold several), or None."""
    found = sorted((s for s in images.values() if s.description == series_type), key=lambda s: s.series_id)
    return found[0] if found else None


def _in_plane(models: list[CoordNet], image: SeriesImages, ks: list[int], head_index: list[int]) -> np.ndarray:
    """(x, y) in native pixels of head ``head_index[i]`` on slice ``ks[i]`` of ``image``."""
    inputs = np.stack([three_channels(image.slices, k) for k in ks])                  # (n, 3, S, S)
    normalised = predict_slices(models, inputs)[np.arange(len(ks)), head_index]      # (n, 2): head i on input i
    _, height, width = image.geometry.shape
    return normalised * np.array([width, height])


def localise_study(images: dict[int, SeriesImages], loc: Localisers) -> pd.DataFrame:
    """Stage 1 on one study: a row per (condition, level) the study's series allow, with series, slice k and (x, y)."""
    rows = []
    for series_type in SAGITTAL:
        image = _first_of(images, series_type)
        if image is None or series_type not in loc.instance or series_type not in loc.coords:
            continue
        # ---- Stage 1a: the slice of every head (the ensemble, and each head's own median for Table 2) ----
        depth, scale = loc.config["stack_depth"], depth_scale(image.depth, loc.config["stack_depth"])
        cls, reg, _ = predict_stacks(loc.instance[series_type], image.stack[None], depth)   # (M, 1, H) each
        native = np.array([image.depth]), np.array([scale])
        k = ensemble_native(cls, reg, *native)[0]                                           # (H,)
        k_cls = np.rint(np.median(to_native(cls, *native), axis=0))[0]
        k_reg = np.rint(np.median(to_native(reg, *native), axis=0))[0]
        order = heads(series_type)
        # ---- Stage 1b: the in-plane point of head h on its own slice k[h] ----
        xy = _in_plane(loc.coords[series_type], image, list(k), list(range(len(order))))
        for h, (condition, level) in enumerate(order):
            rows.append({"condition": condition, "level": level, "series_id": image.series_id,
                         "series_description": series_type, "k": int(k[h]), "k_cls": int(k_cls[h]),
                         "k_reg": int(k_reg[h]), "x": float(xy[h, 0]), "y": float(xy[h, 1]), "projection_mm": np.nan})
    # ---- Stage 1c: axial slices projected from the sagittal canal points found above ----
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
    chosen = scs if len(scs) else at[at["condition"].str.contains("foraminal")]   # the foramina flank the canal
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


# ---- errors over a split (the paper's Table 2 and the hand-over to Stage 2) ------------------------------------

def predict_split(cohort: Cohort, loc: Localisers, splits: tuple[str, ...] = ("val", "test"),
                  progress: bool = True) -> pd.DataFrame:
    """Stage 1 predictions of every study of ``splits`` (one row per condition and level located)."""
    studies = sorted(cohort.series.loc[cohort.series["split"].isin(splits), "study_id"].unique())
    frames = [localise_study(cohort.study_images(s), loc) for s in progress_bar(studies, show=progress, desc="localise")]
    frames = [f for f in frames if len(f)]
    out = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=[*KEYS, "series_id", "k", "x", "y"])
    split_of = cohort.series.drop_duplicates("study_id").set_index("study_id")["split"]
    return out.assign(split=out["study_id"].map(split_of))


def with_errors(predicted: pd.DataFrame, cohort: Cohort) -> pd.DataFrame:
    """Join predictions with the annotated points and add slice, in-plane and 3D errors."""
    truth = cohort.points[[*KEYS, "series_id", "k", "x", "y", "mm_per_px"]]
    both = predicted.merge(truth, on=KEYS, how="inner", suffixes=("", "_true"))
    # slice and in-plane errors only compare pixels of one series; elsewhere they are NaN (the 3D error still counts)
    same = both["series_id"] == both["series_id_true"]
    both["same_series"] = same
    for column in ("k", "k_cls", "k_reg"):
        both[f"{column}_error"] = np.where(same, both[column] - both["k_true"], np.nan)
    pixels = np.hypot(both["x"] - both["x_true"], both["y"] - both["y_true"])
    both["xy_error_px"] = np.where(same, pixels, np.nan)
    both["xy_error_mm"] = both["xy_error_px"] * both["mm_per_px"]
    both["error_3d_mm"] = [
        float(np.linalg.norm(to_patient(cohort.images[r.series_id].geometry, r.k, r.x, r.y)
                             - to_patient(cohort.images[r.series_id_true].geometry, r.k_true, r.x_true, r.y_true)))
        for r in both.itertuples()]
    return both


def table2(errors: pd.DataFrame, series_description: str) -> pd.DataFrame:
    """The paper's Table 2 for one series type: error distribution of each head and of their median."""
    rows = errors[(errors["series_description"] == series_description) & errors["same_series"]]
    return error_table({"classification": rows["k_cls_error"], "regression": rows["k_reg_error"],
                        "ensemble (median)": rows["k_error"]})


def coordinate_errors(errors: pd.DataFrame) -> pd.DataFrame:
    """Per condition: median and mean in-plane error (px, mm) on the annotated series, 3D error, slice hits."""
    grouped = errors.groupby("condition", sort=False)
    return pd.DataFrame({
        "n": grouped.size(),
        "on_annotated_series": grouped["same_series"].mean().round(3),
        "slice_exact": grouped["k_error"].apply(lambda e: float((e.dropna() == 0).mean())).round(3),
        "xy_median_px": grouped["xy_error_px"].median().round(2),
        "xy_mean_px": grouped["xy_error_px"].mean().round(2),
        "xy_median_mm": grouped["xy_error_mm"].median().round(2),
        "error_3d_median_mm": grouped["error_3d_mm"].median().round(2),
    })


def shift_probabilities(errors: pd.DataFrame, max_shift: int = 2) -> list[float]:
    """P(|Δk| = 0, 1, …, max_shift) of the ensemble's slice error on sagittal series (larger errors count as max_shift).

    Stage 2's pre-crop augmentation draws its instance-number shift from this.
    """
    error = np.abs(errors.loc[errors["series_description"] != "Axial T2", "k_error"].dropna().to_numpy())
    if error.size == 0:
        return [1.0] + [0.0] * max_shift
    counts = np.bincount(np.minimum(error.astype(int), max_shift), minlength=max_shift + 1)   # |Δk| ≥ max → max
    return (counts / counts.sum()).round(4).tolist()


def error_table(errors: dict[str, np.ndarray]) -> pd.DataFrame:
    """Table 2: share (%) of slice errors 0, ±1, ±2 and beyond ±2, one row per model type."""
    rows = {}
    for name, error in errors.items():
        error = np.abs(np.asarray(error))
        rows[name] = {"error ±0": np.mean(error == 0), "error ±1": np.mean(error == 1),
                      "error ±2": np.mean(error == 2), "error > ±2": np.mean(error > 2), "n": len(error)}
    table = pd.DataFrame(rows).T
    share = ["error ±0", "error ±1", "error ±2", "error > ±2"]
    table[share] = (100 * table[share].astype(float)).round(2)
    table["n"] = table["n"].astype(int)
    return table
