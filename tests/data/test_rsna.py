"""The RSNA CSV reader: long-form labels, strict parsing, recoverable problems."""

from __future__ import annotations

import pandas as pd
import pytest

from spinelib.constants import CONDITIONS, LEVELS
from spinelib.data.rsna import (
    ALL_COORDINATE_COLUMNS,
    LABEL_COLUMNS,
    DataFormatError,
    read_dataset,
    read_coordinates,
    read_labels,
    read_series_descriptions,
    series_dir,
)


def _row(labels, study, condition, level):
    hit = labels[(labels.study_id == study) & (labels.condition == condition) & (labels.level == level)]
    assert len(hit) == 1
    return hit.iloc[0]


def test_long_form_has_25_rows_per_study_in_constant_order(rsna_csvs):
    labels = read_labels(rsna_csvs)
    assert list(labels.columns) == list(LABEL_COLUMNS)
    assert len(labels) == 50
    assert labels.groupby("study_id").size().to_dict() == {1001: 25, 1002: 25}
    first = labels[labels.study_id == 1001]
    assert list(first.condition) == [c for c in CONDITIONS for _ in LEVELS]
    assert list(first.level) == list(LEVELS) * len(CONDITIONS)
    assert labels.study_id.dtype == "int64"
    assert labels.grade_index.dtype == "Int64"
    assert labels.series_id.dtype == "Int64"
    assert labels.instance_number.dtype == "Int64"


def test_missing_label_stays_missing(rsna_csvs):
    labels = read_labels(rsna_csvs)
    row = _row(labels, 1001, "left_subarticular_stenosis", "l1_l2")
    assert pd.isna(row.grade) and pd.isna(row.grade_index)
    assert labels.grade.isna().sum() == 1
    assert labels.grade_index.isna().sum() == 1


def test_coordinate_and_series_description_are_merged(rsna_csvs):
    labels = read_labels(rsna_csvs)
    row = _row(labels, 1001, "spinal_canal_stenosis", "l4_l5")
    assert (row.grade, row.grade_index) == ("Severe", 2)
    assert (row.series_id, row.instance_number, row.x, row.y) == (11, 2, 12.5, 20.0)
    assert row.series_description == "Sagittal T2/STIR"
    bare = _row(labels, 1002, "spinal_canal_stenosis", "l1_l2")
    assert pd.isna(bare.series_id) and pd.isna(bare.x) and pd.isna(bare.series_description)
    assert labels.series_id.notna().sum() == 6


def test_whitespace_and_case_are_forgiven(tmp_path, rsna):
    coordinates = [(1001, 11, 2, "  spinal canal stenosis ", " L1 / L2", " 10.5 ", "5 ")]
    root = rsna.write_csvs(tmp_path, coordinates=coordinates,
                           grades={1001: {"spinal_canal_stenosis_l1_l2": " Moderate "}})
    labels = read_labels(root)
    row = _row(labels, 1001, "spinal_canal_stenosis", "l1_l2")
    assert (row.grade, row.x, row.y) == ("Moderate", 10.5, 5.0)


@pytest.mark.parametrize(
    "field, bad",
    [(3, "Spinal Stenosis"), (4, "L6/S1"), (5, "ten"), (6, ""), (0, "10o1"), (2, "2.5")],
)
def test_bad_coordinate_cell_names_value_file_and_line(tmp_path, rsna, field, bad):
    coordinates = [list(row) for row in rsna.COORDINATES]
    coordinates[2][field] = bad  # data row 3 = file line 4
    root = rsna.write_csvs(tmp_path, coordinates=coordinates)
    with pytest.raises(DataFormatError) as error:
        read_labels(root)
    message = str(error.value)
    assert "train_label_coordinates.csv" in message
    assert "line 4" in message
    assert repr(bad) in message or (bad == "" and "(empty)" in message)


def test_unknown_grade_names_value_file_and_line(tmp_path, rsna):
    root = rsna.write_csvs(tmp_path, grades={1001: {}, 1002: {"spinal_canal_stenosis_l5_s1": "Very bad"}})
    with pytest.raises(DataFormatError, match=r"train\.csv.*spinal_canal_stenosis_l5_s1.*line 3.*'Very bad'"):
        read_labels(root)


def test_non_integer_study_id_in_labels(tmp_path, rsna):
    root = rsna.write_csvs(tmp_path, grades={"abc": {}, 1002: {}})
    with pytest.raises(DataFormatError, match=r"train\.csv.*study_id.*line 2.*'abc'"):
        read_labels(root)


def test_missing_column_is_a_format_error(rsna_csvs):
    path = rsna_csvs / "train_label_coordinates.csv"
    path.write_text(path.read_text().replace(",x,y", ",x,z"))
    with pytest.raises(DataFormatError, match=r"train_label_coordinates\.csv.*missing column.*'y'"):
        read_labels(rsna_csvs)


def test_repeated_annotations_are_all_kept_and_labels_use_the_first(tmp_path, rsna):
    duplicate = (1001, 11, 3, "Spinal Canal Stenosis", "L1/L2", 30.0, 30.0)   # file line 8
    root = rsna.write_csvs(tmp_path, coordinates=rsna.COORDINATES + [duplicate])
    problems: list[str] = []
    labels = read_labels(root, problems)
    row = _row(labels, 1001, "spinal_canal_stenosis", "l1_l2")
    assert (row.instance_number, row.x, row.y) == (2, 10.0, 5.0)
    assert len(labels) == 50 and problems == []
    coords = read_coordinates(root)
    assert list(coords.columns) == list(ALL_COORDINATE_COLUMNS)
    assert len(coords) == 7 and coords["line"].tolist() == list(range(2, 9))
    same = coords[(coords.study_id == 1001) & (coords.condition == "spinal_canal_stenosis")
                  & (coords.level == "l1_l2")]
    assert same["line"].tolist() == [2, 8] and same["used"].tolist() == [True, False]
    assert same["instance_number"].tolist() == [2, 3]
    assert read_dataset(root).coordinates.equals(coords)


def test_an_annotation_on_the_usual_series_type_is_preferred(tmp_path, rsna):
    # the first row of the label sits on the Sagittal T1 series; the second on the Sagittal T2/STIR one
    wrong = (1002, 22, 1, "Spinal Canal Stenosis", "L3/L4", 5.0, 6.0)
    coordinates = [wrong] + rsna.COORDINATES
    root = rsna.write_csvs(tmp_path, coordinates=coordinates)
    row = _row(read_labels(root), 1002, "spinal_canal_stenosis", "l3_l4")
    assert (row.series_id, row.x, row.y, row.series_description) == (21, 15.0, 18.0, "Sagittal T2/STIR")
    coords = read_coordinates(root)
    assert not coords.set_index("line")["used"][2]
    assert coords["used"].sum() == 6


def test_without_repeats_every_row_is_used(rsna_csvs):
    coords = read_coordinates(rsna_csvs)
    assert coords["used"].all() and coords["labelled"].all() and len(coords) == 6


def test_coordinates_of_unlabelled_study_are_dropped_with_a_problem(tmp_path, rsna):
    stray = (9999, 91, 1, "Spinal Canal Stenosis", "L1/L2", 1.0, 1.0)
    root = rsna.write_csvs(tmp_path, coordinates=rsna.COORDINATES + [stray])
    problems: list[str] = []
    labels = read_labels(root, problems)
    assert 9999 not in set(labels.study_id)
    assert any("9999" in p and "not in train.csv" in p for p in problems)
    coords = read_coordinates(root)
    stray_row = coords[coords.study_id == 9999]
    assert len(stray_row) == 1 and not stray_row["labelled"].item() and not stray_row["used"].item()


def test_unknown_series_description(rsna_csvs):
    path = rsna_csvs / "train_series_descriptions.csv"
    path.write_text(path.read_text().replace("Axial T2", "Coronal T2"))
    with pytest.raises(DataFormatError, match=r"train_series_descriptions\.csv.*line 4.*'Coronal T2'"):
        read_series_descriptions(path)


def test_series_descriptions_types(rsna_csvs):
    series = read_series_descriptions(rsna_csvs / "train_series_descriptions.csv")
    assert series.study_id.dtype == "int64" and series.series_id.dtype == "int64"
    assert series.series_description.tolist()[:3] == ["Sagittal T2/STIR", "Sagittal T1", "Axial T2"]


def test_read_dataset_splits(rsna_csvs):
    train = read_dataset(rsna_csvs)
    assert len(train.labels) == 50 and len(train.series) == 5 and train.problems == []
    (rsna_csvs / "test_series_descriptions.csv").write_text(
        "study_id,series_id,series_description\n7,70,Axial T2\n")
    test = read_dataset(rsna_csvs, "test")
    assert test.labels.empty
    assert list(test.labels.columns) == list(LABEL_COLUMNS)
    assert test.labels.dtypes.to_dict() == train.labels.dtypes.to_dict()
    assert test.series.series_id.tolist() == [70]


def test_missing_train_csv(tmp_path):
    with pytest.raises(FileNotFoundError, match="train.csv"):
        read_dataset(tmp_path)


def test_series_dir(tmp_path):
    assert series_dir(tmp_path, 1001, 11) == tmp_path / "train_images" / "1001" / "11"
    assert series_dir(tmp_path, 7, 70, "test") == tmp_path / "test_images" / "7" / "70"
