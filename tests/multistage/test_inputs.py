"""Stage 1 inputs: padding/resampling to 32 slices, 3-channel slices, series descriptions."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from spinelib.multistage.inputs import depth_scale, sagittal_stack, study_series, three_channels


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
