"""The phantom's RSNA file quirks (spinelib.phantom.quirks): each one is there, and none changes the study.

Two tiny cohorts of the same seed, quirks off and on. The quirky one raises the quirk rates (every quirk then shows
in a few studies; the neutrality does not depend on the rates), except in the neutrality test of the crop store,
which uses the default rates.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest

from spinelib.constants import AXIAL_T2, SAGITTAL_T1
from spinelib.data.check import check_dataset
from spinelib.data.dicom import read_header, read_series
from spinelib.data.rsna import read_dataset
from spinelib.data.series_type import infer_series_type
from spinelib.phantom import generate_phantom
from spinelib.phantom.quirks import QUIRK_RATES, with_gap

N_TRAIN, N_TEST, SEED = 4, 1, 0
# high enough that a 4-study cohort shows every quirk (a gap, a repeat, an annotation on another series)
HIGH_RATES = dict(instance_gap=0.6, repeated_annotation=0.25, other_series_annotation=0.6)
# the header fields a quirk may change; every other element must be equal to the clean file's
QUIRK_FIELDS = {"InstanceNumber", "SeriesDescription", "BitsStored", "HighBit", "PixelData"}
COORDINATE_KEYS = ["study_id", "condition", "level"]


@pytest.fixture(scope="module")
def clean(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("clean")
    generate_phantom(root, N_TRAIN, seed=SEED, test_studies=N_TEST, progress=False, quirks=False)
    return root


@pytest.fixture(scope="module")
def quirky(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("quirky")
    with pytest.MonkeyPatch.context() as patch:
        for name, rate in HIGH_RATES.items():
            patch.setitem(QUIRK_RATES, name, rate)
        generate_phantom(root, N_TRAIN, seed=SEED, test_studies=N_TEST, progress=False, quirks=True)
    return root


def _by_sop_uid(root: Path) -> dict[str, tuple[Path, pydicom.Dataset]]:
    """Every DICOM file of the cohort by its SOPInstanceUID (the quirks keep the clean file's UID)."""
    files = {}
    for path in sorted(root.glob("*_images/*/*/*.dcm")):
        ds = pydicom.dcmread(path)
        files[str(ds.SOPInstanceUID)] = (path, ds)
    return files


def _sop_uid(root: Path, row) -> str:
    """SOPInstanceUID of the image a coordinate row names."""
    path = root / "train_images" / str(row.study_id) / str(row.series_id) / f"{row.instance_number}.dcm"
    return str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID)


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


# ---- RLE Lossless, 12 bits stored: the same pixels and headers ----------------------------------------------------

def test_rle_12_bit_pixels_equal_the_clean_cohorts(clean, quirky):
    before, after = _by_sop_uid(clean), _by_sop_uid(quirky)
    assert before.keys() == after.keys()
    largest = 0
    for uid, (_, clean_ds) in before.items():
        path, ds = after[uid]
        assert ds.file_meta.TransferSyntaxUID == pydicom.uid.RLELossless
        assert clean_ds.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
        assert (ds.BitsAllocated, ds.BitsStored, ds.HighBit) == (16, 12, 11)
        np.testing.assert_array_equal(ds.pixel_array, clean_ds.pixel_array, err_msg=str(path))
        largest = max(largest, int(ds.pixel_array.max()))
        # every other element is the clean file's, value for value
        kept = {element.keyword for element in clean_ds if element.keyword not in QUIRK_FIELDS}
        assert kept == {element.keyword for element in ds if element.keyword not in QUIRK_FIELDS}
        for keyword in kept:
            assert ds[keyword].value == clean_ds[keyword].value, (path, keyword)
    assert largest <= 4095   # 12 bits hold every stored value: nothing was clipped to fit


def test_readers_decode_rle_to_the_same_volume(clean, quirky):
    series = pd.read_csv(clean / "train_series_descriptions.csv").iloc[0]
    folder = Path("train_images") / str(series.study_id) / str(series.series_id)
    a, b = read_series(clean / folder, normalise=None), read_series(quirky / folder, normalise=None)
    np.testing.assert_array_equal(a.pixels, b.pixels)
    np.testing.assert_array_equal(a.positions, b.positions)


# ---- "T1" / "T2" header descriptions -----------------------------------------------------------------------------

def test_header_descriptions_say_only_t1_or_t2(clean, quirky):
    descriptions = pd.read_csv(quirky / "train_series_descriptions.csv")
    # the CSV keeps the full names, exactly as the clean cohort's
    assert _md5(quirky / "train_series_descriptions.csv") == _md5(clean / "train_series_descriptions.csv")
    for row in descriptions.itertuples():
        first = sorted((quirky / "train_images" / str(row.study_id) / str(row.series_id)).glob("*.dcm"))[0]
        header = read_header(first)
        assert header["series_description"] == ("T1" if row.series_description == SAGITTAL_T1 else "T2")
        # a reader without the CSV still finds the type from the plane and the weighting
        assert infer_series_type(header) == row.series_description


# ---- instance-number gaps ----------------------------------------------------------------------------------------

def test_with_gap_skips_numbers_inside_the_numbering():
    assert with_gap([1, 2, 3, 4, 5], 2, 1) == [1, 2, 4, 5, 6]
    assert with_gap([5, 4, 3, 2, 1], 2, 1) == [6, 5, 4, 2, 1]     # reversed stacks: the same gap
    assert with_gap([7, 8, 9], 1, 2) == [7, 10, 11]


def test_instance_gaps_keep_coordinates_on_their_slice(clean, quirky):
    gaps = 0
    for folder in sorted((quirky / "train_images").glob("*/*")):
        numbers = sorted(int(p.stem) for p in folder.glob("*.dcm"))
        clean_numbers = sorted(int(p.stem) for p in (clean / folder.relative_to(quirky)).glob("*.dcm"))
        assert np.all(np.diff(clean_numbers) == 1)
        gaps += int(np.any(np.diff(numbers) > 1))
    assert gaps > 0
    # the genuine rows (a label's first) name the same image, at the same (x, y), as the clean cohort's
    clean_rows = pd.read_csv(clean / "train_label_coordinates.csv")
    rows = pd.read_csv(quirky / "train_label_coordinates.csv").drop_duplicates(COORDINATE_KEYS, keep="first")
    assert len(rows) == len(clean_rows)
    moved = 0
    for a, b in zip(clean_rows.itertuples(), rows.itertuples()):
        assert (a.study_id, a.series_id, a.condition, a.level, a.x, a.y) == \
            (b.study_id, b.series_id, b.condition, b.level, b.x, b.y)
        assert _sop_uid(clean, a) == _sop_uid(quirky, b)
        moved += a.instance_number != b.instance_number
    assert moved > 0   # some annotated slices were renumbered, consistently


# ---- axial series in blocks of different orientations ------------------------------------------------------------

def test_axial_series_hold_blocks_with_different_orientations(quirky):
    descriptions = pd.read_csv(quirky / "train_series_descriptions.csv")
    axial = descriptions[descriptions.series_description == AXIAL_T2]
    assert len(axial)
    for row in axial.itertuples():
        folder = quirky / "train_images" / str(row.study_id) / str(row.series_id)
        orientations = {tuple(np.round(np.asarray(pydicom.dcmread(p, stop_before_pixels=True)
                                                  .ImageOrientationPatient, float), 4))
                        for p in folder.glob("*.dcm")}
        assert len(orientations) >= 2          # one block per disc, each parallel to its disc
        assert read_series(folder, normalise=None).orientations is not None


# ---- extra annotation rows ---------------------------------------------------------------------------------------

def _extra_rows(quirky: Path) -> pd.DataFrame:
    rows = pd.read_csv(quirky / "train_label_coordinates.csv")
    return rows[rows.duplicated(COORDINATE_KEYS, keep="first")]


def test_extra_annotation_rows_follow_their_genuine_row(clean, quirky):
    rows = pd.read_csv(quirky / "train_label_coordinates.csv")
    descriptions = pd.read_csv(quirky / "train_series_descriptions.csv").set_index("series_id").series_description
    extra = _extra_rows(quirky)
    genuine = rows.drop_duplicates(COORDINATE_KEYS, keep="first")
    kinds = set()
    for index, row in extra.iterrows():
        first = genuine.set_index(COORDINATE_KEYS).loc[(row.study_id, row.condition, row.level)]
        # placed after the genuine row: every row between them belongs to the same label
        between = rows.loc[:index - 1]
        assert (between.study_id == row.study_id).iloc[-1] and between.iloc[-1].condition == row.condition
        if row.series_id == first.series_id:
            assert row.instance_number != first.instance_number   # a repeat on a neighbouring slice
            kinds.add("repeat")
        else:
            assert row.condition == "Spinal Canal Stenosis" and descriptions[row.series_id] == SAGITTAL_T1
            kinds.add("other series")
    assert kinds == {"repeat", "other series"}
    # the extra rows are few: at the default rates about 3 % of labels get one
    assert sum(QUIRK_RATES.values()) < 0.25


def test_readers_use_the_genuine_row_and_check_data_reports_the_extras(clean, quirky):
    a, b = read_dataset(clean), read_dataset(quirky)
    columns = [c for c in a.labels.columns if c != "instance_number"]
    pd.testing.assert_frame_equal(a.labels[columns], b.labels[columns])
    extra = _extra_rows(quirky)
    assert len(b.coordinates) == len(a.coordinates) + len(extra)
    assert int(b.coordinates.used.sum()) == len(a.coordinates) and not b.coordinates.used.iloc[extra.index].any()
    for ra, rb in zip(a.labels.dropna(subset=["series_id"]).itertuples(),
                      b.labels.dropna(subset=["series_id"]).itertuples()):
        assert _sop_uid(clean, ra) == _sop_uid(quirky, rb)
    # check-data: the extra rows are counted as repeated labels, the other-series ones as description mismatches
    clean_report = check_dataset(clean, progress=False)
    report = check_dataset(quirky, progress=False)
    descriptions = pd.read_csv(quirky / "train_series_descriptions.csv").set_index("series_id").series_description
    other_series = int(((extra.condition == "Spinal Canal Stenosis")
                        & (extra.series_id.map(descriptions) == SAGITTAL_T1)).sum())
    assert clean_report.coordinates_duplicated == 0 and clean_report.series_description_mismatches == 0
    assert report.coordinates_duplicated == len(extra)
    assert report.series_description_mismatches == other_series > 0
    assert report.coordinates_unmatched == 0 and not report.instances_failed
    assert report.coordinates == clean_report.coordinates + len(extra)


# ---- neutrality: the crop store ------------------------------------------------------------------------------------

def test_crop_store_is_the_same_with_quirks_on_or_off(tmp_path):
    from spinelib.crops.extract import extract_crops
    from spinelib.examples import TINY_CROPS

    stores = []
    for quirks in (False, True):   # the default rates
        root = tmp_path / f"phantom-{quirks}"
        generate_phantom(root, 3, seed=1, test_studies=0, progress=False, quirks=quirks)
        extract_crops(root, tmp_path / f"crops-{quirks}", TINY_CROPS, fractions=(0.5, 0.25, 0.25), progress=False)
        stores.append(tmp_path / f"crops-{quirks}")
    off, on = stores
    assert sorted(p.name for p in off.iterdir()) == sorted(p.name for p in on.iterdir())
    for path in sorted(off.iterdir()):
        if path.suffix == ".npy" or path.name == "summary.json":
            assert _md5(path) == _md5(on / path.name), path.name
        elif path.suffix == ".csv":
            # index tables name the annotated instances (the point's, the anchor's, its neighbours'): a renumbered series
            # changes those numbers, nothing else
            a, b = pd.read_csv(path), pd.read_csv(on / path.name)
            keep = [c for c in a.columns if c != "instance_number" and not c.endswith("_instance")]
            pd.testing.assert_frame_equal(a[keep], b[keep])
    a, b = (json.loads((store / "config.json").read_text()) for store in stores)
    assert {k for k in a if a[k] != b[k]} <= {"data_root"}


# ---- the switch ----------------------------------------------------------------------------------------------------

def test_cli_reads_the_params_file_and_the_no_quirks_flag(monkeypatch):
    import spinelib.phantom
    from spinelib import cli

    calls = []
    monkeypatch.setattr(spinelib.phantom, "generate_phantom", lambda out_dir, **kw: calls.append(kw) or {})
    repo = Path(__file__).resolve().parents[2]
    monkeypatch.chdir(repo)
    # dvc.yaml's command, exactly
    assert cli.main(["phantom", "data/phantom", "--params", "params/phantom.yaml", "--quiet"]) == 0
    assert calls[-1] == dict(studies=300, seed=0, test_studies=2, workers=2, progress=False, quirks=True)
    assert cli.main(["phantom", "out", "--params", "params/phantom.yaml", "--studies", "3", "--no-quirks"]) == 0
    assert calls[-1] == dict(studies=3, seed=0, test_studies=2, workers=2, progress=True, quirks=False)
    assert cli.main(["phantom", "out", "--quiet"]) == 0   # no file: the defaults, one process
    assert calls[-1] == dict(studies=300, seed=0, test_studies=2, workers=1, progress=False, quirks=True)
