"""`spinelib grade` on unannotated phantom studies writes a valid submission, also when a series type is missing."""

from __future__ import annotations

import shutil

import pandas as pd

from spinelib.cli import main
from spinelib.competition import check_submission, row_ids
from spinelib.data.rsna import read_series_descriptions


def test_grade_writes_a_valid_submission(tiny_phantom, trained, tmp_path, capsys):
    localisation, mil = trained
    study = sorted((tiny_phantom / "test_images").iterdir())[0]
    out = tmp_path / "predictions.csv"
    assert main(["grade", str(study), "--out", str(out), "--localisation-dir", str(localisation),
                 "--mil-dir", str(mil)]) == 0
    rows = pd.read_csv(out)
    check_submission(rows)
    assert rows["row_id"].tolist() == row_ids(int(study.name))
    assert "wrote 25 rows" in capsys.readouterr().err


def test_grade_report_writes_a_page_and_a_png_per_study(tiny_phantom, trained, tmp_path):
    localisation, mil = trained
    study = sorted((tiny_phantom / "test_images").iterdir())[0]
    report = tmp_path / "report"
    assert main(["grade", str(study), "--out", str(tmp_path / "p.csv"), "--localisation-dir", str(localisation),
                 "--mil-dir", str(mil), "--report", str(report), "--quiet"]) == 0
    page = (report / f"{study.name}.html").read_text()
    assert page.count("<img") >= 3 and page.count("<tr") >= 26          # the views and the 25 rows (+ header)
    assert (report / f"{study.name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_missing_series_type_gives_prior_rows_not_a_crash(tiny_phantom, trained, tmp_path, capsys):
    localisation, mil = trained
    study = sorted((tiny_phantom / "test_images").iterdir())[0]
    copy = tmp_path / "images" / study.name
    shutil.copytree(study, copy)
    series = read_series_descriptions(tiny_phantom / "test_series_descriptions.csv")
    axial = series[(series["study_id"] == int(study.name)) & (series["series_description"] == "Axial T2")]
    for series_id in axial["series_id"]:
        shutil.rmtree(copy / str(series_id))
    out = tmp_path / "predictions.csv"
    assert main(["grade", str(copy), "--out", str(out), "--localisation-dir", str(localisation),
                 "--mil-dir", str(mil)]) == 0
    rows = pd.read_csv(out)
    check_submission(rows)
    assert len(rows) == 25
    err = capsys.readouterr().err
    assert "subarticular_stenosis_l4_l5 from the prior (no Axial T2 series)" in err


def test_grade_without_models_fails_with_one_line(tiny_phantom, tmp_path, capsys):
    study = sorted((tiny_phantom / "test_images").iterdir())[0]
    assert main(["grade", str(study), "--localisation-dir", str(tmp_path / "none"), "--mil-dir",
                 str(tmp_path / "none")]) == 2
    assert "config.json" in capsys.readouterr().err
