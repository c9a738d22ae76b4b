"""Grade a study nobody annotated: Stage 1 (localise) then Stage 2 (MIL), rows in the submission format.

``Grader`` loads the checkpoints the pipeline wrote (``models/localisation``,
``models/mil``); ``Grader.grade(study_dir)`` reads each series once, localises
every (condition, level) its series allow, cuts the Table 1 bag at each
predicted point, and returns 25 rows ``<study_id>_<condition>_<level>`` with
``normal_mild, moderate, severe`` summing to 1. A (condition, level) that
cannot be localised or graded (series type missing, unreadable, point outside
the image) gets the training prior, and the log says why.

``grade_cohort`` grades a whole dataset root (``test_images/`` or
``train_images/`` beside its descriptions CSV) into one submission in
``sample_submission.csv`` row order (else sorted by row id), one progress
bar over studies, one summary line per study that needed the prior; a study
that fails is logged and gets the prior for all its rows. It also returns the
predicted points in the ``train_label_coordinates.csv`` columns.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch

from spinelib.competition import PROBABILITY_COLUMNS, row_ids, split_row_id
from spinelib.constants import CONDITION_SERIES, CONDITION_WORDS, CONDITIONS, LEVEL_WORDS, LEVELS
from spinelib.crops.bags import BagConfig, cut_bag, source_region
from spinelib.crops.plan import BAG_KIND
from spinelib.data.dicom import Volume
from spinelib.data.rsna import COORDINATE_COLUMNS, read_series_descriptions
from spinelib.data.study_images import read_study, study_series
from spinelib.progress import progress_bar
from spinelib.provenance import is_phantom_stamp, mismatch_warning, read_provenance
from spinelib.studies.multistage.grading import load_graders, predict_bags
from spinelib.studies.multistage.localisation import Localisers, localise_study

if TYPE_CHECKING:   # annotations only: the report (matplotlib) and the ranking scorer load only when asked for
    from spinelib.figures.grading_report import StudyView
    from spinelib.grading.disc_scores import DiscScorer

log = logging.getLogger(__name__)


def _normalised(rows: pd.DataFrame) -> pd.DataFrame:
    """``rows`` with its three probabilities scaled to sum to 1 per row (the submission's rule)."""
    proba = rows[list(PROBABILITY_COLUMNS)].to_numpy(float)
    rows[list(PROBABILITY_COLUMNS)] = proba / proba.sum(axis=1, keepdims=True)
    return rows


def written_by_other(volumes: dict[int, Volume]) -> bool:
    """Whether a study's files were written by something other than the phantom (a scanner, a re-stamp).

    ``volumes``: the study's read series (:func:`read_study` with ``keep_volumes``), in series order. The first
    one's ``implementation_version_name`` (its first usable file's meta header) is checked against the phantom's
    stamp (:func:`spinelib.provenance.is_phantom_stamp`). A study with no readable series cannot be checked and
    does not count as written by another.
    """
    first = next(iter(volumes.values()), None)
    return first is not None and not is_phantom_stamp(first.implementation_version_name)


@dataclass
class Grader:
    """Stage 1 and Stage 2 models, the bag geometry and the grade prior used for rows that cannot be graded."""

    localisers: Localisers
    graders: dict[str, list[torch.nn.Module]]
    bags: BagConfig
    prior: pd.DataFrame
    messages: list[str] = field(default_factory=list)
    # per graded study: its predicted points (COORDINATE_COLUMNS, spellings of train_label_coordinates.csv)
    coordinates: list[pd.DataFrame] = field(default_factory=list)
    # one line per study that needed the prior, saying why (grade_cohort prints these)
    summaries: list[str] = field(default_factory=list)
    rows_from_prior: int = 0
    # Optional, for the grading report (spinelib.figures.grading_report): with keep_views, grade() keeps each
    # study's Stage 1 points and the native slices they sit on in views[study_id]; pop them once written.
    keep_views: bool = False
    views: dict[int, StudyView] = field(default_factory=dict)
    # Optional: a ranking run that adds each disc's continuous severity to the report (spinelib.grading.disc_scores)
    scorer: DiscScorer | None = None
    # what the models were trained on (spinelib.provenance), and the graded studies the phantom did not write
    provenance: dict[str, dict | None] = field(default_factory=dict)
    real_studies: list[str] = field(default_factory=list)

    @classmethod
    def load(cls, localisation_dir: Path | str, mil_dir: Path | str) -> "Grader":
        graders, bags, prior = load_graders(Path(mil_dir))
        provenance = {"localisation": read_provenance(localisation_dir), "mil": read_provenance(mil_dir)}
        return cls(Localisers.load(Path(localisation_dir)), graders, bags, prior, provenance=provenance)

    def _check_origin(self, study_id: int, volumes: dict[int, Volume]) -> None:
        """Note a study the phantom did not write (phantom-trained models say nothing about it).

        Decided from the headers :func:`read_study` already read (see :func:`written_by_other`): no file is read
        again.
        """
        if written_by_other(volumes):
            self.real_studies.append(str(study_id))

    def mismatch_warning(self) -> str | None:
        """The loud warning when phantom-trained models graded real studies (see :mod:`spinelib.provenance`)."""
        return mismatch_warning(self.provenance, self.real_studies)

    def _note(self, study_id: int, text: str) -> None:
        message = f"study {study_id}: {text}"
        self.messages.append(message)
        log.info(message)

    def grade(self, study_dir: Path | str, descriptions: pd.DataFrame | None = None) -> pd.DataFrame:
        """25 submission rows of one study folder (``<images>/<study_id>/<series_id>/*.dcm``)."""
        study_dir = Path(study_dir)
        study_id = int(study_dir.name)
        config = self.localisers.config
        series = study_series(study_dir, descriptions)
        images, volumes, problems = read_study(study_dir, series, config["stack_depth"], config["stack_size"],
                                               config["slice_size"], keep_volumes=True)
        self._check_origin(study_id, volumes)
        for problem in problems:
            self._note(study_id, problem)
        points = localise_study(images, self.localisers) if images else pd.DataFrame(columns=["condition", "level"])
        self.coordinates.append(predicted_coordinates(study_id, points))
        if self.keep_views:
            from spinelib.figures.grading_report import study_view  # matplotlib only when a report is asked for

            self.views[study_id] = study_view(study_id, images, volumes, points, problems)
            if self.scorer is not None:
                self._disc_scores(self.views[study_id], points, volumes)
        graded = self._grade_points(study_id, points, volumes)
        out = pd.DataFrame({"row_id": row_ids(study_id)}).merge(graded, on="row_id", how="left")
        out[list(PROBABILITY_COLUMNS)] = out[list(PROBABILITY_COLUMNS)].astype(np.float64)
        missing = out["normal_mild"].isna()
        have = set(series["series_description"])
        reasons: Counter[str] = Counter()
        for row_id in out.loc[missing, "row_id"]:
            condition = next(c for c in CONDITIONS if row_id.startswith(f"{study_id}_{c}_"))
            need = CONDITION_SERIES[condition]
            reason = f"no {need} series" if need not in have else "not localised or not graded"
            reasons[reason] += 1
            self._note(study_id, f"{row_id[len(str(study_id)) + 1:]} from the prior ({reason})")
        self.rows_from_prior += int(missing.sum())
        if reasons:
            why = "; ".join(f"{reason}: {n}" for reason, n in reasons.items())
            self.summaries.append(f"study {study_id}: {sum(reasons.values())} of {len(out)} rows from the prior "
                                  f"({why})" + "".join(f"; {p}" for p in problems))
        fill = self._study_prior(study_id)                        # the same 25 rows in the same order
        out.loc[missing, list(PROBABILITY_COLUMNS)] = fill.loc[missing, list(PROBABILITY_COLUMNS)].to_numpy()
        return _normalised(out)

    def _disc_scores(self, view: StudyView, points: pd.DataFrame, volumes: dict) -> None:
        """The ranking run's score per level and task at the spinal canal points, into ``view`` (or why not)."""
        canal = points[points["condition"] == "spinal_canal_stenosis"] if len(points) else points
        volume = volumes.get(int(canal["series_id"].iloc[0])) if len(canal) else None
        if volume is None:
            view.ranking_note = "No continuous scores: no spinal canal point on a Sagittal T2/STIR series."
            return
        try:
            view.ranking, skipped = self.scorer.score(volume, canal)
        except Exception as err:  # the report must not stop the grading: say why on the page
            view.ranking_note = f"No continuous scores ({type(err).__name__}: {err})."
            return
        view.ranking_note = (f"Run {self.scorer.run}: score per task on the ranking study's scale (0 = healthy), "
                             f"mean ± std over {len(self.scorer.views)} test-time views of the disc volume cut at "
                             "the predicted spinal canal point." + "".join(f" Not scored: {s}." for s in skipped))

    def prior_rows(self, study_id: int, why: str) -> pd.DataFrame:
        """The 25 submission rows of a study, every one the training prior; ``why`` goes to the log and summary."""
        text = f"{why}; all 25 rows from the prior"
        self.messages.append(f"study {study_id}: {text}")
        self.summaries.append(f"study {study_id}: {text}")
        self.rows_from_prior += len(row_ids(study_id))
        return _normalised(self._study_prior(study_id))

    def _study_prior(self, study_id: int) -> pd.DataFrame:
        """The training prior of a study's 25 rows: row_id and the three probabilities, in submission order."""
        prior = self.prior.assign(row_id=str(study_id) + "_" + self.prior["condition"] + "_" + self.prior["level"])
        rows = pd.DataFrame({"row_id": row_ids(study_id)})
        return rows.merge(prior[["row_id", *PROBABILITY_COLUMNS]], on="row_id", how="left")

    def grade_or_prior(self, study_dir: Path | str, descriptions: pd.DataFrame | None = None) -> pd.DataFrame:
        """:meth:`grade`, or, when that fails for any reason, the prior for all 25 rows (logged)."""
        study_dir = Path(study_dir)
        study_id = int(study_dir.name)
        try:
            return self.grade(study_dir, descriptions)
        except Exception as err:  # one bad study must not stop a cohort: log it and go on
            why = f"grading failed ({type(err).__name__}: {err})"
            log.warning("study %s: %s; all 25 rows from the prior", study_id, why,
                        exc_info=log.isEnabledFor(logging.DEBUG))
            return self.prior_rows(study_id, why)

    def _grade_points(self, study_id: int, points: pd.DataFrame, volumes: dict) -> pd.DataFrame:
        """Probabilities of every localised point whose bag could be cut (row_id + the three columns)."""
        cfg, rows = self.bags, []
        for kind in sorted(set(BAG_KIND.values())):
            at = points[points["condition"].map(BAG_KIND) == kind]
            if at.empty or kind not in self.graders:
                continue
            bags, ids = [], []
            for p in at.itertuples():
                region = source_region(volumes[p.series_id].pixels, int(p.k), p.x, p.y, p.condition, cfg)
                bag = cut_bag(region, 0, 0, 0, cfg.bag_slices, cfg.max_shift, cfg.margin_px(p.condition))
                bags.append(bag.astype(np.float32) / 255.0)
                ids.append(f"{study_id}_{p.condition}_{p.level}")
            proba, _ = predict_bags(self.graders[kind], torch.from_numpy(np.stack(bags))[:, :, None])
            rows.append(pd.DataFrame(proba.astype(np.float64), columns=list(PROBABILITY_COLUMNS)).assign(row_id=ids))
        columns = ["row_id", *PROBABILITY_COLUMNS]
        return pd.concat(rows, ignore_index=True)[columns] if rows else pd.DataFrame(columns=columns)


def predicted_coordinates(study_id: int, points: pd.DataFrame) -> pd.DataFrame:
    """Stage 1 points of one study as rows of ``train_label_coordinates.csv``.

    Columns :data:`COORDINATE_COLUMNS`; condition and level spelled as in that
    file ("Spinal Canal Stenosis", "L4/L5"); x, y in native pixels of the
    instance; rows in :data:`CONDITIONS` then :data:`LEVELS` order.
    """
    if points.empty:
        return pd.DataFrame(columns=list(COORDINATE_COLUMNS))
    order = {(c, lv): i for i, (c, lv) in enumerate((c, lv) for c in CONDITIONS for lv in LEVELS)}
    ranked = points.assign(_rank=[order[(c, lv)] for c, lv in zip(points["condition"], points["level"])])
    ranked = ranked.sort_values("_rank", kind="stable")
    return pd.DataFrame({
        "study_id": int(study_id),
        "series_id": ranked["series_id"].astype("int64").to_numpy(),
        "instance_number": ranked["instance_number"].astype("int64").to_numpy(),
        "condition": ranked["condition"].map(CONDITION_WORDS).to_numpy(),
        "level": ranked["level"].map(LEVEL_WORDS).to_numpy(),
        "x": ranked["x"].astype(float).to_numpy(),
        "y": ranked["y"].astype(float).to_numpy(),
    })


@dataclass
class CohortGrades:
    """What :func:`grade_cohort` returns: the submission, the predicted points and the log."""

    rows: pd.DataFrame              # row_id + PROBABILITY_COLUMNS, in submission order
    coordinates: pd.DataFrame       # COORDINATE_COLUMNS, one row per localised (study, condition, level)
    messages: list[str]             # every note, in grading order
    summaries: list[str]            # one line per study that needed the prior, and why
    studies: list[int]              # the studies graded, in order
    rows_from_prior: int = 0        # submission rows that hold the training prior
    images_dir: Path | None = None  # the images folder of a dataset root (None for study folders)
    provenance: dict[str, dict | None] = field(default_factory=dict)   # models folder → what it was trained on
    warning: str | None = None      # phantom-trained models graded studies the phantom did not write


def is_dataset_root(path: Path | str) -> bool:
    """True when ``path`` holds ``test_images/`` or ``train_images/`` (a dataset root, not a study folder)."""
    return any((Path(path) / f"{split}_images").is_dir() for split in ("test", "train"))


def _root_studies(root: Path) -> tuple[Path, pd.DataFrame | None, list[int], list[str] | None]:
    """(images folder, descriptions or None, studies in grading order, submission row order or None)."""
    split = "test" if (root / "test_images").is_dir() else "train"
    images = root / f"{split}_images"
    csv = root / f"{split}_series_descriptions.csv"
    descriptions = read_series_descriptions(csv) if csv.is_file() else None
    if descriptions is None:
        log.warning("%s: not found; series types are inferred from the DICOM headers", csv)
    on_disk = sorted(int(p.name) for p in images.iterdir() if p.is_dir() and p.name.isdigit())
    sample = root / "sample_submission.csv"
    if not sample.is_file():
        return images, descriptions, on_disk, None
    order = pd.read_csv(sample, usecols=["row_id"], dtype=str)["row_id"].str.strip().tolist()
    wanted = list(dict.fromkeys(split_row_id(pd.Series(order))["study_id"].tolist()))
    extra = sorted(set(on_disk) - set(wanted))
    if extra:
        log.warning("%s: %d study folder(s) not in %s are not graded (first: %s)", images, len(extra), sample.name,
                    extra[:5])
    return images, descriptions, wanted, order


# ---- grade_cohort: prepare the grader, grade a root or study folders, assemble the result ----

def _prepare_grader(grader: Grader | None, localisation_dir: Path, mil_dir: Path, report_dir: Path | None,
                    ranking_dir: Path | None, params_dir: Path | str) -> Grader:
    """The grader to use: ``grader`` or one loaded from the two models folders, set up for the optional report.

    With ``report_dir`` the grader keeps each study's view (points and native slices) until the report is written;
    with ``ranking_dir`` as well it also gets the ranking run's disc scorer, when that run can be loaded.
    """
    grader = Grader.load(localisation_dir, mil_dir) if grader is None else grader
    # views are kept only when a report will consume them: otherwise every study's slices would pile up in memory
    grader.keep_views = report_dir is not None
    if report_dir is not None and ranking_dir is not None:
        from spinelib.grading.disc_scores import DiscScorer

        try:   # the report's continuous scores are optional: without ranking models it still shows everything else
            grader.scorer = DiscScorer.load(ranking_dir, params_dir)
        except (FileNotFoundError, KeyError) as err:
            log.warning("grading report without continuous scores: %s", err)
    return grader


def _write_report(grader: Grader, rows: pd.DataFrame, report_dir: Path | None) -> pd.DataFrame:
    """Write the reports of the studies ``grader`` kept views of (when ``report_dir`` is set); return ``rows``.

    Called right after each study is graded, so that no study's slices are held longer than its own grading
    (``write_kept_reports`` pops the views it wrote).
    """
    if report_dir is not None:
        from spinelib.figures.grading_report import write_kept_reports   # matplotlib only when asked
        write_kept_reports(grader.views, rows, report_dir, grader.messages)
    return rows


def _grade_study_folders(grader: Grader, folders: list[Path], report_dir: Path | None,
                         progress: bool) -> tuple[list[pd.DataFrame], list[int]]:
    """(one frame of 25 rows per folder, the study ids), in the given order; an error stops the run.

    Unlike a dataset root, explicitly named folders get no prior fallback: a failure there is the caller's to see.
    """
    studies = [int(folder.name) for folder in folders]
    # a single folder needs no progress bar: it would only flash by
    bar = progress_bar(folders, show=progress and len(folders) > 1, desc="grading", unit="study")
    frames = [_write_report(grader, grader.grade(folder), report_dir) for folder in bar]
    return frames, studies


def _grade_dataset_root(grader: Grader, root: Path, report_dir: Path | None, progress: bool
                        ) -> tuple[list[pd.DataFrame], list[int], Path, list[str] | None]:
    """(frames, studies, images folder, submission row order or None) of a dataset root.

    Studies come in ``sample_submission.csv`` order when it exists (see :func:`_root_studies`). A listed study
    without an image folder, or one whose grading fails, gets the prior for all 25 rows so that the submission
    stays complete.
    """
    images, descriptions, studies, order = _root_studies(root)
    frames = []
    for study in progress_bar(studies, show=progress, desc="grading", unit="study"):
        folder = images / str(study)
        if not folder.is_dir():
            frames.append(grader.prior_rows(study, f"no image folder {folder}"))
            continue
        frames.append(_write_report(grader, grader.grade_or_prior(folder, descriptions), report_dir))
    return frames, studies, images, order


def _submission_rows(frames: list[pd.DataFrame], root_mode: bool, order: list[str] | None) -> pd.DataFrame:
    """All graded rows (row_id + the three probabilities) as one frame, in submission order.

    For a dataset root: the ``sample_submission.csv`` row order when it exists, else sorted by row id (stable).
    Study folders keep the order they were given in.
    """
    columns = ["row_id", *PROBABILITY_COLUMNS]
    rows = pd.concat(frames, ignore_index=True)[columns] if frames else pd.DataFrame(columns=columns)
    if root_mode:
        if order is not None:
            rows = rows.set_index("row_id").reindex(order).reset_index()
        else:
            rows = rows.sort_values("row_id", kind="stable").reset_index(drop=True)
    return rows


def _cohort_coordinates(grader: Grader) -> pd.DataFrame:
    """Every graded study's predicted points in one frame (:data:`COORDINATE_COLUMNS`)."""
    # a study with no localised point leaves an empty frame; pandas warns on (and mistypes) empty concat entries
    coords = [c for c in grader.coordinates if not c.empty]
    return (pd.concat(coords, ignore_index=True) if coords
            else pd.DataFrame(columns=list(COORDINATE_COLUMNS)))


def grade_cohort(paths: list[Path] | Path, localisation_dir: Path, mil_dir: Path, *,
                 progress: bool = True, grader: Grader | None = None,
                 report_dir: Path | None = None, ranking_dir: Path | None = None,
                 params_dir: Path | str = "params") -> CohortGrades:
    """Grade a dataset root, or study folders, into one submission.

    ``paths`` is one dataset root (see :func:`is_dataset_root`) or a list of
    study folders. For a root: studies in ``sample_submission.csv`` order
    when it exists (a listed study without an image folder gets the prior,
    logged), else every study folder with rows sorted by row id; a study that
    fails gets the prior. Study folders are graded in the order given (an
    error stops the run). ``grader`` (e.g. one with ``keep_views``)
    replaces loading the models from the two folders. ``ranking_dir``, with
    ``report_dir``: add the ranking run's continuous score per disc to each
    report (settings from ``params_dir``). ``report_dir``: also
    write each study's grading report there as soon as it is graded
    (:mod:`spinelib.figures.grading_report`), so no study's slices are held
    longer than its own grading.
    """
    # ---- models, and the optional report and its disc scorer ----
    grader = _prepare_grader(grader, localisation_dir, mil_dir, report_dir, ranking_dir, params_dir)

    # ---- grade: a dataset root (one path holding <split>_images/) or explicit study folders ----
    folders = [Path(paths)] if isinstance(paths, (str, Path)) else [Path(p) for p in paths]
    root_mode = len(folders) == 1 and is_dataset_root(folders[0])
    with torch.inference_mode():
        if root_mode:
            frames, studies, images, order = _grade_dataset_root(grader, folders[0], report_dir, progress)
        else:
            frames, studies = _grade_study_folders(grader, folders, report_dir, progress)
            images, order = None, None

    # ---- assemble: submission rows, predicted points, and the phantom-vs-real warning ----
    rows = _submission_rows(frames, root_mode, order)
    coordinates = _cohort_coordinates(grader)
    warning = grader.mismatch_warning()
    if warning:
        log.warning(warning)
    return CohortGrades(rows, coordinates, grader.messages, grader.summaries, studies, grader.rows_from_prior, images,
                        grader.provenance, warning)
