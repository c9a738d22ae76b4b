"""benchmarks/rsna_scale.py: the RSNA-sized rewrite of a phantom keeps its geometry and annotations."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pydicom

from spinelib.data.dicom import read_series
from spinelib.phantom import generate_phantom

BENCHMARK = Path(__file__).resolve().parents[1] / "benchmarks" / "rsna_scale.py"


def test_upscaled_cohort_has_twice_the_pixels_over_the_same_anatomy(load_script, tmp_path):
    small, large = tmp_path / "small", tmp_path / "large"
    for root in (small, large):
        generate_phantom(root, studies=1, seed=0, test_studies=0, progress=False)
    load_script(BENCHMARK).upscale_cohort(large, 2)
    series = sorted(p for p in (small / "train_images").glob("*/*") if p.is_dir())[0]
    before, after = read_series(series), read_series(large / series.relative_to(small))
    assert after.pixels.shape[1:] == (2 * before.pixels.shape[1], 2 * before.pixels.shape[2])
    # each stored pixel became a 2 x 2 block of the same value
    old = pydicom.dcmread(sorted(series.glob("*.dcm"))[0])
    new = pydicom.dcmread(large / sorted(series.glob("*.dcm"))[0].relative_to(small))
    assert (new.pixel_array == np.repeat(np.repeat(old.pixel_array, 2, axis=0), 2, axis=1)).all()
    # the centre of block (i, j) lies where old pixel (i, j) lay
    across, down = np.asarray(old.ImageOrientationPatient[:3], float), np.asarray(old.ImageOrientationPatient[3:], float)
    i, j = 7, 11
    old_point = np.asarray(old.ImagePositionPatient, float) + j * float(old.PixelSpacing[1]) * across \
        + i * float(old.PixelSpacing[0]) * down
    new_point = np.asarray(new.ImagePositionPatient, float) + (2 * j + 0.5) * float(new.PixelSpacing[1]) * across \
        + (2 * i + 0.5) * float(new.PixelSpacing[0]) * down
    assert np.allclose(old_point, new_point, atol=1e-4)
    assert str(new.file_meta.TransferSyntaxUID) == str(old.file_meta.TransferSyntaxUID)
    # annotations follow: x' = 2x + 0.5 (the centre of the point's block)
    a, b = (pd.read_csv(root / "train_label_coordinates.csv") for root in (small, large))
    assert np.allclose(b["x"], 2 * a["x"] + 0.5) and np.allclose(b["y"], 2 * a["y"] + 0.5)
