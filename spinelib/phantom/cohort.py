"""Cohort generation: one study per index, CSVs in the RSNA 2024 layout, truth files."""

from __future__ import annotations

import json
import multiprocessing as mp
import time
from pathlib import Path

import numpy as np
import pandas as pd

from spinelib.constants import (AXIAL_T2, CONDITION_WORDS, CONDITIONS, GRADES, LEVEL_WORDS, LEVELS,
                                SAGITTAL_T1, SAGITTAL_T2, label_column)
from spinelib.phantom import anatomy as A
from spinelib.phantom import render as R
from spinelib.phantom import series as S
from spinelib.phantom import severity as V
from spinelib.phantom.writer import make_uid, write_csv, write_dicom
from spinelib.progress import progress_bar

VERSION = "4"
MISSING = dict(study_labels=0.09, coordinate=0.004, no_t1=0.01, no_t2=0.006, no_axial=0.004, two_axial=0.15)
SCALE, OFFSET = (700.0, 2100.0), (0.0, 50.0)
TIMING = {"T1": (550.0, 12.0), "T2": (3500.0, 100.0), "STIR": (4000.0, 60.0)}


def study_ids(seed: int, n: int) -> list[int]:
    """``n`` distinct 8-10 digit study ids, a deterministic function of the seed."""
    rng = np.random.default_rng([seed, 4242])
    ids: list[int] = []
    while len(ids) < n:
        for v in rng.integers(4_000_000, 4_290_000_000, size=n):
            if int(v) not in ids and len(ids) < n:
                ids.append(int(v))
    return ids


def centre_jitter(ci: int) -> np.ndarray:
    """Fixed contrast factors of one centre (12 tissues)."""
    return np.random.default_rng([ci, 5150]).lognormal(0.0, 0.08, 12)


def _missing_cells(rng: np.random.Generator) -> np.ndarray:
    """Boolean (5 conditions, 5 levels): labels left empty in this study."""
    miss = np.zeros((5, 5), dtype=bool)
    if rng.random() < MISSING["study_labels"]:
        if rng.random() < 0.7:
            miss[3:, 0] = True
        for _ in range(int(rng.integers(1, 3))):
            ci = int(rng.choice(5, p=[0.1, 0.1, 0.1, 0.35, 0.35]))
            miss[ci, int(rng.integers(5))] = True
    return miss


def _render_series(rng, an, pose, plans: list[S.SeriesPlan], centre: dict, ci: int, nucleus: np.ndarray):
    """Pixels of each plan (plans sharing slices share their label evaluation)."""
    snr = centre["snr"] * rng.uniform(0.8, 1.2)
    out, cache = [], {}
    for plan in plans:
        jit = centre_jitter(ci) * rng.lognormal(0.0, 0.05, 12)
        lut = R.tissue_table(plan.kind, nucleus, jit)
        coef = rng.normal([0, 0.25, 0, -0.2, -0.3], [0.15, 0.1, 0.1, 0.1, 0.1])
        scale, offset = rng.uniform(*SCALE), rng.uniform(*OFFSET)
        nsub = 2 if plan.description != AXIAL_T2 else 3
        imgs = []
        for sl in plan.slices:
            key = (id(sl), plan.thickness)
            if key not in cache:
                cache[key] = R.slice_labels(an, sl, pose, plan.thickness, nsub)
            bias = R.bias_field(sl, pose, coef)
            imgs.append(R.acquire(cache[key], lut, bias, 1.0 / snr, scale, offset,
                                  (1 << centre["bits"]) - 1, rng))
        out.append(imgs)
    return out


def draw_study(seed: int, index: int) -> tuple[np.random.Generator, dict]:
    """The first, image-free part of study ``index``: its centre, latents and what its rater perceives.

    Returns the study's random generator (positioned after these draws, so :func:`generate_study` goes on
    with the same stream) and a dict with ``centre`` (index), ``severity`` (5 conditions, 5 levels),
    ``degeneration`` and ``height_loss`` (5,), ``rater`` (5, 5: latent + centre shift + noise) and the extra
    tasks' rater noise ``pf_noise``, ``dn_noise`` (5,). Cheap: the cohort draws it for every study first to
    calibrate the grade thresholds (:func:`spinelib.phantom.severity.cohort_thresholds`).
    """
    rng = np.random.default_rng([seed, index])
    ci = int(rng.choice(len(S.CENTRES), p=[c["weight"] for c in S.CENTRES]))
    lat = V.draw_latents(rng, 1)
    sev = lat["severity"][0]
    rater = V.rater_scores(rng, sev, ci)
    pf_noise, dn_noise = V.extra_rater_noise(rng, 5, ci)
    return rng, dict(centre=ci, severity=sev, degeneration=lat["degeneration"][0],
                     height_loss=lat["height_loss"][0], rater=rater, pf_noise=pf_noise, dn_noise=dn_noise)


def generate_study(seed: int, index: int, study_id: int, labelled: bool, root: str,
                   thresholds: np.ndarray | None = None) -> dict:
    """Generate, render and write one study; returns its CSV rows.

    ``thresholds`` (5, 5, 2) are the cohort's grade thresholds on the rater score (default: the population's).
    """
    rng, d = draw_study(seed, index)
    ci, sev, rater = d["centre"], d["severity"], d["rater"]
    centre = S.CENTRES[ci]
    grade = V.grades_from_scores(rater, thresholds)
    pf_noise, dn_noise = d["pf_noise"], d["dn_noise"]
    an = A.make_anatomy(rng, sev, d["degeneration"], d["height_loss"])
    pose = S.draw_pose(rng)
    t2 = S.plan_sagittal(rng, an, centre, pose, SAGITTAL_T2, "STIR" if centre["stir"] else "T2")
    t1 = S.plan_sagittal(rng, an, centre, pose, SAGITTAL_T1, "T1", like=t2 if centre["shared_sag"] else None)
    ax = S.plan_axial(rng, an, centre, pose)
    plans = {"t2": t2, "t1": t1, "ax": ax}
    if rng.random() < MISSING["two_axial"]:
        plans["ax2"] = S.plan_axial(rng, an, centre, pose, discs=(3, 4, 5), thin=True)
    u = rng.random(3)
    for key, p in zip(("t1", "t2", "ax"), (MISSING["no_t1"], MISSING["no_t2"], MISSING["no_axial"])):
        if u[("t1", "t2", "ax").index(key)] < p:
            plans.pop(key)
    order = list(plans)
    series_ids = study_ids(int(rng.integers(1 << 31)), len(order))
    series_numbers = sorted(rng.choice(np.arange(2, 20), size=len(order), replace=False).tolist())
    pixels = _render_series(rng, an, pose, [plans[k] for k in order], centre, ci, an.nucleus_signal)
    sid = str(study_id)
    study_uid, for_uid = make_uid(seed, sid, "study"), make_uid(seed, sid, "for")
    img_dir = Path(root) / ("train_images" if labelled else "test_images") / sid
    desc_rows, n_inst = [], 0
    for j, key in enumerate(order):
        plan, ser = plans[key], series_ids[j]
        desc_rows.append((study_id, ser, plan.description))
        series_uid = make_uid(seed, sid, ser, "series")
        for sl, img, num in zip(plan.slices, pixels[j], plan.instance_numbers):
            meta = dict(sop_uid=make_uid(seed, sid, ser, num, "sop"), study_uid=study_uid, series_uid=series_uid,
                        for_uid=for_uid, study_id=sid, series_number=series_numbers[j], instance_number=num,
                        description=plan.description, institution=centre["name"], field=centre["field"],
                        manufacturer="SPINELIB", thickness=plan.thickness, spacing=plan.spacing,
                        bits_stored=centre["bits"], rescale=centre["rescale"],
                        repetition_time=TIMING[plan.kind][0], echo_time=TIMING[plan.kind][1])
            write_dicom(img_dir / str(ser) / f"{num}.dcm", img, sl, meta)
            n_inst += 1
    miss = _missing_cells(rng) if labelled else np.zeros((5, 5), dtype=bool)
    drop = rng.random((5, 5)) < MISSING["coordinate"]
    to_patient = lambda q: pose[0] @ q + pose[1]  # noqa: E731
    coords = []
    mid_t2 = 0
    if "t2" in plans:
        canal = [to_patient(A.unstraighten(an, *A.canal_point(an, k))) for k in range(1, 6)]
        mid_t2 = int(np.argmin([sum(abs(sl.project(p)[2]) for p in canal) for sl in plans["t2"].slices]))
    for li in range(5):
        k = li + 1
        targets = [("t2", A.canal_point(an, k), None)]
        targets += [("t1", A.foramen_point(an, k, side), None) for side in (True, False)]
        targets += [("ax", A.recess_point(an, k, side), k) for side in (True, False)]
        for ci_, (key, sal, disc) in enumerate(targets):
            if key not in plans or miss[ci_, li] or drop[ci_, li] or not labelled:
                continue
            plan = plans[key]
            pt = to_patient(A.unstraighten(an, *sal))
            if key == "t2":   # one mid-sagittal slice for all levels
                i = mid_t2
                x, y, _ = plan.slices[i].project(pt)
            else:
                i, x, y, _ = S.nearest_slice(plan, pt, disc)
            if 0 <= x < plan.slices[i].cols and 0 <= y < plan.slices[i].rows:
                coords.append((study_id, series_ids[order.index(key)], plan.instance_numbers[i],
                               CONDITION_WORDS[CONDITIONS[ci_]], LEVEL_WORDS[LEVELS[li]],
                               round(x, 6), round(y, 6)))
    labels = {label_column(c, lv): ("" if miss[a, b] else GRADES[grade[a, b]])
              for a, c in enumerate(CONDITIONS) for b, lv in enumerate(LEVELS)}
    origin = "train" if labelled else "test"
    truth = [(study_id, c, lv, float(sev[a, b]), float(rater[a, b]),
              (GRADES[grade[a, b]] if labelled and not miss[a, b] else ""), origin, centre["name"])
             for a, c in enumerate(CONDITIONS) for b, lv in enumerate(LEVELS)]
    degeneration, height_loss = d["degeneration"], d["height_loss"]
    pf_score = V.pfirrmann_score(degeneration, height_loss)   # the truth behind the Pfirrmann grade
    pf = V.pfirrmann(degeneration, height_loss, pf_noise)
    dn = V.disc_narrowing(height_loss, dn_noise)
    extra = [(study_id, lv, int(pf[b]), int(dn[b]), float(degeneration[b]), float(height_loss[b]),
              float(pf_score[b]), float(pf_score[b] + pf_noise[b]), float(height_loss[b] + dn_noise[b]), origin)
             for b, lv in enumerate(LEVELS)]
    return dict(study_id=study_id, labelled=labelled, labels=labels, coords=coords, series=desc_rows,
                truth=truth, extra=extra, instances=n_inst)


def _job(args: tuple) -> dict:
    return generate_study(*args)


def params_record(seed: int, studies: int, test_studies: int, thresholds: np.ndarray) -> dict:
    """Everything that defines the cohort (written to phantom_params.json); ``thresholds`` = the cohort's."""
    return dict(version=VERSION, seed=seed, studies=studies, test_studies=test_studies,
                centres=[{k: v for k, v in c.items()} | {"contrast_jitter": centre_jitter(i).round(6).tolist()}
                         for i, c in enumerate(S.CENTRES)],
                conditions=list(CONDITIONS), levels=list(LEVELS),
                thresholds=np.round(thresholds, 6).tolist(),
                population_thresholds=V.calibrated_thresholds().round(6).tolist(), band_edges=V.band_edges().round(6).tolist(),
                nominal_thresholds=list(V.NOMINAL_T), rater_sd=V.RATER_SD, centre_shift=list(V.CENTRE_SHIFT),
                extra_rater_sd=V.EXTRA_RATER_SD, pfirrmann_cuts=list(V.PFIRRMANN_CUTS),
                narrowing_cuts=list(V.NARROWING_CUTS),
                calibration_seed=V.CALIB_SEED, calibration_n=V.CALIB_N, mixture_weights=V.WEIGHTS,
                degeneration_mu=list(V.DEG_MU), missing=MISSING, target_counts=V.TARGET_COUNTS)


def generate_phantom(out_dir: Path | str, studies: int = 300, seed: int = 0, *, test_studies: int = 2,
                     workers: int = 1, progress: bool = True) -> dict:
    """Write the phantom cohort under ``out_dir`` in the RSNA 2024 layout; returns a summary."""
    t0 = time.perf_counter()
    root = Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    ids = study_ids(seed, studies + test_studies)
    # Raters calibrated to this cohort: grade thresholds from the labelled studies' rater scores, so the
    # realised grade mix matches the target per (condition, level) (severity.cohort_thresholds).
    thresholds = V.cohort_thresholds(np.stack([draw_study(seed, i)[1]["rater"] for i in range(studies)])
                                     if studies else np.empty((0, 5, 5)))
    jobs = [(seed, i, ids[i], i < studies, str(root), thresholds) for i in range(studies + test_studies)]
    if workers > 1:
        ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
        pool = ctx.Pool(workers)
        it = pool.imap(_job, jobs, chunksize=1)
    else:
        pool, it = None, map(_job, jobs)
    results = list(progress_bar(it, show=progress, total=len(jobs), desc="phantom", unit="study"))
    if pool is not None:
        pool.close()
        pool.join()
    train = [r for r in results if r["labelled"]]
    test = [r for r in results if not r["labelled"]]
    lab = pd.DataFrame([{"study_id": r["study_id"], **r["labels"]} for r in train])
    lab = lab.replace("", np.nan).sort_values("study_id") if len(lab) else lab
    write_csv(lab, root / "train.csv")
    coord_cols = ["study_id", "series_id", "instance_number", "condition", "level", "x", "y"]
    write_csv(pd.DataFrame([c for r in train for c in r["coords"]], columns=coord_cols)
              .sort_values(["study_id", "series_id", "instance_number"], kind="stable"),
              root / "train_label_coordinates.csv")
    desc_cols = ["study_id", "series_id", "series_description"]
    for name, rs in (("train", train), ("test", test)):
        write_csv(pd.DataFrame([d for r in rs for d in r["series"]], columns=desc_cols)
                  .sort_values(["study_id", "series_id"]), root / f"{name}_series_descriptions.csv")
    write_csv(pd.DataFrame([t for r in results for t in r["truth"]],
                           columns=["study_id", "condition", "level", "severity", "rater_score", "grade", "origin",
                                    "centre"])
              .sort_values(["study_id"], kind="stable"), root / "phantom_truth.csv")
    write_csv(pd.DataFrame([t for r in results for t in r["extra"]],
                           columns=["study_id", "level", "pfirrmann", "disc_narrowing", "degeneration",
                                    "height_loss", "pfirrmann_score", "pfirrmann_rater_score",
                                    "disc_narrowing_rater_score", "origin"]).sort_values(["study_id"], kind="stable"),
              root / "phantom_extra_tasks.csv")
    (root / "phantom_params.json").write_text(json.dumps(params_record(seed, studies, test_studies, thresholds),
                                                         indent=1, sort_keys=True) + "\n")
    secs = time.perf_counter() - t0
    n_series = sum(len(r["series"]) for r in results)
    n_inst = sum(r["instances"] for r in results)
    return dict(out_dir=str(root), studies=len(train), test_studies=len(test), series=n_series,
                instances=n_inst, coordinates=sum(len(r["coords"]) for r in train), seconds=round(secs, 2),
                seconds_per_study=round(secs / max(1, len(results)), 4), workers=workers)
