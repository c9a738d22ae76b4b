"""Crop extraction over a cohort: each series is read and decoded once.

For every study the extractor loads the series its crops need (one pass over
their DICOM files), cuts every ROI, disc volume and MIL bag of that study from
the loaded volumes, and hands the crops back to the writer. A study or a crop
that cannot be made is logged with its reason; the cohort goes on.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd

from spinelib.crops.geometry import Box, crop_origin, crop_plane, crop_stack, resize_stack, to_uint8
from spinelib.crops.plan import BAG_KIND, CropConfig, plan_points, plan_volumes, skipped_labels, with_coordinates
from spinelib.crops.store import allocate
from spinelib.data.dicom import ReadFailure, SeriesReadError, Volume, apply_window, intensity_window, read_series
from spinelib.data.rsna import read_dataset, series_dir
from spinelib.parallel import process_map
from spinelib.paths import portable_path
from spinelib.splits import assign_splits

log = logging.getLogger(__name__)
LOG_COLUMNS = ["kind", "study_id", "condition", "level", "series_id", "reason"]


def _windowed(crop: np.ndarray, window: tuple[float, float]) -> np.ndarray:
    """The series' intensity window applied to a crop (after any resizing: the smaller array)."""
    return apply_window(crop.astype(np.float32, copy=False), window)


def _roi(vol: Volume, window: tuple[float, float], row: dict, cfg: CropConfig) -> tuple[np.ndarray, dict]:
    k, y, x = vol.voxel(int(row["instance_number"]), float(row["x"]), float(row["y"]))
    box = Box.centred(*cfg.roi_size)
    row0, col0 = crop_origin(x, y, box)
    crop = crop_plane(vol.pixels[k], x, y, box, fill=window[0])
    return _windowed(crop, window), {"slice_index": k, "row0": row0, "col0": col0}


def _bag(vol: Volume, window: tuple[float, float], row: dict, cfg: CropConfig) -> tuple[np.ndarray, dict]:
    k, y, x = vol.voxel(int(row["instance_number"]), float(row["x"]), float(row["y"]))
    box = cfg.bag_box(row["condition"])
    stack, padded = crop_stack(vol.pixels, k, cfg.bag_slices, x, y, box, fill=window[0])
    stack = _windowed(resize_stack(stack, cfg.bag_size(BAG_KIND[row["condition"]])), window)
    row0, col0 = crop_origin(x, y, box)
    return stack, {"slice_index": k, "row0": row0, "col0": col0, "padded_slices": padded}


def _volume(vol: Volume, window: tuple[float, float], anchor: Volume, row: dict,
            cfg: CropConfig) -> tuple[np.ndarray, dict]:
    k, y, x = anchor.voxel(int(row["anchor_instance"]), float(row["anchor_x"]), float(row["anchor_y"]))
    if vol is not anchor:
        kf, y, x = vol.from_patient(anchor.to_patient(k, y, x))
        k = int(round(kf))
        if not 0 <= k < vol.pixels.shape[0] or not (0 <= y < vol.pixels.shape[1] and 0 <= x < vol.pixels.shape[2]):
            raise ValueError(f"disc centre falls outside series {vol.series_dir}")
    box = Box.centred(*cfg.volume_crop)
    stack, padded = crop_stack(vol.pixels, k, cfg.volume_slices, x, y, box, fill=window[0])
    if vol.normal[0] < 0:  # slice axis runs from the patient's right to left in every stored volume
        stack = stack[::-1]
    row0, col0 = crop_origin(x, y, box)
    geometry = {"slice_index": k, "x": x, "y": y, "row0": row0, "col0": col0, "padded_slices": padded}
    return _windowed(resize_stack(np.ascontiguousarray(stack), cfg.volume_size), window), geometry


def _loc(vol: Volume, window: tuple[float, float], row: dict, cfg: CropConfig) -> tuple[np.ndarray, dict]:
    """Whole slices around the annotated instance, resized: the localiser's 2.5D input and its target."""
    k, y, x = vol.voxel(int(row["instance_number"]), float(row["x"]), float(row["y"]))
    height, width = vol.pixels.shape[1:]
    whole = Box.centred(height, width)  # a box covering the whole image
    stack, padded = crop_stack(vol.pixels, k, cfg.loc_slices, (width - 1) / 2, (height - 1) / 2, whole, fill=window[0])
    geometry = {"slice_index": k, "x_norm": x / width, "y_norm": y / height, "height": height, "width": width,
                "padded_slices": padded}
    return _windowed(resize_stack(stack, cfg.loc_size), window), geometry


def crop_study(root: Path, study_id: int, tasks: dict[str, list[dict]], cfg: CropConfig,
               split: str = "train") -> dict:
    """Make every planned crop of one study; each needed series is read once.

    ``tasks`` maps a crop kind to its plan rows (dicts with ``row`` = position in
    the kind's index). Returns the crops, per-row geometry or failure reason,
    and the files that could not be read.
    """
    needed = {int(r["series_id"]) for rows in tasks.values() for r in rows if pd.notna(r["series_id"])}
    needed |= {int(r["anchor_series_id"]) for r in tasks.get("volume", [])}
    volumes: dict[int, Volume] = {}
    windows: dict[int, tuple[float, float]] = {}
    errors: dict[int, str] = {}
    failures: list[ReadFailure] = []
    for sid in sorted(needed):
        try:
            # Raw intensities; the series' window is applied to the crops only, not to every voxel.
            volumes[sid] = read_series(series_dir(root, study_id, sid, split), normalise=None)
            windows[sid] = intensity_window(volumes[sid].pixels, *cfg.normalise)
            failures.extend(volumes[sid].failures)
        except (SeriesReadError, FileNotFoundError, OSError) as err:
            errors[sid] = f"series unreadable: {err}"
    out: dict[str, list] = {kind: [] for kind in tasks}
    for kind, rows in tasks.items():
        for row in rows:
            try:
                if pd.isna(row["series_id"]):
                    raise LookupError(f"study has no {row['series_description']} series")
                sid = int(row["series_id"])
                if sid in errors or (kind == "volume" and int(row["anchor_series_id"]) in errors):
                    raise LookupError(errors.get(sid) or errors[int(row["anchor_series_id"])])
                if kind == "roi":
                    crop, geometry = _roi(volumes[sid], windows[sid], row, cfg)
                elif kind == "loc":
                    crop, geometry = _loc(volumes[sid], windows[sid], row, cfg)
                elif kind == "volume":
                    anchor = volumes[int(row["anchor_series_id"])]
                    crop, geometry = _volume(volumes[sid], windows[sid], anchor, row, cfg)
                else:
                    crop, geometry = _bag(volumes[sid], windows[sid], row, cfg)
                out[kind].append((row["row"], to_uint8(crop), {**geometry, "status": "ok"}))
            except (LookupError, ValueError) as err:
                out[kind].append((row["row"], None, {"status": str(err).strip("'\"")}))
    return {"crops": out, "failures": [asdict(f) for f in failures]}


def _crop_study_star(args: tuple) -> dict:
    return crop_study(*args)


def _plans(labels: pd.DataFrame, series: pd.DataFrame, cfg: CropConfig) -> dict[str, pd.DataFrame]:
    points = plan_points(labels, tuple(BAG_KIND))
    plans = {"roi": plan_points(labels, cfg.roi_conditions), "volume": plan_volumes(labels, series, cfg.volume_series),
             "loc": plan_points(labels, ("spinal_canal_stenosis",))}
    for kind in sorted(set(BAG_KIND.values())):
        plans[kind] = points[points["condition"].map(BAG_KIND) == kind].reset_index(drop=True)
    return plans


def _shape(kind: str, n: int, cfg: CropConfig) -> tuple[int, ...]:
    if kind == "roi":
        return (n, *cfg.roi_size)
    if kind == "volume":
        return (n, cfg.volume_slices, *cfg.volume_size)
    if kind == "loc":
        return (n, cfg.loc_slices, *cfg.loc_size)
    return (n, cfg.bag_slices, *cfg.bag_size(kind))


def extract_crops(root: Path | str, out_dir: Path | str, cfg: CropConfig, *, split_unit: str = "patient",
                  fractions: tuple[float, float, float] = (0.7, 0.15, 0.15), seed: int = 0,
                  split_conditions: tuple[str, ...] | None = None,
                  disc_condition: str = "spinal_canal_stenosis", workers: int = 1,
                  progress: bool = True, kinds: tuple[str, ...] | None = None,
                  coordinates: pd.DataFrame | None = None) -> dict:
    """Extract every crop kind of the cohort at ``root`` into the store at ``out_dir``.

    Writes ``<kind>.npy`` + ``<kind>.csv`` per kind, ``splits.csv`` (both the
    patient- and the disc-level split of every disc), ``crop_log.csv`` (every
    label or crop skipped, with the reason), ``read_failures.csv`` (DICOM files
    that could not be read) and ``summary.json``. Returns the summary.

    ``kinds`` limits the crop kinds made (default: all); ``coordinates``
    (study_id, condition, level, x, y) replaces the annotated points, e.g. by a
    localiser's predictions (:func:`spinelib.crops.plan.with_coordinates`).
    """
    if split_unit not in ("patient", "disc"):
        raise ValueError(f"split_unit must be 'patient' or 'disc', got {split_unit!r}")
    start = time.perf_counter()
    root, out_dir = Path(root), Path(out_dir)
    dataset = read_dataset(root)
    labels = dataset.labels if coordinates is None else with_coordinates(dataset.labels, coordinates)
    splits = assign_splits(labels, split_conditions or tuple(labels["condition"].unique()), disc_condition,
                           fractions, seed)
    splits["split"] = splits[f"split_{split_unit}"]
    plans = {kind: plan for kind, plan in _plans(labels, dataset.series, cfg).items() if kinds is None or kind in kinds}
    arrays = {kind: allocate(out_dir, kind, _shape(kind, len(plan), cfg)) for kind, plan in plans.items()}
    geometry: dict[str, dict[int, dict]] = {kind: {} for kind in plans}
    failures: list[dict] = []
    by_study: dict[int, dict[str, list[dict]]] = {}
    for kind, plan in plans.items():
        for i, row in enumerate(plan.to_dict("records")):
            by_study.setdefault(int(row["study_id"]), {}).setdefault(kind, []).append({**row, "row": i})
    jobs = [(root, study, tasks, cfg) for study, tasks in sorted(by_study.items())]
    for result in process_map(_crop_study_star, jobs, workers, chunksize=2, progress=progress, desc="crops",
                              unit="study"):
        failures.extend(result["failures"])
        for kind, items in result["crops"].items():
            for i, crop, info in items:
                if crop is not None:
                    arrays[kind][i] = crop
                geometry[kind][i] = info
    log_rows = [skipped_labels(labels, dataset.series).assign(kind="label", series_id=pd.NA)[LOG_COLUMNS]]
    summary = {"studies": int(labels["study_id"].nunique()), "split_unit": split_unit, "kinds": {}}
    for kind, plan in plans.items():
        arrays[kind].flush()
        crops = pd.DataFrame.from_dict(geometry[kind], orient="index").sort_index()
        index = plan.join(crops) if len(crops) else plan.assign(status=pd.Series(dtype="string"))
        index = index.merge(splits, on=["study_id", "level"], how="left")
        index.to_csv(out_dir / f"{kind}.csv", index=False)
        bad = index[index["status"] != "ok"]
        log_rows.append(bad.assign(kind=kind, reason=bad["status"])[LOG_COLUMNS])
        summary["kinds"][kind] = {"planned": len(index), "ok": int((index["status"] == "ok").sum()),
                                  "failed": int(len(bad)), "shape": list(arrays[kind].shape[1:])}
    crop_log = pd.concat(log_rows, ignore_index=True)
    crop_log.to_csv(out_dir / "crop_log.csv", index=False)
    pd.DataFrame(failures, columns=["path", "reason"]).to_csv(out_dir / "read_failures.csv", index=False)
    splits.to_csv(out_dir / "splits.csv", index=False)
    store_config = {"data_root": portable_path(root), "split_unit": split_unit, "fractions": list(fractions), "seed": seed,
                    "crops": asdict(cfg)}
    (out_dir / "config.json").write_text(json.dumps(store_config, indent=2))
    summary["skipped"] = crop_log.groupby("kind").size().to_dict()
    summary["read_failures"] = len(failures)
    summary["problems"] = dataset.problems
    # timings stay out of the store, so the same inputs give a byte-identical store (and DVC hash)
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=int))
    summary["seconds"] = round(time.perf_counter() - start, 2)
    summary["discs_per_second"] = round(sum(v["ok"] for v in summary["kinds"].values()) / summary["seconds"], 1)
    for line in crop_log[crop_log["kind"] != "label"].itertuples():
        log.warning("skipped %s of study %s %s %s: %s", line.kind, line.study_id, line.condition, line.level,
                    line.reason)
    return summary
