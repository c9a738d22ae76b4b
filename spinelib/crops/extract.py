"""Crop extraction over a cohort: each series is read and decoded once.

For every study the extractor loads the series its crops need (one pass over
their DICOM files), cuts every ROI, disc volume, localiser input and MIL bag
of that study from the loaded volumes, and hands the crops back to the
writer. A study or a crop that cannot be made is logged with its reason; the
cohort goes on.

Every crop kind is one row of :data:`CROP_KINDS` (its plan, its cut, its
stored shape, whether it needs an anchor series): adding a kind means adding
one :class:`CropKind` there (and its name to the store's reading order,
:data:`spinelib.crops.store.KINDS`).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from spinelib.crops.disc_plane import canal_direction, in_plane_tilt, sample_disc
from spinelib.crops.geometry import Box, crop_origin, crop_plane, crop_stack, resize_stack, to_uint8
from spinelib.crops.plan import (BAG_KIND, NEIGHBOURS, CropConfig, plan_points, plan_volumes, skipped_labels,
                                 with_coordinates)
from spinelib.crops.store import RowWriter
from spinelib.data.dicom import ReadFailure, SeriesReadError, Volume, apply_window, intensity_window, read_series
from spinelib.data.rsna import read_dataset, series_dir
from spinelib.parallel import process_map
from spinelib.paths import portable_path
from spinelib.splits import assign_splits

log = logging.getLogger(__name__)
LOG_COLUMNS = ["kind", "study_id", "condition", "level", "series_id", "reason"]

# The split is stratified by the grades of every condition and keyed by the spinal canal label of a disc
# (every disc has one); no caller has needed other values, so they are fixed here rather than arguments.
SPLIT_DISC_CONDITION = "spinal_canal_stenosis"

Window = tuple[float, float]   # (low, high) raw intensities mapped to 0 and 1 (the series' percentile window)


def _windowed(crop: np.ndarray, window: Window) -> np.ndarray:
    """The series' intensity window applied to a crop (after any resizing: the smaller array)."""
    return apply_window(crop.astype(np.float32, copy=False), window)


# ---- the cuts: one function per crop kind --------------------------------------------------------------------------
# Each takes the loaded series ``vol`` (pixels (S, H, W), raw intensities, float32 or stored integers), its window,
# the plan row and the crop sizes, and returns the crop in [0, 1] (float32) and its geometry (what the index table
# records beside it). Cuts are made in float32, so that the padding takes the window's (fractional) low end.

def _roi(vol: Volume, window: Window, row: dict, cfg: CropConfig) -> tuple[np.ndarray, dict]:
    """2D ROI (H, W) = ``cfg.roi_size`` centred on the coordinate, on its annotated instance."""
    k, y, x = vol.voxel(int(row["instance_number"]), float(row["x"]), float(row["y"]))
    box = Box.centred(*cfg.roi_size)
    row0, col0 = crop_origin(x, y, box)
    # pixels outside the image take the window's low end, i.e. 0 after windowing (constant padding)
    crop = crop_plane(vol.pixels[k], x, y, box, fill=window[0], dtype=np.float32)
    return _windowed(crop, window), {"slice_index": k, "row0": row0, "col0": col0}


def _bag(vol: Volume, window: Window, row: dict, cfg: CropConfig) -> tuple[np.ndarray, dict]:
    """MIL bag (bag_slices, H, W): Table 1's box of the row's condition on the slices around the instance,
    stored at ``cfg.bag_scale`` (H, W = :meth:`CropConfig.bag_size` of the bag kind)."""
    k, y, x = vol.voxel(int(row["instance_number"]), float(row["x"]), float(row["y"]))
    box = cfg.bag_box(row["condition"])
    stack, padded = crop_stack(vol.pixels, k, cfg.bag_slices, x, y, box, fill=window[0], dtype=np.float32)
    stack = _windowed(resize_stack(stack, cfg.bag_size(BAG_KIND[row["condition"]])), window)
    row0, col0 = crop_origin(x, y, box)
    return stack, {"slice_index": k, "row0": row0, "col0": col0, "padded_slices": padded}


def _canal_point(anchor: Volume, row: dict, prefix: str) -> np.ndarray | None:
    """The canal point (mm) of row keys ``<prefix>_instance``, ``<prefix>_x``, ``<prefix>_y`` on the anchor
    series; None when the row has none (no neighbouring level annotated on that series) or it does not lie on
    the series (an instance it lacks, a point off the image): a neighbour only steers the plane, so a bad one
    leaves the disc to the other neighbour rather than failing its volume."""
    instance = row.get(f"{prefix}_instance")
    if instance is None or pd.isna(instance):
        return None
    try:
        voxel = anchor.voxel(int(instance), float(row[f"{prefix}_x"]), float(row[f"{prefix}_y"]))
    except (KeyError, ValueError):
        return None
    return anchor.to_patient(*voxel)


def disc_volume(vol: Volume, window: Window, anchor: Volume, row: dict,
                cfg: CropConfig) -> tuple[np.ndarray, dict]:
    """Disc volume (volume_slices, H, W) = (cfg.volume_slices, *cfg.volume_size) of series ``vol``.

    The disc centre is the spinal canal point on the ``anchor`` series (row keys ``anchor_instance``,
    ``anchor_x``, ``anchor_y``); on another series (Sagittal T1 for a T2 anchor) it is carried through patient
    coordinates: voxel (k, y, x) of the anchor -> point p (mm) -> voxel of ``vol``; the nearest voxel is the
    centre. Around it ``volume_slices`` slices and the ``cfg.volume_crop`` field of the series' pixels are cut,
    with ``cfg.volume_plane == "disc"`` turned in the slice plane into the disc plane, which is taken perpendicular
    to the canal at the disc, estimated from the neighbouring levels' canal points (row keys ``above_*``,
    ``below_*``, ``above2_*``, ``below2_*`` on the anchor series; :mod:`spinelib.crops.disc_plane`); with
    ``"image"``, or without a neighbouring point, on the series' own axes. The field is sampled at the stored
    ``cfg.volume_size``. Also used by the grader (:mod:`spinelib.grading.disc_scores`), so training volumes and
    graded volumes are one cut.

    Raises ValueError when the centre falls outside ``vol``.
    """
    k, y, x = anchor.voxel(int(row["anchor_instance"]), float(row["anchor_x"]), float(row["anchor_y"]))
    point = anchor.to_patient(k, y, x)
    if vol is not anchor:
        kf, y, x = vol.from_patient(point)
        k = int(round(kf))
        if not 0 <= k < vol.pixels.shape[0] or not (0 <= y < vol.pixels.shape[1] and 0 <= x < vol.pixels.shape[2]):
            raise ValueError(f"disc centre falls outside series {vol.series_dir}")
    tilt = None
    if cfg.volume_plane == "disc":
        direction = canal_direction(point, *(_canal_point(anchor, row, side) for side in NEIGHBOURS))
        tilt = in_plane_tilt(vol, direction)
    stack, padded = sample_disc(vol, k, round(y), round(x), tilt or 0.0, cfg.volume_slices, cfg.volume_crop,
                                cfg.volume_size, fill=window[0])
    if vol.normal[0] < 0:  # slice axis runs from the patient's right to left in every stored volume
        stack = stack[::-1]
    row0, col0 = crop_origin(x, y, Box.centred(*cfg.volume_crop))
    geometry = {"slice_index": k, "x": x, "y": y, "row0": row0, "col0": col0, "padded_slices": padded,
                "plane": "image" if tilt is None else "disc",
                "tilt_deg": 0.0 if tilt is None else round(float(np.degrees(tilt)), 2)}
    return _windowed(np.ascontiguousarray(stack), window), geometry


def _loc(vol: Volume, window: Window, anchor: Volume | None, row: dict, cfg: CropConfig,
         memo: dict) -> tuple[np.ndarray, dict]:
    """Whole slices around the annotated instance, resized: the localiser's 2.5D input and its target.

    Input (loc_slices, H, W) = (cfg.loc_slices, *cfg.loc_size); target (x_norm, y_norm) = (x / width, y / height).
    The input depends on the series and the slice alone, and every level's canal point usually lies on the same
    slice: it is made once per study and slice and kept in ``memo`` for the other levels (the anchor is unused).
    """
    k, y, x = vol.voxel(int(row["instance_number"]), float(row["x"]), float(row["y"]))
    height, width = vol.pixels.shape[1:]
    key = ("loc", vol.series_dir, k)
    if key not in memo:
        whole = Box.centred(height, width)  # a box covering the whole image
        stack, padded = crop_stack(vol.pixels, k, cfg.loc_slices, (width - 1) / 2, (height - 1) / 2, whole,
                                   fill=window[0], dtype=np.float32)
        memo[key] = _windowed(resize_stack(stack, cfg.loc_size), window), padded
    crop, padded = memo[key]
    geometry = {"slice_index": k, "x_norm": x / width, "y_norm": y / height, "height": height, "width": width,
                "padded_slices": padded}
    return crop, geometry


# ---- the crop kinds, in one table ---------------------------------------------------------------------------------

# cut(vol, window, anchor, row, cfg, memo): ``anchor`` is the anchor series' volume for anchored kinds, else None;
# ``memo`` is a dict the cuts of one study share, for work that several of its rows would repeat (the localiser's
# inputs). Point kinds wrap their cut with _point_cut; disc_volume, which the grader calls too, with _anchored_cut.
CutFunction = Callable[[Volume, Window, Volume | None, dict, CropConfig, dict], tuple[np.ndarray, dict]]
PlanFunction = Callable[[pd.DataFrame, pd.DataFrame, CropConfig], pd.DataFrame]


@dataclass(frozen=True)
class CropKind:
    """One kind of crop: which rows it makes (``plan``), how it cuts one (``cut``), the shape stored per crop.

    ``plan(labels, series, cfg)`` gives one row per crop (the ``<kind>.csv`` index columns before geometry);
    ``shape(cfg)`` the stored shape of one crop, without the leading N; ``anchored``: each row also names an
    ``anchor_series_id`` whose volume the cut needs (read, and reported unreadable, like the row's own series).
    """

    name: str
    plan: PlanFunction
    cut: CutFunction
    shape: Callable[[CropConfig], tuple[int, ...]]
    anchored: bool = False


def _point_cut(function: Callable[[Volume, Window, dict, CropConfig], tuple[np.ndarray, dict]]) -> CutFunction:
    """A cut on the annotated point alone, in the table's signature (the anchor and the memo are unused)."""
    def cut(vol: Volume, window: Window, anchor: Volume | None, row: dict, cfg: CropConfig,
            memo: dict) -> tuple[np.ndarray, dict]:
        return function(vol, window, row, cfg)
    return cut


def _anchored_cut(vol: Volume, window: Window, anchor: Volume | None, row: dict, cfg: CropConfig,
                  memo: dict) -> tuple[np.ndarray, dict]:
    """:func:`disc_volume` in the table's signature (the memo is unused)."""
    return disc_volume(vol, window, anchor, row, cfg)


def _bag_kind(name: str) -> CropKind:
    """The MIL bag kind ``name`` (bag_scs, bag_nfn, bag_ss): the points of the conditions :data:`BAG_KIND` maps
    to it, each a stack of Table 1's box."""
    def plan(labels: pd.DataFrame, series: pd.DataFrame, cfg: CropConfig) -> pd.DataFrame:
        # all bag conditions planned together, then filtered: the rows keep the order of that joint plan
        points = plan_points(labels, tuple(BAG_KIND))
        return points[points["condition"].map(BAG_KIND) == name].reset_index(drop=True)

    return CropKind(name=name, plan=plan, cut=_point_cut(_bag), shape=lambda cfg: (cfg.bag_slices, *cfg.bag_size(name)))


# Extraction order: it orders the kinds in summary.json and crop_log.csv, so it is part of the store's bytes.
CROP_KINDS: dict[str, CropKind] = {kind.name: kind for kind in [
    # contrastive study: one 2D ROI per annotated point of every condition
    CropKind(name="roi", plan=lambda labels, series, cfg: plan_points(labels, cfg.roi_conditions),
             cut=_point_cut(_roi), shape=lambda cfg: tuple(cfg.roi_size)),
    # ranking study: one volume per disc and series type, centred through the spinal canal point (the anchor)
    CropKind(name="volume", plan=lambda labels, series, cfg: plan_volumes(labels, series, cfg.volume_series),
             cut=_anchored_cut, shape=lambda cfg: (cfg.volume_slices, *cfg.volume_size), anchored=True),
    # the localiser: whole slices around each spinal canal point, which is its regression target
    CropKind(name="loc", plan=lambda labels, series, cfg: plan_points(labels, ("spinal_canal_stenosis",)),
             cut=_loc, shape=lambda cfg: (cfg.loc_slices, *cfg.loc_size)),
    # MIL study: one bag kind per condition group (bag_nfn, bag_scs, bag_ss)
    *[_bag_kind(name) for name in sorted(set(BAG_KIND.values()))],
]}


# ---- one study ---------------------------------------------------------------------------------------------------

def _series_needed(tasks: dict[str, list[dict]]) -> set[int]:
    """Every series id the study's planned crops read: their own series and, for anchored kinds, the anchor."""
    needed = {int(r["series_id"]) for rows in tasks.values() for r in rows if pd.notna(r["series_id"])}
    for kind, rows in tasks.items():
        if CROP_KINDS[kind].anchored:
            needed |= {int(r["anchor_series_id"]) for r in rows}
    return needed


def crop_study(root: Path, study_id: int, tasks: dict[str, list[dict]], cfg: CropConfig,
               writers: dict[str, RowWriter], split: str = "train") -> dict:
    """Make every planned crop of one study, each needed series read once, and write each crop (uint8) to its
    row of the store through ``writers`` (kind -> the store's :class:`RowWriter`).

    ``tasks`` maps a crop kind to its plan rows (dicts with ``row`` = position in
    the kind's index). Returns ``{"geometry": {kind: [(row, geometry or {"status": reason})]},
    "failures": [unreadable files]}``.
    """
    # ---- read every needed series once ----
    volumes: dict[int, Volume] = {}
    windows: dict[int, Window] = {}
    errors: dict[int, str] = {}
    failures: list[ReadFailure] = []
    for sid in sorted(_series_needed(tasks)):
        try:
            # Raw intensities (the files' integers where the rescale is the identity: no float copy of the
            # series); the series' window is applied to the crops only, not to every voxel.
            volumes[sid] = read_series(series_dir(root, study_id, sid, split), normalise=None, stored_integers=True)
            windows[sid] = intensity_window(volumes[sid].pixels, *cfg.normalise)
            failures.extend(volumes[sid].failures)
        except (SeriesReadError, FileNotFoundError, OSError) as err:
            errors[sid] = f"series unreadable: {err}"

    # ---- cut every planned crop; a crop that cannot be made keeps its reason as status ----
    out: dict[str, list] = {kind: [] for kind in tasks}
    memo: dict = {}   # what the cuts of this study share (CutFunction)
    for kind, rows in tasks.items():
        spec = CROP_KINDS[kind]
        for row in rows:
            try:
                if pd.isna(row["series_id"]):
                    raise LookupError(f"study has no {row['series_description']} series")
                sid = int(row["series_id"])
                anchor_sid = int(row["anchor_series_id"]) if spec.anchored else None
                if sid in errors or anchor_sid in errors:
                    raise LookupError(errors.get(sid) or errors[anchor_sid])
                anchor = volumes[anchor_sid] if spec.anchored else None
                crop, geometry = spec.cut(volumes[sid], windows[sid], anchor, row, cfg, memo)
                writers[kind][row["row"]] = to_uint8(crop)
                out[kind].append((row["row"], {**geometry, "status": "ok"}))
            except (LookupError, ValueError) as err:
                # str(KeyError) quotes its message: strip the quotes so the log reads like the others
                out[kind].append((row["row"], {"status": str(err).strip("'\"")}))
    return {"geometry": out, "failures": [asdict(f) for f in failures]}


def _crop_study_star(args: tuple) -> dict:
    return crop_study(*args)


# ---- the cohort --------------------------------------------------------------------------------------------------

def _tasks_by_study(plans: dict[str, pd.DataFrame]) -> dict[int, dict[str, list[dict]]]:
    """Plan rows regrouped per study (then per kind), each row tagged with its position in its kind's index."""
    by_study: dict[int, dict[str, list[dict]]] = {}
    for kind, plan in plans.items():
        for i, row in enumerate(plan.to_dict("records")):
            by_study.setdefault(int(row["study_id"]), {}).setdefault(kind, []).append({**row, "row": i})
    return by_study


def _cut_cohort(root: Path, plans: dict[str, pd.DataFrame], arrays: dict[str, RowWriter], cfg: CropConfig,
                workers: int, progress: bool) -> tuple[dict[str, dict[int, dict]], list[dict]]:
    """Cut every planned crop into ``arrays``, study by study (in ``workers`` processes).

    Returns per kind the geometry and status of each index row, and the DICOM files that could not be read.
    """
    # per kind, index row -> geometry and status of that crop; kept in the parent, which alone writes the tables
    geometry: dict[str, dict[int, dict]] = {kind: {} for kind in plans}
    failures: list[dict] = []
    # one job per study, so each series is read from disk once for all the kinds that need it; sorted by study
    # id, and process_map keeps that order, so read_failures.csv is the same for any number of workers. Each job
    # writes its crops into the store itself (each at its own index row, so the order of writes does not matter
    # for the .npy): only their geometry comes back, not hundreds of MB of pixels through the pool's pipes.
    jobs = [(root, study, tasks, cfg, arrays) for study, tasks in sorted(_tasks_by_study(plans).items())]
    for result in process_map(_crop_study_star, jobs, workers, chunksize=1, progress=progress, desc="crops",
                              unit="study"):
        failures.extend(result["failures"])
        for kind, items in result["geometry"].items():
            geometry[kind].update(items)
    return geometry, failures


def _write_indexes(out_dir: Path, plans: dict[str, pd.DataFrame], arrays: dict[str, RowWriter],
                   geometry: dict[str, dict[int, dict]], splits: pd.DataFrame) -> tuple[dict, list[pd.DataFrame]]:
    """Close each kind's array and write its index table ``<kind>.csv`` (plan + geometry + split).

    Returns each kind's counts for the summary and its failed crops as crop-log rows.
    """
    kinds: dict[str, dict] = {}
    log_rows: list[pd.DataFrame] = []
    for kind, plan in plans.items():
        arrays[kind].close()
        # sort by index row so that join() lines geometry up with the plan rows
        crops = pd.DataFrame.from_dict(geometry[kind], orient="index").sort_index()
        # a kind with no crop attempted at all still gets a status column, so the filters below work
        index = plan.join(crops) if len(crops) else plan.assign(status=pd.Series(dtype="string"))
        # left merge: every planned crop keeps its row, even one whose disc has no split
        index = index.merge(splits, on=["study_id", "level"], how="left")
        index.to_csv(out_dir / f"{kind}.csv", index=False)
        bad = index[index["status"] != "ok"]
        log_rows.append(bad.assign(kind=kind, reason=bad["status"])[LOG_COLUMNS])
        kinds[kind] = {"planned": len(index), "ok": int((index["status"] == "ok").sum()),
                       "failed": int(len(bad)), "shape": list(arrays[kind].shape[1:])}
    return kinds, log_rows


def extract_crops(root: Path | str, out_dir: Path | str, cfg: CropConfig, *, split_unit: str = "patient",
                  fractions: tuple[float, float, float] = (0.7, 0.15, 0.15), seed: int = 0, workers: int = 1,
                  progress: bool = True, kinds: tuple[str, ...] | None = None,
                  coordinates: pd.DataFrame | None = None) -> dict:
    """Extract every crop kind of the cohort at ``root`` into the store at ``out_dir``.

    Writes ``<kind>.npy`` + ``<kind>.csv`` per kind, ``splits.csv`` (both the
    patient- and the disc-level split of every disc), ``crop_log.csv`` (every
    label or crop skipped, with the reason), ``read_failures.csv`` (DICOM files
    that could not be read), ``config.json`` and ``summary.json``. Returns the summary.

    ``split_unit`` ("patient" or "disc"), ``fractions`` (train, val, test) and ``seed`` make the split
    (:func:`spinelib.splits.assign_splits`); ``workers`` processes cut the studies (the store is the same for
    any number). ``kinds`` limits the crop kinds made (default: all of :data:`CROP_KINDS`); ``coordinates``
    (study_id, condition, level, x, y) replaces the annotated points, e.g. by a
    localiser's predictions (:func:`spinelib.crops.plan.with_coordinates`).
    """
    # a wrong split_unit would otherwise surface as a bare KeyError, later
    if split_unit not in ("patient", "disc"):
        raise ValueError(f"split_unit must be 'patient' or 'disc', got {split_unit!r}")
    # wall time for the returned summary only; it never reaches summary.json (see the end)
    start = time.perf_counter()
    root, out_dir = Path(root), Path(out_dir)

    # ---- labels, split and plans (table work: no pixel read yet) ----
    dataset = read_dataset(root)
    # predicted points (e.g. a localiser's) replace the annotated ones, so the same code cuts a store a later
    # stage would see at inference time
    labels = dataset.labels if coordinates is None else with_coordinates(dataset.labels, coordinates)
    # both split columns are made from the labels (not the planned crops), so they do not depend on `kinds`
    splits = assign_splits(labels, tuple(labels["condition"].unique()), SPLIT_DISC_CONDITION, fractions, seed)
    # the chosen unit's column is copied to "split", the column the later stages filter on
    splits["split"] = splits[f"split_{split_unit}"]
    # one plan (a DataFrame, one row per crop to cut) per kind; its row order is the index order of <kind>.npy
    plans = {name: kind.plan(labels, dataset.series, cfg) for name, kind in CROP_KINDS.items()
             if kinds is None or name in kinds}
    # one zero-filled (N, *shape) uint8 array per kind: a failed crop keeps its zeros, so row i is index row i
    arrays = {name: RowWriter(out_dir, name, (len(plan), *CROP_KINDS[name].shape(cfg))) for name, plan in plans.items()}

    # ---- pixels: every crop cut, then each kind's index table ----
    geometry, failures = _cut_cohort(root, plans, arrays, cfg, workers, progress)
    kind_counts, kind_log = _write_indexes(out_dir, plans, arrays, geometry, splits)

    # ---- store-wide files: the log (skipped labels first, then each kind's failed crops), failures, splits ----
    skipped = skipped_labels(labels, dataset.series).assign(kind="label", series_id=pd.NA)[LOG_COLUMNS]
    crop_log = pd.concat([skipped, *kind_log], ignore_index=True)
    crop_log.to_csv(out_dir / "crop_log.csv", index=False)
    pd.DataFrame(failures, columns=["path", "reason"]).to_csv(out_dir / "read_failures.csv", index=False)
    splits.to_csv(out_dir / "splits.csv", index=False)
    # how the store was made (CropStore.config): a re-cut (notebook 03's localiser) reuses exactly these settings
    store_config = {"data_root": portable_path(root), "split_unit": split_unit, "fractions": list(fractions),
                    "seed": seed, "crops": asdict(cfg)}
    (out_dir / "config.json").write_text(json.dumps(store_config, indent=2))
    summary = {"studies": int(labels["study_id"].nunique()), "split_unit": split_unit, "kinds": kind_counts,
               "skipped": crop_log.groupby("kind").size().to_dict(), "read_failures": len(failures),
               "problems": dataset.problems}
    # timings stay out of the store, so the same inputs give a byte-identical store (and DVC hash)
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=int))
    summary["seconds"] = round(time.perf_counter() - start, 2)
    summary["discs_per_second"] = round(sum(v["ok"] for v in summary["kinds"].values()) / summary["seconds"], 1)
    # only failed crops are warned about: skipped labels (no series of the type, or no point annotated) are
    # common in the data and stay listed in crop_log.csv
    for line in crop_log[crop_log["kind"] != "label"].itertuples():
        log.warning("skipped %s of study %s %s %s: %s", line.kind, line.study_id, line.condition, line.level,
                    line.reason)
    return summary
