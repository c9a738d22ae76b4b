"""Cohort generation: one study per index, CSVs in the RSNA 2024 layout, truth files.

Every study draws from its own random stream, ``default_rng([seed, index])``, so a study's files do not depend
on which process made it or in which order: the cohort is byte-identical for any number of workers
(../shared/spec/phantom.md, item 10). Within a study the order of the draws is fixed (centre, latents, rater
noise, anatomy, pose, series plans, series ids, pixels, missing labels and coordinates); changing it, or the
arithmetic order of any expression, changes the phantom's bytes.

Generation has two passes. The first draws only each labelled study's rater scores (cheap, no image), from which
the grade thresholds are calibrated to this cohort (:func:`spinelib.phantom.severity.cohort_thresholds`); the
second generates, renders and writes every study with those thresholds, then the cohort's CSVs.

With ``quirks`` (the default) the files also show the real RSNA files' quirks (:mod:`spinelib.phantom.quirks`):
RLE Lossless 12-bit pixel data, "T1"/"T2" header descriptions, instance-number gaps and extra annotation rows.
They come from a separate random stream after everything else is drawn, so the cohort's content (pixels,
geometry, grades, genuine coordinates) is the same with quirks on or off.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import time
from pathlib import Path

import numpy as np
import pandas as pd

from spinelib.constants import (AXIAL_T2, CONDITION_WORDS, CONDITIONS, GRADES, LEVEL_WORDS, LEVELS,
                                SAGITTAL_T1, SAGITTAL_T2, label_column)
from spinelib.phantom.anatomy import Anatomy, canal_point, foramen_point, make_anatomy, recess_point, unstraighten
from spinelib.phantom.quirks import (QUIRK_RATES, draw_instance_gaps, extra_annotation_rows, quirk_rng,
                                     short_description, stored_bits)
from spinelib.phantom.render import acquire, bias_field, slice_labels, tissue_table
from spinelib.phantom.series import CENTRES, Pose, SeriesPlan, draw_pose, nearest_slice, plan_axial, plan_sagittal
from spinelib.phantom.severity import (CALIBRATION_SEED, CALIBRATION_STUDIES, CENTRE_SHIFT, DEGENERATION_MU,
                                       EXTRA_RATER_SD, MIXTURE_WEIGHTS, NARROWING_CUTS, NOMINAL_THRESHOLDS,
                                       PFIRRMANN_CUTS, RATER_SD, TARGET_COUNTS, band_edges, calibrated_thresholds,
                                       cohort_thresholds, disc_narrowing, draw_latents, extra_rater_noise,
                                       grades_from_scores, pfirrmann, pfirrmann_score, rater_scores)
from spinelib.phantom.writer import make_uid, write_csv, write_dicom
from spinelib.progress import progress_bar

VERSION = "4"
# How often something is missing, as in the real files (phantom.md item 5): a study with some empty labels, a
# dropped coordinate, a missing Sagittal T1 / Sagittal T2 / Axial series, a second axial series.
# (The keys are written as they are to phantom_params.json.)
MISSING_RATES = dict(study_labels=0.09, coordinate=0.004, no_t1=0.01, no_t2=0.006, no_axial=0.004, two_axial=0.15)
# Ranges of the scanner's global intensity scale and offset of each series (stored value = signal · scale + offset)
STORED_SCALE, STORED_OFFSET = (700.0, 2100.0), (0.0, 50.0)
# (repetition time, echo time) in ms per contrast, written to the DICOM headers: typical spin-echo values
REPETITION_AND_ECHO_MS = {"T1": (550.0, 12.0), "T2": (3500.0, 100.0), "STIR": (4000.0, 60.0)}
# The series of a study, by key: two sagittal, one axial (and sometimes a second, thin axial, "ax2")
_OPTIONAL_SERIES = (("t1", "no_t1"), ("t2", "no_t2"), ("ax", "no_axial"))


# ---- identities and per-centre constants -------------------------------------------------------------------------

def study_ids(seed: int, n: int) -> list[int]:
    """``n`` distinct 8-10 digit study ids, a deterministic function of the seed."""
    rng = np.random.default_rng([seed, 4242])
    ids: list[int] = []
    while len(ids) < n:
        for candidate in rng.integers(4_000_000, 4_290_000_000, size=n):
            if int(candidate) not in ids and len(ids) < n:
                ids.append(int(candidate))
    return ids


def centre_jitter(centre_index: int) -> np.ndarray:
    """Fixed contrast factors of one centre (12 tissues): each scanner renders the same tissue a little
    differently, for good (its own stream, independent of the cohort's seed)."""
    return np.random.default_rng([centre_index, 5150]).lognormal(0.0, 0.08, 12)


# ---- the image-free part of a study ------------------------------------------------------------------------------

def draw_study(seed: int, index: int) -> tuple[np.random.Generator, dict]:
    """The first, image-free part of study ``index``: its centre, latents and what its rater perceives.

    Returns the study's random generator (positioned after these draws, so :func:`generate_study` goes on
    with the same stream) and a dict with ``centre`` (index), ``severity`` (5 conditions, 5 levels),
    ``degeneration`` and ``height_loss`` (5,), ``rater`` (5, 5: latent + centre shift + noise) and the extra
    tasks' rater noise ``pfirrmann_noise``, ``narrowing_noise`` (5,). Cheap: the cohort draws it for every study
    first to calibrate the grade thresholds (:func:`spinelib.phantom.severity.cohort_thresholds`).
    """
    rng = np.random.default_rng([seed, index])
    centre_index = int(rng.choice(len(CENTRES), p=[centre["weight"] for centre in CENTRES]))
    latents = draw_latents(rng, 1)
    severity = latents["severity"][0]
    rater = rater_scores(rng, severity, centre_index)
    pfirrmann_noise, narrowing_noise = extra_rater_noise(rng, 5, centre_index)
    return rng, dict(centre=centre_index, severity=severity, degeneration=latents["degeneration"][0],
                     height_loss=latents["height_loss"][0], rater=rater, pfirrmann_noise=pfirrmann_noise,
                     narrowing_noise=narrowing_noise)


def _draw_missing_labels(rng: np.random.Generator) -> np.ndarray:
    """Boolean (5 conditions, 5 levels): labels left empty in this study.

    Most often the subarticular grades at L1/L2 (the recesses are hard to see that high on the axial series), as
    in the real train.csv; then one or two more cells, mostly subarticular.
    """
    missing = np.zeros((5, 5), dtype=bool)
    if rng.random() < MISSING_RATES["study_labels"]:
        if rng.random() < 0.7:
            missing[3:, 0] = True
        for _ in range(int(rng.integers(1, 3))):
            condition = int(rng.choice(5, p=[0.1, 0.1, 0.1, 0.35, 0.35]))
            missing[condition, int(rng.integers(5))] = True
    return missing


# ---- series planning and rendering -------------------------------------------------------------------------------

def _plan_series(rng: np.random.Generator, anatomy: Anatomy, centre: dict, pose: Pose) -> dict[str, SeriesPlan]:
    """The study's series by key ("t2", "t1", "ax", maybe "ax2"), in acquisition order, some dropped at random."""
    t2 = plan_sagittal(rng, anatomy, centre, pose, SAGITTAL_T2, "STIR" if centre["stir"] else "T2")
    t1 = plan_sagittal(rng, anatomy, centre, pose, SAGITTAL_T1, "T1", like=t2 if centre["shared_sag"] else None)
    axial = plan_axial(rng, anatomy, centre, pose)
    plans = {"t2": t2, "t1": t1, "ax": axial}
    if rng.random() < MISSING_RATES["two_axial"]:
        # a second, thinner axial series over the lower three discs, where most disease is
        plans["ax2"] = plan_axial(rng, anatomy, centre, pose, discs=(3, 4, 5), thin=True)
    # one draw per optional series, all three drawn whatever happens (keeps the stream's position fixed)
    draws = rng.random(3)
    for draw, (key, rate) in zip(draws, _OPTIONAL_SERIES):
        if draw < MISSING_RATES[rate]:
            plans.pop(key)
    return plans


def _series_contrast(rng: np.random.Generator, plan: SeriesPlan, centre_index: int,
                     nucleus_signal: np.ndarray) -> tuple[np.ndarray, np.ndarray, float, float]:
    """One series' tissue table, bias-field coefficients, intensity scale and offset (drawn in this order)."""
    jitter = centre_jitter(centre_index) * rng.lognormal(0.0, 0.05, 12)   # the centre's, plus this series' own
    table = tissue_table(plan.kind, nucleus_signal, jitter)
    # bias field exp(c·(u, v, w, v², w²)): on average brighter posteriorly (the spine coil), falling off away from
    # the coil's centre (negative quadratic terms)
    bias_coefficients = rng.normal([0, 0.25, 0, -0.2, -0.3], [0.15, 0.1, 0.1, 0.1, 0.1])
    scale, offset = rng.uniform(*STORED_SCALE), rng.uniform(*STORED_OFFSET)
    return table, bias_coefficients, scale, offset


def _render_series(rng: np.random.Generator, anatomy: Anatomy, pose: Pose, plans: list[SeriesPlan], centre: dict,
                   centre_index: int, nucleus_signal: np.ndarray) -> list[list[np.ndarray]]:
    """Pixels of each plan, one (rows, cols) uint16 image per slice.

    Plans sharing slices (T1 and T2 on the same planes) share their label evaluation, the costly step: the labels
    are cached by slice object and thickness.
    """
    snr = centre["snr"] * rng.uniform(0.8, 1.2)       # this study's signal-to-noise (of CSF), around the centre's
    max_value = (1 << centre["bits"]) - 1
    series_pixels, label_cache = [], {}
    for plan in plans:
        table, bias_coefficients, scale, offset = _series_contrast(rng, plan, centre_index, nucleus_signal)
        # axial slices cut across the thin discs, where partial volume across the slice matters most
        n_sub = 2 if plan.description != AXIAL_T2 else 3
        images = []
        for plane in plan.slices:
            # Slice holds arrays, so it is not hashable: key by identity (a shared plane is the same object)
            key = (id(plane), plan.thickness)
            if key not in label_cache:
                label_cache[key] = slice_labels(anatomy, plane, pose, plan.thickness, n_sub)
            bias = bias_field(plane, pose, bias_coefficients)
            # noise sigma = 1/SNR: the tissue table puts CSF at about 1, so CSF reaches the centre's SNR
            images.append(acquire(label_cache[key], table, bias, 1.0 / snr, scale, offset, max_value, rng))
        series_pixels.append(images)
    return series_pixels


def _write_study_dicoms(seed: int, study_id: int, folder: Path, plans: dict[str, SeriesPlan], series_ids: list[int],
                        series_numbers: list[int], pixels: list[list[np.ndarray]], centre: dict,
                        written: dict[str, SeriesPlan] | None = None, quirks: bool = False) -> tuple[list, int]:
    """Write every series' slices as DICOM files; returns the series-description rows and the instance count.

    All UIDs are hashes of (seed, study id, series id, instance number of ``plans``): the same cohort gets the
    same UIDs. ``written``: the plans as numbered in the files (with quirks, some instance numbers have gaps;
    default ``plans``); the UIDs keep the clean numbering, so that only the quirk fields differ between a clean
    and a quirky cohort. ``quirks``: RLE Lossless pixel data, BitsStored 12 where every value fits, and
    "T1"/"T2" header descriptions (the descriptions CSV rows keep the full names).
    """
    written = plans if written is None else written
    study = str(study_id)
    study_uid, frame_uid = make_uid(seed, study, "study"), make_uid(seed, study, "for")
    description_rows, n_instances = [], 0
    for j, key in enumerate(plans):
        plan, series_id = plans[key], series_ids[j]
        description_rows.append((study_id, series_id, plan.description))
        series_uid = make_uid(seed, study, series_id, "series")
        repetition_time, echo_time = REPETITION_AND_ECHO_MS[plan.kind]
        # the quirk fields: the header's description, the stored bits and the pixel encoding
        header_description = short_description(plan.kind) if quirks else plan.description
        bits = stored_bits(pixels[j], centre["bits"]) if quirks else centre["bits"]
        for plane, image, number, file_number in zip(plan.slices, pixels[j], plan.instance_numbers,
                                                     written[key].instance_numbers):
            meta = dict(sop_uid=make_uid(seed, study, series_id, number, "sop"), study_uid=study_uid,
                        series_uid=series_uid, for_uid=frame_uid, study_id=study, series_number=series_numbers[j],
                        instance_number=file_number, description=header_description, institution=centre["name"],
                        field=centre["field"], manufacturer="SPINELIB", thickness=plan.thickness,
                        spacing=plan.spacing, bits_stored=bits, rescale=centre["rescale"],
                        repetition_time=repetition_time, echo_time=echo_time, rle=quirks)
            write_dicom(folder / str(series_id) / f"{file_number}.dcm", image, plane, meta)
            n_instances += 1
    return description_rows, n_instances


# ---- label coordinates -------------------------------------------------------------------------------------------

def _to_patient(pose: Pose, q: np.ndarray) -> np.ndarray:
    """Anatomy point -> patient point: p = rot @ q + shift."""
    return pose[0] @ q + pose[1]


def _mid_sagittal_index(anatomy: Anatomy, pose: Pose, plan: SeriesPlan) -> int:
    """The sagittal slice nearest the canal centres of L1/L2..L5/S1 (least summed distance).

    The RSNA annotators marked spinal canal stenosis on one mid-sagittal slice for all levels, so this one
    slice carries every level's canal coordinate.
    """
    canal = [_to_patient(pose, unstraighten(anatomy, *canal_point(anatomy, k))) for k in range(1, 6)]
    return int(np.argmin([sum(abs(plane.project(p)[2]) for p in canal) for plane in plan.slices]))


def _label_targets(anatomy: Anatomy, k: int) -> list[tuple[str, tuple[float, float, float], int | None]]:
    """(series key, (s, a, l) landmark, axial block's disc or None) of each condition at disc ``k``, in CONDITIONS
    order: the canal on the sagittal T2, the left/right foramina on the sagittal T1, the recesses on the axial."""
    targets = [("t2", canal_point(anatomy, k), None)]
    targets += [("t1", foramen_point(anatomy, k, left), None) for left in (True, False)]
    targets += [("ax", recess_point(anatomy, k, left), k) for left in (True, False)]
    return targets


def _coordinate_rows(anatomy: Anatomy, pose: Pose, plans: dict[str, SeriesPlan], series_ids: list[int],
                     study_id: int, skip: np.ndarray) -> list[tuple]:
    """train_label_coordinates.csv rows of one labelled study: the landmark of each (condition, level) projected
    onto its series' slice, in pixel units; ``skip`` (5, 5) marks the cells left without a coordinate."""
    return [row for row, _key, _index, _point in _annotations(anatomy, pose, plans, series_ids, study_id, skip)]


def _annotations(anatomy: Anatomy, pose: Pose, plans: dict[str, SeriesPlan], series_ids: list[int],
                 study_id: int, skip: np.ndarray) -> list[tuple[tuple, str, int, np.ndarray]]:
    """(coordinate row, series key, slice index, patient point) of every genuine annotation, in row order: the
    rows of :func:`_coordinate_rows` with what the quirks need to annotate the same point elsewhere."""
    order = list(plans)   # series_ids are in the plans' order
    mid_t2 = _mid_sagittal_index(anatomy, pose, plans["t2"]) if "t2" in plans else 0
    rows = []
    for level_index in range(5):
        for condition_index, (key, landmark, disc) in enumerate(_label_targets(anatomy, level_index + 1)):
            if key not in plans or skip[condition_index, level_index]:
                continue
            plan = plans[key]
            point = _to_patient(pose, unstraighten(anatomy, *landmark))
            if key == "t2":   # one mid-sagittal slice for all levels
                i = mid_t2
                x, y, _ = plan.slices[i].project(point)
            else:   # the slice nearest the landmark; on the axial series only within the disc's own block,
                    # so that a recess coordinate always lies on an image of its own level
                i, x, y, _ = nearest_slice(plan, point, disc)
            if 0 <= x < plan.slices[i].cols and 0 <= y < plan.slices[i].rows:   # a landmark off the image: none
                rows.append(((study_id, series_ids[order.index(key)], plan.instance_numbers[i],
                              CONDITION_WORDS[CONDITIONS[condition_index]], LEVEL_WORDS[LEVELS[level_index]],
                              round(x, 6), round(y, 6)), key, i, point))
    return rows


# ---- the study's table rows --------------------------------------------------------------------------------------

def _label_row(grade: np.ndarray, missing: np.ndarray) -> dict[str, str]:
    """train.csv's 25 grade columns (condition-major, as train.csv orders them); a missing label is ""."""
    return {label_column(condition, level): ("" if missing[c, j] else GRADES[grade[c, j]])
            for c, condition in enumerate(CONDITIONS) for j, level in enumerate(LEVELS)}


def _truth_rows(study_id: int, drawn: dict, grade: np.ndarray, missing: np.ndarray, labelled: bool,
                origin: str, centre: dict) -> list[tuple]:
    """phantom_truth.csv rows: the latent and the rater's score behind each (condition, level) grade."""
    severity, rater = drawn["severity"], drawn["rater"]
    return [(study_id, condition, level, float(severity[c, j]), float(rater[c, j]),
             (GRADES[grade[c, j]] if labelled and not missing[c, j] else ""), origin, centre["name"])
            for c, condition in enumerate(CONDITIONS) for j, level in enumerate(LEVELS)]


def _extra_task_rows(study_id: int, drawn: dict, origin: str) -> list[tuple]:
    """phantom_extra_tasks.csv rows: the Pfirrmann-like and disc-narrowing grades per level, with their truth."""
    degeneration, height_loss = drawn["degeneration"], drawn["height_loss"]
    pfirrmann_noise, narrowing_noise = drawn["pfirrmann_noise"], drawn["narrowing_noise"]
    truth_score = pfirrmann_score(degeneration, height_loss)   # the truth behind the Pfirrmann grade
    pfirrmann_grade = pfirrmann(degeneration, height_loss, pfirrmann_noise)
    narrowing_grade = disc_narrowing(height_loss, narrowing_noise)
    return [(study_id, level, int(pfirrmann_grade[j]), int(narrowing_grade[j]), float(degeneration[j]),
             float(height_loss[j]), float(truth_score[j]), float(truth_score[j] + pfirrmann_noise[j]),
             float(height_loss[j] + narrowing_noise[j]), origin)
            for j, level in enumerate(LEVELS)]


# ---- one study ---------------------------------------------------------------------------------------------------

def generate_study(seed: int, index: int, study_id: int, labelled: bool, root: str,
                   thresholds: np.ndarray | None = None, quirks: bool = False) -> dict:
    """Generate, render and write one study; returns its CSV rows.

    ``thresholds`` (5, 5, 2) are the cohort's grade thresholds on the rater score (default: the population's).
    ``quirks``: write the real RSNA files' quirks (:mod:`spinelib.phantom.quirks`); the study's content is the
    same either way. The returned ``extra_coords`` are (position of the genuine row in ``coords``, extra row).
    """
    # ---- latents, grades, anatomy and pose ----
    rng, drawn = draw_study(seed, index)
    centre_index = drawn["centre"]
    centre = CENTRES[centre_index]
    grade = grades_from_scores(drawn["rater"], thresholds)
    anatomy = make_anatomy(rng, drawn["severity"], drawn["degeneration"], drawn["height_loss"])
    pose = draw_pose(rng)
    # ---- series: plan, number, render, write ----
    plans = _plan_series(rng, anatomy, centre, pose)
    # series ids look like the RSNA ones (random 8-10 digits); series numbers increase in acquisition order and
    # start at 2 or later (the localiser is series 1 on most scanners)
    series_ids = study_ids(int(rng.integers(1 << 31)), len(plans))
    series_numbers = sorted(rng.choice(np.arange(2, 20), size=len(plans), replace=False).tolist())
    pixels = _render_series(rng, anatomy, pose, list(plans.values()), centre, centre_index, anatomy.nucleus_signal)
    # ---- quirks: their own stream, so nothing above (or below) moves; instance gaps renumber copies of the plans ----
    quirks_rng = quirk_rng(seed, index) if quirks else None
    written = draw_instance_gaps(quirks_rng, plans) if quirks else plans
    folder = Path(root) / ("train_images" if labelled else "test_images") / str(study_id)
    description_rows, n_instances = _write_study_dicoms(seed, study_id, folder, plans, series_ids, series_numbers,
                                                        pixels, centre, written, quirks)
    # ---- labels and coordinates: missing labels drawn for labelled studies only, dropped coordinates for all ----
    missing = _draw_missing_labels(rng) if labelled else np.zeros((5, 5), dtype=bool)
    dropped = rng.random((5, 5)) < MISSING_RATES["coordinate"]
    # the coordinates name the instances as the files are numbered (``written``); the geometry is the same
    annotations = (_annotations(anatomy, pose, written, series_ids, study_id, missing | dropped)
                   if labelled else [])
    coordinates = [row for row, _key, _index, _point in annotations]
    extra_coordinates = extra_annotation_rows(quirks_rng, annotations, written, series_ids) if quirks else []
    origin = "train" if labelled else "test"
    return dict(study_id=study_id, labelled=labelled, labels=_label_row(grade, missing), coords=coordinates,
                extra_coords=extra_coordinates, series=description_rows,
                truth=_truth_rows(study_id, drawn, grade, missing, labelled, origin, centre),
                extra=_extra_task_rows(study_id, drawn, origin), instances=n_instances)


def _job(args: tuple) -> dict:
    """One worker's task (a module-level function, so that multiprocessing can pickle it)."""
    return generate_study(*args)


# ---- the cohort --------------------------------------------------------------------------------------------------

def params_record(seed: int, studies: int, test_studies: int, thresholds: np.ndarray, quirks: bool = False) -> dict:
    """Everything that defines the cohort (written to phantom_params.json); ``thresholds`` = the cohort's.

    ``quirks`` adds the quirk rates under "quirks"; a clean cohort's record has no such key (as before quirks).
    """
    record = dict(version=VERSION, seed=seed, studies=studies, test_studies=test_studies,
                centres=[{k: v for k, v in centre.items()} | {"contrast_jitter": centre_jitter(i).round(6).tolist()}
                         for i, centre in enumerate(CENTRES)],
                conditions=list(CONDITIONS), levels=list(LEVELS),
                thresholds=np.round(thresholds, 6).tolist(),
                population_thresholds=calibrated_thresholds().round(6).tolist(),
                band_edges=band_edges().round(6).tolist(),
                nominal_thresholds=list(NOMINAL_THRESHOLDS), rater_sd=RATER_SD, centre_shift=list(CENTRE_SHIFT),
                extra_rater_sd=EXTRA_RATER_SD, pfirrmann_cuts=list(PFIRRMANN_CUTS),
                narrowing_cuts=list(NARROWING_CUTS),
                calibration_seed=CALIBRATION_SEED, calibration_n=CALIBRATION_STUDIES, mixture_weights=MIXTURE_WEIGHTS,
                degeneration_mu=list(DEGENERATION_MU), missing=MISSING_RATES, target_counts=TARGET_COUNTS)
    return record | {"quirks": dict(QUIRK_RATES)} if quirks else record


def _cohort_grade_thresholds(seed: int, studies: int) -> np.ndarray:
    """Raters calibrated to this cohort: grade thresholds from the labelled studies' rater scores, so the
    realised grade mix matches the target per (condition, level) (severity.cohort_thresholds)."""
    scores = (np.stack([draw_study(seed, i)[1]["rater"] for i in range(studies)])
              if studies else np.empty((0, 5, 5)))
    return cohort_thresholds(scores)


def _run_jobs(jobs: list[tuple], workers: int, progress: bool) -> list[dict]:
    """Every study's result, in job order (imap keeps the order whatever process finishes first)."""
    if workers > 1:
        context = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
        pool = context.Pool(workers)
        results_iter = pool.imap(_job, jobs, chunksize=1)
    else:
        pool, results_iter = None, map(_job, jobs)
    results = list(progress_bar(results_iter, show=progress, total=len(jobs), desc="phantom", unit="study"))
    if pool is not None:
        pool.close()
        pool.join()
    return results


def _write_label_tables(root: Path, train: list[dict], test: list[dict]) -> None:
    """The RSNA CSVs: train.csv, train_label_coordinates.csv, {train,test}_series_descriptions.csv."""
    labels = pd.DataFrame([{"study_id": study["study_id"], **study["labels"]} for study in train])
    # empty strings become NaN so that the CSV holds empty cells for missing labels, as the real file does
    labels = labels.replace("", np.nan).sort_values("study_id") if len(labels) else labels
    write_csv(labels, root / "train.csv")
    write_csv(_coordinate_table(train), root / "train_label_coordinates.csv")
    description_columns = ["study_id", "series_id", "series_description"]
    for name, split_studies in (("train", train), ("test", test)):
        write_csv(pd.DataFrame([row for study in split_studies for row in study["series"]], columns=description_columns)
                  .sort_values(["study_id", "series_id"]), root / f"{name}_series_descriptions.csv")


def _coordinate_table(train: list[dict]) -> pd.DataFrame:
    """train_label_coordinates.csv: the genuine rows sorted as the real file, each followed by its extra rows.

    The real files are sorted by study id; a stable sort keeps each study's rows in generation order. A quirk's
    extra rows (a repeat on a neighbouring slice, an annotation on another series) are placed right after their
    label's genuine row, so a reader taking a label's first row takes the genuine one. Without extra rows the
    table is exactly the sorted genuine rows.
    """
    coordinate_columns = ["study_id", "series_id", "instance_number", "condition", "level", "x", "y"]
    genuine = pd.DataFrame([row for study in train for row in study["coords"]], columns=coordinate_columns)
    ordered = genuine.sort_values(["study_id", "series_id", "instance_number"], kind="stable")
    # (study position, row position) -> the extra rows that follow that genuine row
    extras: dict[tuple[int, int], list[tuple]] = {}
    for study_position, study in enumerate(train):
        for row_position, row in study.get("extra_coords", []):
            extras.setdefault((study_position, row_position), []).append(row)
    if not extras:
        return ordered
    # the genuine rows' (study position, row position), in the flattened order of ``genuine``
    keys = [(study_position, row_position) for study_position, study in enumerate(train)
            for row_position in range(len(study["coords"]))]
    rows = []
    for flat_index, row in zip(ordered.index, ordered.itertuples(index=False, name=None)):
        rows.append(row)
        rows.extend(extras.get(keys[flat_index], []))
    return pd.DataFrame(rows, columns=coordinate_columns)


def _write_truth_tables(root: Path, results: list[dict]) -> None:
    """The phantom's own CSVs (not RSNA files): phantom_truth.csv and phantom_extra_tasks.csv."""
    write_csv(pd.DataFrame([row for study in results for row in study["truth"]],
                           columns=["study_id", "condition", "level", "severity", "rater_score", "grade", "origin",
                                    "centre"])
              .sort_values(["study_id"], kind="stable"), root / "phantom_truth.csv")
    write_csv(pd.DataFrame([row for study in results for row in study["extra"]],
                           columns=["study_id", "level", "pfirrmann", "disc_narrowing", "degeneration",
                                    "height_loss", "pfirrmann_score", "pfirrmann_rater_score",
                                    "disc_narrowing_rater_score", "origin"]).sort_values(["study_id"], kind="stable"),
              root / "phantom_extra_tasks.csv")


def generate_phantom(out_dir: Path | str, studies: int = 300, seed: int = 0, *, test_studies: int = 2,
                     workers: int = 1, progress: bool = True, quirks: bool = True) -> dict:
    """Write the phantom cohort under ``out_dir`` in the RSNA 2024 layout; returns a summary.

    ``quirks`` (default on): the files show the real RSNA files' quirks (:mod:`spinelib.phantom.quirks`); off,
    the clean cohort. The content (pixels, geometry, grades, genuine coordinates) is the same either way.
    """
    started = time.perf_counter()
    root = Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    ids = study_ids(seed, studies + test_studies)
    # ---- pass 1: the grade thresholds of this cohort ----
    thresholds = _cohort_grade_thresholds(seed, studies)
    # ---- pass 2: every study (labelled first, then the unlabelled test studies) ----
    jobs = [(seed, i, ids[i], i < studies, str(root), thresholds, quirks) for i in range(studies + test_studies)]
    results = _run_jobs(jobs, workers, progress)
    # ---- the cohort's tables ----
    train = [study for study in results if study["labelled"]]
    test = [study for study in results if not study["labelled"]]
    _write_label_tables(root, train, test)
    _write_truth_tables(root, results)
    record = params_record(seed, studies, test_studies, thresholds, quirks)
    (root / "phantom_params.json").write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    seconds = time.perf_counter() - started
    return dict(out_dir=str(root), studies=len(train), test_studies=len(test),
                series=sum(len(study["series"]) for study in results),
                instances=sum(study["instances"] for study in results),
                coordinates=sum(len(study["coords"]) for study in train),
                extra_coordinates=sum(len(study["extra_coords"]) for study in train), seconds=round(seconds, 2),
                seconds_per_study=round(seconds / max(1, len(results)), 4), workers=workers)
