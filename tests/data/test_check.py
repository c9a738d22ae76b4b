"""Dataset validation: every fault of a tiny dataset is counted and located."""

from __future__ import annotations

import json

import pytest

from spinelib.data.check import DataUnusable, SeriesWithoutImages, check_dataset, format_report


@pytest.fixture
def faulty_root(tmp_path, rsna):
    """Two imaged studies plus one without series, with one of each fault."""
    coordinates = rsna.COORDINATES + [
        (1001, 13, 2, "Right Subarticular Stenosis", "L4/L5", 40.0, 10.0),  # x outside 32 columns
        (1001, 13, 9, "Right Subarticular Stenosis", "L5/S1", 5.0, 5.0),  # no instance 9
        (1001, 11, 3, "Spinal Canal Stenosis", "L1/L2", 30.0, 30.0),  # duplicate, line 10
        (1002, 22, 1, "Spinal Canal Stenosis", "L4/L5", 6.0, 6.0),  # on Sagittal T1
    ]
    series = rsna.SERIES + [(1002, 23, "Axial T2")]  # listed, never written
    grades = {
        1001: {"left_subarticular_stenosis_l1_l2": "", "spinal_canal_stenosis_l4_l5": "Severe"},
        1002: {"spinal_canal_stenosis_l3_l4": "Moderate"},
        1003: {},
    }
    root = rsna.write_csvs(tmp_path / "rsna", coordinates=coordinates, series=series, grades=grades)
    rsna.write_images(root)
    truncated = root / "train_images" / "1002" / "22" / "3.dcm"
    truncated.write_bytes(truncated.read_bytes()[:-500])
    return root


def test_report_counts_and_locates_every_fault(faulty_root):
    report = check_dataset(faulty_root, progress=False)
    assert json.loads(json.dumps(report.to_dict())) == report.to_dict()  # the JSON form round-trips
    truncated = str(faulty_root / "train_images" / "1002" / "22" / "3.dcm")

    assert report.studies == 3
    assert report.series == {"Sagittal T1": 2, "Sagittal T2/STIR": 2, "Axial T2": 2}
    assert report.instances_read == 14
    assert [f.path for f in report.instances_failed] == [truncated]
    assert report.labels == 74 and report.labels_missing == 1
    assert report.grade_counts["spinal_canal_stenosis"] == {"Normal/Mild": 13, "Moderate": 1, "Severe": 1}
    assert report.coordinates == 10 and report.coordinates_duplicated == 1

    reasons = {(r.study_id, r.series_id, r.instance_number): r.reason
               for r in report.coordinates_unmatched_rows}
    assert reasons == {(1001, 13, 2): "x/y outside the image", (1001, 13, 9): "instance file missing"}
    assert [r.line for r in report.coordinates_unmatched_rows] == [8, 9]
    assert report.coordinates_unmatched == 2

    assert report.studies_missing_series == {"Sagittal T1": 1, "Sagittal T2/STIR": 1, "Axial T2": 1}
    assert report.series_without_images == 1
    assert report.series_without_images_rows == (SeriesWithoutImages(1002, 23, "Axial T2"),)

    problems = "\n".join(report.problems)
    assert "duplicated" not in problems   # a repeated annotation is not a fault by itself
    assert "train_label_coordinates.csv line 9: " in problems and "instance file missing" in problems
    assert truncated in problems
    assert "series description mismatch" in problems and "Sagittal T1" in problems
    assert report.series_description_mismatches == 1
    text = format_report(report)
    assert truncated in text and "instance file missing" in text


def test_a_repeated_annotation_is_checked_like_any_other_row(tmp_path, rsna):
    # a second annotation of 1001 spinal canal L1/L2 on a missing instance, after a valid first one
    repeat = (1001, 11, 7, "Spinal Canal Stenosis", "L1/L2", 10.0, 5.0)     # file line 8
    outside = (1001, 11, 3, "Spinal Canal Stenosis", "L1/L2", 99.0, 5.0)    # file line 9
    root = rsna.write_csvs(tmp_path / "rsna", coordinates=rsna.COORDINATES + [repeat, outside])
    rsna.write_images(root)
    report = check_dataset(root, progress=False)
    assert report.coordinates == 8 and report.coordinates_duplicated == 2
    assert [(r.line, r.instance_number, r.reason) for r in report.coordinates_unmatched_rows] == [
        (8, 7, "instance file missing"), (9, 3, "x/y outside the image")]
    assert any(p.startswith(str(root / "train_label_coordinates.csv") + " line 8:") for p in report.problems)
    assert "line 9" in format_report(report)


def test_unreadable_instance_of_a_coordinate(tmp_path, rsna):
    root = rsna.write_csvs(tmp_path / "rsna")
    rsna.write_images(root)
    target = root / "train_images" / "1002" / "22" / "2.dcm"  # annotated right foraminal L5/S1
    target.write_bytes(b"junk")
    report = check_dataset(root, progress=False)
    assert [r.reason for r in report.coordinates_unmatched_rows] == ["instance file unreadable"]
    assert report.instances_failed[0].path == str(target)


def test_the_json_form_keeps_the_report_keys_in_order(faulty_root):
    """check-data --json and notebook 00's dataset_summary.json read these keys, in this order."""
    report = check_dataset(faulty_root, progress=False).to_dict()
    assert list(report) == [
        "root", "studies", "studies_with_images", "series", "instances", "instances_read", "instances_failed",
        "labels", "labels_missing", "grade_counts", "coordinates", "coordinates_duplicated", "coordinates_unmatched",
        "coordinates_unmatched_rows", "series_description_mismatches", "studies_missing_series",
        "series_without_images", "series_without_images_rows", "problems"]
    assert report["series_without_images_rows"] == [
        {"study_id": 1002, "series_id": 23, "series_description": "Axial T2"}]
    assert list(report["coordinates_unmatched_rows"][0]) == [
        "line", "study_id", "series_id", "instance_number", "condition", "level", "x", "y", "reason"]
    assert report["instances_failed"][0]["path"].endswith("3.dcm")


def test_workers_give_the_same_report(faulty_root):
    assert check_dataset(faulty_root, progress=False, workers=2) == check_dataset(faulty_root, progress=False)


def test_unusable_without_train_csv(tmp_path):
    with pytest.raises(DataUnusable, match="no train.csv"):
        check_dataset(tmp_path, progress=False)


def test_unusable_without_images(tmp_path, rsna):
    root = rsna.write_csvs(tmp_path / "rsna")
    with pytest.raises(DataUnusable, match="no train_images"):
        check_dataset(root, progress=False)
    (root / "train_images" / "1001" / "11").mkdir(parents=True)
    with pytest.raises(DataUnusable, match="no DICOM"):
        check_dataset(root, progress=False)


def test_malformed_csv_is_unusable_with_the_reader_message(tmp_path, rsna):
    coordinates = [list(row) for row in rsna.COORDINATES]
    coordinates[0][5] = "x"
    root = rsna.write_csvs(tmp_path / "rsna", coordinates=coordinates)
    rsna.write_images(root)
    with pytest.raises(DataUnusable, match=r"train_label_coordinates\.csv.*line 2.*'x'"):
        check_dataset(root, progress=False)
