"""The ``spinelib`` command line: exit codes and output of phantom and check-data."""

from __future__ import annotations

import json

from spinelib.cli import main

REQUIRED_KEYS = {"studies", "series", "instances_read", "instances_failed", "labels", "labels_missing",
                 "coordinates", "coordinates_duplicated", "coordinates_unmatched", "problems"}


def test_check_data_json_reports_a_usable_dataset(tmp_path, rsna, capsys):
    root = rsna.write_csvs(tmp_path / "rsna")
    rsna.write_images(root)
    (root / "train_images" / "1001" / "11" / "2.dcm").write_bytes(b"DICM but not really")
    assert main(["check-data", str(root), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert REQUIRED_KEYS <= set(report)
    assert report["studies"] == 2
    assert [f["path"].endswith("2.dcm") for f in report["instances_failed"]] == [True]


def test_check_data_without_train_csv_fails_with_one_line(tmp_path, capsys):
    assert main(["check-data", str(tmp_path)]) != 0
    err = capsys.readouterr().err.strip()
    assert "train.csv" in err and "\n" not in err


def test_check_data_without_images_fails(tmp_path, rsna, capsys):
    root = rsna.write_csvs(tmp_path / "rsna")
    assert main(["check-data", str(root)]) != 0
    assert "image" in capsys.readouterr().err.lower()


def test_phantom_command_writes_the_rsna_layout(tmp_path, capsys):
    out = tmp_path / "phantom"
    assert main(["phantom", str(out), "--studies", "2", "--test-studies", "0", "--seed", "5", "--quiet"]) == 0
    assert json.loads(capsys.readouterr().out)["studies"] == 2
    for name in ("train.csv", "train_label_coordinates.csv", "train_series_descriptions.csv", "phantom_truth.csv"):
        assert (out / name).exists(), name
    assert any((out / "train_images").rglob("*.dcm"))
    assert main(["check-data", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["instances_failed"] == [] and report["coordinates_unmatched"] == 0
