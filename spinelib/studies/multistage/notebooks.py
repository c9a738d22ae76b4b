"""What notebooks 08 (localisation) and 09 (MIL grading) run, so that a notebook only calls and shows.

Notebook 08 writes to its models folder: the Stage 1 checkpoints and
``config.json``, ``stage1_predictions.csv`` (every val/test study's predicted
series, slice and point per condition and level, with errors where annotated)
and ``shift_probabilities.json`` (the measured slice-error distribution that
Stage 2's pre-crop augmentation samples). Notebook 09 reads them.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from spinelib.crops.bags import BagConfig, build_sources
from spinelib.crops.plan import BAG_KIND
from spinelib.data.cohort import load_cohort, study_splits
from spinelib.data.rsna import image_dir, read_dataset
from spinelib.metrics import ORDINAL_COLUMNS
from spinelib.params.multistage import LocalisationParams, MilParams
from spinelib.provenance import write_provenance
from spinelib.studies.multistage import localisation
from spinelib.studies.multistage.grading import (KINDS, bag_config, grade_prior, metrics_by, paired_metrics_by,
                                                 paired_score_differences, predict_rows, submission_score,
                                                 train_graders)

KEYS = ["study_id", "condition", "level"]


# ---- notebook 08: Stage 1 ------------------------------------------------------------------------------------------

def run_localisation(data_root: Path, splits: pd.DataFrame, out_dir: Path, p: LocalisationParams,
                     progress: bool = True) -> dict:
    """Read the cohort, train Stage 1, predict the val/test studies, measure the errors; write the hand-over files.

    Returns ``cohort``, ``localisers``, ``histories``, ``errors`` (val/test predictions joined with the
    annotations) and ``shift`` (P(|slice error| = 0 … max_shift) on the validation split).
    """
    # ---- read every series once, train ----
    cohort = load_cohort(data_root, splits, p.split_column, p.stack_depth, p.stack_size, p.slice_size,
                         p.workers, progress)
    loc, histories = localisation.train_localisers(cohort, p, out_dir, progress)
    # ---- localise the held-out studies, measure; the slice errors Stage 2 imitates come from validation only ----
    errors = localisation.with_errors(localisation.predict_split(cohort, loc, ("val", "test"), progress), cohort)
    shift = localisation.shift_probabilities(errors[errors["split"] == "val"], p.max_shift)
    errors.to_csv(Path(out_dir) / "stage1_predictions.csv", index=False)
    (Path(out_dir) / "shift_probabilities.json").write_text(json.dumps({"p_abs_shift": shift, "from": "val split"}))
    write_provenance(out_dir, data_root, p)   # printed by `spinelib grade`, which warns on phantom models + real data
    return {"cohort": cohort, "localisers": loc, "histories": histories, "errors": errors, "shift": shift}


# ---- notebook 09: Stage 2 ------------------------------------------------------------------------------------------

def annotated_points(data_root: Path, splits: pd.DataFrame, split_column: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(all labels with split, annotated points of the three bag kinds) of the labelled cohort."""
    labels = read_dataset(data_root).labels
    split_of = study_splits(splits, split_column)
    labels = labels[labels["study_id"].isin(split_of.index)].assign(split=lambda f: f["study_id"].map(split_of))
    points = labels[labels["series_id"].notna() & labels["condition"].isin(list(BAG_KIND))].copy()
    points["series_id"] = points["series_id"].astype("int64")
    return labels.reset_index(drop=True), points.reset_index(drop=True)


def predicted_points(stage1: pd.DataFrame, labels: pd.DataFrame) -> pd.DataFrame:
    """Stage 1 predictions as bag points, with the grades of the labels (rows without a grade kept, grade missing)."""
    grades = labels[KEYS + ["grade_index"]]
    points = stage1[KEYS + ["series_id", "instance_number", "x", "y", "split"]].merge(grades, on=KEYS, how="left")
    return points.reset_index(drop=True)


def run_mil(data_root: Path, splits: pd.DataFrame, localisation_dir: Path, out_dir: Path, p: MilParams,
            progress: bool = True) -> dict:
    """Train Stage 2 on annotated points; predict the test split on annotated and on Stage 1 coordinates.

    ``localisation_dir`` is notebook 08's models folder (its slice-error distribution and predicted points).
    Returns the test ``predictions`` (column ``coordinates``: annotated / predicted), ``histories``, the
    competition ``scores``, the grade ``prior``, and what :func:`run_ablations` retrains and grades on.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    # ---- inputs: the annotated points, Stage 1's slice-error distribution (or none: no slice shifts) ----
    labels, points = annotated_points(data_root, splits, p.split_column)
    shift = json.loads((Path(localisation_dir) / "shift_probabilities.json").read_text())["p_abs_shift"]
    if not p.slice_shift:
        shift = [1.0] + [0.0] * p.max_shift
    cfg = bag_config(p)
    images = image_dir(data_root)
    # ---- train on bags cut at the annotated points ----
    sources = build_sources(images, points, cfg, p.workers, progress)
    models, histories = train_graders(sources, cfg, p, shift, out_dir, progress)
    prior = grade_prior(labels[labels["split"] == "train"])
    prior.to_csv(out_dir / "prior.csv", index=False)
    write_provenance(out_dir, data_root, p)
    # ---- grade the test split twice: at the annotated and at Stage 1's predicted points ----
    stage1 = pd.read_csv(Path(localisation_dir) / "stage1_predictions.csv")
    on_predicted = build_sources(images, predicted_points(stage1[stage1["split"] == "test"], labels), cfg,
                                 p.workers, progress)
    test_sources = {"annotated": sources, "predicted": on_predicted}
    predictions = grade_test(models, test_sources, cfg)
    test_labels = labels[labels["split"] == "test"]
    scores = {name: submission_score(group, test_labels, prior) for name, group in predictions.groupby("coordinates")}
    scores["prior_only"] = submission_score(predictions.iloc[:0], test_labels, prior)  # the baseline to beat
    return {"predictions": predictions, "histories": histories, "scores": pd.DataFrame(scores), "prior": prior,
            "shift": shift, "sources": sources, "test_sources": test_sources, "test_labels": test_labels,
            "models": models, "config": cfg}


def grade_test(models: dict, test_sources: dict[str, dict], cfg: BagConfig) -> pd.DataFrame:
    """Test-split predictions of ``models`` (by kind) on each named set of sources (annotated, predicted points)."""
    frames = []
    for name, source in test_sources.items():
        for kind in KINDS:   # a fixed kind order, so that the rows come out in the same order on every run
            if kind not in source or kind not in models:
                continue
            regions, index = source[kind]
            keep = ((index["status"] == "ok") & (index["split"] == "test")).to_numpy()   # regions made, test only
            rows = predict_rows(models[kind], regions[keep], index[keep].reset_index(drop=True), cfg)
            frames.append(rows.assign(coordinates=name))
    return pd.concat(frames, ignore_index=True)


# ---- notebook 09: the paper's ablations ----------------------------------------------------------------------------

# The multi-stage paper's ablations: what each changes in the full model's settings (notebook 09).
ABLATIONS: dict[str, dict] = {
    "no_jitter": {},                            # no pre-crop jitter in training (no Stage 1 errors simulated)
    "no_aux_loss": {"aux_weight": 0.0},         # no auxiliary attention loss
    "attention_only": {"aggregator": "attention"},   # attention MIL without the Bi-LSTM
    "shared_attention": {"shared_attention": True},  # one attention for pooling and the auxiliary loss
}


def run_ablations(run: dict, p: MilParams, names: list[str], out_dir: Path, kinds: list[str] | None = None,
                  progress: bool = True) -> dict:
    """Stage 2 retrained once per ablation (one change each), graded on the same test sources as the full model.

    ``run`` is :func:`run_mil`'s result; ``kinds`` limits the retrained bag kinds (default: all), the other kinds
    keeping the full model's predictions, so that every ablation is still scored on all 25 rows of a study.
    Returns ``predictions`` (the full model's and every ablation's, column ``model``) and ``scores`` (competition
    metric per model and coordinates). An ablation keeps its curves and ``config.json``, not its weights (the
    predictions are all the tables need).
    """
    unknown = set(names) - set(ABLATIONS)
    if unknown:
        raise ValueError(f"unknown ablations {sorted(unknown)}; choose from {list(ABLATIONS)}")
    kinds = list(KINDS) if kinds is None else list(kinds)
    if set(kinds) - set(KINDS):
        raise ValueError(f"unknown bag kinds {sorted(set(kinds) - set(KINDS))}; choose from {list(KINDS)}")
    full = run["predictions"]
    kept = full[~full["condition"].map(BAG_KIND).isin(kinds)]     # kinds not ablated: the full model's rows
    frames = [full.assign(model="full")]
    for name in names:
        shift = None if name == "no_jitter" else run["shift"]
        sources = {kind: source for kind, source in run["sources"].items() if kind in kinds}
        models, _ = train_graders(sources, run["config"], p.replace(**ABLATIONS[name]), shift, Path(out_dir) / name,
                                  progress)
        frames.append(pd.concat([grade_test(models, run["test_sources"], run["config"]), kept],
                                ignore_index=True).assign(model=name))
        for checkpoint in (Path(out_dir) / name).rglob("best.pt"):   # graded: nothing reloads an ablation
            checkpoint.unlink()
    predictions = pd.concat(frames, ignore_index=True)
    scores = {(model, coordinates): submission_score(group, run["test_labels"], run["prior"])["score"]
              for (model, coordinates), group in predictions.groupby(["model", "coordinates"], sort=False)}
    table = pd.Series(scores).unstack()
    return {"predictions": predictions, "scores": table.rename_axis(index="model", columns="coordinates")}


def ablation_score_differences(predictions: pd.DataFrame, run: dict, n_boot: int = 1000,
                               seed: int = 0) -> pd.DataFrame:
    """Each ablation's competition score minus the full model's, per coordinates, with paired patient intervals.

    ``predictions``: :func:`run_ablations`' rows (column ``model``); ``run``: :func:`run_mil`'s result (its test
    labels and prior). Index (model, coordinates); a positive ``diff`` means the ablated model scores worse.
    """
    table = paired_score_differences(predictions, run["test_labels"], run["prior"], "model", "full", n_boot, seed)
    return table.round({"score": 4, "reference_score": 4, "diff": 4, "low": 4, "high": 4})


def ablation_differences(predictions: pd.DataFrame, n_boot: int = 1000, seed: int = 0,
                         metrics: tuple[str, ...] = ("balanced_accuracy", "roc_auc"),
                         kinds: list[str] | None = None) -> pd.DataFrame:
    """Each ablation minus the full model, per coordinates and condition, with paired patient intervals.

    Index (model, coordinates, condition, metric); columns diff, low, high, excludes_zero, n. A negative diff on
    BA or AUC means the ablated component helped. ``kinds`` keeps the conditions of the retrained bag kinds.
    """
    if kinds is not None:
        predictions = predictions[predictions["condition"].map(BAG_KIND).isin(kinds)]
    parts = {}
    for model in predictions["model"].unique():
        if model == "full":
            continue
        for coordinates, group in predictions[predictions["model"].isin(["full", model])].groupby("coordinates"):
            table = paired_metrics_by(group, ["condition"], "model", model, "full", n_boot, seed)
            parts[(model, coordinates)] = table[table.index.get_level_values(-1).isin(metrics)]
    return pd.concat(parts, names=["model", "coordinates"]).round({"diff": 3, "low": 3, "high": 3})


def side_by_side(predictions: pd.DataFrame, by: list[str], n_boot: int = 0, seed: int = 0,
                 level: float = 0.95) -> pd.DataFrame:
    """Metrics per group on annotated vs predicted coordinates, one column block each.

    With ``n_boot`` > 0 every metric is followed by ``<metric>_low`` and ``<metric>_high``, its percentile
    interval over ``n_boot`` resamples of the patients (:func:`spinelib.studies.multistage.grading.metrics_by`).
    """
    tables = {name: metrics_by(group, by, n_boot, seed, level) for name, group in predictions.groupby("coordinates")}
    table = pd.concat(tables, axis=1).astype(float).round(3)
    if n_boot > 0:  # metric, metric_low, metric_high side by side; n last in each block
        order = [f"{m}{suffix}" for m in ORDINAL_COLUMNS for suffix in ("", "_low", "_high")] + ["n"]
        table = table[[(name, column) for name in tables for column in order if (name, column) in table.columns]]
    return table


def annotated_minus_predicted(predictions: pd.DataFrame, by: list[str], n_boot: int = 1000, seed: int = 0,
                              level: float = 0.95) -> pd.DataFrame:
    """Metric on annotated minus metric on predicted coordinates per group, with its paired patient interval.

    Both are scored on the discs graded from both points and on the same patient resamples
    (:func:`spinelib.studies.multistage.grading.paired_metrics_by`): a positive diff on BA, AUC, QWK or MCC, or a
    negative one on MAE, is what automatic localisation costs. Index: ``by`` + metric; columns diff, low, high
    (rounded to 3 decimals), excludes_zero, n.
    """
    table = paired_metrics_by(predictions, by, "coordinates", "annotated", "predicted", n_boot, seed, level)
    return table.round({"diff": 3, "low": 3, "high": 3})


# ---- tiny runs for the tests ---------------------------------------------------------------------------------------

# Notebook 08's tiny profile on the CPU without AMP: the Stage 1 the tests (and notebook 09's tiny run) grade on.
TINY_LOCALISATION = LocalisationParams.tiny().replace(instance={"device": "cpu", "amp": False},
                                                      coords={"device": "cpu", "amp": False})


def tiny_localisation(crops_dir: Path) -> Path:
    """Stage 1 trained for one epoch at tiny sizes on a tiny crop store's cohort, in a temporary folder (tests)."""
    import tempfile

    from spinelib.crops import open_store
    from spinelib.paths import resolve

    out = Path(tempfile.mkdtemp(prefix="spinelib-localisation-"))
    data_root = resolve(open_store(crops_dir).config()["data_root"])
    run_localisation(data_root, pd.read_csv(Path(crops_dir) / "splits.csv"), out, TINY_LOCALISATION, progress=False)
    return out
