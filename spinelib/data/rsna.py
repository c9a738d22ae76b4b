"""Reader for the RSNA 2024 lumbar spine layout (``shared/spec/rsna-format.md``).

``read_labels`` turns ``train.csv`` (one wide row per study) and
``train_label_coordinates.csv`` (one row per annotated point) into one long
table: a row per study x condition x level, 25 rows per study, with the grade
(missing stays missing) and, where there is one, the annotated series,
instance and (x, y) pixel coordinate.

A label may be annotated more than once (on another slice or another series
of the same study). Every coordinate row is kept, with its CSV line, in
:func:`read_coordinates` / ``RSNADataset.coordinates``; the long table holds
one of them per label (``used``): the first row on a series of the type the
condition is annotated on (``CONDITION_SERIES``), else the first row. On a
file without repeated labels that is every row, as before.

Malformed files raise :class:`DataFormatError` naming the file, the CSV line
and the offending value. Recoverable oddities (a coordinate for a study
without labels, an annotated series missing from the descriptions CSV) are
appended to a ``problems`` list and the cohort goes on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from spinelib.constants import (
    CONDITION_FROM_WORDS,
    CONDITION_SERIES,
    CONDITIONS,
    GRADE_INDEX,
    GRADES,
    LEVEL_FROM_WORDS,
    LEVELS,
    SERIES_TYPES,
    label_column,
)

LABEL_COLUMNS: tuple[str, ...] = (
    "study_id",
    "condition",
    "level",
    "grade",
    "grade_index",
    "series_id",
    "instance_number",
    "x",
    "y",
    "series_description",
)
COORDINATE_COLUMNS: tuple[str, ...] = (
    "study_id", "series_id", "instance_number", "condition", "level", "x", "y",
)
SERIES_COLUMNS: tuple[str, ...] = ("study_id", "series_id", "series_description")
# Every coordinate row: the CSV's columns (canonical spellings), its file line,
# the series' description, whether its study is in train.csv, and whether it
# is the row the long label table uses for its label.
ALL_COORDINATE_COLUMNS: tuple[str, ...] = (
    *COORDINATE_COLUMNS, "line", "series_description", "labelled", "used",
)

# Lines shown in one error message before "... and N more".
_SHOWN = 5
# Data row i (0-based) of a CSV with one header line sits on file line i + 2.
_FIRST_DATA_LINE = 2


class DataFormatError(ValueError):
    """A CSV of the RSNA layout does not have the expected form."""


# --------------------------------------------------------------------------
# Low-level parsing helpers (vectorised; loops only build error messages).
# --------------------------------------------------------------------------

def _read_csv(path: Path, required: tuple[str, ...]) -> pd.DataFrame:
    """Every cell as a stripped string, empty cells as NA; check the columns."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found (expected the RSNA 2024 layout)")
    try:
        # every cell as text: each column is parsed here, so a bad cell is reported with its line and value
        # instead of silently becoming NaN or turning the whole column into objects
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataFormatError(f"{path}: not a readable CSV ({exc})") from exc
    frame.columns = [str(c).strip() for c in frame.columns]
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise DataFormatError(f"{path}: missing column(s) {missing}; found {list(frame.columns)}")
    frame = frame.astype("string")
    for column in frame.columns:
        stripped = frame[column].str.strip()
        frame[column] = stripped.mask(stripped == "")
    return frame


def _lines(mask: pd.Series) -> np.ndarray:
    """1-based file lines of the rows selected by ``mask``."""
    return np.flatnonzero(mask.to_numpy(dtype=bool)) + _FIRST_DATA_LINE


def _raise_bad(path: Path, column: str, values: pd.Series, bad: pd.Series, what: str) -> None:
    """Raise :class:`DataFormatError` naming the first :data:`_SHOWN` bad cells (line and value), if any."""
    if not bad.any():
        return
    lines = _lines(bad)
    cells = [values.iloc[line - _FIRST_DATA_LINE] for line in lines[:_SHOWN]]
    shown = [f"line {line}: {'(empty)' if pd.isna(cell) else repr(cell)}" for line, cell in zip(lines, cells)]
    more = f" ... and {len(lines) - _SHOWN} more" if len(lines) > _SHOWN else ""
    raise DataFormatError(f"{path}: column {column!r} {what} at " + "; ".join(shown) + more)


def _parse_int(path: Path, frame: pd.DataFrame, column: str, *, required: bool = True) -> pd.Series:
    """Integers written as digits (``12`` or ``12.0``) to Int64."""
    text = frame[column]
    # "12.0" is accepted: spreadsheet exports write integer ids as floats; "12.5" is not an id
    ok = text.str.fullmatch(r"[+-]?\d+(?:\.0*)?").fillna(False).astype(bool)
    bad = ~ok if required else (text.notna() & ~ok)
    _raise_bad(path, column, text, bad, "is missing or not an integer" if required else
               "is not an integer")
    return pd.to_numeric(text.str.replace(r"\.0*$", "", regex=True)).astype("Int64")


def _parse_float(path: Path, frame: pd.DataFrame, column: str) -> pd.Series:
    """Finite numbers to float64; empty, non-numeric, inf and nan cells raise (a coordinate needs a value)."""
    text = frame[column]
    numbers = pd.to_numeric(text, errors="coerce").astype("float64")
    bad = ~np.isfinite(numbers.to_numpy())
    _raise_bad(path, column, text, pd.Series(bad, index=text.index), "is missing or not a finite number")
    return numbers


def _key(text: pd.Series) -> pd.Series:
    """Case- and whitespace-insensitive lookup key of a vocabulary string.

    "Sagittal  T2 / STIR" and "sagittal t2/stir" give the same key: hand-edited CSVs differ in exactly these ways.
    """
    return text.str.lower().str.replace(r"\s+", " ", regex=True).str.replace(r"\s*([/_])\s*", r"\1", regex=True)


def _vocabulary_key(word: str) -> str:
    """:func:`_key` of one string (the canonical words of a vocabulary)."""
    return _key(pd.Series([word], dtype="string")).iloc[0]


def _parse_vocabulary(
    path: Path, frame: pd.DataFrame, column: str, mapping: dict[str, str], *, required: bool = True
) -> pd.Series:
    """Map vocabulary strings (any case, loose whitespace) to their canonical form."""
    lookup = {_vocabulary_key(k): v for k, v in mapping.items()}
    text = frame[column]
    mapped = _key(text).map(lookup).astype("string")
    bad = mapped.isna() if required else (text.notna() & mapped.isna())
    expected = sorted(set(mapping))
    _raise_bad(path, column, text, bad, f"has an unknown value (expected one of {expected})")
    return mapped


# --------------------------------------------------------------------------
# The three CSVs.
# --------------------------------------------------------------------------

def read_series_descriptions(path: Path) -> pd.DataFrame:
    """``<split>_series_descriptions.csv`` as (study_id, series_id, series_description).

    ``series_description`` is one of :data:`SERIES_TYPES` (case and spaces are
    forgiven); anything else raises :class:`DataFormatError`.
    """
    path = Path(path)
    raw = _read_csv(path, SERIES_COLUMNS)
    return pd.DataFrame({
        "study_id": _parse_int(path, raw, "study_id").astype("int64"),
        "series_id": _parse_int(path, raw, "series_id").astype("int64"),
        "series_description": _parse_vocabulary(
            path, raw, "series_description", {s: s for s in SERIES_TYPES}),
    })


def _read_grades(path: Path, problems: list[str]) -> pd.DataFrame:
    """``train.csv`` melted to (study_id, condition, level, grade), 25 rows per study."""
    columns = [label_column(c, lv) for c in CONDITIONS for lv in LEVELS]
    raw = _read_csv(path, ("study_id", *columns))
    study = _parse_int(path, raw, "study_id").astype("int64")
    duplicated = study.duplicated(keep="first").to_numpy()
    for value in np.unique(study.to_numpy()[duplicated]):
        lines = _lines(study == value).tolist()
        problems.append(f"{path}: study {value} appears on lines {lines}; kept line {lines[0]}")
    grade_words = {g: g for g in GRADES}
    # empty cells stay NA (required=False): a missing grade is never turned into one
    grades = {c: _parse_vocabulary(path, raw, c, grade_words, required=False) for c in columns}
    wide = pd.DataFrame(grades)[~duplicated]
    study = study[~duplicated]
    n_studies, n_cells = len(wide), len(columns)
    # melt by hand: the wide columns run condition-major (CONDITIONS x LEVELS), so row-major ravel of the
    # (studies, 25) grid lines up with study repeated 25 times and (condition, level) tiled once per study
    return pd.DataFrame({
        "study_id": np.repeat(study.to_numpy(), n_cells),
        "condition": pd.array(np.tile(np.repeat(CONDITIONS, len(LEVELS)), n_studies), dtype="string"),
        "level": pd.array(np.tile(np.tile(LEVELS, len(CONDITIONS)), n_studies), dtype="string"),
        "grade": pd.array(wide.to_numpy(dtype=object).ravel(), dtype="string"),
    })


def _read_coordinates(path: Path) -> pd.DataFrame:
    """``train_label_coordinates.csv``: every row, canonical condition and level names, and its file line."""
    raw = _read_csv(path, COORDINATE_COLUMNS)
    coords = pd.DataFrame({
        "study_id": _parse_int(path, raw, "study_id").astype("int64"),
        "series_id": _parse_int(path, raw, "series_id"),
        "instance_number": _parse_int(path, raw, "instance_number"),
        "condition": _parse_vocabulary(path, raw, "condition",
                                       {**CONDITION_FROM_WORDS, **{c: c for c in CONDITIONS}}),
        "level": _parse_vocabulary(path, raw, "level",
                                   {**LEVEL_FROM_WORDS, **{lv: lv for lv in LEVELS}}),
        "x": _parse_float(path, raw, "x"),
        "y": _parse_float(path, raw, "y"),
    })
    coords["line"] = np.arange(len(coords)) + _FIRST_DATA_LINE
    return coords


def _choose_annotations(coords: pd.DataFrame) -> pd.Series:
    """Boolean mask: the one row per (study, condition, level) the label table uses.

    The first row (file order) whose series description is the condition's
    usual series type; when no row of that label has it (or descriptions are
    unknown), the first row.
    """
    keys = ["study_id", "condition", "level"]
    expected = coords["condition"].map(CONDITION_SERIES)
    fits = (coords["series_description"] == expected).fillna(False).astype(bool)
    # rank rows of a label: fitting rows first, then file order
    order = coords.assign(_miss=~fits, _pos=np.arange(len(coords))).sort_values(keys + ["_miss", "_pos"])
    chosen = order.drop_duplicates(keys, keep="first")["_pos"].to_numpy()
    mask = np.zeros(len(coords), dtype=bool)
    mask[chosen] = True
    return pd.Series(mask, index=coords.index)


# Column dtypes of the empty tables (pandas nullable types where a value may be missing).
_COORDINATE_DTYPES = {"study_id": "int64", "series_id": "Int64", "instance_number": "Int64", "condition": "string",
                      "level": "string", "x": "float64", "y": "float64", "line": "int64",
                      "series_description": "string", "labelled": bool, "used": bool}
_LABEL_DTYPES = {"study_id": "int64", "condition": "string", "level": "string", "grade": "string",
                 "grade_index": "Int64", "series_id": "Int64", "instance_number": "Int64", "x": "float64",
                 "y": "float64", "series_description": "string"}


def _empty(dtypes: dict) -> pd.DataFrame:
    """A table with no rows and the given column dtypes."""
    return pd.DataFrame({column: pd.Series(dtype=dtype) for column, dtype in dtypes.items()})


def _empty_coordinates() -> pd.DataFrame:
    """No coordinate rows, the columns and dtypes of :func:`read_coordinates`."""
    return _empty(_COORDINATE_DTYPES)


def _empty_labels() -> pd.DataFrame:
    """No label rows, the columns and dtypes of :func:`read_labels`."""
    return _empty(_LABEL_DTYPES)


def read_labels(root: Path, problems: list[str] | None = None) -> pd.DataFrame:
    """Grades and coordinates of the training split as one long table.

    One row per study x condition x level (25 per study, in ``train.csv``
    order, then :data:`CONDITIONS` and :data:`LEVELS` order), columns
    :data:`LABEL_COLUMNS`. ``grade`` is NA where the cell is empty and
    ``grade_index`` (Int64) is its index in :data:`GRADES`. The coordinate
    columns are NA where the study has no annotation for that condition and
    level; a label annotated more than once shows the row chosen as the
    module docstring says (all rows: :func:`read_coordinates`). Recoverable
    oddities are appended to ``problems``.
    """
    return _read_train(Path(root), [] if problems is None else problems)[0]


def read_coordinates(root: Path, problems: list[str] | None = None) -> pd.DataFrame:
    """Every row of ``train_label_coordinates.csv`` (columns :data:`ALL_COORDINATE_COLUMNS`), none dropped.

    ``line`` is the row's line in the file, ``labelled`` whether its study is
    in ``train.csv``, ``used`` whether :func:`read_labels` uses it for its label.
    """
    return _read_train(Path(root), [] if problems is None else problems)[1]


def _read_train(root: Path, problems: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(long label table, every coordinate row) of the training split."""
    # ---- grades: train.csv, melted to 25 rows per study ----
    labels_path = root / "train.csv"
    if not labels_path.is_file():
        raise FileNotFoundError(
            f"{labels_path}: no train.csv; expected the RSNA 2024 layout under {root}")
    grades = _read_grades(labels_path, problems)
    grades["grade_index"] = grades["grade"].map(GRADE_INDEX).astype("Int64")

    # ---- series types: train_series_descriptions.csv (optional: without it no coordinate has a type) ----
    series_path = root / "train_series_descriptions.csv"
    if series_path.is_file():
        series = _unique_series(read_series_descriptions(series_path), series_path, problems)
    else:
        series = _empty_labels()[list(SERIES_COLUMNS)]

    # ---- coordinates: train_label_coordinates.csv (optional: without it labels have grades only) ----
    coords_path = root / "train_label_coordinates.csv"
    if coords_path.is_file():
        coords = _read_coordinates(coords_path)
    else:
        problems.append(f"{coords_path}: file not found; labels have no coordinates")
        coords = _empty_coordinates().drop(columns=["series_description", "labelled", "used"])
    if not series_path.is_file():
        problems.append(f"{series_path}: file not found; labels have no series descriptions")

    # ---- every coordinate row: its series type, whether its study is labelled, whether its label uses it ----
    coords = coords.astype({"series_id": "Int64"}).merge(
        series.astype({"series_id": "Int64"}), on=["study_id", "series_id"], how="left", sort=False)
    coords["labelled"] = coords["study_id"].isin(grades["study_id"])
    for study, group in coords[~coords["labelled"]].groupby("study_id", sort=True):
        problems.append(f"{coords_path}: study {study} (lines {group['line'].tolist()}) "
                        "is not in train.csv; its coordinates are dropped")
    unlisted = coords["series_description"].isna()
    if series_path.is_file() and unlisted.any():
        pairs = coords.loc[unlisted & coords["labelled"], ["study_id", "series_id"]].drop_duplicates()
        for study, series_id in pairs.itertuples(index=False):
            problems.append(f"{coords_path}: series {series_id} of study {study} is annotated "
                            f"but not listed in {series_path.name}")
    coords["used"] = coords["labelled"] & _choose_annotations(coords)
    coords = coords[list(ALL_COORDINATE_COLUMNS)].astype(_empty_coordinates().dtypes.to_dict())

    # ---- the long table: grades with the one used annotation per label (left join: grades without one stay) ----
    used = coords.loc[coords["used"], [*COORDINATE_COLUMNS, "series_description"]]
    labels = grades.merge(used, on=["study_id", "condition", "level"], how="left", sort=False)
    return _typed(labels), coords.reset_index(drop=True)


def _unique_series(series: pd.DataFrame, path: Path, problems: list[str]) -> pd.DataFrame:
    """One row per (study, series): a repeated listing keeps its first description and is a problem."""
    repeated = series.duplicated(["study_id", "series_id"], keep="first")
    for study, series_id in series.loc[repeated, ["study_id", "series_id"]].itertuples(index=False):
        problems.append(f"{path}: series {series_id} of study {study} is listed more than once; "
                        "kept the first description")
    return series[~repeated]


def _typed(labels: pd.DataFrame) -> pd.DataFrame:
    """``labels`` with the columns and dtypes of :func:`read_labels` (merges widen Int64 and string columns)."""
    template = _empty_labels()
    return labels[list(LABEL_COLUMNS)].astype(template.dtypes.to_dict()).reset_index(drop=True)


# --------------------------------------------------------------------------
# The dataset and its folders.
# --------------------------------------------------------------------------

@dataclass
class RSNADataset:
    """One split of the RSNA layout: long-form labels, the series table, problems found.

    ``coordinates`` holds every coordinate row (:func:`read_coordinates`),
    alternative annotations of one label included; ``labels`` uses one per label.
    """

    root: Path
    labels: pd.DataFrame
    series: pd.DataFrame
    problems: list[str] = field(default_factory=list)
    coordinates: pd.DataFrame = field(default_factory=_empty_coordinates)


def read_dataset(root: Path, split: str = "train") -> RSNADataset:
    """Read one split. ``"test"`` has no labels: ``labels`` is empty with the same columns."""
    root = Path(root)
    problems: list[str] = []
    coordinates = _empty_coordinates()
    if split == "train":
        labels, coordinates = _read_train(root, problems)
        series_path = root / "train_series_descriptions.csv"
        # read again for the series table; its problems were reported by _read_train already (hence [])
        series = (_unique_series(read_series_descriptions(series_path), series_path, [])
                  if series_path.is_file() else _empty_labels()[list(SERIES_COLUMNS)])
    elif split == "test":
        labels = _empty_labels()
        series = read_series_descriptions(root / "test_series_descriptions.csv")
    else:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    return RSNADataset(root=root, labels=labels, series=series.reset_index(drop=True),
                       problems=problems, coordinates=coordinates)


def image_dir(root: Path, split: str = "train") -> Path:
    """``<root>/<split>_images``."""
    return Path(root) / f"{split}_images"


def series_dir(root: Path, study_id: int, series_id: int, split: str = "train") -> Path:
    """``<root>/<split>_images/<study_id>/<series_id>``."""
    return image_dir(root, split) / str(int(study_id)) / str(int(series_id))
