"""Notebooks 05–07: thresholds on validation, grades, Table 1, paired differences and the phantom's truth.

Input is the long prediction table of :func:`spinelib.studies.ranking.predict_tta`
(one row per run, disc and task: ``score``, ``score_std``, ``grade`` (−1: missing or
masked), ``num_grades`` K and ``p_gt_0`` … ``p_gt_{M−1}`` = P(grade > c), nan where
unused). Decisions:

* CE: argmax of the TTA-averaged class probabilities; CORN: Σ_c [P(y > c) > ½];
* score objectives (MAE, RankNet, Deep-RankSVM, SpineRankNet): thresholds fitted
  on the validation scores (same TTA as test) by :func:`spinelib.thresholds.fit_thresholds`;
* CE and CORN *thresholded* (runs ``<run>_thresholded``): their expected grade
  Σ_c P(y > c) cut by thresholds fitted the same way, so every objective is
  compared under the same decision rule.

ROC-AUC is the mean of per-boundary AUCs (grade ≤ c vs > c): on the raw score
for score objectives and thresholded runs, on P(grade > c) for CE and CORN.

Intervals resample **patients** (:mod:`spinelib.bootstrap`); every run is
evaluated on the same test discs with the same resamples, so a difference
between two runs gets the interval of the paired difference.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from spinelib.bootstrap import (bootstrap_ordinal_weighted, paired_difference, patient_weights, percentile_interval,
                                weighted_boundary_auc, within_cell_spearman)
from spinelib.metrics import ORDINAL_COLUMNS, ordinal_summary
from spinelib.models.ranking import CLASS_OBJECTIVES, SCORE_OBJECTIVES
from spinelib.studies.ranking import class_decision, has_phantom_truth
from spinelib.thresholds import apply_thresholds, fit_thresholds

KEYS = ["run", "task"]                # one threshold vector, one metric row per (run, task)
THRESHOLDED = "_thresholded"          # suffix of a CE/CORN run graded by thresholds on its expected grade
BOOT_METRICS = ("balanced_accuracy", "roc_auc", "qwk", "mae", "within_grade_rho")


def scored(objective: str) -> bool:
    """True for objectives graded by fitted thresholds (score objectives and thresholded CE/CORN)."""
    return objective in SCORE_OBJECTIVES or objective.endswith(THRESHOLDED)


def with_thresholded(predictions: pd.DataFrame) -> pd.DataFrame:
    """``predictions`` plus a ``<run>_thresholded`` copy of every CE/CORN run (graded by thresholds on its score)."""
    classes = predictions[predictions["objective"].isin(CLASS_OBJECTIVES)]
    copies = classes.assign(run=classes["run"] + THRESHOLDED, objective=classes["objective"] + THRESHOLDED)
    return pd.concat([predictions, copies], ignore_index=True)


def _boundaries(frame: pd.DataFrame) -> np.ndarray:
    """(N, K − 1) P(grade > c) of one (run, task)'s rows (the nan padding beyond K − 1 dropped)."""
    k = int(frame["num_grades"].iloc[0])
    return frame[[f"p_gt_{c}" for c in range(k - 1)]].to_numpy()


def _auc_inputs(frame: pd.DataFrame) -> np.ndarray:
    """The columns ROC-AUC is computed from: the score for scored runs, P(grade > c) for CE and CORN."""
    return frame[["score"]].to_numpy() if scored(frame["objective"].iloc[0]) else _boundaries(frame)


def fit_all_thresholds(val: pd.DataFrame, method: str) -> pd.DataFrame:
    """Thresholds per (run, task) of every scored run on validation predictions: columns run, task, thresholds."""
    rows = []
    for (run, task), frame in val[val["objective"].map(scored)].groupby(KEYS, sort=False):
        k = int(frame["num_grades"].iloc[0])
        cuts = fit_thresholds(frame["score"].to_numpy(), frame["grade"].to_numpy(), k, method)
        rows.append({"run": run, "task": task, "method": method, "thresholds": [float(c) for c in cuts]})
    return pd.DataFrame(rows)


def decide(predictions: pd.DataFrame, thresholds: pd.DataFrame) -> pd.DataFrame:
    """``predictions`` with a ``pred`` grade column (and ``margin``: |score − nearest threshold| for scores)."""
    out = predictions.copy()
    out["pred"], out["margin"] = -1, np.nan
    cuts = {(r.run, r.task): np.asarray(r.thresholds) for r in thresholds.itertuples()}
    for (run, task), frame in out.groupby(KEYS, sort=False):
        objective = frame["objective"].iloc[0]
        if scored(objective):
            if (run, task) not in cuts:
                raise KeyError(f"no thresholds for run {run!r}, task {task!r}; fit them on validation first")
            c = cuts[(run, task)]                                                   # (K − 1,) ordered cut points
            out.loc[frame.index, "pred"] = apply_thresholds(frame["score"].to_numpy(), c)
            # margin = min_c |s − τ_c|: (N, 1) − (1, K − 1) → (N, K − 1), nearest cut per disc
            out.loc[frame.index, "margin"] = np.abs(frame["score"].to_numpy()[:, None] - c[None, :]).min(axis=1)
        else:
            out.loc[frame.index, "pred"] = class_decision(_boundaries(frame), objective)
    return out


def per_task_metrics(decided: pd.DataFrame) -> pd.DataFrame:
    """BA, ROC-AUC, QWK, MAE, MCC per (run, task)."""
    rows = []
    for (run, task), frame in decided.groupby(KEYS, sort=False):
        objective, k = frame["objective"].iloc[0], int(frame["num_grades"].iloc[0])
        metrics = ordinal_summary(frame["grade"], frame["pred"], _auc_inputs(frame), k)
        rows.append({"run": run, "objective": objective, "task": task, "discs": int((frame["grade"] >= 0).sum()),
                     **metrics})
    return pd.DataFrame(rows)


def _format(values: np.ndarray, name: str) -> str:
    """"mean ± std" over tasks; BA in percent with one decimal (as the paper's Table 1), the rest with three."""
    scale, digits = (100, 1) if name == "balanced_accuracy" else (1, 3)
    return f"{np.nanmean(values) * scale:.{digits}f} ± {np.nanstd(values) * scale:.{digits}f}"


def table1(metrics: pd.DataFrame) -> pd.DataFrame:
    """The paper's Table 1: per run, mean ± std over tasks of each metric (BA in %)."""
    rows = []
    for run, frame in metrics.groupby("run", sort=False):
        rows.append({"run": run, **{name: _format(frame[name].to_numpy(dtype=float), name)
                                    for name in ORDINAL_COLUMNS}})
    return pd.DataFrame(rows).set_index("run").rename(columns={"balanced_accuracy": "BA (%)", "roc_auc": "ROC-AUC",
                                                                "qwk": "QWK", "mae": "MAE", "mcc": "MCC"})


# ---------------------------------------------------------------------------------------------------------------
# Paired patient bootstrap over runs
# ---------------------------------------------------------------------------------------------------------------

def _disc_index(decided: pd.DataFrame) -> pd.MultiIndex:
    """The test discs (study_id, level) every run must have been evaluated on."""
    per_run = decided.groupby("run")[["study_id", "level"]].apply(lambda f: frozenset(zip(f.study_id, f.level)))
    if per_run.nunique() != 1:
        raise ValueError("runs were evaluated on different discs; a paired comparison needs the same test discs")
    return pd.MultiIndex.from_tuples(sorted(per_run.iloc[0]), names=["study_id", "level"])


def run_bootstrap(decided: pd.DataFrame, truth: pd.DataFrame | None = None, n_boot: int = 1000, seed: int = 0
                  ) -> tuple[pd.DataFrame, dict[str, dict[str, np.ndarray]]]:
    """Point values and (n_boot,) resampled values of the task means of BA, ROC-AUC, QWK, MAE (and, with
    ``truth``, the within-grade × level Spearman ρ with the latent), per run.

    All runs share one set of patient-resampling weights over the same test discs: any two runs' values
    are paired. Returns (points: one row per run, boot[run][metric]).
    """
    discs = _disc_index(decided)
    weights = patient_weights(discs.get_level_values("study_id").to_numpy(), n_boot, seed)
    if truth is not None:
        decided = decided.merge(truth[["study_id", "level", "task", "latent"]], on=["study_id", "level", "task"],
                                how="left")
    points, boot = [], {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)   # a metric undefined for every task (tiny splits): nan
        for run, frame in decided.groupby("run", sort=False):
            point, values = _run_values(frame, discs, weights, truth is not None)
            points.append({"run": run, **point})
            boot[run] = values
    return pd.DataFrame(points).set_index("run"), boot


def _weighted_metrics(grade: np.ndarray, pred: np.ndarray, auc_inputs: np.ndarray, k: int, weights: np.ndarray
                      ) -> dict[str, np.ndarray]:
    """BA, QWK, MAE (:func:`bootstrap_ordinal_weighted`) and ROC-AUC of one task under each row of ``weights``
    (R, N) of per-disc multiplicities: each metric an (R,) array."""
    values = bootstrap_ordinal_weighted(grade, pred, k, weights)
    values["roc_auc"] = weighted_boundary_auc(grade, auc_inputs, k, weights)
    return values


def _run_values(frame: pd.DataFrame, discs: pd.MultiIndex, weights: np.ndarray, with_truth: bool
                ) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """Task means of one run's metrics: the point value and the (n_boot,) resampled values.

    ``weights`` (n_boot, N) are per-disc multiplicities of the patient resamples over ``discs`` (N discs).
    """
    per_task_point: dict[str, list[float]] = {m: [] for m in BOOT_METRICS}
    per_task_boot: dict[str, list[np.ndarray]] = {m: [] for m in BOOT_METRICS}
    for task, rows in frame.groupby("task", sort=False):
        # one row per test disc in the shared disc order, so that column i means the same disc in every run and
        # the resampling weights line up; a disc this task has no row for gets grade −1 (left out of every metric)
        rows = rows.set_index(["study_id", "level"]).reindex(discs)
        k = int(rows["num_grades"].dropna().iloc[0])
        grade = rows["grade"].fillna(-1).to_numpy(dtype=np.int64)
        pred = rows["pred"].fillna(0).to_numpy(dtype=np.int64)
        auc_in = _auc_inputs(rows.reset_index().assign(objective=rows["objective"].dropna().iloc[0]))
        # ---- BA, ROC-AUC, QWK, MAE: the point value is the unit-weight "resample", then the n_boot resamples ----
        ones = np.ones((1, len(grade)), dtype=np.int64)
        point = _weighted_metrics(grade, pred, auc_in, k, ones)          # each (1,)
        resampled = _weighted_metrics(grade, pred, auc_in, k, weights)   # each (n_boot,)
        for name in ("balanced_accuracy", "roc_auc", "qwk", "mae"):
            per_task_point[name].append(float(point[name][0]))
            per_task_boot[name].append(resampled[name])
        # ---- within-grade × level Spearman ρ with the phantom's latent (the ranking paper's claim) ----
        if with_truth and rows["latent"].notna().any():
            graded = (grade >= 0) & rows["latent"].notna().to_numpy()
            cells = pd.DataFrame({"grade": grade[graded], "level": discs.get_level_values("level")[graded]})
            rho, _, rho_boot = within_cell_spearman(rows["score"].to_numpy()[graded],
                                                    rows["latent"].to_numpy()[graded], cells,
                                                    weights=weights[:, graded])
            per_task_point["within_grade_rho"].append(rho)
            per_task_boot["within_grade_rho"].append(rho_boot)
    # mean over tasks: a scalar per metric, and (n_boot,) per metric (stack: (tasks, n_boot) → mean over axis 0)
    return ({m: float(np.nanmean(v)) if v else np.nan for m, v in per_task_point.items()},
            {m: np.nanmean(np.stack(v), axis=0) for m, v in per_task_boot.items() if v})


def interval_table(points: pd.DataFrame, boot: dict, level: float = 0.95) -> pd.DataFrame:
    """Per run: each metric's point value and its patient-bootstrap percentile interval."""
    rows = []
    for run, values in points.iterrows():
        row = {"run": run}
        for name, value in values.items():
            if name in boot[run]:
                low, high = percentile_interval(boot[run][name], level)
                row[name], row[f"{name}_low"], row[f"{name}_high"] = value, low, high
        rows.append(row)
    return pd.DataFrame(rows).set_index("run")


def paired_table(points: pd.DataFrame, boot: dict, pairs: list[tuple[str, str]], level: float = 0.95
                 ) -> pd.DataFrame:
    """Per (run, reference) pair and metric: run − reference with the interval of the paired difference."""
    rows = []
    for run, reference in pairs:
        if run not in boot or reference not in boot:
            continue
        for name in BOOT_METRICS:
            if name in boot[run] and name in boot[reference]:
                diff = paired_difference(points.loc[run, name], points.loc[reference, name], boot[run][name],
                                         boot[reference][name], level)
                rows.append({"run": run, "reference": reference, "metric": name, **diff})
    return pd.DataFrame(rows)


def comparison_pairs(plan: pd.DataFrame, runs: list[str]) -> list[tuple[str, str]]:
    """The fair reference of each run (what it is compared with, paired):

    * frozen-encoder runs and thresholded phase-1 runs → their phase-1 CE run (same encoder);
    * fine-tuned runs → CE continued of the same seed (same encoder training, same extra epochs);
    * score objectives, in addition, → that CE run graded by thresholds too (``<ce run>_thresholded``), so the
      objective is compared under the same decision rule;
    * a thresholded fine-tuned CE run → its argmax twin;
    * the head and loss ablations → the SpineRankNet run of their encoder mode (MLP head, full loss).
    """
    spec = plan.set_index("name")
    pairs = []
    for run in runs:
        base = run[:-len(THRESHOLDED)] if run.endswith(THRESHOLDED) else run   # the trained run behind a copy
        if base not in spec.index:
            continue
        row = spec.loc[base]
        if run != base:
            pairs.append((run, base))        # a thresholded copy against its own argmax decision
            if row["encoder"] != "phase1":   # a thresholded fine-tuned CE: that pair is its only one
                continue
        # a score objective is also compared with the thresholded CE twin: the same decision rule for both
        same_rule = [THRESHOLDED] if row["objective"] in SCORE_OBJECTIVES else []
        if isinstance(row.get("reference"), str) and row["reference"]:      # an ablation: its own reference
            pairs.append((run, row["reference"]))
        elif row["encoder"] == "frozen":
            pairs += [(run, row["phase1"] + suffix) for suffix in ["", *same_rule]]
        elif row["encoder"] == "finetune" and row["objective"] != "ce":
            continued = spec[(spec["objective"] == "ce") & (spec["encoder"] == "finetune") &
                             (spec["seed"] == row["seed"])]
            if len(continued):
                pairs += [(run, continued.index[0] + suffix) for suffix in ["", *same_rule]]
    return [(a, b) for a, b in pairs if a in runs and b in runs and a != b]


def seed_summary(points: pd.DataFrame, plan: pd.DataFrame) -> pd.DataFrame:
    """Mean and std over seeds of each metric, for the runs repeated per seed (phase 1 and fine-tuned runs).

    Rows: the seed-family name (the first seed's run name); columns ``seeds`` and ``<metric>_mean``,
    ``<metric>_std`` (sample std, 0 for one seed).
    """
    spec = plan.set_index("name")
    family: dict[str, list[str]] = {}   # family name (the first seed's run name) → the runs of every seed
    for run in points.index:
        base = run[:-len(THRESHOLDED)] if run.endswith(THRESHOLDED) else run
        if base in spec.index and spec.loc[base, "encoder"] in ("phase1", "finetune"):
            # "spineranknet_finetuned_seed2_thresholded" → "spineranknet_finetuned_thresholded"
            stem = base.split("_seed")[0] + (THRESHOLDED if run != base else "")
            family.setdefault(stem, []).append(run)
    rows = []
    for stem, members in family.items():
        values = points.loc[members]
        row = {"run": stem, "seeds": len(members)}
        for name in values.columns:
            row[f"{name}_mean"] = float(values[name].mean())
            row[f"{name}_std"] = float(values[name].std(ddof=1)) if len(members) > 1 else 0.0
        rows.append(row)
    return pd.DataFrame(rows).set_index("run") if rows else pd.DataFrame()


def format_seeds(seeds: pd.DataFrame, digits: int = 3) -> pd.DataFrame:
    """``seed_summary`` as "mean ± std" strings per metric (for display)."""
    names = [c[:-len("_mean")] for c in seeds.columns if c.endswith("_mean")]
    cells = {n: [f"{m:.{digits}f} ± {s:.{digits}f}" for m, s in zip(seeds[f"{n}_mean"], seeds[f"{n}_std"])]
             for n in names}
    return pd.DataFrame({"seeds": seeds["seeds"], **cells}, index=seeds.index)


# ---------------------------------------------------------------------------------------------------------------
# The phantom's truth
# ---------------------------------------------------------------------------------------------------------------

def truth_table(truth_csv: str, extra_csv: str | None = None, extra_truth: dict[str, str] | None = None) -> pd.DataFrame:
    """Phantom latent per (study_id, level, task), and the rater's perceived score where the phantom wrote it.

    ``extra_truth`` maps each extra task to the column of the extra-task CSV its grade was drawn from; the
    rater's score of an extra task is the column ``<task>_rater_score`` when present.
    """
    truth = pd.read_csv(truth_csv)
    # phantom_truth.csv calls the latent "severity" (a table already in our naming has "latent"); rename to ours
    value = "severity" if "severity" in truth.columns else "latent"
    columns = {"condition": "task", value: "latent", "rater_score": "rater"}
    frame = truth.rename(columns=columns)[[c for c in ("study_id", "level", "task", "latent", "rater")
                                           if c in truth.rename(columns=columns).columns]]
    if extra_csv and extra_truth:
        # the extra tasks' latents are columns of the extra-task CSV (one row per disc): long rows, one per task
        extra = pd.read_csv(extra_csv)
        for task, column in extra_truth.items():
            part = extra[["study_id", "level", column]].rename(columns={column: "latent"}).assign(task=task)
            if f"{task}_rater_score" in extra.columns:
                part["rater"] = extra[f"{task}_rater_score"]
            frame = pd.concat([frame, part], ignore_index=True)
    return frame


def spearman_table(decided: pd.DataFrame, truth: pd.DataFrame) -> pd.DataFrame:
    """Spearman ρ of each run's score with the true latent: overall, within grade, within grade × level.

    Averaged over tasks. "Within grade" pools the ρ of discs that share a grade (n-weighted); "within
    grade × level" pools cells of one grade at one level, so knowing the level cannot help.
    """
    joined = decided.merge(truth, on=["study_id", "level", "task"], how="inner")
    rows = []
    for (run, task), frame in joined.groupby(KEYS, sort=False):
        graded = frame[frame["grade"] >= 0]
        overall = spearmanr(frame["score"], frame["latent"]).statistic if len(frame) > 2 else np.nan
        within, _, _ = within_cell_spearman(graded["score"], graded["latent"], graded["grade"].to_numpy())
        within_level, _, _ = within_cell_spearman(graded["score"], graded["latent"], graded[["grade", "level"]])
        rows.append({"run": run, "task": task, "spearman_overall": overall, "spearman_within_grade": within,
                     "spearman_within_grade_level": within_level,
                     "spearman_grade": spearmanr(graded["score"], graded["grade"]).statistic})
    per_task = pd.DataFrame(rows)
    return per_task.groupby("run", sort=False)[["spearman_overall", "spearman_within_grade",
                                                "spearman_within_grade_level", "spearman_grade"]].mean()


def mid_slices(store, decided: pd.DataFrame) -> np.ndarray:
    """The middle slice (H, W) of the volume each prediction row was made from, in row order."""
    index = store.index("volume").reset_index()
    keys = ["study_id", "level", "series_description"]
    rows = decided[keys].merge(index[keys + ["index"]], on=keys, how="left")["index"]
    if rows.isna().any():
        raise KeyError(f"{int(rows.isna().sum())} prediction rows have no volume in {store.root / 'volume.csv'}")
    volumes = store.array("volume")                     # (N_store, D, H, W), memory-mapped
    return np.stack([volumes[int(i)][volumes.shape[1] // 2] for i in rows])   # (rows, H, W)


def evenly_ranked(frame: pd.DataFrame, n: int) -> pd.DataFrame:
    """``n`` rows of ``frame`` at evenly spaced ranks of its score (lowest and highest included)."""
    ordered = frame.sort_values("score", kind="stable")   # stable: ties keep their order, so the pick is reproducible
    # n evenly spaced ranks 0 … len − 1, rounded; np.unique drops repeats when there are fewer rows than asked for
    picks = np.unique(np.linspace(0, len(ordered) - 1, min(n, len(ordered))).round().astype(int))
    return ordered.iloc[picks]


# ---------------------------------------------------------------------------------------------------------------
# The cohort notebook 04 trained on (notebooks 05-07 read it instead of params of their own)
# ---------------------------------------------------------------------------------------------------------------

COHORT_FILE = "cohort.json"   # written by notebook 04 beside runs.json and the predictions


@dataclass(frozen=True)
class Cohort:
    """Which crop store notebook 04 trained on, and whether the phantom's truth files describe it."""

    crops_dir: str        # the store, as notebook 04 was given it (relative to the repository root, or absolute)
    source: str           # "phantom", or the converter that wrote the store ("spider", "genodisc")
    phantom_truth: bool   # whether truth_csv / extra_tasks_csv (the phantom's latents) apply to these discs


def cohort_of_store(crops_dir: str, config: Mapping[str, Any]) -> Cohort:
    """The :class:`Cohort` of the crop store at ``crops_dir`` whose ``config.json`` is ``config``."""
    return Cohort(str(crops_dir), str(config.get("source", "phantom")), has_phantom_truth(config))


def write_cohort(out_dir: Path, cohort: Cohort) -> None:
    """``out_dir/cohort.json``: the record notebooks 05-07 read with :func:`read_cohort`."""
    (Path(out_dir) / COHORT_FILE).write_text(json.dumps(asdict(cohort), indent=1))


def read_cohort(predictions_dir: Path) -> Cohort | None:
    """The cohort recorded by notebook 04 in ``predictions_dir``; None for a folder written before the record
    existed (then the notebooks' own params decide, as they always did)."""
    path = Path(predictions_dir) / COHORT_FILE
    return Cohort(**json.loads(path.read_text())) if path.is_file() else None


def truth_files(cohort: Cohort | None, truth_csv: str, extra_tasks_csv: str) -> tuple[str, str]:
    """The (truth_csv, extra_tasks_csv) params that apply to ``cohort``: as given for the phantom (or an
    unrecorded cohort), ("", "") for a converted cohort, which has no true latents."""
    if cohort is None or cohort.phantom_truth:
        return truth_csv, extra_tasks_csv
    return "", ""


def no_truth_sentence(cohort: Cohort | None, skipped: str) -> str:
    """The sentence a notebook prints where it skips ``skipped`` for want of a phantom truth."""
    where = f"the {cohort.source} crop store {cohort.crops_dir}" if cohort else "these predictions"
    return f"No phantom truth for {where}: {skipped} skipped."
