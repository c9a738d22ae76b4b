"""Acquisition settings per series, read from one DICOM header of each series."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pydicom

from spinelib.data.rsna import series_dir
from spinelib.progress import progress_bar

# DICOM keyword -> column of the table: what differs between centres and can leak a centre's look into a model
HEADER_FIELDS: dict[str, str] = {
    "InstitutionName": "centre",
    "MagneticFieldStrength": "field_strength",
    "Rows": "rows",
    "Columns": "columns",
    "SliceThickness": "slice_thickness",
    "SpacingBetweenSlices": "slice_spacing",
}


def series_headers(root: Path, series: pd.DataFrame, split: str = "train", progress: bool = True) -> pd.DataFrame:
    """One row per series: centre, field strength, matrix, pixel spacing, slice count, thickness.

    Reads the header (no pixel data) of one file per series; a series folder
    that is missing or holds no DICOM gets empty fields.
    """
    rows = []
    for rec in progress_bar(series.to_dict("records"), show=progress, desc="headers", unit="series"):
        folder = series_dir(root, rec["study_id"], rec["series_id"], split)
        files = sorted(folder.glob("*.dcm")) if folder.is_dir() else []
        row = {**rec, "slices": len(files)}
        if files:
            # the middle file: the settings are the series' own, and a localiser prepended to a folder is avoided
            ds = pydicom.dcmread(files[len(files) // 2], stop_before_pixels=True)
            row.update({name: ds.get(tag) for tag, name in HEADER_FIELDS.items()})
            spacing = ds.get("PixelSpacing")
            row["pixel_spacing"] = float(spacing[0]) if spacing else None   # row spacing (mm); MR pixels are square
        rows.append(row)
    # header values arrive as pydicom types (DSfloat, IS, strings): numbers and text for the tables
    table = pd.DataFrame(rows)
    for col in ("field_strength", "slice_thickness", "slice_spacing", "pixel_spacing"):
        if col in table:
            table[col] = pd.to_numeric(table[col], errors="coerce")
    if "centre" in table:
        table["centre"] = table["centre"].astype("string").fillna("unknown")
    return table
