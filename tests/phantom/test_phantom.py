"""Tests of the synthetic lumbar MRI phantom (tiny cohorts, fast)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest

from spinelib.constants import CONDITIONS, GRADES, LEVELS, label_column
from spinelib.phantom import draw_latents_and_grades, generate_phantom, target_frequencies
from spinelib.phantom import anatomy, render, series, severity

N_TRAIN, N_TEST = 3, 1


def _hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("phantom_a")
    summary = generate_phantom(root, N_TRAIN, seed=0, test_studies=N_TEST, progress=False)
    assert summary["studies"] == N_TRAIN and summary["test_studies"] == N_TEST
    return root


def _patient_point(root: Path, row: pd.Series, folder: str = "train_images") -> np.ndarray:
    ds = pydicom.dcmread(root / folder / str(row.study_id) / str(row.series_id) / f"{row.instance_number}.dcm")
    iop = np.array(ds.ImageOrientationPatient, dtype=float)
    ps = np.array(ds.PixelSpacing, dtype=float)
    return (np.array(ds.ImagePositionPatient, dtype=float) + row.x * ps[1] * iop[:3] + row.y * ps[0] * iop[3:])


def test_determinism_and_workers(cohort, tmp_path):
    ref = _hashes(cohort)
    generate_phantom(tmp_path / "b", N_TRAIN, seed=0, test_studies=N_TEST, workers=2, progress=False)
    assert _hashes(tmp_path / "b") == ref
    generate_phantom(tmp_path / "c", N_TRAIN, seed=1, test_studies=N_TEST, progress=False)
    other = _hashes(tmp_path / "c")
    assert other["train.csv"] != ref["train.csv"] or other.keys() != ref.keys()
    assert set(other.values()).isdisjoint(v for k, v in ref.items() if k.endswith(".dcm"))


def test_layout_and_csvs(cohort):
    for name in ("train.csv", "train_label_coordinates.csv", "train_series_descriptions.csv",
                 "test_series_descriptions.csv", "phantom_truth.csv", "phantom_extra_tasks.csv",
                 "phantom_params.json"):
        assert (cohort / name).is_file(), name
    train = pd.read_csv(cohort / "train.csv")
    assert list(train.columns) == ["study_id"] + [label_column(c, lv) for c in CONDITIONS for lv in LEVELS]
    assert len(train) == N_TRAIN and train.study_id.is_unique
    vals = set(train.drop(columns="study_id").stack().dropna().unique())   # pandas 3 keeps NaN in stack()
    assert vals <= set(GRADES)
    coords = pd.read_csv(cohort / "train_label_coordinates.csv")
    assert list(coords.columns) == ["study_id", "series_id", "instance_number", "condition", "level", "x", "y"]
    assert set(coords.level) <= {"L1/L2", "L2/L3", "L3/L4", "L4/L5", "L5/S1"}
    desc = pd.read_csv(cohort / "train_series_descriptions.csv")
    assert set(desc.series_description) <= {"Sagittal T1", "Sagittal T2/STIR", "Axial T2"}
    for r in desc.itertuples():
        assert (cohort / "train_images" / str(r.study_id) / str(r.series_id)).is_dir()
    tdesc = pd.read_csv(cohort / "test_series_descriptions.csv")
    assert tdesc.study_id.nunique() == N_TEST and not set(tdesc.study_id) & set(train.study_id)
    for r in tdesc.itertuples():
        assert any((cohort / "test_images" / str(r.study_id) / str(r.series_id)).glob("*.dcm"))
    truth = pd.read_csv(cohort / "phantom_truth.csv")
    assert len(truth) == 25 * (N_TRAIN + N_TEST) and truth.severity.between(0, 1).all()
    extra = pd.read_csv(cohort / "phantom_extra_tasks.csv")
    assert extra.pfirrmann.between(1, 5).all() and extra.disc_narrowing.between(0, 3).all()
    # the truth behind each grade is written, and the rater's perception is the latent plus shift and noise
    assert {"rater_score", "centre"} <= set(truth.columns)
    assert (truth.rater_score - truth.severity).abs().max() < 0.4
    assert np.allclose(extra.pfirrmann_score, 0.65 * extra.degeneration + 0.35 * extra.height_loss, atol=1e-5)
    assert {"pfirrmann_rater_score", "disc_narrowing_rater_score"} <= set(extra.columns)


def test_dicom_tags_and_geometry(cohort):
    desc = pd.read_csv(cohort / "train_series_descriptions.csv")
    r = desc.iloc[0]
    folder = cohort / "train_images" / str(r.study_id)
    fors = set()
    for series_dir in folder.iterdir():
        files = sorted(series_dir.glob("*.dcm"))
        dss = [pydicom.dcmread(f) for f in files]
        for f, ds in zip(files, dss):
            # the default cohort has the real files' quirks: RLE Lossless, 12 bits stored (tests/phantom/test_quirks.py)
            assert ds.file_meta.TransferSyntaxUID == pydicom.uid.RLELossless and ds.BitsStored == 12
            assert ds.SOPClassUID == pydicom.uid.MRImageStorage and ds.Modality == "MR"
            assert int(f.stem) == ds.InstanceNumber and ds.PatientID == str(r.study_id)
            assert ds.BitsAllocated == 16 and ds.PixelRepresentation == 0 and ds.SamplesPerPixel == 1
            assert ds.PhotometricInterpretation == "MONOCHROME2"
            assert ds.pixel_array.shape == (ds.Rows, ds.Columns) and ds.pixel_array.max() > 0
            assert 0.6 <= float(ds.PixelSpacing[0]) <= 1.0 and float(ds.MagneticFieldStrength) in (1.5, 3.0)
            for tag in ("StudyInstanceUID", "SeriesInstanceUID", "SeriesNumber", "SliceThickness",
                        "SpacingBetweenSlices", "InstitutionName", "StudyID", "SeriesDescription"):
                assert tag in ds, tag
            fors.add(ds.FrameOfReferenceUID)
        # the headers say only "T1" / "T2" (as the real files): the series' type comes from the descriptions CSV
        assert dss[0].SeriesDescription in ("T1", "T2")
        if desc.set_index("series_id").series_description[int(series_dir.name)].startswith("Sagittal"):
            assert 15 <= len(dss) <= 20
            normal = np.cross(*np.reshape(np.array(dss[0].ImageOrientationPatient, float), (2, 3)))
            pos = sorted(float(np.dot(normal, np.array(d.ImagePositionPatient, float))) for d in dss)
            assert 2.9 <= np.median(np.diff(pos)) <= 4.6
    assert len(fors) == 1


def test_coordinates_on_anatomy(cohort):
    coords = pd.read_csv(cohort / "train_label_coordinates.csv")
    truth = pd.read_csv(cohort / "phantom_truth.csv")
    assert len(coords) > 0
    # a label's first row is its genuine annotation; the quirks' extra rows (another slice, another series) follow
    coords = coords.drop_duplicates(["study_id", "condition", "level"], keep="first")
    for sid, g in coords.groupby("study_id"):
        pts = {(r.condition, r.level): _patient_point(cohort, r) for r in g.itertuples()}
        for lvl in ["L1/L2", "L2/L3", "L3/L4", "L4/L5", "L5/S1"]:
            canal = pts.get(("Spinal Canal Stenosis", lvl))
            lr = pts.get(("Left Subarticular Stenosis", lvl)), pts.get(("Right Subarticular Stenosis", lvl))
            if canal is not None and lr[0] is not None and lr[1] is not None:
                assert np.linalg.norm(0.5 * (lr[0] + lr[1]) - canal) < 12.0   # sagittal and axial agree
                assert lr[0][0] > lr[1][0]                                  # LPS: +x is patient left
            fl = pts.get(("Left Neural Foraminal Narrowing", lvl))
            fr = pts.get(("Right Neural Foraminal Narrowing", lvl))
            if fl is not None and fr is not None:
                assert 20 < fl[0] - fr[0] < 50
                if canal is not None:
                    assert np.linalg.norm(0.5 * (fl + fr) - canal) < 15.0
        # a healthy canal is bright (CSF) on T2 at its coordinate
        for r in g[g.condition == "Spinal Canal Stenosis"].itertuples():
            sev = truth[(truth.study_id == sid) & (truth.condition == "spinal_canal_stenosis")
                        & (truth.level == r.level.lower().replace("/", "_"))].severity.iloc[0]
            ds = pydicom.dcmread(cohort / "train_images" / str(sid) / str(r.series_id) / f"{r.instance_number}.dcm")
            img = ds.pixel_array.astype(float)
            x, y = int(round(r.x)), int(round(r.y))
            assert 0 <= x < ds.Columns and 0 <= y < ds.Rows
            if sev < 0.2:
                assert img[y - 1:y + 2, x - 1:x + 2].mean() > np.percentile(img, 75)


def _forced(sev_value: float, cond: int, seed: int = 5):
    rng = np.random.default_rng(seed)
    sev = np.full((5, 5), 0.05)
    sev[cond] = sev_value
    spine = anatomy.make_anatomy(rng, sev, np.full(5, 0.2), np.full(5, 0.1))
    return spine, (np.eye(3), np.zeros(3))


def _patch_mean(spine, pose, landmark, kind: str, normal_axis: str, size: float = 4.0) -> float:
    """Mean noise-free signal in a small patch around an (s, a, l) landmark on a slice through it."""
    q = anatomy.unstraighten(spine, *landmark)
    up, post = anatomy.tangent(spine, landmark[0])
    if normal_axis == "sag":
        row, col = np.array([0, 1.0, 0]), np.array([0, 0, -1.0])
    else:
        row, col = np.array([1.0, 0, 0]), post
    n, ps = 21, size / 10
    sl = series.Slice(q - 10 * ps * row - 10 * ps * col, row, col, (ps, ps), n, n)
    lab = render.slice_labels(spine, sl, pose, 1.0, 1)
    return float(render.tissue_table(kind, spine.nucleus_signal, np.ones(12))[lab].mean())


def test_severity_drives_image():
    for k in (2, 4):
        lo, hi = _forced(0.05, 0), _forced(0.95, 0)
        a = _patch_mean(*lo, anatomy.canal_point(lo[0], k), "T2", "sag", 8.0)
        b = _patch_mean(*hi, anatomy.canal_point(hi[0], k), "T2", "sag", 8.0)
        assert a > b + 0.15
        lo, hi = _forced(0.05, 1), _forced(0.95, 1)
        a = _patch_mean(*lo, anatomy.foramen_point(lo[0], k, True), "T1", "sag", 8.0)
        b = _patch_mean(*hi, anatomy.foramen_point(hi[0], k, True), "T1", "sag", 8.0)
        assert a > b + 0.15
        lo, hi = _forced(0.05, 4), _forced(0.95, 4)
        a = _patch_mean(*lo, anatomy.recess_point(lo[0], k, False), "T2", "ax", 6.0)
        b = _patch_mean(*hi, anatomy.recess_point(hi[0], k, False), "T2", "ax", 6.0)
        assert a > b + 0.08   # the recess is small: a subtle but clear change


def test_within_grade_differences_are_visible():
    # phantom.md 4b: two Normal/Mild discs (latents 0.05 and 0.30) differ at the model-input resolution
    # (1.6 mm per pixel): the canal loses CSF signal over a patch of a few pixels, the foramen its fat.
    lo, hi = _forced(0.05, 0), _forced(0.30, 0)
    a = _patch_mean(*lo, anatomy.canal_point(lo[0], 3), "T2", "sag", 8.0)
    b = _patch_mean(*hi, anatomy.canal_point(hi[0], 3), "T2", "sag", 8.0)
    assert a > b + 0.05
    lo, hi = _forced(0.05, 1), _forced(0.30, 1)
    a = _patch_mean(*lo, anatomy.foramen_point(lo[0], 3, True), "T1", "sag", 8.0)
    b = _patch_mean(*hi, anatomy.foramen_point(hi[0], 3, True), "T1", "sag", 8.0)
    assert a > b + 0.03


def test_foramen_narrowing_shows_on_t2_and_stir_too():
    # the ranking volumes are cut from Sagittal T2/STIR: on STIR the foraminal fat is suppressed, so the foramen's
    # size must show through its fluid-bright venous core (on T2 through fat and veins together)
    for kind in ("T2", "STIR"):
        lo, hi = _forced(0.05, 1), _forced(0.30, 1)
        a = _patch_mean(*lo, anatomy.foramen_point(lo[0], 3, True), kind, "sag", 8.0)
        b = _patch_mean(*hi, anatomy.foramen_point(hi[0], 3, True), kind, "sag", 8.0)
        assert a > b + 0.03, kind


def test_latent_spreads_over_each_grade_band():
    d = draw_latents_and_grades(20_000, seed=1)
    sev, g = d["severity"], d["grade"]
    normal = sev[:, 0][g[:, 0] == 0]
    # spread over the Normal/Mild band instead of piling up near 0 (the old logistic latent had a median of 0.03)
    assert np.median(normal) > 0.15 and np.quantile(normal, 0.9) - np.quantile(normal, 0.1) > 0.25


def test_centre_shift_moves_the_raters_thresholds():
    rng = np.random.default_rng(0)
    latent = np.full((20_000, 5, 5), 0.45)
    strictest, most_lenient = int(np.argmax(severity.CENTRE_SHIFT)), int(np.argmin(severity.CENTRE_SHIFT))
    strict = severity.grades_from_scores(severity.rater_scores(rng, latent, np.full(20_000, strictest)))
    lenient = severity.grades_from_scores(severity.rater_scores(rng, latent, np.full(20_000, most_lenient)))
    assert strict.mean() > lenient.mean() + 0.2      # the same anatomy, graded worse at the strict centre
    pfirrmann_noise, narrowing_noise = severity.extra_rater_noise(np.random.default_rng(1), 5, strictest)
    assert pfirrmann_noise.std() > 0 and narrowing_noise.std() > 0   # the extra tasks are graded with noise too


def test_grade_frequencies_match_target():
    d = draw_latents_and_grades(30_000, seed=0)
    g, target = d["grade"], target_frequencies()
    for ci in range(5):
        freq = np.stack([np.bincount(g[:, ci, li], minlength=3) / len(g) for li in range(5)])
        assert np.abs(freq - target[ci]).max() < 0.02
    severe_by_level = (g == 2).sum(axis=(0, 1))
    assert severe_by_level[3] + severe_by_level[4] > 0.55 * severe_by_level.sum()
    # correlated within patient but not identical across conditions
    sev = d["severity"]
    r = np.corrcoef(sev[:, 0, 3], sev[:, 3, 3])[0, 1]
    assert 0.2 < r < 0.9


def test_cohort_thresholds_give_the_target_mix_in_every_cell():
    rng = np.random.default_rng(3)
    n = 300
    scores = severity.rater_scores(rng, severity.draw_latents(rng, n)["severity"], np.zeros(n, dtype=int))
    target = severity.target_frequencies()
    cohort = severity.grades_from_scores(scores, severity.cohort_thresholds(scores))
    population = severity.grades_from_scores(scores)
    freq = lambda g: np.stack([[np.bincount(g[:, c, j], minlength=3) / n for j in range(5)]  # noqa: E731
                               for c in range(5)])
    assert np.abs(freq(cohort) - target).max() <= 1.0 / n + 1e-9     # every (condition, level) cell
    # sampling alone moves the population thresholds' mix by more; the cohort calibration removes it
    assert np.abs(freq(population) - target).max() > 2.0 / n


def test_generated_cohort_uses_its_own_thresholds(tmp_path):
    import json

    from spinelib.phantom.cohort import draw_study

    out = generate_phantom(tmp_path / "ph", studies=4, seed=5, test_studies=0, workers=1, progress=False)
    rec = json.loads((Path(out["out_dir"]) / "phantom_params.json").read_text())
    scores = np.stack([draw_study(5, i)[1]["rater"] for i in range(4)])
    assert np.allclose(rec["thresholds"], severity.cohort_thresholds(scores).round(6))
    assert rec["population_thresholds"] != rec["thresholds"]


def test_phantom_params_profiles():
    from spinelib.params.phantom import PhantomParams

    repo = Path(__file__).resolve().parents[2]
    assert PhantomParams.load(repo / "params" / "phantom.yaml") == PhantomParams()
    tiny = PhantomParams.tiny().phantom
    assert (tiny.studies, tiny.test_studies) == (12, 1)
    assert PhantomParams().to_dict() == {"phantom": {"studies": 300, "test_studies": 2, "seed": 0, "workers": 2,
                                                  "quirks": True}}
