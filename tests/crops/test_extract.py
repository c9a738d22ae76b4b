"""Crop extraction over a tiny cohort: geometry, bad input, determinism."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from spinelib.crops import open_store
from spinelib.crops.extract import CROP_KINDS, disc_volume, extract_crops
from spinelib.crops.geometry import to_uint8
from spinelib.crops.plan import CropConfig
from spinelib.crops.store import KINDS
from spinelib.data.dicom import read_series
from spinelib.data.rsna import series_dir

SMALL = CropConfig(roi_size=(8, 8), volume_slices=3, volume_crop=(8, 16), volume_size=(4, 8), bag_slices=3,
                   bag_scale=0.5, loc_size=(16, 16), bag_ranges={
                       "spinal_canal_stenosis": (6, 2, 4, 4),
                       "left_neural_foraminal_narrowing": (6, 4, 2, 2),
                       "right_neural_foraminal_narrowing": (6, 4, 2, 2),
                       "left_subarticular_stenosis": (4, 8, 6, 6),
                       "right_subarticular_stenosis": (8, 4, 6, 6)})


@pytest.fixture
def cohort(tmp_path, rsna):
    root = rsna.write_csvs(tmp_path / "rsna")
    rsna.write_images(root)
    return root


def test_roi_centre_is_the_annotated_pixel(cohort, tmp_path):
    extract_crops(cohort, tmp_path / "crops", SMALL, fractions=(0.5, 0.5, 0.0), progress=False)
    rois, index = open_store(tmp_path / "crops").load("roi")
    assert len(rois) == 6
    for roi, row in zip(rois, index.itertuples()):
        volume = read_series(series_dir(cohort, row.study_id, row.series_id))
        k = volume.index_of(row.instance_number)
        expected = to_uint8(volume.pixels[k, int(round(row.y)), int(round(row.x))])
        assert roi[4, 4] == expected, (row.study_id, row.condition, row.level)
        assert (row.row0, row.col0) == (round(row.y) - 4, round(row.x) - 4)


def test_volumes_project_the_disc_centre_into_t1(cohort, tmp_path):
    extract_crops(cohort, tmp_path / "crops", SMALL, fractions=(0.5, 0.5, 0.0), progress=False)
    index = open_store(tmp_path / "crops").index("volume")
    ok = index[index["status"] == "ok"]
    # study 1001 L4/L5: spinal canal on T2 series 11, instance 2; T1 series 12 shares the geometry
    t2 = ok[(ok["study_id"] == 1001) & (ok["level"] == "l4_l5") & (ok["series_description"] == "Sagittal T2/STIR")]
    t1 = ok[(ok["study_id"] == 1001) & (ok["level"] == "l4_l5") & (ok["series_description"] == "Sagittal T1")]
    assert len(t2) == len(t1) == 1
    assert t1["slice_index"].item() == t2["slice_index"].item()
    assert t1["x"].item() == pytest.approx(12.5) and t1["y"].item() == pytest.approx(20.0)
    assert {1001, 1002} == set(ok["study_id"])


def test_bad_input_is_logged_and_the_cohort_goes_on(tmp_path, rsna):
    coordinates = rsna.COORDINATES + [
        (1002, 21, 9, "Spinal Canal Stenosis", "L1/L2", 10.0, 10.0),   # no instance 9
        (1002, 21, 2, "Spinal Canal Stenosis", "L2/L3", 400.0, 10.0),  # outside the 32 x 32 image
    ]
    root = rsna.write_csvs(tmp_path / "rsna", coordinates=coordinates)
    rsna.write_images(root)
    truncated = series_dir(root, 1001, 13) / "2.dcm"
    truncated.write_bytes(truncated.read_bytes()[:400])
    summary = extract_crops(root, tmp_path / "crops", SMALL, fractions=(0.5, 0.5, 0.0), progress=False)
    log = pd.read_csv(tmp_path / "crops" / "crop_log.csv")
    roi_log = log[log["kind"] == "roi"]
    reasons = " | ".join(roi_log["reason"])
    assert len(roi_log) == 3, reasons
    assert "9" in reasons and "outside" in reasons
    failures = pd.read_csv(tmp_path / "crops" / "read_failures.csv")
    assert failures["path"].str.endswith("2.dcm").any()
    assert summary["kinds"]["roi"]["ok"] == 5
    labels_without_coordinate = log[log["kind"] == "label"]
    assert (labels_without_coordinate["reason"].str.contains("no Axial T2 series")).any()  # study 1002 lacks axial


def test_extraction_is_deterministic_and_leak_free(cohort, tmp_path):
    for run in ("a", "b"):
        extract_crops(cohort, tmp_path / run, SMALL, fractions=(0.5, 0.5, 0.0), seed=3, workers=1 + (run == "b"),
                      progress=False)
    a, b = open_store(tmp_path / "a"), open_store(tmp_path / "b")
    for kind in a.kinds():
        np.testing.assert_array_equal(a.array(kind), b.array(kind))
        pd.testing.assert_frame_equal(a.index(kind), b.index(kind))
    index = a.index("roi")
    assert (index.groupby("study_id")["split_patient"].nunique() == 1).all()


def test_localiser_inputs_hold_three_slices_and_the_normalised_target(cohort, tmp_path):
    extract_crops(cohort, tmp_path / "crops", SMALL, fractions=(0.5, 0.5, 0.0), progress=False)
    stacks, index = open_store(tmp_path / "crops").load("loc")
    assert stacks.shape == (3, 3, 16, 16)  # the three spinal canal coordinates, 3 slices each
    row = index[(index["study_id"] == 1001) & (index["level"] == "l4_l5")].iloc[0]
    assert (row["x_norm"], row["y_norm"]) == pytest.approx((12.5 / 32, 20.0 / 32))
    assert row["padded_slices"] == 0  # instance 2 is the middle of three slices


def test_crops_at_predicted_coordinates(cohort, tmp_path):
    predicted = pd.DataFrame({"study_id": [1001], "condition": ["spinal_canal_stenosis"], "level": ["l4_l5"],
                              "x": [20.0], "y": [10.0]})
    extract_crops(cohort, tmp_path / "crops", SMALL, fractions=(0.5, 0.5, 0.0), progress=False, kinds=("roi",),
                  coordinates=predicted)
    store = open_store(tmp_path / "crops")
    assert store.kinds() == ["roi"]
    index = store.index("roi").set_index(["study_id", "condition", "level"])
    assert tuple(index.loc[(1001, "spinal_canal_stenosis", "l4_l5"), ["x", "y"]]) == (20.0, 10.0)
    assert tuple(index.loc[(1001, "spinal_canal_stenosis", "l1_l2"), ["x", "y"]]) == (10.0, 5.0)  # no prediction


def test_every_crop_kind_is_in_the_store_reading_order_and_has_its_stored_shape(cohort, tmp_path):
    assert sorted(CROP_KINDS) == sorted(KINDS)
    # extraction order (summary.json, crop_log.csv): roi, volume, loc, then the bags by name
    assert list(CROP_KINDS) == ["roi", "volume", "loc", "bag_nfn", "bag_scs", "bag_ss"]
    summary = extract_crops(cohort, tmp_path / "crops", SMALL, fractions=(0.5, 0.5, 0.0), progress=False)
    assert list(summary["kinds"]) == list(CROP_KINDS)
    for name, kind in CROP_KINDS.items():
        assert summary["kinds"][name]["shape"] == list(kind.shape(SMALL)), name


def test_disc_volume_on_its_own_anchor_is_the_stored_t2_volume(cohort, tmp_path):
    """The grader's cut (disc_volume on one series) is the crop store's T2 volume, byte for byte."""
    from spinelib.data.dicom import intensity_window

    extract_crops(cohort, tmp_path / "crops", SMALL, fractions=(0.5, 0.5, 0.0), progress=False, kinds=("volume",))
    stacks, index = open_store(tmp_path / "crops").load("volume")
    first_t2 = int(np.flatnonzero(index["series_description"] == "Sagittal T2/STIR")[0])
    row = index.iloc[first_t2]
    volume = read_series(series_dir(cohort, row["study_id"], row["anchor_series_id"]), normalise=None)
    window = intensity_window(volume.pixels, *SMALL.normalise)
    stack, geometry = disc_volume(volume, window, volume, row.to_dict(), SMALL)
    assert stack.shape == (SMALL.volume_slices, *SMALL.volume_size)
    np.testing.assert_array_equal(to_uint8(stack), stacks[first_t2])


def test_every_cut_of_stored_integers_equals_the_cut_of_float_intensities(cohort):
    """Extraction cuts from the files' integers (read_series' stored_integers): every kind's crops and geometry
    are those cut from the float32 intensities, so the store does not depend on the choice."""
    from spinelib.data.dicom import intensity_window
    from spinelib.data.rsna import read_dataset

    dataset = read_dataset(cohort)
    reads = {}

    def volume(study: int, series: int, integers: bool):
        key = (study, series, integers)
        if key not in reads:
            reads[key] = read_series(series_dir(cohort, study, series), normalise=None, stored_integers=integers)
        return reads[key]

    cut = 0
    for name, kind in CROP_KINDS.items():
        for row in kind.plan(dataset.labels, dataset.series, SMALL).dropna(subset=["series_id"]).to_dict("records"):
            crops = []
            for integers in (False, True):
                vol = volume(int(row["study_id"]), int(row["series_id"]), integers)
                anchor = volume(int(row["study_id"]), int(row["anchor_series_id"]), integers) if kind.anchored else None
                crops.append(kind.cut(vol, intensity_window(vol.pixels, *SMALL.normalise), anchor, row, SMALL, {}))
            assert reads[(int(row["study_id"]), int(row["series_id"]), True)].pixels.dtype.kind == "u"
            np.testing.assert_array_equal(crops[0][0], crops[1][0], err_msg=name)
            assert crops[0][1] == crops[1][1], name
            cut += 1
    assert cut >= len(CROP_KINDS)



def test_localiser_inputs_of_one_slice_are_made_once_and_keep_their_own_targets(cohort):
    """Two canal points on one slice share the input (cut once per study, through the memo), not the target."""
    from spinelib.data.dicom import intensity_window
    from spinelib.data.rsna import read_dataset

    dataset = read_dataset(cohort)
    rows = CROP_KINDS["loc"].plan(dataset.labels, dataset.series, SMALL).to_dict("records")
    first, second = [r for r in rows if r["study_id"] == 1001][:2]   # L1/L2 and L4/L5, both on instance 2
    assert (first["series_id"], first["instance_number"]) == (second["series_id"], second["instance_number"])
    vol = read_series(series_dir(cohort, 1001, int(first["series_id"])), normalise=None, stored_integers=True)
    window = intensity_window(vol.pixels, *SMALL.normalise)
    memo: dict = {}
    cut = CROP_KINDS["loc"].cut
    (a, geometry_a), (b, geometry_b) = (cut(vol, window, None, r, SMALL, memo) for r in (first, second))
    assert len(memo) == 1 and a is b
    np.testing.assert_array_equal(b, cut(vol, window, None, second, SMALL, {})[0])
    assert geometry_a["y_norm"] != geometry_b["y_norm"]
    assert {k: v for k, v in geometry_a.items() if k not in ("x_norm", "y_norm")} == \
        {k: v for k, v in geometry_b.items() if k not in ("x_norm", "y_norm")}
