"""The SPIDER reader on a tiny fixture the tests write in the Zenodo layout (.mha images and masks, gradings CSV).

Anatomy is drawn in physical mm, so each patient's true disc centres and normals are known whatever its grid:
three discs (ellipsoid slabs, IVD 1 = L5/S1 lowest) with vertebral bodies between them and a spinal canal behind.

* patient 1: identity direction, 2 mm voxels, t2 and t1 images;
* patient 2: direction matrix = a 30° rotation about x, spacing (2.0, 1.5, 2.5) mm, only a t2_SPACE image, and
  an anatomy tilted by 25° about the patient's left-right axis (the disc normal is not +z);
* patient 3: identity, but its graded IVD 3 (L3/L4) is absent from its mask;
* patient 4: graded, no image at all.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from spinelib.constants import SAGITTAL_T1, SAGITTAL_T2
from spinelib.crops.store import open_store
from spinelib.converters.spider import (
    GRADING_COLUMNS,
    Geometry,
    SpiderFormatError,
    cut_disc,
    level_name,
    main,
    read_gradings,
    read_image,
    spider_to_store,
    task_grades,
)

sitk = pytest.importorskip("SimpleITK")

DISC_Z = {1: -20.0, 2: 0.0, 3: 20.0}          # body-frame height of IVD k (mm)
DISC_AXES = (14.0, 10.0, 4.0)                 # semi-axes: lateral, AP, half-height (mm)
DISC, VERTEBRA, CANAL, BACKGROUND = 200.0, 80.0, 250.0, 20.0
GEOMETRY = Geometry(slices=6, crop=(64, 128), size=(32, 64), field_mm=(30.0, 60.0), slice_mm=3.0)  # ±15 mm: one disc
TILT = np.deg2rad(25.0)


def rotation_x(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def _draw(size_xyz, spacing, direction, body: np.ndarray, drop: tuple[int, ...] = ()):
    """(image, mask) SimpleITK volumes of the anatomy; ``body`` rotates body-frame to physical coordinates."""
    size_xyz, spacing = np.array(size_xyz), np.array(spacing, dtype=float)
    origin = -direction @ (spacing * (size_xyz - 1) / 2)  # grid centred on the body origin
    k, j, i = np.meshgrid(*(np.arange(n) for n in size_xyz[::-1]), indexing="ij")  # (z, y, x) arrays
    index = np.stack([i, j, k], axis=-1).reshape(-1, 3).astype(float)
    physical = origin + (index * spacing) @ direction.T
    x, y, z = (physical @ body).T                     # body-frame coordinates (body is orthogonal: inverse = .T)
    labels = np.zeros(len(x), dtype=np.uint8)
    edges = (-40.0, *DISC_Z.values(), 40.0)           # vertebral bodies fill the space between disc centres
    for n, (low, high) in enumerate(zip(edges[:-1], edges[1:]), start=1):
        labels[(np.abs(x) <= 13) & (np.abs(y) <= 10) & (z > low) & (z <= high)] = n
    for ivd, height in DISC_Z.items():
        inside = (x / DISC_AXES[0]) ** 2 + (y / DISC_AXES[1]) ** 2 + ((z - height) / DISC_AXES[2]) ** 2 <= 1
        labels[inside] = 0 if ivd in drop else 200 + ivd  # a dropped disc stays in the image, unlabelled
    labels[(np.abs(x) <= 4) & (y > 12) & (y < 18)] = 100
    shape = tuple(size_xyz[::-1])
    intensity = np.full(len(x), BACKGROUND, dtype=np.float32)
    intensity[(labels >= 1) & (labels <= 25)] = VERTEBRA
    for height in DISC_Z.values():
        intensity[(x / DISC_AXES[0]) ** 2 + (y / DISC_AXES[1]) ** 2 + ((z - height) / DISC_AXES[2]) ** 2 <= 1] = DISC
    intensity[labels == 100] = CANAL
    volumes = []
    for array in (intensity.reshape(shape), labels.reshape(shape)):
        image = sitk.GetImageFromArray(array)
        image.SetSpacing(tuple(spacing))
        image.SetOrigin(tuple(origin))
        image.SetDirection(tuple(direction.reshape(-1)))
        volumes.append(image)
    return volumes


PATIENTS = {  # patient: (files, size (x, y, z), spacing, direction, body rotation, dropped IVDs)
    "1": (("t2", "t1"), (24, 48, 48), (2.0, 2.0, 2.0), np.eye(3), np.eye(3), ()),
    "2": (("t2_SPACE",), (24, 48, 48), (2.0, 1.5, 2.5), rotation_x(np.deg2rad(30.0)), rotation_x(TILT), ()),
    "3": (("t2",), (24, 48, 48), (2.0, 2.0, 2.0), np.eye(3), np.eye(3), (3,)),
}
PFIRRMANN = {("1", 1): 5, ("1", 2): 3, ("1", 3): 1, ("2", 1): 4, ("2", 2): 2, ("2", 3): 5,
             ("3", 1): 5, ("3", 2): 2, ("3", 3): 3, ("4", 1): 5, ("4", 2): 4, ("4", 3): None}


def _gradings() -> pd.DataFrame:
    rows = []
    for (patient, ivd), pfirrmann in PFIRRMANN.items():
        rows.append({"Patient": int(patient), "IVD label": ivd, "Modic": (ivd + int(patient)) % 3,
                     "UP endplate": ivd % 2, "LOW endplate": 0, "Spondylolisthesis": int(ivd == 1),
                     "Disc herniation": int(pfirrmann == 5), "Disc narrowing": int(ivd == 2),
                     "Disc bulging": 1 - ivd % 2, "Pfirrman grade": pfirrmann})
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def spider_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("SPIDER")
    (root / "images").mkdir()
    (root / "masks").mkdir()
    for patient, (files, size, spacing, direction, body, drop) in PATIENTS.items():
        image, mask = _draw(size, spacing, direction, body, drop)
        for suffix in files:
            sitk.WriteImage(image, str(root / "images" / f"{patient}_{suffix}.mha"))
            sitk.WriteImage(mask, str(root / "masks" / f"{patient}_{suffix}.mha"))
    _gradings().to_csv(root / "radiological_gradings.csv", index=False)
    pd.DataFrame({"new_file_name": [f"{p}_{f}" for p, v in PATIENTS.items() for f in v[0]]}).to_csv(
        root / "overview.csv", index=False)
    return root


@pytest.fixture(scope="module")
def store(spider_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("spider_store")
    spider_to_store(spider_root, out, GEOMETRY, series=(SAGITTAL_T2, SAGITTAL_T1), fractions=(1 / 3, 1 / 3, 1 / 3),
                    progress=False)
    return out


def _index(out) -> pd.DataFrame:
    return pd.read_csv(out / "volume.csv", dtype={"study_id": str})


def _row(index: pd.DataFrame, patient: str, ivd: int, series: str = SAGITTAL_T2) -> pd.Series:
    hit = index[(index["study_id"] == patient) & (index["ivd_label"] == ivd) & (index["series_description"] == series)]
    assert len(hit) == 1
    return hit.iloc[0]


def _band_rows(volume: np.ndarray, half_width_mm: float = 7.5) -> np.ndarray:
    """Per central column of the middle slice: the mean row of the bright disc band (rows above the midpoint)."""
    plane = volume[volume.shape[0] // 2].astype(float)
    mm_per_col = GEOMETRY.field_mm[1] / GEOMETRY.size[1]
    centre = (plane.shape[1] - 1) / 2
    columns = np.flatnonzero(np.abs(np.arange(plane.shape[1]) - centre) * mm_per_col <= half_width_mm)
    rows = []
    for c in columns:
        profile = plane[:, c]
        bright = profile >= (profile.max() + np.median(profile)) / 2
        rows.append(np.flatnonzero(bright).mean())
    return np.array(rows)


# --- Gradings and levels ------------------------------------------------------------------------------------------

def test_level_names_count_from_the_bottom():
    assert [level_name(k) for k in (1, 2, 5, 6, 7)] == ["l5_s1", "l4_l5", "l1_l2", "t12_l1", "t11_t12"]
    with pytest.raises(ValueError):
        level_name(0)


def test_gradings_map_to_tasks_with_grade_counts_from_the_data(spider_root, caplog):
    with caplog.at_level(logging.WARNING, logger="spinelib.converters.spider"):
        frame, tasks, values = task_grades(read_gradings(spider_root / "radiological_gradings.csv"))
    # only 0 is present for the lower endplate in the fixture: one value, nothing to grade, no task
    assert set(tasks) == set(GRADING_COLUMNS.values()) - {"lower_endplate_defect"}
    assert any("'low endplate' has only the value 0" in r.getMessage() for r in caplog.records)
    assert "lower_endplate_defect" not in values and (frame["lower_endplate_defect"].dropna() == 0).all()
    assert tasks["pfirrmann"] == 5 and values["pfirrmann"] == [1, 2, 3, 4, 5]
    assert tasks["modic"] == 3 and tasks["disc_bulging"] == 2
    by_disc = frame.set_index(["study_id", "ivd_label"])
    assert by_disc.loc[("1", 1), "pfirrmann"] == 4 and by_disc.loc[("1", 3), "pfirrmann"] == 0
    assert pd.isna(by_disc.loc[("4", 3), "pfirrmann"])
    assert list(frame["study_id"].unique()) == ["1", "2", "3", "4"]


def test_gradings_without_a_column_name_the_file(tmp_path):
    path = tmp_path / "radiological_gradings.csv"
    _gradings().drop(columns="Disc bulging").to_csv(path, index=False)
    with pytest.raises(SpiderFormatError, match="disc bulging") as err:
        read_gradings(path)
    assert str(path) in str(err.value)


def test_images_keep_their_direction_cosines(spider_root):
    image = read_image(spider_root / "images" / "2_t2_SPACE.mha")
    np.testing.assert_allclose(image.direction, rotation_x(np.deg2rad(30.0)), atol=1e-9)
    np.testing.assert_allclose(image.spacing, [2.0, 1.5, 2.5])
    assert image.array.shape == (48, 48, 24)
    corner = np.array([[23.0, 47.0, 47.0]])
    np.testing.assert_allclose(image.to_index(image.to_physical(corner)), corner, atol=1e-9)


# --- The store ----------------------------------------------------------------------------------------------------

def test_store_shapes_and_series(store):
    index, array = _index(store), np.load(store / "volume.npy")
    assert array.shape == (len(index), GEOMETRY.slices, *GEOMETRY.size) and array.dtype == np.uint8
    t2 = index[index["series_description"] == SAGITTAL_T2]
    assert len(t2) == len(PFIRRMANN)  # every graded disc is planned, usable or not
    assert set(t2[t2["study_id"] == "2"]["sequence"]) == {"t2_SPACE"}   # fallback when no t2
    assert set(t2[t2["study_id"] == "1"]["sequence"]) == {"t2"}
    t1 = index[index["series_description"] == SAGITTAL_T1]
    assert set(t1[t1["status"] == "ok"]["study_id"]) == {"1"}
    config = json.loads((store / "config.json").read_text())
    assert config["tasks"]["pfirrmann"] == 5 and config["size"] == list(GEOMETRY.size)


def test_discs_are_found_at_their_physical_places(store):
    index = _index(store)
    for patient in ("1", "2"):
        body = PATIENTS[patient][4]
        for ivd, height in DISC_Z.items():
            row = _row(index, patient, ivd)
            assert row["status"] == "ok"
            truth = body @ np.array([0.0, 0.0, height])
            found = row[["centre_x", "centre_y", "centre_z"]].to_numpy(dtype=float)
            np.testing.assert_allclose(found, truth, atol=0.1 if patient == "1" else 1.0)
            normal = row[["normal_x", "normal_y", "normal_z"]].to_numpy(dtype=float)
            angle = np.degrees(np.arccos(np.clip(normal @ (body @ [0.0, 0.0, 1.0]), -1, 1)))
            assert angle < 3.0, f"patient {patient} IVD {ivd}: normal {normal} is {angle:.1f} deg off"


@pytest.mark.parametrize("patient", ["1", "2"])
def test_cut_volume_is_centred_on_the_disc_plane(store, patient):
    """The disc is a horizontal band through the middle rows, for the identity and the rotated, tilted patient."""
    index, array = _index(store), np.load(store / "volume.npy")
    middle = (GEOMETRY.size[0] - 1) / 2
    for ivd in DISC_Z:
        volume = array[_row(index, patient, ivd).name]
        band = _band_rows(volume)
        assert np.all(np.abs(band - middle) <= 1.0), f"patient {patient} IVD {ivd}: band rows {band}"
        # the band is the disc (bright), the rows a disc height away are vertebra (darker)
        plane = volume[volume.shape[0] // 2].astype(float)
        centre_col = GEOMETRY.size[1] // 2
        assert plane[int(middle), centre_col] > plane[int(middle) + 6, centre_col] + 40


def test_an_unrotated_cut_of_the_tilted_disc_is_not_horizontal(spider_root):
    """The band test above can fail: cut patient 2's disc along the patient axes and the band slopes."""
    image = read_image(spider_root / "images" / "2_t2_SPACE.mha")
    centre = rotation_x(TILT) @ np.array([0.0, 0.0, 0.0])
    patient_axes = np.stack([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 1.0, 0.0]])  # l, n, a
    volume = cut_disc(image, (BACKGROUND, CANAL), centre, patient_axes, GEOMETRY)
    band = _band_rows(volume)
    assert np.abs(band - (GEOMETRY.size[0] - 1) / 2).max() > 1.5


def test_missing_disc_and_missing_image_are_reported_and_skipped(spider_root, tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="spinelib.converters.spider"):
        spider_to_store(spider_root, tmp_path / "out", GEOMETRY, progress=False)
    index, array = _index(tmp_path / "out"), np.load(tmp_path / "out" / "volume.npy")
    missing = _row(index, "3", 3)
    assert "mask label 203 missing" in missing["status"]
    assert array[missing.name].max() == 0
    assert any("patient 3 level l3_l4" in r.getMessage() and "203" in r.getMessage() for r in caplog.records)
    assert _row(index, "3", 2)["status"] == "ok"
    assert all("no image" in s for s in index[index["study_id"] == "4"]["status"])
    assert any("patient 4" in r.getMessage() and "no image" in r.getMessage() for r in caplog.records)
    log = pd.read_csv(tmp_path / "out" / "crop_log.csv", dtype={"study_id": str})
    assert set(zip(log["study_id"], log["level"])) == {("3", "l3_l4"), ("4", "l5_s1"), ("4", "l4_l5"),
                                                        ("4", "l3_l4")}


def test_split_is_by_patient(store):
    index = _index(store)
    assert set(index["split_patient"]) <= {"train", "val", "test"}
    assert (index.groupby("study_id")["split_patient"].nunique() == 1).all()
    assert (index["split"] == index["split_patient"]).all()
    assert index["split_disc"].notna().all()


def test_store_feeds_the_ranking_stage_loader(store):
    """Notebook 04's loader reads the store with the default volume params unchanged, as the README says: the
    tasks, grade offsets, masks and series come from the store's config.json."""
    from spinelib.studies.ranking import load_data

    from spinelib.params.ranking import RankingParams

    params = RankingParams.load(Path(__file__).resolve().parents[2] / "params" / "ranking.yaml").volumes
    config = json.loads((store / "config.json").read_text())
    data = load_data(open_store(store), params)
    assert tuple(data.tasks.num_grades) == tuple(config["tasks"].values())
    ok_t2 = _index(store).query("status == 'ok' and series_description == @SAGITTAL_T2")
    assert sum(len(d) for d in (data.val, data.test, data.train_eval)) == len(ok_t2)
    assert len(data.train) == len(data.train_eval)  # training discs: T1 or T2 drawn, one item per disc
    dataset = next(d for d in (data.train, data.val, data.test) if len(d))
    volume, grades, _ = dataset[0]
    assert volume.shape == (1, GEOMETRY.slices, *params.input_size) and grades.shape == (len(config["tasks"]),)


def test_cli_converts_and_summarises(spider_root, tmp_path, capsys):
    assert main([str(spider_root), str(tmp_path / "cli"), "--slices", "4", "--crop", "32", "64", "--size", "16",
                 "32", "--field-mm", "40", "80", "--slice-mm", "3"]) == 0
    printed = capsys.readouterr().out
    assert "8 of 12 disc volumes written" in printed and "pfirrmann 5" in printed
    assert np.load(tmp_path / "cli" / "volume.npy").shape == (12, 4, 16, 32)
    assert main([str(tmp_path / "nowhere"), str(tmp_path / "cli2")]) == 2


# --- One parameter: the ranking notebooks 04-07 on a converted SPIDER store --------------------------------------

def _cohort_root(spider_root, root, patients: int = 16):
    """A SPIDER root of ``patients`` patients: copies of fixture patients 1 (t2 and t1) and 2 (tilted, t2_SPACE),
    with every grading column taking at least two values (so each task has two or more grades to rank)."""
    import shutil

    for folder in ("images", "masks"):
        (root / folder).mkdir(parents=True)
        for patient in range(1, patients + 1):
            source = "1" if patient % 2 else "2"
            for path in (spider_root / folder).glob(f"{source}_*.mha"):
                shutil.copy(path, root / folder / path.name.replace(f"{source}_", f"{patient}_", 1))
    rows = [{"Patient": patient, "IVD label": ivd, "Modic": (ivd + patient) % 3, "UP endplate": (ivd + patient) % 2,
             "LOW endplate": patient % 2, "Spondylolisthesis": int(ivd == 1), "Disc herniation": int(patient % 4 == 0),
             "Disc narrowing": (ivd * patient) % 3, "Disc bulging": 1 - ivd % 2,
             "Pfirrman grade": 1 + (3 * patient + ivd) % 5}
            for patient in range(1, patients + 1) for ivd in DISC_Z]
    pd.DataFrame(rows).to_csv(root / "radiological_gradings.csv", index=False)
    return root


def test_config_declares_what_the_ranking_study_needs(store):
    config = json.loads((store / "config.json").read_text())
    assert set(config["tasks"]) == set(GRADING_COLUMNS.values()) - {"lower_endplate_defect"}   # one value only
    assert "lower_endplate_defect" not in pd.read_csv(store / "volume.csv").columns
    assert config["first_grade"] == {} and config["masked"] == {}
    assert config["train_series"] == [SAGITTAL_T2, SAGITTAL_T1] and config["eval_series"] == [SAGITTAL_T2]
    assert config["phantom_truth"] is False


def test_ranking_notebooks_run_on_the_store_with_only_crops_dir_changed(spider_root, tmp_path, caplog):
    """Notebooks 04-07's calls on a converted store, from the tiny profile with only ``crops_dir`` changed: the
    tasks, their conventions and the series come from the store, and no truth file is read."""
    from spinelib.params.ranking import EvaluationParams, RankingParams, ScoreFigureParams
    from spinelib.paths import resolve
    from spinelib.studies import ranking, ranking_eval as ev
    from spinelib.tta import tta_views

    out = spider_to_store(_cohort_root(spider_root, tmp_path / "SPIDER"), tmp_path / "spider_crops", GEOMETRY,
                          series=(SAGITTAL_T2, SAGITTAL_T1), progress=False)
    config = json.loads((out / "config.json").read_text())
    params = RankingParams.tiny().replace(crops_dir=str(out))

    # ---- notebook 04: the store decides the tasks; the cohort record says there is no phantom truth ----
    store = open_store(resolve(params.crops_dir))
    cohort = ev.cohort_of_store(params.crops_dir, store.config())
    assert (cohort.source, cohort.phantom_truth) == ("spider", False)
    with caplog.at_level(logging.WARNING, logger="spinelib.studies.ranking"):
        data = ranking.load_data(store, params.volumes)
    taken = [r.getMessage() for r in caplog.records if "declares its cohort" in r.getMessage()]
    assert len(taken) == 1 and "volumes.tasks=" in taken[0] and "volumes.train_series=" in taken[0]
    assert dict(zip(data.tasks.names, data.tasks.num_grades)) == config["tasks"] != params.volumes.tasks
    assert set(data.train.rows["series_description"]) == {SAGITTAL_T2, SAGITTAL_T1}   # train_series from the store
    assert set(data.test.rows["series_description"]) == {SAGITTAL_T2}
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    ev.write_cohort(run_dir, cohort)
    plan = [s for s in ranking.plan_runs(params.runs, params.train.seeds) if s.name in ("ce", "spineranknet")]
    for spec in plan:   # phase 1 and one phase-2 run, one epoch each (the tiny profile)
        ranking.train_run(data, params.train, spec, run_dir, progress=False)
    ranking.write_plan(plan, run_dir / "runs.json")
    models = ranking.load_models(params.train, data.tasks.num_grades, plan, run_dir)
    views = tta_views(params.tta.translate, params.tta.slice_shift, params.tta.flips)
    for split in ("val", "test"):
        ranking.predict_tta(models, getattr(data, split), data.tasks, views, params.tta.batch_size,
                            progress=False).to_csv(run_dir / f"predictions_{split}.csv", index=False)

    # ---- notebook 05: thresholds on validation ----
    val = ev.with_thresholded(pd.read_csv(run_dir / "predictions_val.csv"))
    cuts = ev.fit_all_thresholds(val, "coordinate_descent")

    # ---- notebook 06: the default profile's truth files do not apply to this cohort ----
    recorded = ev.read_cohort(run_dir)
    assert recorded == cohort
    evaluation = EvaluationParams()
    assert evaluation.truth_csv and ev.truth_files(recorded, evaluation.truth_csv, evaluation.extra_tasks_csv) == ("", "")
    test = ev.with_thresholded(pd.read_csv(run_dir / "predictions_test.csv"))
    assert set(test["task"]) == set(config["tasks"]) and "latent" not in test.columns
    decided = ev.decide(test, cuts)
    per_task = ev.per_task_metrics(decided)
    assert set(ev.table1(per_task).index) == {"ce", "ce_thresholded", "spineranknet"}
    points, boot = ev.run_bootstrap(decided, None, n_boot=20, seed=0)
    assert points.get("within_grade_rho", pd.Series(dtype=float)).isna().all()   # no latent: no within-grade ρ
    assert set(boot) == set(points.index)
    assert "No phantom truth for the spider crop store" in ev.no_truth_sentence(recorded, "x is")

    # ---- notebook 07: the store recorded by notebook 04, not the params' crops_dir ----
    figure = ScoreFigureParams()
    assert figure.crops_dir != recorded.crops_dir
    assert ev.truth_files(recorded, figure.truth_csv, figure.extra_tasks_csv) == ("", "")
    shown = decided[decided["run"] == "spineranknet"].reset_index(drop=True)
    images = ev.mid_slices(open_store(resolve(recorded.crops_dir)), shown)
    assert images.shape == (len(shown), *GEOMETRY.size)


def test_a_phantom_store_keeps_the_params(tmp_path):
    """A store without declared tasks (the phantom's) leaves ``volumes`` untouched: the very same object."""
    from spinelib.params.ranking import RankingParams
    from spinelib.studies import ranking

    (tmp_path / "config.json").write_text(json.dumps({"data_root": "data/phantom", "split_unit": "patient"}))
    volumes = RankingParams().volumes
    assert ranking.volumes_for_store(open_store(tmp_path), volumes) is volumes
    assert not ranking.has_phantom_truth({"tasks": {"pfirrmann": 5}})   # converted before phantom_truth existed
    assert not ranking.has_phantom_truth({"tasks": {"pfirrmann": 5}, "phantom_truth": False})
    # notebook 01's store: the phantom when its data root holds the generator's record, real data otherwise
    phantom, real = tmp_path / "phantom", tmp_path / "raw"
    phantom.mkdir(), real.mkdir()
    (phantom / "phantom_params.json").write_text("{}")
    assert ranking.has_phantom_truth({"data_root": str(phantom)})
    assert not ranking.has_phantom_truth({"data_root": str(real)})
