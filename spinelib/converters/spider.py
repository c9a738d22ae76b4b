"""SPIDER (public lumbar spine MRI with disc grades, Zenodo, CC BY 4.0) turned into the ranking study's crop store.

SPIDER holders run notebooks 04–07 on it by converting it once:

    python -m spinelib.converters.spider ROOT OUT [--with-t1] [--seed S] [--fractions TR VA TE]

and setting ``crops_dir: OUT`` in params/ranking.yaml. ``OUT/config.json`` declares what the ranking study needs
to know about the cohort (:func:`ranking_settings`): ``tasks`` (name → number of grades), ``first_grade`` (none:
grades are stored from 0), ``masked`` (none), ``train_series`` (the series cut: T2, and T1 with ``--with-t1``),
``eval_series`` (T2) and ``phantom_truth: false``; notebook 04 takes these from the store instead of the
phantom's ``volumes`` params, and notebooks 05-07 learn from notebook 04's output that there is no truth.

Layout read::

    ROOT/images/<patient>_<t1|t2|t2_SPACE>.mha      MR volumes (any direction cosines, any spacing)
    ROOT/masks/<patient>_<t1|t2|t2_SPACE>.mha       label maps on the same grid: vertebrae 1–25,
                                                    spinal canal 100, discs 201–225 (201 = L5/S1, 202 = L4/L5, …)
    ROOT/radiological_gradings.csv                  Patient, IVD label (1 = L5/S1, 2 = L4/L5, …), Modic,
                                                    UP endplate, LOW endplate, Spondylolisthesis, Disc herniation,
                                                    Disc narrowing, Disc bulging, Pfirrman grade
    ROOT/overview.csv                               scanner metadata per file (not needed here)

* Each grading column is a task (:data:`GRADING_COLUMNS`); its number of grades K_t is the number of distinct
  values present in the file, and grade index g = rank of the raw value among them (Pfirrmann 1–5 → 0–4).
  ``config.json`` keeps the raw value of each index under ``grade_values``. A column with a single value in the
  file has nothing to grade: it is logged and is not a task.
* A graded disc (patient, IVD label k) is found in the mask as label 200 + k. Its centre is the centroid of
  those voxels in physical mm (index → mm through origin, spacing and the direction matrix); its normal is the
  smallest-variance principal axis of the same points (a disc is a flat slab), oriented towards the head.
* The disc volume is cut on a grid in the disc's own frame (``n`` the normal, ``a`` the posterior direction
  projected into the disc plane, ``l = a × n`` towards the patient's left)::

      p(s, r, c) = centre + (s − (D−1)/2)·slice_mm·l + ((H−1)/2 − r)·dr·n + (c − (W−1)/2)·dc·a
      dr, dc = field_mm / crop                                               (mm per sampled pixel)

  i.e. slices from the patient's right to left (as the RSNA volume crops), rows from head to feet (the disc a
  horizontal band in the middle rows), columns from anterior to posterior; trilinear interpolation
  (``scipy.ndimage.map_coordinates`` at the continuous voxel index of each point), outside the image = the
  window's low end. Then, as the RSNA crop stage does: window [p1, p99] of the whole series → [0, 1],
  resize of (H, W) from ``crop`` to ``size`` (block mean), × 255 to uint8.
* The defaults match the phantom/RSNA volumes of params/crops.yaml (12 slices, a 128 × 256 px field at about
  0.8 mm/px stored at 64 × 128, 1.6 mm/px) so that params/ranking.yaml ``volumes.field`` [32, 64] and
  ``input_size`` [32, 64] mean the same physical field on both cohorts; the slice spacing is 4 mm, about
  that of the phantom's and SPIDER's sagittal series.

Store written to OUT (read by :func:`spinelib.crops.store.open_store` like the phantom's volume crops):

* ``volume.npy``: uint8 (N, D, H, W).
* ``volume.csv``: one row per (graded disc, series): study_id (the patient), level (``l4_l5`` …), ivd_label,
  mask_label, sequence (the file's suffix: ``t2``, or ``t2_SPACE`` when no ``t2`` exists; ``t1``), image
  (file name), series_description ("Sagittal T2/STIR" / "Sagittal T1"), condition ("all"), one column per task
  (grade index, empty when missing), centre_x/y/z and normal_x/y/z (mm, the image's physical frame),
  disc_voxels, split, split_patient, split_disc, status ("ok" or why the volume could not be cut; such rows keep
  an all-zero array). split_patient keeps every disc of a patient in one split (stratified by the patient's worst
  Pfirrmann grade, :func:`spinelib.splits.assign_splits`); split_disc is the disc-level split; split =
  split_patient.
* ``crop_log.csv`` (volumes not cut, with the reason) and ``config.json``.

A gradings file without the expected columns raises :class:`SpiderFormatError` naming the file and the problem;
a missing image or mask, or a graded disc absent from its mask, is logged with patient and level, marked in
``status`` and skipped.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage

from spinelib.constants import SAGITTAL_T1, SAGITTAL_T2
from spinelib.crops.geometry import resize_stack, to_uint8
from spinelib.crops.store import RowWriter
from spinelib.converters.command import run_conversion
from spinelib.data.dicom import apply_window, intensity_window
from spinelib.paths import portable_path
from spinelib.progress import progress_bar
from spinelib.splits import SPLITS, assign_splits

log = logging.getLogger(__name__)

GRADINGS_NAME = "radiological_gradings.csv"
IMAGE_DIR, MASK_DIR = "images", "masks"
DISC_LABEL_OFFSET = 200  # mask label of IVD k is 200 + k
# Grading column (lower case, single spaces) → task name (names shared with the Genodisc reader where they agree).
GRADING_COLUMNS: dict[str, str] = {
    "pfirrman grade": "pfirrmann",   # SPIDER's spelling
    "modic": "modic",
    "up endplate": "upper_endplate_defect",
    "low endplate": "lower_endplate_defect",
    "spondylolisthesis": "spondylolisthesis",
    "disc herniation": "herniation",
    "disc narrowing": "disc_narrowing",
    "disc bulging": "disc_bulging",
}
ALIASES: dict[str, str] = {"pfirrmann grade": "pfirrman grade"}
STRATIFY_TASK = "pfirrmann"
# Series description → file suffixes in order of preference.
SEQUENCES: dict[str, tuple[str, ...]] = {SAGITTAL_T2: ("t2", "t2_SPACE"), SAGITTAL_T1: ("t1",)}
# Vertebrae from the bottom: IVD k lies between VERTEBRAE[k] (above) and VERTEBRAE[k - 1] (below).
VERTEBRAE: tuple[str, ...] = ("s1", "l5", "l4", "l3", "l2", "l1", *(f"t{i}" for i in range(12, 0, -1)),
                              *(f"c{i}" for i in range(7, 1, -1)))


class SpiderFormatError(ValueError):
    """A SPIDER file does not have the expected structure."""


class VolumeError(ValueError):
    """One disc volume cannot be cut (the cohort goes on without it)."""


@dataclass(frozen=True)
class Geometry:
    """The cut disc volume: ``slices`` × ``crop`` sampled over ``field_mm`` (H, W), stored resized to ``size``."""

    slices: int = 12                              # params/crops.yaml volume_slices
    crop: tuple[int, int] = (128, 256)            # params/crops.yaml volume_crop (px sampled in the disc plane)
    size: tuple[int, int] = (64, 128)             # params/crops.yaml volume_size (stored)
    field_mm: tuple[float, float] = (102.4, 204.8)  # volume_crop at the phantom's ~0.8 mm/px
    slice_mm: float = 4.0                         # phantom / SPIDER sagittal slice spacing, about

    def __post_init__(self):
        if self.slices < 1 or min(self.crop + self.size) < 1 or min(self.field_mm) <= 0 or self.slice_mm <= 0:
            raise ValueError(f"geometry must be positive, got {self}")


def level_name(ivd_label: int) -> str:
    """The level of SPIDER IVD label k (counted from the bottom): 1 → "l5_s1", 2 → "l4_l5", 6 → "t12_l1"."""
    if not 1 <= ivd_label < len(VERTEBRAE):
        raise ValueError(f"IVD label {ivd_label} outside 1..{len(VERTEBRAE) - 1}")
    return f"{VERTEBRAE[ivd_label]}_{VERTEBRAE[ivd_label - 1]}"


# --- The gradings -------------------------------------------------------------------------------------------------

def read_gradings(path: Path | str) -> pd.DataFrame:
    """One row per graded disc: study_id, ivd_label, level and the raw grade of each task (float, NaN if missing)."""
    path = Path(path)
    if not path.is_file():
        raise SpiderFormatError(f"{path}: no such gradings file (Patient, IVD label and one column per grade)")
    try:
        raw = pd.read_csv(path, sep=None, engine="python")  # sniffs "," or ";"
    except (pd.errors.ParserError, UnicodeDecodeError, csv.Error) as err:
        raise SpiderFormatError(f"{path}: cannot read as CSV: {err}") from err
    columns = {" ".join(str(c).lower().split()): c for c in raw.columns}
    columns = {ALIASES.get(k, k): c for k, c in columns.items()}
    missing = [k for k in ("patient", "ivd label", *GRADING_COLUMNS) if k not in columns]
    if missing:
        raise SpiderFormatError(f"{path}: column(s) {missing} missing; found {list(raw.columns)}")
    frame = pd.DataFrame({"study_id": raw[columns["patient"]].astype(str).str.strip()})
    ivd = pd.to_numeric(raw[columns["ivd label"]], errors="coerce")
    bad = ivd.isna() | (ivd != ivd.round()) | ~ivd.between(1, len(VERTEBRAE) - 1)
    if bad.any():
        line = int(np.flatnonzero(bad.to_numpy())[0]) + 2
        raise SpiderFormatError(f"{path}, line {line}: IVD label {raw[columns['ivd label']].iloc[line - 2]!r} "
                                f"is not an integer in 1..{len(VERTEBRAE) - 1}")
    frame["ivd_label"] = ivd.astype(int)
    frame["level"] = frame["ivd_label"].map(level_name)
    for key, task in GRADING_COLUMNS.items():
        values = pd.to_numeric(raw[columns[key]], errors="coerce")
        bad = values.isna() & raw[columns[key]].notna()
        if bad.any():
            line = int(np.flatnonzero(bad.to_numpy())[0]) + 2
            raise SpiderFormatError(f"{path}, line {line}: {columns[key]} {raw[columns[key]].iloc[line - 2]!r} "
                                    "is not a number")
        frame[task] = values.astype(float)
    duplicated = frame.duplicated(["study_id", "ivd_label"])
    if duplicated.any():
        first = frame[duplicated].iloc[0]
        raise SpiderFormatError(f"{path}: patient {first.study_id} IVD label {first.ivd_label} graded twice")
    return frame.sort_values(["study_id", "ivd_label"], key=_natural).reset_index(drop=True)


def _natural(column: pd.Series) -> pd.Series:
    """Sort key: numbers as numbers when all are numbers (patient "10" after "9"), else text."""
    numeric = pd.to_numeric(column, errors="coerce")
    return numeric if numeric.notna().all() else column.astype(str)


def task_grades(gradings: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, int], dict[str, list[float]]]:
    """Grade indices from raw grades: (frame with Int64 task columns, {task: K_t}, {task: raw value per index}).

    K_t is the number of distinct raw values of the task in the file; index g is the rank of the raw value
    (ascending), so an ordinal scale keeps its order (Pfirrmann 1..5 → 0..4, Modic 0..3 → 0..3). A column with
    fewer than two values in the file has nothing to rank or grade: it is logged and left out of the tasks (its
    column still holds the indices).
    """
    frame = gradings.copy()
    tasks, values = {}, {}
    for column, task in GRADING_COLUMNS.items():
        present = np.sort(frame[task].dropna().unique())
        frame[task] = pd.array(np.searchsorted(present, frame[task].fillna(-np.inf)), dtype="Int64")
        frame.loc[gradings[task].isna(), task] = pd.NA
        if len(present) < 2:
            found = f"only the value {present[0]:g}" if len(present) else "no value"
            log.warning("%s: column %r has %s in this file: nothing to grade, so no task %r", GRADINGS_NAME,
                        column, found, task)
            continue
        values[task] = [int(v) if float(v).is_integer() else float(v) for v in present]
        tasks[task] = len(present)
    return frame, tasks, values


# --- Images -------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Image:
    """A volume with its geometry: ``array`` (z, y, x) and p = origin + direction · (spacing ⊙ (i, j, k))."""

    array: np.ndarray        # (z, y, x), SimpleITK's array order
    origin: np.ndarray       # (3,) mm
    spacing: np.ndarray      # (3,) mm, ITK order (x, y, z)
    direction: np.ndarray    # (3, 3), columns = physical directions of the index axes i, j, k

    def to_physical(self, index_xyz: np.ndarray) -> np.ndarray:
        """Physical points (N, 3) of continuous ITK indices (N, 3) in (i, j, k) = (x, y, z) order."""
        return self.origin + (index_xyz * self.spacing) @ self.direction.T

    def to_index(self, points: np.ndarray) -> np.ndarray:
        """Continuous ITK indices (N, 3), (i, j, k) order, of physical points (N, 3)."""
        return np.linalg.solve(self.direction, (points - self.origin).T).T / self.spacing


def read_image(path: Path) -> Image:
    """An .mha (any format SimpleITK reads) with origin, spacing and direction cosines; VolumeError if unreadable."""
    import SimpleITK as sitk  # imported here: only this reader needs it

    if not path.is_file():
        raise VolumeError(f"missing file {path.parent.name}/{path.name}")
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as err:
        raise VolumeError(f"unreadable file {path.parent.name}/{path.name}: {str(err).strip()[:200]}") from err
    if image.GetDimension() != 3 or image.GetNumberOfComponentsPerPixel() != 1:
        raise VolumeError(f"{path.name}: expected a 3-D scalar volume, got {image.GetDimension()}-D with "
                          f"{image.GetNumberOfComponentsPerPixel()} component(s)")
    return Image(sitk.GetArrayFromImage(image), np.array(image.GetOrigin(), dtype=float),
                 np.array(image.GetSpacing(), dtype=float), np.array(image.GetDirection(), dtype=float).reshape(3, 3))


def disc_frame(mask: Image, label: int) -> tuple[np.ndarray, np.ndarray, int]:
    """(centre (3,), axes (3, 3) rows = (l, n, a), voxel count) of mask label ``label``, physical mm.

    Principal axes of the label's voxel centres: the smallest-variance one is the disc normal n, turned towards
    the head (+z, patient LPS/ITK); a = the posterior direction (+y) projected into the disc plane (the middle
    principal axis when the disc is nearly coronal), l = a × n, towards the patient's left (+x).
    """
    zyx = np.argwhere(mask.array == label)
    if len(zyx) < 4:
        raise VolumeError(f"mask label {label} {'missing' if len(zyx) == 0 else 'has fewer than 4 voxels'}")
    points = mask.to_physical(zyx[:, ::-1].astype(float))
    centre = points.mean(axis=0)
    eigenvalues, eigenvectors = np.linalg.eigh(np.cov(points - centre, rowvar=False))  # ascending
    normal = eigenvectors[:, 0] * (1.0 if eigenvectors[2, 0] >= 0 else -1.0)
    posterior = np.array([0.0, 1.0, 0.0]) - normal[1] * normal
    if np.linalg.norm(posterior) < 0.3:  # disc plane nearly coronal: the patient's axes do not help
        posterior = eigenvectors[:, 1]
    posterior /= np.linalg.norm(posterior)
    lateral = np.cross(posterior, normal)
    return centre, np.stack([lateral, normal, posterior]), len(zyx)


def sample_points(centre: np.ndarray, axes: np.ndarray, geometry: Geometry) -> np.ndarray:
    """Physical points (D, H, W, 3) of the disc-frame grid (module docstring); H, W = ``geometry.crop``."""
    depth, (height, width) = geometry.slices, geometry.crop
    dr, dc = geometry.field_mm[0] / height, geometry.field_mm[1] / width
    s = (np.arange(depth) - (depth - 1) / 2) * geometry.slice_mm
    r = ((height - 1) / 2 - np.arange(height)) * dr
    c = (np.arange(width) - (width - 1) / 2) * dc
    lateral, normal, posterior = axes
    return (centre + s[:, None, None, None] * lateral + r[None, :, None, None] * normal
            + c[None, None, :, None] * posterior)


def cut_disc(image: Image, window: tuple[float, float], centre: np.ndarray, axes: np.ndarray,
             geometry: Geometry) -> np.ndarray:
    """uint8 (D, H', W') disc volume: trilinear samples on the disc-frame grid, windowed, resized to ``size``."""
    points = sample_points(centre, axes, geometry)
    index = image.to_index(points.reshape(-1, 3))                      # (N, 3) as (i, j, k) = (x, y, z)
    coords = index[:, ::-1].T                                          # (3, N) as (z, y, x), the array's order
    pixels = np.asarray(image.array, dtype=np.float32)                 # no copy when already float32
    values = ndimage.map_coordinates(pixels, coords, order=1, mode="constant", cval=window[0], prefilter=False)
    stack = values.reshape(geometry.slices, *geometry.crop).astype(np.float32)
    return to_uint8(resize_stack(apply_window(stack, window), geometry.size))


# --- The whole cohort ---------------------------------------------------------------------------------------------

def _find_image(root: Path, patient: str, series: str) -> tuple[str | None, Path | None]:
    """(suffix, path) of the patient's preferred file for ``series``; (None, None) if none exists."""
    for suffix in SEQUENCES[series]:
        path = root / IMAGE_DIR / f"{patient}_{suffix}.mha"
        if path.is_file():
            return suffix, path
    return None, None


def plan_rows(root: Path, gradings: pd.DataFrame, series: tuple[str, ...]) -> pd.DataFrame:
    """One row per (graded disc, series) with the image file chosen for it (empty when there is none)."""
    rows = []
    for series_description in series:
        for patient in gradings["study_id"].unique():
            suffix, path = _find_image(root, patient, series_description)
            rows.append({"study_id": patient, "series_description": series_description, "sequence": suffix or "",
                         "image": path.name if path else ""})
    files = pd.DataFrame(rows, columns=["study_id", "series_description", "sequence", "image"])
    planned = gradings.merge(files, on="study_id", how="left")
    order = {s: i for i, s in enumerate(series)}
    planned["_series"] = planned["series_description"].map(order)
    planned = planned.sort_values(["_series"], kind="stable").drop(columns="_series").reset_index(drop=True)
    planned["mask_label"] = DISC_LABEL_OFFSET + planned["ivd_label"]
    planned["condition"] = "all"
    return planned


def _cut_series(root: Path, rows: pd.DataFrame, geometry: Geometry, array: RowWriter,
                frames: dict[int, dict]) -> dict[int, str]:
    """Cut every disc of one (patient, series) into ``array``; returns {row: status}, fills ``frames``."""
    first = rows.iloc[0]
    what = f"patient {first.study_id} {first.series_description}"
    if not first.image:
        expected = " / ".join(f"{first.study_id}_{s}.mha" for s in SEQUENCES[first.series_description])
        reason = f"no image ({IMAGE_DIR}/{expected})"
        log.warning("skipped %s (%d discs): %s", what, len(rows), reason)
        return {i: reason for i in rows.index}
    try:
        image = read_image(root / IMAGE_DIR / first.image)
        mask = read_image(root / MASK_DIR / first.image)
        same_grid = (mask.array.shape == image.array.shape and np.allclose(mask.direction, image.direction, atol=1e-4)
                     and np.allclose(mask.spacing, image.spacing, rtol=1e-4)
                     and np.allclose(mask.origin, image.origin, atol=1e-2))
        if not same_grid:
            raise VolumeError(f"mask {MASK_DIR}/{first.image} is not on the image's grid")
    except VolumeError as err:
        log.warning("skipped %s (%d discs): %s", what, len(rows), err)
        return {i: str(err) for i in rows.index}
    image = replace(image, array=image.array.astype(np.float32, copy=False))  # once per series, not per disc
    window = intensity_window(image.array)
    status = {}
    for i, row in rows.iterrows():
        try:
            centre, axes, voxels = disc_frame(mask, int(row.mask_label))
        except VolumeError as err:
            status[i] = f"{err} in {MASK_DIR}/{first.image}"
            log.warning("skipped patient %s level %s (IVD label %d) %s: %s", row.study_id, row.level,
                        row.ivd_label, row.series_description, status[i])
            continue
        array[i] = cut_disc(image, window, centre, axes, geometry)
        frames[i] = {**dict(zip(("centre_x", "centre_y", "centre_z"), centre.round(3))),
                     **dict(zip(("normal_x", "normal_y", "normal_z"), axes[1].round(5))), "disc_voxels": voxels}
        status[i] = "ok"
    return status


def spider_to_store(root: Path | str, out: Path | str, geometry: Geometry = Geometry(), *,
                    series: tuple[str, ...] = (SAGITTAL_T2,), fractions: tuple[float, float, float] = (0.7, 0.15, 0.15),
                    seed: int = 0, progress: bool = True) -> Path:
    """Convert the SPIDER cohort at ``root`` into a crop store at ``out`` (module docstring); returns ``out``.

    ``series``: the series descriptions cut per disc (T2 by default; add "Sagittal T1" for the released code's
    T1-or-T2 training draw). A disc that cannot be cut is logged with patient and level, marked in ``status``
    with an all-zero array, and listed in ``crop_log.csv``.
    """
    root, out = Path(root), Path(out)
    unknown = [s for s in series if s not in SEQUENCES]
    if unknown or not series:
        raise ValueError(f"series must be among {list(SEQUENCES)}, got {list(series)}")
    if not (root / IMAGE_DIR).is_dir() or not (root / MASK_DIR).is_dir():
        raise SpiderFormatError(f"{root}: expected folders {IMAGE_DIR}/ and {MASK_DIR}/ of .mha files")
    gradings, tasks, values = task_grades(read_gradings(root / GRADINGS_NAME))
    labels = gradings.assign(condition=STRATIFY_TASK, grade_index=gradings[STRATIFY_TASK].fillna(-1).astype(int))
    splits = assign_splits(labels, [STRATIFY_TASK], STRATIFY_TASK, fractions, seed)
    index = plan_rows(root, gradings, series).merge(splits, on=["study_id", "level"], how="left")
    index["split"] = index["split_patient"]
    array = RowWriter(out, "volume", (len(index), geometry.slices, *geometry.size))
    status, frames = {}, {}
    groups = index.groupby(["series_description", "study_id"], sort=False)
    for _, rows in progress_bar(groups, show=progress, total=groups.ngroups, desc="SPIDER discs", unit="series"):
        status.update(_cut_series(root, rows, geometry, array, frames))
    array.close()
    index = index.join(pd.DataFrame.from_dict(frames, orient="index"))
    index["status"] = pd.Series(status)
    columns = ["study_id", "level", "ivd_label", "mask_label", "sequence", "image", "series_description",
               "condition", *tasks, "centre_x", "centre_y", "centre_z", "normal_x", "normal_y", "normal_z",
               "disc_voxels", "split", "split_patient", "split_disc", "status"]
    index = index.reindex(columns=columns)
    index.to_csv(out / "volume.csv", index=False)
    skipped = index[index["status"] != "ok"]
    skipped.assign(kind="volume", series_id=skipped["image"], reason=skipped["status"])[
        ["kind", "study_id", "condition", "level", "series_id", "reason"]].to_csv(out / "crop_log.csv", index=False)
    config = {"source": "spider", "root": portable_path(root), "series": list(series), **asdict(geometry),
              "tasks": tasks, "grade_values": values, "split_unit": "patient", "split_fractions": list(fractions),
              "seed": seed, "stratified_by": STRATIFY_TASK, **ranking_settings(series)}
    (out / "config.json").write_text(json.dumps(config, indent=2))
    return out


def ranking_settings(series: tuple[str, ...]) -> dict:
    """What the ranking study reads from ``config.json`` besides ``tasks`` (:func:`spinelib.studies.ranking.load_data`).

    * ``first_grade``: none, since every task is stored as a grade index from 0 (:func:`task_grades`);
    * ``masked``: none; SPIDER's radiologists graded every disc on the sagittal images, so no series hides a task;
    * ``train_series``: every series cut here (one of them drawn per disc and epoch, as the released code does);
    * ``eval_series``: T2 only, as the released code evaluates;
    * ``phantom_truth``: false; a real cohort has no true latent severity (notebooks 04, 06, 07 skip the
      truth-dependent references, tables and figures).
    """
    return {"first_grade": {}, "masked": {}, "train_series": list(series), "eval_series": [SAGITTAL_T2],
            "phantom_truth": False}


def summary(out: Path | str) -> str:
    """A few lines on a converted store: volumes per split, tasks, and the skipped ones with their reasons."""
    out = Path(out)
    index = pd.read_csv(out / "volume.csv", dtype={"study_id": str, "sequence": str, "image": str})
    config = json.loads((out / "config.json").read_text())
    ok = index["status"] == "ok"
    per_split = index[ok].groupby("split").size().reindex(list(SPLITS), fill_value=0)
    lines = [f"{int(ok.sum())} of {len(index)} disc volumes written ("
             + ", ".join(f"{s} {n}" for s, n in per_split.items()) + f"); {int((~ok).sum())} skipped",
             "tasks (grades): " + ", ".join(f"{t} {k}" for t, k in config["tasks"].items())]
    fallback = index[ok & (index["sequence"] == "t2_SPACE")]["study_id"].nunique()
    if fallback:
        lines.append(f"{fallback} patients without t2 cut from t2_SPACE")
    for row in index[~ok].itertuples(index=False):
        lines.append(f"  skipped patient {row.study_id} {row.level} {row.series_description}: {row.status}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """``python -m spinelib.converters.spider ROOT OUT [--with-t1] [--size H W] [--crop H W] [--slices D] ...``."""
    default = Geometry()
    parser = argparse.ArgumentParser(prog="python -m spinelib.converters.spider",
                                     description="Convert SPIDER (Zenodo layout) into the ranking crop store.")
    parser.add_argument("root", type=Path, help=f"folder holding {IMAGE_DIR}/, {MASK_DIR}/ and {GRADINGS_NAME}")
    parser.add_argument("out", type=Path, help="crop store folder to write")
    parser.add_argument("--with-t1", action="store_true", help="also cut each disc from the t1 image (Sagittal T1)")
    parser.add_argument("--slices", type=int, default=default.slices, help=f"slices (default {default.slices})")
    parser.add_argument("--slice-mm", type=float, default=default.slice_mm,
                        help=f"slice spacing in mm (default {default.slice_mm})")
    parser.add_argument("--crop", type=int, nargs=2, default=default.crop, metavar=("H", "W"),
                        help="pixels sampled over the field before resizing (default %(default)s)")
    parser.add_argument("--field-mm", type=float, nargs=2, default=default.field_mm, metavar=("H", "W"),
                        help="field in the disc plane, mm (default %(default)s)")
    parser.add_argument("--size", type=int, nargs=2, default=default.size, metavar=("H", "W"),
                        help="stored in-plane size (default %(default)s)")
    parser.add_argument("--fractions", type=float, nargs=3, default=(0.7, 0.15, 0.15), metavar=("TRAIN", "VAL", "TEST"),
                        help="patient split fractions (default %(default)s, as params/crops.yaml)")
    parser.add_argument("--seed", type=int, default=0, help="split seed (default 0)")
    args = parser.parse_args(argv)
    geometry = Geometry(args.slices, tuple(args.crop), tuple(args.size), tuple(args.field_mm), args.slice_mm)
    series = (SAGITTAL_T2, SAGITTAL_T1) if args.with_t1 else (SAGITTAL_T2,)
    return run_conversion(lambda: spider_to_store(args.root, args.out, geometry, series=series,
                                                  fractions=tuple(args.fractions), seed=args.seed),
                          SpiderFormatError, summary)


if __name__ == "__main__":
    raise SystemExit(main())
