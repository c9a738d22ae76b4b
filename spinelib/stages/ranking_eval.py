"""Notebooks 05–06: thresholds on validation, grades, and the ranking paper's Table 1 with phantom truth.

Input is the long prediction table of :func:`spinelib.stages.ranking.predict_tta`
(one row per run, disc and task). Decisions:

* CE: argmax of the TTA-averaged class probabilities; CORN: Σ_c [P(y > c) > ½];
* score objectives (MAE, RankNet, Deep-RankSVM, SpineRankNet): thresholds fitted
  on the validation scores (same TTA as test) by :func:`spinelib.thresholds.fit_thresholds`.

ROC-AUC is the mean of per-boundary AUCs (grade ≤ c vs > c): on the raw score
for score objectives, on P(grade > c) for CE and CORN.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from spinelib.metrics import ORDINAL_COLUMNS, bootstrap_ordinal, ordinal_summary
from spinelib.models.ranking import SCORE_OBJECTIVES
from spinelib.stages.ranking import class_decision
from spinelib.thresholds import apply_thresholds, fit_thresholds

KEYS = ["run", "task"]


def _boundaries(frame: pd.DataFrame) -> np.ndarray:
    k = int(frame["num_grades"].iloc[0])
    return frame[[f"p_gt_{c}" for c in range(k - 1)]].to_numpy()


def fit_all_thresholds(val: pd.DataFrame, method: str) -> pd.DataFrame:
    """Thresholds per (run, task) of the score objectives on validation predictions: columns run, task, thresholds."""
    rows = []
    for (run, task), frame in val[val["objective"].isin(SCORE_OBJECTIVES)].groupby(KEYS, sort=False):
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
        if objective in SCORE_OBJECTIVES:
            if (run, task) not in cuts:
                raise KeyError(f"no thresholds for run {run!r}, task {task!r}; fit them on validation first")
            c = cuts[(run, task)]
            out.loc[frame.index, "pred"] = apply_thresholds(frame["score"].to_numpy(), c)
            out.loc[frame.index, "margin"] = np.abs(frame["score"].to_numpy()[:, None] - c[None, :]).min(axis=1)
        else:
            out.loc[frame.index, "pred"] = class_decision(_boundaries(frame), objective)
    return out


def per_task_metrics(decided: pd.DataFrame) -> pd.DataFrame:
    """BA, ROC-AUC, QWK, MAE, MCC per (run, task)."""
    rows = []
    for (run, task), frame in decided.groupby(KEYS, sort=False):
        objective, k = frame["objective"].iloc[0], int(frame["num_grades"].iloc[0])
        scores = frame[["score"]].to_numpy() if objective in SCORE_OBJECTIVES else _boundaries(frame)
        metrics = ordinal_summary(frame["grade"], frame["pred"], scores, k)
        rows.append({"run": run, "objective": objective, "task": task, "discs": int((frame["grade"] >= 0).sum()),
                     **metrics})
    return pd.DataFrame(rows)


def table1(metrics: pd.DataFrame) -> pd.DataFrame:
    """The paper's Table 1: per run, mean ± std over tasks of each metric (BA in %)."""
    rows = []
    for run, frame in metrics.groupby("run", sort=False):
        row = {"run": run}
        for name in ORDINAL_COLUMNS:
            values = frame[name].to_numpy(dtype=float) * (100 if name == "balanced_accuracy" else 1)
            row[name] = f"{np.nanmean(values):.{1 if name == 'balanced_accuracy' else 3}f} ± " \
                        f"{np.nanstd(values):.{1 if name == 'balanced_accuracy' else 3}f}"
        rows.append(row)
    return pd.DataFrame(rows).set_index("run").rename(columns={"balanced_accuracy": "BA (%)", "roc_auc": "ROC-AUC",
                                                                "qwk": "QWK", "mae": "MAE", "mcc": "MCC"})


def bootstrap_table(decided: pd.DataFrame, n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> pd.DataFrame:
    """Percentile intervals of the task-mean BA, QWK and MAE per run, resampling whole discs."""
    rows = []
    for run, frame in decided.groupby("run", sort=False):
        wide = frame.pivot_table(index=["study_id", "level"], columns="task", values=["grade", "pred"], aggfunc="first")
        n = len(wide)
        indices = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
        per_task = []
        for task in frame["task"].unique():
            k = int(frame.loc[frame["task"] == task, "num_grades"].iloc[0])
            per_task.append(bootstrap_ordinal(wide[("grade", task)].fillna(-1).to_numpy(),
                                              wide[("pred", task)].fillna(0).to_numpy(), k, indices))
        row = {"run": run}
        tail = 100 * (1 - level) / 2
        for name in ("balanced_accuracy", "qwk", "mae"):
            mean = np.nanmean(np.stack([p[name] for p in per_task]), axis=0)
            row[f"{name}_low"], row[f"{name}_high"] = np.nanpercentile(mean, [tail, 100 - tail])
        rows.append(row)
    return pd.DataFrame(rows).set_index("run")


def truth_table(truth_csv: str, extra_csv: str | None = None, extra_truth: dict[str, str] | None = None) -> pd.DataFrame:
    """Phantom latent severity per (study_id, level, task): the five conditions plus the extra tasks' latents."""
    truth = pd.read_csv(truth_csv)
    value = "severity" if "severity" in truth.columns else "latent"
    frame = truth.rename(columns={"condition": "task", value: "latent"})[["study_id", "level", "task", "latent"]]
    if extra_csv and extra_truth:
        extra = pd.read_csv(extra_csv)
        for task, column in extra_truth.items():
            part = extra[["study_id", "level", column]].rename(columns={column: "latent"}).assign(task=task)
            frame = pd.concat([frame, part[["study_id", "level", "task", "latent"]]], ignore_index=True)
    return frame


def spearman_table(decided: pd.DataFrame, truth: pd.DataFrame) -> pd.DataFrame:
    """Spearman ρ of each run's score with the true latent severity: overall, and within each grade (mean over grades).

    Averaged over tasks; ``within grade`` is the finer claim of the ranking paper
    (a score orders discs that share a grade), measurable only on the phantom.
    """
    joined = decided.merge(truth, on=["study_id", "level", "task"], how="inner")
    rows = []
    for (run, task), frame in joined.groupby(KEYS, sort=False):
        graded = frame[frame["grade"] >= 0]
        overall = spearmanr(frame["score"], frame["latent"]).statistic if len(frame) > 2 else np.nan
        within = [spearmanr(g["score"], g["latent"]).statistic for _, g in graded.groupby("grade") if len(g) > 4
                  and g["score"].nunique() > 1]
        rows.append({"run": run, "task": task, "spearman_overall": overall,
                     "spearman_within_grade": np.nanmean(within) if within else np.nan,
                     "spearman_grade": spearmanr(graded["score"], graded["grade"]).statistic})
    per_task = pd.DataFrame(rows)
    return per_task.groupby("run", sort=False)[["spearman_overall", "spearman_within_grade", "spearman_grade"]].mean()


def mid_slices(store, decided: pd.DataFrame) -> np.ndarray:
    """The middle slice (H, W) of the volume each prediction row was made from, in row order."""
    index = store.index("volume").reset_index()
    keys = ["study_id", "level", "series_description"]
    rows = decided[keys].merge(index[keys + ["index"]], on=keys, how="left")["index"]
    if rows.isna().any():
        raise KeyError(f"{int(rows.isna().sum())} prediction rows have no volume in {store.root / 'volume.csv'}")
    volumes = store.array("volume")
    return np.stack([volumes[int(i)][volumes.shape[1] // 2] for i in rows])


def evenly_ranked(frame: pd.DataFrame, n: int) -> pd.DataFrame:
    """``n`` rows of ``frame`` at evenly spaced ranks of its score (lowest and highest included)."""
    ordered = frame.sort_values("score", kind="stable")
    picks = np.unique(np.linspace(0, len(ordered) - 1, min(n, len(ordered))).round().astype(int))
    return ordered.iloc[picks]
