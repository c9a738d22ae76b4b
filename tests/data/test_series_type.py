"""Series type from the DICOM header: plane from orientation, T1 vs T2 from words or timing."""

from __future__ import annotations

import numpy as np
import pytest

from spinelib.data.series_type import infer_series_type, series_plane, series_weighting

SAGITTAL = (0.0, 1.0, 0.0, 0.0, 0.0, -1.0)
AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
CORONAL = (1.0, 0.0, 0.0, 0.0, 0.0, -1.0)
# an oblique axial block (tilted 20 degrees about x), as real axial stacks often are
TILT = np.deg2rad(20.0)
OBLIQUE_AXIAL = (1.0, 0.0, 0.0, 0.0, np.cos(TILT), -np.sin(TILT))
T1_TIMING = {"repetition_time": 550.0, "echo_time": 12.0}
T2_TIMING = {"repetition_time": 3500.0, "echo_time": 100.0}


def header(orientation=SAGITTAL, description="", **timing) -> dict:
    return {"orientation": np.asarray(orientation, dtype=float), "series_description": description, **timing}


@pytest.mark.parametrize("orientation, plane", [
    (SAGITTAL, "sagittal"), (AXIAL, "axial"), (CORONAL, "coronal"), (OBLIQUE_AXIAL, "axial"),
    ((np.nan,) * 6, None), ((1.0, 0.0, 0.0, 1.0, 0.0, 0.0), None),
])
def test_plane_from_orientation(orientation, plane):
    assert series_plane(orientation) == plane


@pytest.mark.parametrize("hdr, expected", [
    (header(SAGITTAL, "T1"), "Sagittal T1"),
    (header(SAGITTAL, "T2"), "Sagittal T2/STIR"),
    (header(SAGITTAL, "STIR"), "Sagittal T2/STIR"),
    (header(AXIAL, "T2"), "Axial T2"),
    (header(OBLIQUE_AXIAL, "t2_tse_tra"), "Axial T2"),
    # no usable words: timing decides
    (header(SAGITTAL, "", **T1_TIMING), "Sagittal T1"),
    (header(SAGITTAL, "", **T2_TIMING), "Sagittal T2/STIR"),
    (header(SAGITTAL, "", repetition_time=4000.0, echo_time=60.0, inversion_time=150.0), "Sagittal T2/STIR"),
    (header(AXIAL, "", **T2_TIMING), "Axial T2"),
    # the description's words win over timing
    (header(SAGITTAL, "T1", **T2_TIMING), "Sagittal T1"),
    # a full RSNA description is taken as is
    (header(SAGITTAL, "sagittal t2/stir"), "Sagittal T2/STIR"),
    # no orientation: plane words of the description
    (header((np.nan,) * 6, "SAG T1"), "Sagittal T1"),
])
def test_inferred_types(hdr, expected):
    assert infer_series_type(hdr) == expected


@pytest.mark.parametrize("hdr", [
    header(AXIAL, "T1"),                          # axial T1 is no RSNA type
    header(CORONAL, "T2"),                        # coronal
    header(SAGITTAL, ""),                         # no words, no timing
    header(SAGITTAL, "", repetition_time=1200.0, echo_time=20.0),   # between the T1 and T2 ranges
    {},                                           # nothing at all
])
def test_undecidable_or_other_types_give_none(hdr):
    assert infer_series_type(hdr) is None


def test_weighting_thresholds():
    assert series_weighting("", echo_time=15.0, repetition_time=700.0) == "T1"
    assert series_weighting("", echo_time=80.0, repetition_time=700.0) is None   # short TR, long TE: not T1
    assert series_weighting("", repetition_time=2500.0) == "T2/STIR"
    assert series_weighting("FSE T2W") == "T2/STIR" and series_weighting("T1W_SE") == "T1"
