"""`spinelib grade ROOT`: a whole dataset root into one submission, in sample_submission.csv order, with coordinates."""

from __future__ import annotations

import re
import shutil

import pandas as pd
import pytest

from spinelib.cli import main
from spinelib.competition import check_submission, row_ids
from spinelib.constants import CONDITION_WORDS, LEVEL_WORDS
from spinelib.data.rsna import COORDINATE_COLUMNS, read_series_descriptions
from spinelib.grading import grader as grade_module
from spinelib.grading.grader import grade_cohort, is_dataset_root

COPY, FAILS, ABSENT = 123, 456, 789   # a second good study, one whose grading raises, one without images


@pytest.fixture
def cohort_root(tiny_phantom, tmp_path):
    """test_images/ with the phantom's test study, two copies of it under other ids, and the descriptions CSV."""
    study = sorted((tiny_phantom / "test_images").iterdir())[0]
    root = tmp_path / "root"
    for study_id in (int(study.name), COPY, FAILS):
        shutil.copytree(study, root / "test_images" / str(study_id))
    series = read_series_descriptions(tiny_phantom / "test_series_descriptions.csv")
    series = series[series["study_id"] == int(study.name)]
    table = pd.concat([series.assign(study_id=s) for s in (int(study.name), COPY, FAILS)], ignore_index=True)
    table.to_csv(root / "test_series_descriptions.csv", index=False)
    return root, int(study.name)


@pytest.fixture
def failing_study(monkeypatch):
    """Make Stage 1 raise for study FAILS only."""
    original = grade_module.localise_study

    def localise(images, localisers):
        if images and next(iter(images.values())).study_id == FAILS:
            raise RuntimeError("simulated failure")
        return original(images, localisers)

    monkeypatch.setattr(grade_module, "localise_study", localise)


def _grade(root, trained, tmp_path, *extra):
    localisation, mil = trained
    out, coords = tmp_path / "submission.csv", tmp_path / "coords.csv"
    code = main(["grade", str(root), "--out", str(out), "--coordinates", str(coords), "--localisation-dir",
                 str(localisation), "--mil-dir", str(mil), "--quiet", *extra])
    return code, out, coords


def test_root_follows_sample_submission_and_keeps_going(cohort_root, trained, tmp_path, capsys, failing_study):
    root, study = cohort_root
    order = [FAILS, study, ABSENT, COPY]
    pd.DataFrame({"row_id": [r for s in order for r in row_ids(s)], "normal_mild": 1 / 3, "moderate": 1 / 3,
                  "severe": 1 / 3}).to_csv(root / "sample_submission.csv", index=False)
    code, out, coords = _grade(root, trained, tmp_path)
    assert code == 0
    rows = pd.read_csv(out)
    check_submission(rows)
    assert rows["row_id"].tolist() == [r for s in order for r in row_ids(s)]
    err = capsys.readouterr().err
    # one line per study that needed the prior, saying why
    assert re.search(rf"study {FAILS}: grading failed \(RuntimeError: simulated failure\)", err)
    assert f"study {ABSENT}: no image folder" in err
    per_study = [line.split(":")[0] for line in err.splitlines() if line.startswith("study ")]
    assert len(per_study) == len(set(per_study))
    # the two good copies get the same grades; the failed and absent studies get the prior
    by_study = rows.assign(study=rows["row_id"].str.split("_").str[0].astype(int))
    good = by_study[by_study.study == study].iloc[:, 1:4].to_numpy()
    assert (by_study[by_study.study == COPY].iloc[:, 1:4].to_numpy() == pytest.approx(good))
    assert (by_study[by_study.study == FAILS].iloc[:, 1:4].to_numpy()
            == pytest.approx(by_study[by_study.study == ABSENT].iloc[:, 1:4].to_numpy()))
    assert "wrote 100 rows for 4 study(ies)" in err

    points = pd.read_csv(coords)
    assert list(points.columns) == list(COORDINATE_COLUMNS)
    assert set(points["study_id"]) == {study, COPY}
    assert set(points["condition"]) <= set(CONDITION_WORDS.values())
    assert set(points["level"]) <= set(LEVEL_WORDS.values())
    assert not points.duplicated(["study_id", "condition", "level"]).any()
    for r in points.itertuples():
        assert (root / "test_images" / str(r.study_id) / str(r.series_id) / f"{r.instance_number}.dcm").is_file()
    same = points[points.study_id == study].drop(columns="study_id").reset_index(drop=True)
    assert same.equals(points[points.study_id == COPY].drop(columns="study_id").reset_index(drop=True))


def test_root_without_sample_or_descriptions_sorts_row_ids_and_infers_types(cohort_root, trained, tmp_path):
    root, study = cohort_root
    (root / "test_series_descriptions.csv").unlink()
    shutil.rmtree(root / "test_images" / str(FAILS))
    result = grade_cohort(root, *trained, progress=False)
    check_submission(result.rows)
    assert result.rows["row_id"].tolist() == sorted(row_ids(study) + row_ids(COPY))
    assert result.studies == sorted([study, COPY]) and result.images_dir == root / "test_images"
    assert set(result.coordinates["study_id"]) == {study, COPY}


def test_study_folders_still_grade_one_by_one_with_coordinates(cohort_root, trained, tmp_path, capsys):
    root, study = cohort_root
    assert is_dataset_root(root) and not is_dataset_root(root / "test_images" / str(study))
    code, out, coords = _grade(root / "test_images" / str(COPY), trained, tmp_path)
    assert code == 0
    assert pd.read_csv(out)["row_id"].tolist() == row_ids(COPY)
    assert set(pd.read_csv(coords)["study_id"]) == {COPY}
    assert "wrote 25 rows for 1 study(ies)" in capsys.readouterr().err
