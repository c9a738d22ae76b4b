"""Stage 1 inputs: padding/resampling to 32 slices, 3-channel slices, series descriptions."""

from __future__ import annotations

import logging
import shutil

import numpy as np
import pytest

from spinelib.data.study_images import depth_scale, sagittal_stack, study_series, three_channels


def test_short_volumes_are_zero_padded_after_the_last_slice():
    pixels = np.stack([np.full((8, 8), k / 10) for k in range(5)]).astype(np.float32)
    stack = sagittal_stack(pixels, depth=8, size=4)
    assert stack.shape == (8, 4, 4)
    assert np.allclose(stack[:5, 0, 0], [0.0, 0.1, 0.2, 0.3, 0.4]) and np.all(stack[5:] == 0)
    assert depth_scale(5, 8) == 1.0


def test_long_volumes_are_resampled_linearly():
    pixels = np.stack([np.full((4, 4), float(k)) for k in range(9)]).astype(np.float32)   # 9 slices -> 5
    stack = sagittal_stack(pixels, depth=5, size=4)
    assert depth_scale(9, 5) == pytest.approx(0.5)
    assert np.allclose(stack[:, 0, 0], [0, 2, 4, 6, 8])


def test_three_channels_clamps_at_the_ends():
    slices = np.arange(4)[:, None, None] * np.ones((4, 2, 2), dtype=np.uint8)
    assert three_channels(slices, 0)[:, 0, 0].tolist() == [0, 0, 1]
    assert three_channels(slices, 3)[:, 0, 0].tolist() == [2, 3, 3]


def test_series_descriptions_from_the_csv_or_from_dicom(tiny_phantom, tmp_path):
    study = sorted((tiny_phantom / "test_images").iterdir())[0]
    from_csv = study_series(study)
    assert len(from_csv) >= 2 and set(from_csv["series_description"]) <= {"Sagittal T1", "Sagittal T2/STIR", "Axial T2"}
    copy = tmp_path / "images" / study.name
    shutil.copytree(study, copy)                   # no CSV beside it: read SeriesDescription from DICOM
    from_dicom = study_series(copy)
    assert from_dicom.sort_values("series_id").reset_index(drop=True).equals(
        from_csv.sort_values("series_id").reset_index(drop=True))


def _series(rsna, folder, description, orientation, timing):
    """Two slices with ``description`` and (TR, TE) ``timing`` written into the header."""
    import pydicom

    for k in range(2):
        path = rsna.write_dicom(folder / f"{k + 1}.dcm", rsna.slice_pixels(k), instance_number=k + 1,
                                position=(0.0, 0.0, 4.0 * k), orientation=orientation,
                                series_description=description)
        ds = pydicom.dcmread(path)
        ds.RepetitionTime, ds.EchoTime = timing
        ds.save_as(path, enforce_file_format=True)


@pytest.fixture
def bare_study(tmp_path, rsna):
    """A study as real RSNA files are: SeriesDescription only "T1" / "T2", no descriptions CSV."""
    study = tmp_path / "test_images" / "77"
    _series(rsna, study / "5", "T1", rsna.SAGITTAL_IOP, (550.0, 12.0))
    _series(rsna, study / "6", "T2", rsna.SAGITTAL_IOP, (3500.0, 100.0))
    _series(rsna, study / "7", "T2", rsna.AXIAL_IOP, (3500.0, 100.0))
    _series(rsna, study / "8", "", rsna.SAGITTAL_IOP, (4000.0, 60.0))     # no words: timing says T2/STIR
    return study


def test_series_types_inferred_from_dicom_headers_without_a_csv(bare_study):
    series = study_series(bare_study)
    assert dict(zip(series["series_id"], series["series_description"])) == {
        5: "Sagittal T1", 6: "Sagittal T2/STIR", 7: "Axial T2", 8: "Sagittal T2/STIR"}


def test_the_csv_wins_and_a_disagreement_is_logged(bare_study, caplog):
    root = bare_study.parent.parent
    (root / "test_series_descriptions.csv").write_text(
        "study_id,series_id,series_description\n77,5,Sagittal T2/STIR\n77,6,Sagittal T2/STIR\n")
    with caplog.at_level(logging.WARNING, logger="spinelib.data.study_images"):
        series = study_series(bare_study)
    types = dict(zip(series["series_id"], series["series_description"]))
    assert types[5] == "Sagittal T2/STIR" and types[7] == "Axial T2"      # CSV for 5, header for the unlisted 7
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "series 5" in warnings[0] and "Sagittal T1" in warnings[0]
