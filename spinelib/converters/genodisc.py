"""Genodisc (the ranking paper's private cohort) in the layout of its released code, turned into a crop store.

Genodisc holders run notebooks 04–07 on it by converting it once:

    python -m spinelib.converters.genodisc ROOT OUT [--size H W]

and setting ``crops_dir: OUT`` in params/ranking.yaml (``input_size`` = the size
chosen here or smaller). ``OUT/config.json`` declares the cohort's ``tasks``
(:data:`GENODISC_TASKS`) and :data:`RANKING_SETTINGS` (no first-grade offset, as
grades are stored here from 0; Pfirrmann and disc narrowing masked on T1 as in the
paper; T1 or T2 in training, T2 at evaluation; no phantom truth); notebook 04 takes
these from the store instead of the phantom's ``volumes`` params.

Layout read (that of spinetools/spineranknet, ``GENODISC_ROOT``)::

    ROOT/geno_ivd_v1.pkl                   the index (``--index`` for another name)
    ROOT/IVDs-numpy/<key>_<sequence>.npy   one volume per IVD and sequence (``--volumes``)

* The index is a pickled dict ``{"Train": split, "Val": split, "Test": split}``;
  each split maps an IVD key to ``{"sequence": [names], "score": {task: grade}}``.
* An IVD key is ``<subject>_<LEVEL>`` with LEVEL one of T12_L1, L1_L2, …, L5_S1
  (e.g. ``GENODISC_001_L3_L4``): ``study_id`` = the subject, ``level`` = LEVEL in
  lower case (``l3_l4``). A key without that suffix is its own ``study_id`` with
  level ``unknown``.
* Sequence names starting with ``T1`` are "Sagittal T1", with ``T2`` "Sagittal
  T2/STIR" (the released code evaluates on ``T2_S1``); other names are kept in
  the index with a status saying so and no volume.
* ``score`` holds raw grades as numbers, NaN or None when missing, under the
  released code's names (:data:`SOURCE_KEYS`). Pfirrmann is graded 1–5 and
  stored here as 0–4; spondylolisthesis grades above 2 are merged into 2, as the
  released code does; every other task must already be 0..K−1.
* A volume is a float array (H, W, slices), 192 × 320 × 15 in the released
  data (intensities already scaled by the vertebral-body median); any finite
  3-D array at least as large as the crop is accepted.

Store written to OUT, read like the phantom's volume crops
(:func:`spinelib.crops.store.open_store`):

* ``volume.npy``: uint8 (N, D, H, W), slices first. Per volume: window [p1, p99]
  of the whole stored volume → [0, 1]; centre crop to ``crop`` (D, H, W) =
  (12, 128, 256) by default, i.e. slices (S − D) // 2 … and the released code's
  margins (192 − 128) / 2 = 32 rows, (320 − 256) / 2 = 32 columns; resize of
  (H, W) to ``size``; × 255. The slice order is kept as stored.
* ``volume.csv``: one row per (IVD, sequence): study_id, level, ivd_key,
  sequence, series_description, condition ("all"), one column per task (empty
  when missing), split, split_patient, split_disc, status ("ok" or why the volume
  could not be used; such rows keep an all-zero array). split_patient is the
  released split (Train/Val/Test → train/val/test), made by patient; split_disc
  repeats it, as Genodisc has no disc-level split, so that a ranking run with
  either ``split_column`` sees the paper's split; split = split_patient.
* ``crop_log.csv`` (volumes not used, with the reason) and ``config.json``.

An index that does not have this structure raises :class:`GenodiscFormatError`
naming the file and the problem; a missing or unreadable volume is logged,
marked in ``status`` and skipped.
"""

from __future__ import annotations

import argparse
import json
import logging
import pickle
import re
from pathlib import Path

import numpy as np
import pandas as pd

from spinelib.constants import SAGITTAL_T1, SAGITTAL_T2
from spinelib.crops.geometry import resize_stack, to_uint8
from spinelib.crops.store import RowWriter
from spinelib.converters.command import run_conversion
from spinelib.data.dicom import apply_window, intensity_window
from spinelib.paths import portable_path

log = logging.getLogger(__name__)

GENODISC_TASKS: dict[str, int] = {
    "pfirrmann": 5,
    "disc_narrowing": 4,
    "central_canal_stenosis": 4,
    "spondylolisthesis": 3,
    "upper_endplate_defect": 4,
    "lower_endplate_defect": 4,
    "left_foraminal_stenosis": 4,
    "right_foraminal_stenosis": 4,
    "herniation": 4,
    "anterior_bulging": 4,
    "posterior_bulging": 4,
}
SOURCE_KEYS: dict[str, str] = {
    "pfirrmann": "Pfirrmann",
    "disc_narrowing": "Narrowing",
    "central_canal_stenosis": "CentralCanalStenosis",
    "spondylolisthesis": "Spondylolisthesis",
    "upper_endplate_defect": "UpperEndplateDefect",
    "lower_endplate_defect": "LowerEndplateDefect",
    "left_foraminal_stenosis": "ForaminalStenosisLeft",
    "right_foraminal_stenosis": "ForaminalStenosisRight",
    "herniation": "Herniation",
    "anterior_bulging": "AnteriorBulging",
    "posterior_bulging": "PosteriorBulging",
}
SPLITS: dict[str, str] = {"Train": "train", "Val": "val", "Test": "test"}
# What the ranking study reads from config.json besides ``tasks`` (spinelib.studies.ranking.load_data):
# grades are stored from 0 here (no first_grade offset); the paper hides Pfirrmann and disc narrowing on T1 (a T1
# image does not show the disc's water content); training draws T1 or T2 per disc, evaluation uses T2 only (the
# released code); a real cohort has no phantom truth (notebooks 04, 06, 07 skip the truth-dependent parts).
RANKING_SETTINGS: dict = {"first_grade": {}, "masked": {SAGITTAL_T1: ["pfirrmann", "disc_narrowing"]},
                          "train_series": [SAGITTAL_T2, SAGITTAL_T1], "eval_series": [SAGITTAL_T2],
                          "phantom_truth": False}
INDEX_NAME = "geno_ivd_v1.pkl"
VOLUME_DIR = "IVDs-numpy"
LEVEL_SUFFIX = re.compile(r"^(?P<subject>.+)_(?P<level>T12_L1|L1_L2|L2_L3|L3_L4|L4_L5|L5_S1)$", re.IGNORECASE)


class GenodiscFormatError(ValueError):
    """The Genodisc index does not have the expected structure."""


class VolumeError(ValueError):
    """One volume cannot be used (the cohort goes on without it)."""


# --- The index ----------------------------------------------------------------------------------------------------

def parse_key(key: str) -> tuple[str, str]:
    """(study_id, level) of an IVD key: ``GENODISC_001_L3_L4`` → ("GENODISC_001", "l3_l4")."""
    match = LEVEL_SUFFIX.match(key)
    return (match["subject"], match["level"].lower()) if match else (key, "unknown")


def series_description(sequence: str) -> str | None:
    """The series description of a sequence name: "Sagittal T1" for T1*, "Sagittal T2/STIR" for T2*, else None."""
    prefix = sequence[:2].upper()
    return {"T1": SAGITTAL_T1, "T2": SAGITTAL_T2}.get(prefix)


def _grade(raw, task: str, key: str, index_path: Path) -> int | None:
    """One stored grade (0-based) from a raw score value; None when missing."""
    if raw is None or (np.ndim(raw) == 0 and pd.isna(raw)):
        return None
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise GenodiscFormatError(
            f"{index_path}: IVD {key!r}, {SOURCE_KEYS[task]}: grade {raw!r} is not a number") from None
    if not np.isfinite(value) or value != round(value):
        raise GenodiscFormatError(f"{index_path}: IVD {key!r}, {SOURCE_KEYS[task]}: grade {raw!r} is not an integer")
    grade = int(value) - (1 if task == "pfirrmann" else 0)
    if task == "spondylolisthesis":
        grade = min(grade, GENODISC_TASKS[task] - 1)
    if not 0 <= grade < GENODISC_TASKS[task]:
        expected = "1..5" if task == "pfirrmann" else f"0..{GENODISC_TASKS[task] - 1}"
        raise GenodiscFormatError(f"{index_path}: IVD {key!r}, {SOURCE_KEYS[task]}: grade {raw!r} outside {expected}")
    return grade


def read_index(index_path: Path | str) -> pd.DataFrame:
    """One row per (IVD, sequence) of the pickled index, with study_id, level, grades and split; no volumes read."""
    index_path = Path(index_path)
    if not index_path.is_file():
        raise GenodiscFormatError(f"{index_path}: no such index file (the pickled Train/Val/Test dict)")
    try:
        with index_path.open("rb") as handle:
            index = pickle.load(handle)
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, ValueError) as err:
        raise GenodiscFormatError(f"{index_path}: cannot unpickle the index: {err}") from err
    if not isinstance(index, dict):
        raise GenodiscFormatError(f"{index_path}: expected a dict with keys {list(SPLITS)}, got {type(index).__name__}")
    missing = [s for s in SPLITS if s not in index]
    if missing:
        raise GenodiscFormatError(f"{index_path}: split(s) {missing} missing; found keys {sorted(map(str, index))}")
    rows, seen = [], {}
    for source, split in SPLITS.items():
        if not isinstance(index[source], dict):
            raise GenodiscFormatError(f"{index_path}: {source!r} should map IVD keys to entries, "
                                      f"got {type(index[source]).__name__}")
        for key, entry in index[source].items():
            key = str(key)
            if key in seen:
                raise GenodiscFormatError(f"{index_path}: IVD {key!r} is in both {seen[key]!r} and {source!r}")
            seen[key] = source
            if not isinstance(entry, dict) or not {"sequence", "score"} <= set(entry):
                found = sorted(entry) if isinstance(entry, dict) else type(entry).__name__
                raise GenodiscFormatError(f"{index_path}: IVD {key!r} should hold 'sequence' and 'score', "
                                          f"found {found}")
            sequences, score = entry["sequence"], entry["score"]
            if not isinstance(score, dict):
                raise GenodiscFormatError(f"{index_path}: IVD {key!r}: 'score' should be a dict of grades, "
                                          f"got {type(score).__name__}")
            if isinstance(sequences, str) or not all(isinstance(s, str) for s in sequences):
                raise GenodiscFormatError(f"{index_path}: IVD {key!r}: 'sequence' should be a list of names, "
                                          f"got {sequences!r}")
            absent = [SOURCE_KEYS[t] for t in GENODISC_TASKS if SOURCE_KEYS[t] not in score]
            if absent:
                raise GenodiscFormatError(f"{index_path}: IVD {key!r}: score lacks {absent}")
            grades = {t: _grade(score[SOURCE_KEYS[t]], t, key, index_path) for t in GENODISC_TASKS}
            if not sequences:
                log.warning("IVD %s (%s) lists no sequence: no volume", key, source)
            study_id, level = parse_key(key)
            for sequence in sequences:
                rows.append({"study_id": study_id, "level": level, "ivd_key": key, "sequence": sequence,
                             "series_description": series_description(sequence) or sequence, "condition": "all",
                             **grades, "split": split})
    frame = pd.DataFrame(rows, columns=["study_id", "level", "ivd_key", "sequence", "series_description",
                                        "condition", *GENODISC_TASKS, "split"])
    for task in GENODISC_TASKS:
        frame[task] = frame[task].astype("Int64")
    frame["split_patient"] = frame["split_disc"] = frame["split"]
    leaking = frame.groupby("study_id")["split"].nunique()
    if (leaking > 1).any():
        log.warning("%d subjects have IVDs in more than one split (e.g. %s): the split is then not by patient",
                    int((leaking > 1).sum()), leaking[leaking > 1].index[0])
    return frame


# --- One volume ---------------------------------------------------------------------------------------------------

def crop_volume(volume: np.ndarray, crop: tuple[int, int, int], size: tuple[int, int]) -> np.ndarray:
    """Stored (H, W, slices) float volume → uint8 (D, H', W'): percentile window, centre crop, resize.

    The [p1, p99] window is taken over the whole stored volume; the crop keeps
    slices (S − D) // 2 … and rows / columns (H − h) // 2 …, (W − w) // 2 ….
    """
    if volume.ndim != 3:
        raise VolumeError(f"array of shape {volume.shape}, expected 3-D (H, W, slices)")
    stored = (volume.shape[2], volume.shape[0], volume.shape[1])  # (S, H, W)
    if any(have < want for have, want in zip(stored, crop)):
        raise VolumeError(f"volume (H, W, slices) {volume.shape} is smaller than the crop (D, H, W) {tuple(crop)}")
    bad = int(np.size(volume) - np.count_nonzero(np.isfinite(volume)))
    if bad:
        raise VolumeError(f"{bad} non-finite voxels")
    window = intensity_window(np.asarray(volume, dtype=np.float32))
    start = [(have - want) // 2 for have, want in zip(stored, crop)]
    block = volume[start[1]:start[1] + crop[1], start[2]:start[2] + crop[2], start[0]:start[0] + crop[0]]
    stack = np.ascontiguousarray(np.moveaxis(block, -1, 0), dtype=np.float32)
    return to_uint8(resize_stack(apply_window(stack, window), tuple(size)))


def _load(path: Path) -> np.ndarray:
    if not path.is_file():
        raise VolumeError(f"missing file {path.name}")
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as err:
        raise VolumeError(f"unreadable file {path.name}: {err}") from err


# --- The whole cohort ---------------------------------------------------------------------------------------------

def genodisc_to_store(root: Path | str, out: Path | str, crop: tuple[int, int, int] = (12, 128, 256),
                      size: tuple[int, int] = (128, 256), *, index_name: str = INDEX_NAME,
                      volume_dir: str = VOLUME_DIR) -> Path:
    """Convert the Genodisc cohort at ``root`` into a crop store at ``out`` (module docstring); returns ``out``.

    ``crop`` is (D, H, W) taken from the centre of each stored volume, ``size``
    the (H, W) it is resized to. A volume that cannot be used is logged and
    marked in ``status`` with an all-zero array; ``crop_log.csv`` lists them.
    """
    root, out = Path(root), Path(out)
    crop, size = tuple(int(v) for v in crop), tuple(int(v) for v in size)
    if len(crop) != 3 or len(size) != 2 or min(crop + size) < 1:
        raise ValueError(f"crop must be (D, H, W) and size (H, W), positive; got {crop} and {size}")
    if not (root / volume_dir).is_dir():
        raise GenodiscFormatError(f"{root / volume_dir}: no such volume folder (one <key>_<sequence>.npy per volume)")
    index = read_index(root / index_name)
    array = RowWriter(out, "volume", (len(index), crop[0], *size))
    status = []
    for i, row in enumerate(index.itertuples(index=False)):
        try:
            if series_description(row.sequence) is None:
                raise VolumeError(f"unknown sequence {row.sequence!r} (expected T1* or T2*)")
            array[i] = crop_volume(_load(root / volume_dir / f"{row.ivd_key}_{row.sequence}.npy"), crop, size)
            status.append("ok")
        except VolumeError as err:
            log.warning("skipped volume %s %s: %s", row.ivd_key, row.sequence, err)
            status.append(str(err))
        if (i + 1) % 1000 == 0:
            log.info("%d / %d volumes", i + 1, len(index))
    array.close()
    index["status"] = status
    index.to_csv(out / "volume.csv", index=False)
    skipped = index[index["status"] != "ok"]
    skipped.assign(kind="volume", series_id=skipped["sequence"], reason=skipped["status"])[
        ["kind", "study_id", "condition", "level", "series_id", "reason"]].to_csv(out / "crop_log.csv", index=False)
    config = {"source": "genodisc", "root": portable_path(root), "index": index_name, "volume_dir": volume_dir,
              "crop": list(crop), "size": list(size), "tasks": dict(GENODISC_TASKS), "split_unit": "patient",
              **RANKING_SETTINGS}
    (out / "config.json").write_text(json.dumps(config, indent=2))
    return out


def summary(out: Path | str) -> str:
    """A few lines on a converted store: volumes per split, and the skipped ones with their reasons."""
    index = pd.read_csv(Path(out) / "volume.csv", dtype={"study_id": str})
    ok = index["status"] == "ok"
    per_split = index[ok].groupby("split").size().reindex(list(SPLITS.values()), fill_value=0)
    lines = [f"{int(ok.sum())} of {len(index)} volumes written ("
             + ", ".join(f"{s} {n}" for s, n in per_split.items()) + f"); {int((~ok).sum())} skipped"]
    for row in index[~ok].itertuples(index=False):
        lines.append(f"  skipped {row.ivd_key} {row.sequence}: {row.status}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """``python -m spinelib.converters.genodisc ROOT OUT [--size H W] [--crop D H W] [--index NAME] [--volumes DIR]``."""
    parser = argparse.ArgumentParser(prog="python -m spinelib.converters.genodisc",
                                     description="Convert Genodisc (released-code layout) into a crop store.")
    parser.add_argument("root", type=Path, help=f"folder holding {INDEX_NAME} and {VOLUME_DIR}/")
    parser.add_argument("out", type=Path, help="crop store folder to write")
    parser.add_argument("--size", type=int, nargs=2, default=(128, 256), metavar=("H", "W"),
                        help="in-plane size of the stored volumes (default 128 256)")
    parser.add_argument("--crop", type=int, nargs=3, default=(12, 128, 256), metavar=("D", "H", "W"),
                        help="centre crop of the stored volumes before resizing (default 12 128 256)")
    parser.add_argument("--index", default=INDEX_NAME, help=f"index pickle inside ROOT (default {INDEX_NAME})")
    parser.add_argument("--volumes", default=VOLUME_DIR, help=f"volume folder inside ROOT (default {VOLUME_DIR})")
    args = parser.parse_args(argv)
    return run_conversion(lambda: genodisc_to_store(args.root, args.out, tuple(args.crop), tuple(args.size),
                                                    index_name=args.index, volume_dir=args.volumes),
                          GenodiscFormatError, summary)


if __name__ == "__main__":
    raise SystemExit(main())
