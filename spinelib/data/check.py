"""Validate a dataset in the RSNA layout before any stage uses it.

Backs ``spinelib check-data ROOT``. :func:`check_dataset` reads the CSVs with
:mod:`spinelib.data.rsna`, decodes every DICOM file (so truncated files are
found), matches every coordinate row (repeated annotations of a label
included, each reported by its CSV line) to its instance and image size, and returns a
JSON-serialisable report; :func:`format_report` prints it for people.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from spinelib.constants import CONDITION_SERIES, CONDITIONS, GRADES, SERIES_TYPES
from spinelib.data.dicom import InstanceReadError, read_instance
from spinelib.data.rsna import DataFormatError, image_dir, read_dataset
from spinelib.parallel import process_map

_CHUNKSIZE = 16


class DataUnusable(RuntimeError):
    """The dataset cannot be used at all; the message is a one-line reason."""


def _scan(path: str) -> tuple[str, int, int, str | None]:
    """(path, rows, columns, failure reason or None) of one decoded file."""
    try:
        _, pixels = read_instance(Path(path))
    except InstanceReadError as exc:
        return path, 0, 0, exc.reason
    except OSError as exc:
        return path, 0, 0, f"unreadable file ({exc})"
    return path, int(pixels.shape[0]), int(pixels.shape[1]), None


def _scan_all(paths: list[str], *, progress: bool, workers: int) -> list[tuple[str, int, int, str | None]]:
    # results come in submission order, so the report is deterministic
    return list(process_map(_scan, paths, workers, chunksize=_CHUNKSIZE, progress=progress, desc="reading DICOM",
                            unit="file"))


def _instance_table(images: Path, scans: list[tuple[str, int, int, str | None]]) -> pd.DataFrame:
    """One row per file: study, series, instance (from the path), rows, columns, reason."""
    table = pd.DataFrame(scans, columns=["path", "rows", "columns", "reason"])
    parts = table["path"].map(lambda p: Path(p).relative_to(images).parts)
    table["study_id"] = pd.to_numeric(parts.str[0], errors="coerce").astype("Int64")
    table["series_id"] = pd.to_numeric(parts.str[1], errors="coerce").astype("Int64")
    table["instance_number"] = pd.to_numeric(parts.map(lambda p: Path(p[2]).stem), errors="coerce").astype("Int64")
    return table


def _unmatched_coordinates(coordinates: pd.DataFrame, instances: pd.DataFrame,
                           folders: set[tuple[int, int]]) -> pd.DataFrame:
    """Coordinate rows (every one, repeated labels included) whose series folder, instance file or bounds do not fit."""
    coords = coordinates[coordinates["series_id"].notna()].copy()
    on_disk = instances.dropna(subset=["study_id", "series_id", "instance_number"])
    on_disk = on_disk.drop_duplicates(["study_id", "series_id", "instance_number"])
    coords = coords.merge(on_disk[["study_id", "series_id", "instance_number", "rows", "columns", "reason"]],
                          on=["study_id", "series_id", "instance_number"], how="left")
    folder = pd.Series([(int(s), int(r)) in folders for s, r in zip(coords["study_id"], coords["series_id"])],
                       index=coords.index, dtype=bool)
    file_missing = coords["rows"].isna()
    unreadable = ~file_missing & coords["reason"].notna()
    readable = ~file_missing & ~unreadable
    outside = readable & ~((coords["x"] >= 0) & (coords["x"] < coords["columns"])
                           & (coords["y"] >= 0) & (coords["y"] < coords["rows"]))
    reason = np.select(
        [~folder, file_missing, unreadable, outside],
        ["series folder missing", "instance file missing", "instance file unreadable",
         "x/y outside the image"], default="")
    coords["why"] = reason
    return coords[coords["why"] != ""].sort_values("line", kind="stable")


def check_dataset(root: Path, *, progress: bool = True, workers: int = 1) -> dict:
    """Read everything under ``root`` and report what is there and what is wrong.

    Raises :class:`DataUnusable` when there is no ``train.csv``, no
    ``train_images`` folder, no DICOM file, or a malformed CSV.
    """
    root = Path(root)
    if not (root / "train.csv").is_file():
        raise DataUnusable(f"{root}: no train.csv (expected the RSNA 2024 layout)")
    images = image_dir(root, "train")
    if not images.is_dir():
        raise DataUnusable(f"{root}: no train_images folder")
    paths = sorted(str(p) for p in images.glob("*/*/*.dcm"))
    if not paths:
        raise DataUnusable(f"{images}: no DICOM files (expected <study>/<series>/<instance>.dcm)")
    try:
        dataset = read_dataset(root, "train")
    except DataFormatError as exc:
        raise DataUnusable(str(exc)) from exc

    labels, series = dataset.labels, dataset.series
    problems = list(dataset.problems)
    instances = _instance_table(images, _scan_all(paths, progress=progress, workers=workers))
    failed = instances[instances["reason"].notna()]
    for path, reason in zip(failed["path"], failed["reason"]):
        problems.append(f"{path}: {reason}")
    folders = {(int(p.parent.name), int(p.name)) for p in images.glob("*/*")
               if p.is_dir() and p.name.isdigit() and p.parent.name.isdigit()}
    named = instances.dropna(subset=["study_id", "series_id", "instance_number"])
    for path in instances.loc[~instances.index.isin(named.index), "path"]:
        problems.append(f"{path}: not named <study_id>/<series_id>/<instance_number>.dcm")
    with_files = set(zip(named["study_id"].astype(int), named["series_id"].astype(int)))

    coordinates = dataset.coordinates
    coords_file = root / "train_label_coordinates.csv"
    unmatched = _unmatched_coordinates(coordinates, instances, folders)
    unmatched_rows = [
        {"line": int(r.line), "study_id": int(r.study_id), "series_id": int(r.series_id),
         "instance_number": int(r.instance_number), "condition": str(r.condition), "level": str(r.level),
         "x": float(r.x), "y": float(r.y), "reason": str(r.why)}
        for r in unmatched.itertuples(index=False)
    ]
    for row in unmatched_rows:
        problems.append(f"{coords_file} line {row['line']}: coordinate of study {row['study_id']} series "
                        f"{row['series_id']} instance {row['instance_number']} ({row['condition']} at "
                        f"{row['level']}, x={row['x']:g}, y={row['y']:g}): {row['reason']}")

    annotated = coordinates[coordinates["series_description"].notna()]
    expected = annotated["condition"].map(CONDITION_SERIES)
    mismatch = annotated[annotated["series_description"] != expected]
    for r in mismatch.itertuples(index=False):
        problems.append(f"{coords_file} line {r.line}: series description mismatch: study {r.study_id} "
                        f"{r.condition} at {r.level} is annotated on series {r.series_id} "
                        f"({r.series_description}), usually {CONDITION_SERIES[r.condition]}")
    # rows beyond the first of one (study, condition, level): alternative annotations, all checked above
    duplicated = int(coordinates.duplicated(["study_id", "condition", "level"]).sum())

    listed_keys = list(zip(series["study_id"].astype(int), series["series_id"].astype(int)))
    listed = set(listed_keys)
    without_images = series[[key not in with_files for key in listed_keys]]
    for study, series_id in sorted(with_files - listed):
        problems.append(f"{images / str(study) / str(series_id)}: series folder not listed in "
                        "train_series_descriptions.csv")

    studies = labels["study_id"].drop_duplicates()
    has = series[series["study_id"].isin(studies)].groupby("series_description")["study_id"].nunique()
    grades = labels.dropna(subset=["grade"]).groupby(["condition", "grade"]).size()

    return {
        "root": str(root),
        "studies": int(studies.size),
        "studies_with_images": int(len({s for s, _ in with_files})),
        "series": {t: int((series["series_description"] == t).sum()) for t in SERIES_TYPES},
        "instances": len(paths),
        "instances_read": int(instances["reason"].isna().sum()),
        "instances_failed": [{"path": str(p), "reason": str(r)} for p, r in zip(failed["path"], failed["reason"])],
        "labels": int(labels["grade"].notna().sum()),
        "labels_missing": int(labels["grade"].isna().sum()),
        "grade_counts": {c: {g: int(grades.get((c, g), 0)) for g in GRADES} for c in CONDITIONS},
        "coordinates": int(len(coordinates)),
        "coordinates_duplicated": duplicated,
        "coordinates_unmatched": len(unmatched_rows),
        "coordinates_unmatched_rows": unmatched_rows,
        "series_description_mismatches": int(len(mismatch)),
        "studies_missing_series": {t: int(studies.size - has.get(t, 0)) for t in SERIES_TYPES},
        "series_without_images": int(len(without_images)),
        "series_without_images_rows": [
            {"study_id": int(s), "series_id": int(r), "series_description": str(d)}
            for s, r, d in without_images[["study_id", "series_id", "series_description"]].itertuples(index=False)
        ],
        "problems": problems,
    }


def format_report(report: dict) -> str:
    """A human-readable summary of :func:`check_dataset`'s report."""
    lines = [
        f"Dataset: {report['root']}",
        f"  studies: {report['studies']} labelled, {report.get('studies_with_images', '?')} with images",
        "  series: " + ", ".join(f"{t} {n}" for t, n in report["series"].items()),
        f"  instances: {report['instances_read']} read, {len(report['instances_failed'])} failed",
        f"  labels: {report['labels']} graded, {report['labels_missing']} missing",
    ]
    for condition, counts in report["grade_counts"].items():
        lines.append(f"    {condition}: " + ", ".join(f"{g} {n}" for g, n in counts.items()))
    lines += [
        f"  coordinates: {report['coordinates']} rows, {report.get('coordinates_duplicated', 0)} repeating an "
        f"annotated label, {report['coordinates_unmatched']} unmatched",
        "  studies missing a series type: "
        + ", ".join(f"{t} {n}" for t, n in report["studies_missing_series"].items()),
        f"  series listed without images: {report['series_without_images']}",
    ]
    for failure in report["instances_failed"]:
        lines.append(f"  failed: {failure['path']}: {failure['reason']}")
    for row in report["coordinates_unmatched_rows"]:
        lines.append(f"  unmatched (line {row.get('line', '?')}): study {row['study_id']} series "
                     f"{row['series_id']} instance {row['instance_number']} {row['condition']} {row['level']}: "
                     f"{row['reason']}")
    lines.append(f"  problems: {len(report['problems'])}")
    lines += [f"    - {p}" for p in report["problems"]]
    return "\n".join(lines)
