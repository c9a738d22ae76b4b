"""`spinelib grade` on unannotated phantom studies writes a valid submission, also when a series type is missing."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pydicom

from spinelib.cli import main
from spinelib.competition import check_submission, row_ids
from spinelib.data import dicom as dicom_module
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
    err = capsys.readouterr().err
    assert "wrote 25 rows" in err
    # what the models were trained on: printed, and in the companion file; a phantom study raises no warning
    assert "localisation models trained on: phantom data" in err and "mil models trained on: phantom data" in err
    companion = json.loads((tmp_path / "predictions.provenance.json").read_text())
    assert companion["warning"] is None and companion["models"]["mil"]["params"]["class"] == "MilParams"
    assert "WARNING" not in err


def test_phantom_models_on_a_study_the_phantom_did_not_write_warn_loudly(tiny_phantom, trained, tmp_path, capsys):
    """A study whose DICOM files another writer stamped (as any real scanner's are) gets the warning."""
    localisation, mil = trained
    study = sorted((tiny_phantom / "test_images").iterdir())[0]
    copy = tmp_path / "images" / study.name
    shutil.copytree(study, copy)
    for file in copy.rglob("*.dcm"):
        dataset = pydicom.dcmread(file)
        dataset.file_meta.ImplementationVersionName = "SCANNER_1_0"
        dataset.save_as(file)
    out = tmp_path / "predictions.csv"
    assert main(["grade", str(copy), "--out", str(out), "--localisation-dir", str(localisation),
                 "--mil-dir", str(mil), "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "WARNING: the models (localisation, mil) were trained on the synthetic phantom" in err
    assert f"1 graded study was not written by it ({study.name})" in err
    companion = json.loads((tmp_path / "predictions.provenance.json").read_text())
    assert companion["warning"].startswith("WARNING") and companion["models"]["localisation"]["data"] == "phantom"


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


def test_report_views_carry_each_discs_continuous_score(tiny_phantom, trained):
    import torch

    from spinelib.constants import LEVELS
    from spinelib.crops.plan import CropConfig
    from spinelib.models import OrdinalModel, resnet3d18
    from spinelib.grading.disc_scores import DiscScorer
    from spinelib.grading.grader import Grader
    from spinelib.tasks import TaskSet
    from spinelib.tta import View

    localisation, mil = trained
    tasks = TaskSet.from_params({"spinal_canal_stenosis": 3})
    torch.manual_seed(0)
    model = OrdinalModel(resnet3d18(1, 4), [3], "spineranknet").eval()
    grader = Grader.load(localisation, mil)
    grader.keep_views = True
    grader.scorer = DiscScorer(model, tasks, [View(False, 0, 0, 0)],
                               CropConfig(volume_slices=4, volume_crop=(32, 64), volume_size=(16, 32)),
                               field=None, input_size=(16, 32), run="tiny")
    study = sorted((tiny_phantom / "test_images").iterdir())[0]
    grader.grade(study)
    view = grader.views[int(study.name)]
    assert view.ranking is not None and "Run tiny" in view.ranking_note       # the tiny Stage 1 may miss an image:
    scored = set(view.ranking["level"])                                      # those levels are named, not scored
    assert scored and all(level in scored or f"Not scored: {level}" in view.ranking_note for level in LEVELS)


def _restamped_copy(study, folder, name: str = "SCANNER_1_0"):
    """A copy of ``study`` under ``folder`` whose files another writer stamped (as a real scanner's are)."""
    copy = folder / study.name
    shutil.copytree(study, copy)
    for file in copy.rglob("*.dcm"):
        dataset = pydicom.dcmread(file)
        dataset.file_meta.ImplementationVersionName = name
        dataset.save_as(file)
    return copy


def _no_second_read(monkeypatch):
    """Make the file-reading origin check fail loudly: the grader must take the origin from read_study's headers."""
    from spinelib import provenance

    def reread(*_args, **_kwargs):
        raise AssertionError("the study's origin was read from a DICOM file a second time")

    from spinelib.grading import grader

    monkeypatch.setattr(provenance, "written_by_phantom", reread)
    monkeypatch.setattr(grader, "written_by_phantom", reread, raising=False)   # a name imported before the patch


def test_origin_comes_from_the_read_series(tiny_phantom, tmp_path, monkeypatch):
    """A phantom study is not counted as real, a re-stamped one is, one without readable series is not."""
    from spinelib.data.study_images import read_study, study_series
    from spinelib.grading.grader import written_by_other

    _no_second_read(monkeypatch)
    study = sorted((tiny_phantom / "test_images").iterdir())[0]
    copy = _restamped_copy(study, tmp_path / "images")
    descriptions = read_series_descriptions(tiny_phantom / "test_series_descriptions.csv")

    def volumes(folder):
        series = study_series(folder, descriptions)
        return read_study(folder, series, 8, 16, 16, keep_volumes=True)[1]

    phantom, restamped = volumes(study), volumes(copy)
    assert phantom and restamped
    assert not written_by_other(phantom)
    assert written_by_other(restamped)
    assert not written_by_other({})   # no readable series: cannot be checked, not counted


def test_grader_counts_only_restamped_studies_as_real_without_rereading(tiny_phantom, trained, tmp_path,
                                                                         monkeypatch):
    from spinelib.grading.grader import Grader

    _no_second_read(monkeypatch)
    study = sorted((tiny_phantom / "test_images").iterdir())[0]
    copy = _restamped_copy(study, tmp_path / "images")
    descriptions = read_series_descriptions(tiny_phantom / "test_series_descriptions.csv")
    grader = Grader.load(*trained)
    # every file of the study is read by read_study, and the first few of each series by study_series: count them
    # (pixels are read by the lean reader, headers and the files it refuses by pydicom)
    reads = []
    original, lean = pydicom.dcmread, dicom_module.read_elements
    monkeypatch.setattr(pydicom, "dcmread", lambda path, *a, **k: reads.append(str(path)) or original(path, *a, **k))

    def lean_read(path):
        ds = lean(path)
        if ds is not None:
            reads.append(str(path))
        return ds
    monkeypatch.setattr(dicom_module, "read_elements", lean_read)
    grader.grade(study, descriptions)
    files = sorted(str(p) for p in study.rglob("*.dcm"))
    assert sorted(set(reads)) == files
    assert len(reads) == len(files) + len(descriptions[descriptions["study_id"] == int(study.name)])
    assert grader.real_studies == []
    grader.grade(copy, descriptions)
    assert grader.real_studies == [copy.name]
    assert grader.mismatch_warning().startswith("WARNING")
