"""Validate a dataset in the RSNA layout before any stage uses it.

Backs ``spinelib check-data ROOT``. :func:`check_dataset` reads the CSVs with
:mod:`spinelib.data.rsna`, decodes every DICOM file (so truncated files are
found), matches every coordinate row (repeated annotations of a label
included, each reported by its CSV line) to its instance and image size, and returns a
:class:`DatasetReport`; :meth:`DatasetReport.to_dict` is its JSON form (``check-data --json``, notebook 00's
``dataset_summary.json``), :func:`format_report` prints it for people.

Each kind of problem has its own check function (``_unreadable_files``, ``_misnamed_files``,
``_coordinate_faults``, ``_series_type_mismatches``, ``_unlisted_series_folders``); a problem is a warning
(one line in ``DatasetReport.problems``), and the stages use the rest of the cohort. Only a dataset that
cannot be used at all raises :class:`DataUnusable`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from spinelib.constants import CONDITION_SERIES, CONDITIONS, GRADES, SERIES_TYPES
from spinelib.data.dicom import InstanceReadError, read_instance
from spinelib.data.rsna import DataFormatError, image_dir, read_dataset
from spinelib.parallel import process_map

# files per task sent to a worker: decoding one small file is fast, so batches keep the queue overhead low
_CHUNKSIZE = 16

# one decoded file: (path, rows, columns, failure reason or None)
Scan = tuple[str, int, int, str | None]


class DataUnusable(RuntimeError):
    """The dataset cannot be used at all; the message is a one-line reason."""


# ---- the report ----------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class FailedInstance:
    """A DICOM file that could not be read or decoded."""

    path: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"path": self.path, "reason": self.reason}


@dataclass(frozen=True)
class UnmatchedCoordinate:
    """A row of train_label_coordinates.csv (``line``: its line in the file) that points at no usable pixel."""

    line: int
    study_id: int
    series_id: int
    instance_number: int
    condition: str
    level: str
    x: float
    y: float
    reason: str   # series folder missing | instance file missing | instance file unreadable | x/y outside the image

    def to_dict(self) -> dict[str, Any]:
        return {"line": self.line, "study_id": self.study_id, "series_id": self.series_id,
                "instance_number": self.instance_number, "condition": self.condition, "level": self.level,
                "x": self.x, "y": self.y, "reason": self.reason}


@dataclass(frozen=True)
class SeriesWithoutImages:
    """A series listed in train_series_descriptions.csv whose folder holds no DICOM file."""

    study_id: int
    series_id: int
    series_description: str

    def to_dict(self) -> dict[str, Any]:
        return {"study_id": self.study_id, "series_id": self.series_id, "series_description": self.series_description}


@dataclass(frozen=True)
class DatasetReport:
    """What :func:`check_dataset` found under a dataset root: counts, every fault located, and the problems.

    Counts are of the training split (``train.csv`` and ``train_images``). ``problems`` holds one human-readable
    line per fault, in the order the checks run (reader problems, unreadable files, misnamed files, coordinates,
    series-type mismatches, unlisted series folders).
    """

    root: str
    studies: int                                   # labelled studies (rows of train.csv)
    studies_with_images: int                       # studies with at least one named DICOM file
    series: dict[str, int]                         # listed series per series type
    instances: int                                 # DICOM files found
    instances_read: int                            # ... of which decoded
    instances_failed: tuple[FailedInstance, ...]
    labels: int                                    # graded (study, condition, level) labels
    labels_missing: int                            # empty cells of train.csv
    grade_counts: dict[str, dict[str, int]]        # condition -> grade -> labels
    coordinates: int                               # rows of train_label_coordinates.csv
    coordinates_duplicated: int                    # rows repeating an annotated (study, condition, level)
    coordinates_unmatched_rows: tuple[UnmatchedCoordinate, ...]
    series_description_mismatches: int             # coordinates on a series of another type than usual
    studies_missing_series: dict[str, int]         # series type -> labelled studies without one
    series_without_images_rows: tuple[SeriesWithoutImages, ...]
    problems: tuple[str, ...]

    @property
    def coordinates_unmatched(self) -> int:
        return len(self.coordinates_unmatched_rows)

    @property
    def series_without_images(self) -> int:
        return len(self.series_without_images_rows)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: plain dicts and lists, keys in this order (notebook 00's dataset_summary.json and
        ``check-data --json`` depend on it)."""
        return {
            "root": self.root,
            "studies": self.studies,
            "studies_with_images": self.studies_with_images,
            "series": dict(self.series),
            "instances": self.instances,
            "instances_read": self.instances_read,
            "instances_failed": [failure.to_dict() for failure in self.instances_failed],
            "labels": self.labels,
            "labels_missing": self.labels_missing,
            "grade_counts": {condition: dict(counts) for condition, counts in self.grade_counts.items()},
            "coordinates": self.coordinates,
            "coordinates_duplicated": self.coordinates_duplicated,
            "coordinates_unmatched": self.coordinates_unmatched,
            "coordinates_unmatched_rows": [row.to_dict() for row in self.coordinates_unmatched_rows],
            "series_description_mismatches": self.series_description_mismatches,
            "studies_missing_series": dict(self.studies_missing_series),
            "series_without_images": self.series_without_images,
            "series_without_images_rows": [row.to_dict() for row in self.series_without_images_rows],
            "problems": list(self.problems),
        }


# ---- reading every file once ---------------------------------------------------------------------------------------

def _scan(path: str) -> Scan:
    """(path, rows, columns, failure reason or None) of one decoded file."""
    try:
        _, pixels = read_instance(Path(path))
    except InstanceReadError as exc:
        return path, 0, 0, exc.reason
    except OSError as exc:
        return path, 0, 0, f"unreadable file ({exc})"
    return path, int(pixels.shape[0]), int(pixels.shape[1]), None


def _scan_all(paths: list[str], *, progress: bool, workers: int) -> list[Scan]:
    # results come in submission order, so the report is deterministic
    return list(process_map(_scan, paths, workers, chunksize=_CHUNKSIZE, progress=progress, desc="reading DICOM",
                            unit="file"))


def _instance_table(images: Path, scans: list[Scan]) -> pd.DataFrame:
    """One row per file: study, series, instance (from the path), rows, columns, reason.

    Ids that are not numbers (a misnamed file) are missing (<NA>), which :func:`_misnamed_files` reports.
    """
    table = pd.DataFrame(scans, columns=["path", "rows", "columns", "reason"])
    parts = table["path"].map(lambda p: Path(p).relative_to(images).parts)
    table["study_id"] = pd.to_numeric(parts.str[0], errors="coerce").astype("Int64")
    table["series_id"] = pd.to_numeric(parts.str[1], errors="coerce").astype("Int64")
    table["instance_number"] = pd.to_numeric(parts.map(lambda p: Path(p[2]).stem), errors="coerce").astype("Int64")
    return table


def _named(instances: pd.DataFrame) -> pd.DataFrame:
    """The files whose path gives a study, a series and an instance number."""
    return instances.dropna(subset=["study_id", "series_id", "instance_number"])


# ---- one check per kind of problem ---------------------------------------------------------------------------------

def _unreadable_files(instances: pd.DataFrame) -> tuple[list[FailedInstance], list[str]]:
    """Files that could not be read or decoded (truncated, not DICOM, undecodable pixels), with a problem each."""
    failed = instances[instances["reason"].notna()]
    rows = [FailedInstance(str(p), str(r)) for p, r in zip(failed["path"], failed["reason"])]
    return rows, [f"{path}: {reason}" for path, reason in zip(failed["path"], failed["reason"])]


def _misnamed_files(instances: pd.DataFrame) -> list[str]:
    """Files whose path is not <study_id>/<series_id>/<instance_number>.dcm: no stage can find them."""
    named = _named(instances)
    return [f"{path}: not named <study_id>/<series_id>/<instance_number>.dcm"
            for path in instances.loc[~instances.index.isin(named.index), "path"]]


def _unmatched_coordinates(coordinates: pd.DataFrame, instances: pd.DataFrame,
                           folders: set[tuple[int, int]]) -> pd.DataFrame:
    """Coordinate rows (every one, repeated labels included) whose series folder, instance file or bounds do not fit.

    The first reason that applies wins, in the order: folder, file, readable file, inside the image.
    """
    coords = coordinates[coordinates["series_id"].notna()].copy()
    on_disk = _named(instances).drop_duplicates(["study_id", "series_id", "instance_number"])
    coords = coords.merge(on_disk[["study_id", "series_id", "instance_number", "rows", "columns", "reason"]],
                          on=["study_id", "series_id", "instance_number"], how="left")
    folder = pd.Series([(int(s), int(r)) in folders for s, r in zip(coords["study_id"], coords["series_id"])],
                       index=coords.index, dtype=bool)
    file_missing = coords["rows"].isna()                 # no file of that instance: the merge found no row
    unreadable = ~file_missing & coords["reason"].notna()
    readable = ~file_missing & ~unreadable
    # x is a column, y a row: inside when 0 <= x < columns and 0 <= y < rows
    outside = readable & ~((coords["x"] >= 0) & (coords["x"] < coords["columns"])
                           & (coords["y"] >= 0) & (coords["y"] < coords["rows"]))
    reason = np.select(
        [~folder, file_missing, unreadable, outside],
        ["series folder missing", "instance file missing", "instance file unreadable",
         "x/y outside the image"], default="")
    coords["why"] = reason
    return coords[coords["why"] != ""].sort_values("line", kind="stable")


def _coordinate_faults(coordinates: pd.DataFrame, instances: pd.DataFrame, folders: set[tuple[int, int]],
                       coords_file: Path) -> tuple[list[UnmatchedCoordinate], list[str]]:
    """Coordinates that point at no usable pixel (:func:`_unmatched_coordinates`), each by its CSV line."""
    unmatched = _unmatched_coordinates(coordinates, instances, folders)
    rows = [UnmatchedCoordinate(line=int(r.line), study_id=int(r.study_id), series_id=int(r.series_id),
                                instance_number=int(r.instance_number), condition=str(r.condition),
                                level=str(r.level), x=float(r.x), y=float(r.y), reason=str(r.why))
            for r in unmatched.itertuples(index=False)]
    problems = [f"{coords_file} line {row.line}: coordinate of study {row.study_id} series "
                f"{row.series_id} instance {row.instance_number} ({row.condition} at "
                f"{row.level}, x={row.x:g}, y={row.y:g}): {row.reason}" for row in rows]
    return rows, problems


def _series_type_mismatches(coordinates: pd.DataFrame, coords_file: Path) -> tuple[int, list[str]]:
    """Coordinates annotated on a series of another type than the condition's usual one (e.g. spinal canal on
    Sagittal T1): usable, but a crop stage that picks series by type will not find them."""
    annotated = coordinates[coordinates["series_description"].notna()]
    expected = annotated["condition"].map(CONDITION_SERIES)
    mismatch = annotated[annotated["series_description"] != expected]
    problems = [f"{coords_file} line {r.line}: series description mismatch: study {r.study_id} "
                f"{r.condition} at {r.level} is annotated on series {r.series_id} "
                f"({r.series_description}), usually {CONDITION_SERIES[r.condition]}"
                for r in mismatch.itertuples(index=False)]
    return int(len(mismatch)), problems


def _unlisted_series_folders(with_files: set[tuple[int, int]], series: pd.DataFrame, images: Path) -> list[str]:
    """Series folders with files that train_series_descriptions.csv does not list (their type is unknown)."""
    listed = set(zip(series["study_id"].astype(int), series["series_id"].astype(int)))
    return [f"{images / str(study) / str(series_id)}: series folder not listed in train_series_descriptions.csv"
            for study, series_id in sorted(with_files - listed)]


def _listed_series_without_images(series: pd.DataFrame, with_files: set[tuple[int, int]]) -> list[SeriesWithoutImages]:
    """Listed series without any DICOM file (counted, not a problem: the RSNA download has a few)."""
    listed_keys = list(zip(series["study_id"].astype(int), series["series_id"].astype(int)))
    without_images = series[[key not in with_files for key in listed_keys]]
    return [SeriesWithoutImages(int(s), int(r), str(d))
            for s, r, d in without_images[["study_id", "series_id", "series_description"]].itertuples(index=False)]


# ---- counts --------------------------------------------------------------------------------------------------------

def _grade_counts(labels: pd.DataFrame) -> dict[str, dict[str, int]]:
    """Graded labels per condition and grade, every condition and grade present (zeros included)."""
    grades = labels.dropna(subset=["grade"]).groupby(["condition", "grade"]).size()
    return {c: {g: int(grades.get((c, g), 0)) for g in GRADES} for c in CONDITIONS}


def _studies_missing_series(labels: pd.DataFrame, series: pd.DataFrame) -> dict[str, int]:
    """Per series type, the labelled studies that have no series of that type."""
    studies = labels["study_id"].drop_duplicates()
    has = series[series["study_id"].isin(studies)].groupby("series_description")["study_id"].nunique()
    return {t: int(studies.size - has.get(t, 0)) for t in SERIES_TYPES}


# ---- the check -----------------------------------------------------------------------------------------------------

def _usable_layout(root: Path) -> tuple[Path, list[str]]:
    """The image folder and every DICOM path under it; raises :class:`DataUnusable` when either is absent."""
    if not (root / "train.csv").is_file():
        raise DataUnusable(f"{root}: no train.csv (expected the RSNA 2024 layout)")
    images = image_dir(root, "train")
    if not images.is_dir():
        raise DataUnusable(f"{root}: no train_images folder")
    paths = sorted(str(p) for p in images.glob("*/*/*.dcm"))
    if not paths:
        raise DataUnusable(f"{images}: no DICOM files (expected <study>/<series>/<instance>.dcm)")
    return images, paths


def check_dataset(root: Path, *, progress: bool = True, workers: int = 1) -> DatasetReport:
    """Read everything under ``root`` and report what is there and what is wrong.

    ``workers`` processes decode the files; the report is the same for any number.
    Raises :class:`DataUnusable` when there is no ``train.csv``, no
    ``train_images`` folder, no DICOM file, or a malformed CSV.
    """
    root = Path(root)
    images, paths = _usable_layout(root)
    try:
        dataset = read_dataset(root, "train")
    except DataFormatError as exc:
        raise DataUnusable(str(exc)) from exc
    labels, series, coordinates = dataset.labels, dataset.series, dataset.coordinates
    coords_file = root / "train_label_coordinates.csv"

    # ---- decode every file once; what is on disk ----
    instances = _instance_table(images, _scan_all(paths, progress=progress, workers=workers))
    folders = {(int(p.parent.name), int(p.name)) for p in images.glob("*/*")
               if p.is_dir() and p.name.isdigit() and p.parent.name.isdigit()}
    named = _named(instances)
    with_files = set(zip(named["study_id"].astype(int), named["series_id"].astype(int)))

    # ---- the checks, in the order their problems are listed ----
    failed, unreadable_problems = _unreadable_files(instances)
    unmatched, coordinate_problems = _coordinate_faults(coordinates, instances, folders, coords_file)
    mismatches, mismatch_problems = _series_type_mismatches(coordinates, coords_file)
    problems = [*dataset.problems, *unreadable_problems, *_misnamed_files(instances), *coordinate_problems,
                *mismatch_problems, *_unlisted_series_folders(with_files, series, images)]

    return DatasetReport(
        root=str(root),
        studies=int(labels["study_id"].drop_duplicates().size),
        studies_with_images=int(len({s for s, _ in with_files})),
        series={t: int((series["series_description"] == t).sum()) for t in SERIES_TYPES},
        instances=len(paths),
        instances_read=int(instances["reason"].isna().sum()),
        instances_failed=tuple(failed),
        labels=int(labels["grade"].notna().sum()),
        labels_missing=int(labels["grade"].isna().sum()),
        grade_counts=_grade_counts(labels),
        coordinates=int(len(coordinates)),
        # rows beyond the first of one (study, condition, level): alternative annotations, all checked above
        coordinates_duplicated=int(coordinates.duplicated(["study_id", "condition", "level"]).sum()),
        coordinates_unmatched_rows=tuple(unmatched),
        series_description_mismatches=mismatches,
        studies_missing_series=_studies_missing_series(labels, series),
        series_without_images_rows=tuple(_listed_series_without_images(series, with_files)),
        problems=tuple(problems),
    )


def format_report(report: DatasetReport) -> str:
    """A human-readable summary of :func:`check_dataset`'s report."""
    lines = [
        f"Dataset: {report.root}",
        f"  studies: {report.studies} labelled, {report.studies_with_images} with images",
        "  series: " + ", ".join(f"{t} {n}" for t, n in report.series.items()),
        f"  instances: {report.instances_read} read, {len(report.instances_failed)} failed",
        f"  labels: {report.labels} graded, {report.labels_missing} missing",
    ]
    for condition, counts in report.grade_counts.items():
        lines.append(f"    {condition}: " + ", ".join(f"{g} {n}" for g, n in counts.items()))
    lines += [
        f"  coordinates: {report.coordinates} rows, {report.coordinates_duplicated} repeating an "
        f"annotated label, {report.coordinates_unmatched} unmatched",
        "  studies missing a series type: "
        + ", ".join(f"{t} {n}" for t, n in report.studies_missing_series.items()),
        f"  series listed without images: {report.series_without_images}",
    ]
    for failure in report.instances_failed:
        lines.append(f"  failed: {failure.path}: {failure.reason}")
    for row in report.coordinates_unmatched_rows:
        lines.append(f"  unmatched (line {row.line}): study {row.study_id} series "
                     f"{row.series_id} instance {row.instance_number} {row.condition} {row.level}: "
                     f"{row.reason}")
    lines.append(f"  problems: {len(report.problems)}")
    lines += [f"    - {p}" for p in report.problems]
    return "\n".join(lines)
