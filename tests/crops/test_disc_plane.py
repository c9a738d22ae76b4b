"""Disc-plane geometry: the rotation onto the canal's normal, the sampling grid, and disc volumes of a tilted disc."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from scipy import ndimage

from spinelib.crops.disc_plane import bilinear_affine, canal_direction, in_plane_tilt, sample_disc
from spinelib.crops.extract import disc_volume
from spinelib.crops.geometry import Box, crop_stack, resize_stack
from spinelib.crops.plan import CropConfig, with_neighbours
from spinelib.data.dicom import Volume

SLICE_MM, PIXEL_MM = 4.0, 1.0


def sagittal_volume(pixels: np.ndarray, orientation=(0.0, 1.0, 0.0, 0.0, 0.0, -1.0)) -> Volume:
    """A series of ``pixels`` (S, H, W): rows run to the feet, columns to the back (a sagittal RSNA series by
    default), slices 4 mm apart along the normal r × c, 1 mm pixels."""
    orientation = np.asarray(orientation, dtype=float)
    normal = np.cross(orientation[:3], orientation[3:])
    origin = np.array([0.0, -80.0, 80.0])
    positions = np.stack([origin + k * SLICE_MM * normal for k in range(pixels.shape[0])])
    return Volume(pixels=pixels, instance_numbers=np.arange(1, pixels.shape[0] + 1), positions=positions,
                  orientation=orientation, pixel_spacing=np.array([PIXEL_MM, PIXEL_MM]), slice_spacing=SLICE_MM,
                  series_dir=Path("synthetic"))


def tilted_disc_study(angle_deg: float) -> tuple[Volume, dict]:
    """A sagittal series holding one bright 4 mm slab tilted by ``angle_deg`` in the sagittal plane (a disc), and
    a plan row: its canal point at the centre, the neighbouring levels' 30 mm above and below along its normal."""
    depth, height, width = 8, 120, 160
    vol = sagittal_volume(np.zeros((depth, height, width), dtype=np.uint16))
    theta = np.radians(angle_deg)
    normal = np.array([0.0, np.sin(theta), np.cos(theta)])          # towards the head, tilted towards the back
    k, row, col = 4, 60, 80
    centre = vol.to_patient(k, row, col)
    rows, cols = np.mgrid[0:height, 0:width]
    for s in range(depth):
        points = vol.to_patient(s, 0, 0) + cols[..., None] * PIXEL_MM * vol.orientation[:3] \
            + rows[..., None] * PIXEL_MM * vol.orientation[3:]
        vol.pixels[s] = np.where(np.abs((points - centre) @ normal) < 2.0, 1000, 100)
    row_of = {}
    for side, sign in (("above", 1), ("below", -1)):
        _, r, c = vol.from_patient(centre + sign * 30.0 * normal)
        row_of.update({f"{side}_instance": k + 1, f"{side}_x": c, f"{side}_y": r})
    return vol, {"anchor_instance": k + 1, "anchor_x": float(col), "anchor_y": float(row), **row_of}


def band_rows(stack: np.ndarray) -> np.ndarray:
    """Per column of the middle slice, the row at the bright band's centre (its intensity-weighted mean row: the
    band is a plateau a few rows wide, whose argmax is any of its rows)."""
    middle = stack[stack.shape[0] // 2]
    weights = middle - middle.min()
    return (weights * np.arange(middle.shape[0])[:, None]).sum(axis=0) / weights.sum(axis=0)


def test_a_tilted_disc_lies_flat_across_the_middle_rows_of_its_volume():
    vol, row = tilted_disc_study(20.0)
    cfg = CropConfig(volume_slices=4, volume_crop=(40, 64), volume_size=(40, 64))
    window = (100.0, 1000.0)
    flat, geometry = disc_volume(vol, window, vol, row, cfg)
    assert geometry["plane"] == "disc" and geometry["tilt_deg"] == pytest.approx(20.0, abs=0.1)
    peaks = band_rows(flat)
    assert np.ptp(peaks) <= 1 and abs(np.median(peaks) - 20) <= 1            # horizontal, through the centre row
    tilted, geometry = disc_volume(vol, window, vol, row, replace(cfg, volume_plane="image"))
    assert geometry["plane"] == "image" and geometry["tilt_deg"] == 0.0
    assert np.ptp(band_rows(tilted)) >= 15                                    # tan 20° × 64 columns ≈ 23 rows
    # one neighbour is enough (one-sided difference); none, and the series' own axes are kept
    one_sided, geometry = disc_volume(vol, window, vol, {**row, "above_instance": np.nan}, cfg)
    assert geometry["tilt_deg"] == pytest.approx(20.0, abs=0.1) and np.ptp(band_rows(one_sided)) <= 1
    alone = {k: v for k, v in row.items() if not k.startswith(("above", "below"))}
    same, geometry = disc_volume(vol, window, vol, alone, cfg)
    assert geometry["plane"] == "image"
    np.testing.assert_array_equal(same, tilted)


def test_a_neighbour_off_the_image_is_ignored_not_fatal():
    vol, row = tilted_disc_study(15.0)
    cfg = CropConfig(volume_slices=4, volume_crop=(40, 64), volume_size=(40, 64))
    _, geometry = disc_volume(vol, (100.0, 1000.0), vol, {**row, "below_x": 5000.0}, cfg)
    assert geometry["plane"] == "disc" and geometry["tilt_deg"] == pytest.approx(15.0, abs=0.1)


def test_neighbours_are_the_adjacent_levels_on_the_same_series():
    anchors = pd.DataFrame({
        "study_id": [1, 1, 1, 1, 2], "level": ["l1_l2", "l2_l3", "l4_l5", "l3_l4", "l2_l3"],
        "anchor_series_id": [10, 10, 10, 11, 20], "anchor_instance": [5, 6, 7, 8, 9],
        "anchor_x": [1.0, 2.0, 3.0, 4.0, 5.0], "anchor_y": [10.0, 20.0, 30.0, 40.0, 50.0]})
    out = with_neighbours(anchors).set_index(["study_id", "level"])
    assert len(out) == len(anchors)
    assert out.loc[(1, "l1_l2"), "below_instance"] == 6 and pd.isna(out.loc[(1, "l1_l2"), "above_instance"])
    assert out.loc[(1, "l2_l3"), "above_y"] == 10.0
    # l3_l4 was annotated on another series: neither l2_l3 nor l4_l5 takes it as a neighbour
    assert pd.isna(out.loc[(1, "l2_l3"), "below_instance"]) and pd.isna(out.loc[(1, "l4_l5"), "above_instance"])
    assert out.loc[[(2, "l2_l3")], ["above_instance", "below_instance"]].isna().all(axis=None)
    # the second neighbours, for the ends of a run: all five levels on one series
    five = pd.DataFrame({"study_id": 3, "level": ["l1_l2", "l2_l3", "l3_l4", "l4_l5", "l5_s1"], "anchor_series_id": 30,
                         "anchor_instance": [1, 2, 3, 4, 5], "anchor_x": 0.0, "anchor_y": 0.0})
    out = with_neighbours(five).set_index("level")
    assert out.loc["l3_l4", ["above2_instance", "above_instance", "below_instance", "below2_instance"]].tolist() \
        == [1, 2, 4, 5]
    assert out.loc["l1_l2", "below2_instance"] == 3 and pd.isna(out.loc["l1_l2", "above2_instance"])


def test_volume_plane_must_be_disc_or_image():
    with pytest.raises(ValueError, match="volume_plane"):
        CropConfig(volume_plane="axial")


def test_the_canal_direction_is_the_tangent_of_a_curved_canal_also_at_its_ends():
    def arc(s_mm: float, radius: float = 200.0) -> np.ndarray:     # a lordotic canal: a circle in the y-z plane
        angle = s_mm / radius
        return np.array([0.0, radius * (1 - np.cos(angle)), radius * np.sin(angle)])

    def error_deg(direction: np.ndarray, truth: np.ndarray = np.array([0.0, 0.0, 1.0])) -> float:
        cos = direction @ truth / (np.linalg.norm(direction) * np.linalg.norm(truth))
        return float(np.degrees(np.arccos(np.clip(cos, -1.0, 1.0))))

    centre, up, up2, down, down2 = arc(0.0), arc(38.0), arc(70.0), arc(-33.0), arc(-68.0)
    assert error_deg(canal_direction(centre, up, down)) < 0.2                        # central
    assert error_deg(canal_direction(centre, up, None, up2)) < 0.3                   # the top of the run
    assert error_deg(canal_direction(centre, None, down, None, down2)) < 0.3         # the bottom of the run
    # with one neighbour only: the chord, the tangent halfway to it (about 5° off here)
    assert error_deg(canal_direction(centre, up, None)) == pytest.approx(np.degrees(19.0 / 200.0), abs=0.1)
    assert canal_direction(centre, None, None) is None
    # a straight canal: exactly its direction, from any neighbours
    line = [np.array([0.0, 0.3, 1.0]) * z for z in (0.0, 35.0, 72.0, -30.0, -66.0)]
    for args in [(line[1], line[3]), (line[1], None, line[2]), (None, line[3], None, line[4])]:
        assert error_deg(canal_direction(line[0], *args), line[1]) < 1e-6


def test_the_tilt_is_measured_in_the_slice_plane_only():
    vol = sagittal_volume(np.zeros((3, 10, 10), dtype=np.float32))        # up = +z, columns = +y (posterior)
    theta = np.radians(25.0)
    in_plane = np.array([0.0, np.sin(theta), np.cos(theta)]) * 35.0
    assert np.degrees(in_plane_tilt(vol, in_plane)) == pytest.approx(25.0)
    # a lateral offset (a neighbour annotated one slice over) does not change the tilt
    assert np.degrees(in_plane_tilt(vol, in_plane + np.array([4.0, 0.0, 0.0]))) == pytest.approx(25.0)
    assert in_plane_tilt(vol, np.array([5.0, 0.2, 0.3])) is None           # almost all lateral: no direction
    assert in_plane_tilt(vol, None) is None


@pytest.mark.parametrize("orientation", [(0.0, 1.0, 0.0, 0.0, 0.0, -1.0),
                                         (0.0, 0.96, 0.28, 0.0, 0.28, -0.96)])     # an oblique series too
def test_an_untilted_volume_holds_the_voxels_of_the_axis_aligned_crop(orientation):
    rng = np.random.default_rng(1)
    vol = sagittal_volume(rng.integers(0, 4000, size=(9, 50, 70)).astype(np.float32), orientation)
    for k, row, col in [(2, 7, 60), (0, 25, 3), (8, 49, 35)]:            # near the edges: padded slices, columns
        sampled, padded = sample_disc(vol, k, row, col, 0.0, 6, (20, 30), (20, 30), fill=-1.0)
        expected, expected_padded = crop_stack(vol.pixels, k, 6, col, row, Box.centred(20, 30), fill=-1.0)
        # float32 sampling coordinates are ~1e-5 px off the pixel centres; a wrong pixel would be ~1000 off
        np.testing.assert_allclose(sampled, expected, atol=0.1, rtol=0)
        assert padded == expected_padded
        # stored at half size: each stored pixel is the mean of its 2 x 2 block, as resize_stack takes it
        half, _ = sample_disc(vol, k, row, col, 0.0, 6, (20, 30), (10, 15), fill=-1.0)
        np.testing.assert_allclose(half, resize_stack(expected, (10, 15)), rtol=1e-5)
    # a stored size below half the field samples it whole and takes block means
    quarter, _ = sample_disc(vol, 4, 25, 35, 0.0, 6, (20, 32), (5, 8), fill=-1.0)
    whole, _ = crop_stack(vol.pixels, 4, 6, 35, 25, Box.centred(20, 32), fill=-1.0)
    np.testing.assert_allclose(quarter, resize_stack(whole, (5, 8)), rtol=1e-5)


def test_on_the_phantom_the_plane_from_the_canal_points_is_the_true_disc_plane(tmp_path):
    """The phantom paints each disc as a slab across its lordotic arc, so its true normal is the arc's tangent at
    the disc (turned by the study's pose); the plane estimated from the annotated canal points must match it."""
    from spinelib.crops.extract import extract_crops
    from spinelib.data.dicom import read_series
    from spinelib.data.rsna import series_dir
    from spinelib.phantom import generate_phantom
    from spinelib.phantom.anatomy import make_anatomy, tangent
    from spinelib.phantom.cohort import draw_study, study_ids
    from spinelib.phantom.series import draw_pose

    studies, seed = 3, 5
    root = tmp_path / "phantom"
    generate_phantom(root, studies=studies, seed=seed, test_studies=0, progress=False)
    extract_crops(root, tmp_path / "crops", CropConfig(volume_slices=4, volume_size=(32, 64)), kinds=("volume",),
                  progress=False)
    index = pd.read_csv(tmp_path / "crops" / "volume.csv")
    index = index[(index["series_description"] == "Sagittal T2/STIR") & (index["plane"] == "disc")]
    errors = {"inner": [], "end": []}
    for i, study_id in enumerate(study_ids(seed, studies)):
        rng, drawn = draw_study(seed, i)
        anatomy = make_anatomy(rng, drawn["severity"], drawn["degeneration"], drawn["height_loss"])
        rotation, _ = draw_pose(rng)
        for row in index[index["study_id"] == study_id].itertuples():
            k = ["l1_l2", "l2_l3", "l3_l4", "l4_l5", "l5_s1"].index(row.level) + 1
            true_normal = rotation @ tangent(anatomy, float(anatomy.disc_centre_s[k]))[0]
            vol = read_series(series_dir(root, study_id, int(row.series_id)), normalise=None)
            error = row.tilt_deg - np.degrees(in_plane_tilt(vol, true_normal))
            errors["end" if k in (1, 5) else "inner"].append(abs(error))
    # degrees, against tilts of 10-25°; the canal points sit at each level's residual canal, which the disc's
    # bulge and the ligament move by a millimetre or two, more than the curve's own error (ends extrapolate it)
    assert len(errors["inner"]) >= 6 and max(errors["inner"]) < 1.5, errors
    assert len(errors["end"]) >= 4 and max(errors["end"]) < 4.0 and np.mean(errors["end"]) < 2.0, errors


@pytest.mark.parametrize("matrix, offset, beyond", [
    (np.eye(2), (3.0, 4.0), False),                              # a shift: samples on pixel centres
    (np.array([[1.8, -0.6], [0.5, 1.9]]), (20.5, -3.2), True),    # turned, 2 field pixels per stored pixel
    (np.array([[0.9, 0.3], [-0.2, 1.1]]), (45.0, 60.0), True),    # reaching past the bottom-right edge
    (np.array([[0.9, 0.3], [-0.2, 1.1]]), (-30.0, -20.0), True),  # past the top-left edge
    (np.eye(2), (500.0, 500.0), True),                            # wholly beyond the images
])
def test_bilinear_affine_samples_as_scipy_affine_transform_does(matrix, offset, beyond):
    """One torch call for the stack computes what scipy's affine_transform (order 1, grid-constant) gives slice by
    slice, also half a pixel and more beyond the edges, to float32 rounding of the coordinates."""
    images = np.random.default_rng(2).uniform(0, 1000, size=(3, 50, 70)).astype(np.float32)
    fill, size = 37.0, (40, 64)
    expected = np.stack([ndimage.affine_transform(image, matrix, np.asarray(offset), output_shape=size, order=1,
                                                  mode="grid-constant", cval=fill, prefilter=False)
                         for image in images])
    sampled = bilinear_affine(images, matrix, np.asarray(offset), size, fill)
    assert sampled.dtype == np.float32 and sampled.shape == (3, *size)
    np.testing.assert_allclose(sampled, expected, atol=0.05, rtol=0)
    assert (sampled == fill).any() == beyond                          # samples wholly outside are the fill
