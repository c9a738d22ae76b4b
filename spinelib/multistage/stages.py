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

from spinelib.crops.plan import BAG_KIND
from spinelib.data.rsna import image_dir, read_dataset
from spinelib.metrics import ORDINAL_COLUMNS
from spinelib.multistage import report
from spinelib.multistage.bags import BagConfig, build_sources
from spinelib.multistage.cohort import load_cohort, study_splits
from spinelib.multistage.localisation import train_localisers
from spinelib.multistage.severity import (KINDS, grade_prior, metrics_by, paired_metrics_by, predict_rows,
                                          submission_score, train_graders)

KEYS = ["study_id", "condition", "level"]


def run_localisation(data_root: Path, splits: pd.DataFrame, out_dir: Path, hp: dict, progress: bool = True) -> dict:
    """Read the cohort, train Stage 1, predict the val/test studies, measure the errors; write the hand-over files."""
    cohort = load_cohort(data_root, splits, hp["split_column"], hp["stack_depth"], hp["stack_size"], hp["slice_size"],
                         hp["workers"], progress)
    loc, histories = train_localisers(cohort, hp, out_dir, progress)
    errors = report.with_errors(report.predict_split(cohort, loc, ("val", "test"), progress), cohort)
    shift = report.shift_probabilities(errors[errors["split"] == "val"], hp["max_shift"])
    errors.to_csv(Path(out_dir) / "stage1_predictions.csv", index=False)
    (Path(out_dir) / "shift_probabilities.json").write_text(json.dumps({"p_abs_shift": shift, "from": "val split"}))
    return {"cohort": cohort, "localisers": loc, "histories": histories, "errors": errors, "shift": shift}


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


def bag_config(hp: dict) -> BagConfig:
    return BagConfig(bag_slices=hp["bag_slices"], max_shift=hp["max_shift"], margin=hp["margin"],
                     scale=dict(hp["crop_scale"]), ranges={k: tuple(v) for k, v in hp["ranges"].items()})


def run_mil(data_root: Path, splits: pd.DataFrame, localisation_dir: Path, out_dir: Path, hp: dict,
            progress: bool = True) -> dict:
    """Train Stage 2 on annotated points; predict the test split on annotated and on Stage 1 coordinates."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    labels, points = annotated_points(data_root, splits, hp["split_column"])
    shift = json.loads((Path(localisation_dir) / "shift_probabilities.json").read_text())["p_abs_shift"]
    if not hp["slice_shift"]:
        shift = [1.0] + [0.0] * hp["max_shift"]
    cfg = bag_config(hp)
    images = image_dir(data_root)
    sources = build_sources(images, points, cfg, hp["workers"], progress)
    models, histories = train_graders(sources, cfg, hp, shift, out_dir, progress)
    prior = grade_prior(labels[labels["split"] == "train"])
    prior.to_csv(out_dir / "prior.csv", index=False)
    stage1 = pd.read_csv(Path(localisation_dir) / "stage1_predictions.csv")
    on_predicted = build_sources(images, predicted_points(stage1[stage1["split"] == "test"], labels), cfg,
                                 hp["workers"], progress)
    frames = []
    for name, source in (("annotated", sources), ("predicted", on_predicted)):
        for kind in KINDS:
            if kind not in source or kind not in models:
                continue
            regions, index = source[kind]
            keep = ((index["status"] == "ok") & (index["split"] == "test")).to_numpy()
            rows = predict_rows(models[kind], regions[keep], index[keep].reset_index(drop=True), cfg)
            frames.append(rows.assign(coordinates=name))
    predictions = pd.concat(frames, ignore_index=True)
    test_labels = labels[labels["split"] == "test"]
    scores = {name: submission_score(group, test_labels, prior) for name, group in predictions.groupby("coordinates")}
    scores["prior_only"] = submission_score(predictions.iloc[:0], test_labels, prior)  # the baseline to beat
    return {"predictions": predictions, "histories": histories, "scores": pd.DataFrame(scores), "prior": prior,
            "shift": shift, "sources": sources, "models": models, "config": cfg}


def side_by_side(predictions: pd.DataFrame, by: list[str], n_boot: int = 0, seed: int = 0,
                 level: float = 0.95) -> pd.DataFrame:
    """Metrics per group on annotated vs predicted coordinates, one column block each.

    With ``n_boot`` > 0 every metric is followed by ``<metric>_low`` and ``<metric>_high``, its percentile
    interval over ``n_boot`` resamples of the patients (:func:`spinelib.multistage.severity.metrics_by`).
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
    (:func:`spinelib.multistage.severity.paired_metrics_by`): a positive diff on BA, AUC, QWK or MCC, or a
    negative one on MAE, is what automatic localisation costs. Index: ``by`` + metric; columns diff, low, high
    (rounded to 3 decimals), excludes_zero, n.
    """
    table = paired_metrics_by(predictions, by, "coordinates", "annotated", "predicted", n_boot, seed, level)
    return table.round({"diff": 3, "low": 3, "high": 3})


TINY_LOCALISATION = {
    "split_column": "split_patient", "workers": 1, "folds": 1, "max_shift": 2, "stack_depth": 32, "stack_size": 16,
    "slice_size": 32,
    "instance": {"architecture": "resnet3d18", "base_width": 4, "epochs": 1, "batch_size": 8, "lr": 1e-3,
                 "weight_decay": 1e-4, "z_weight": 2.0, "reg_weight": 5.0, "seed": 0, "device": "cpu", "amp": False},
    "coords": {"encoders": ["resnet18"], "epochs": {"sag_t2": 1, "sag_t1": 1, "axial": 1}, "batch_size": 16,
               "lr": 1e-3, "weight_decay": 1e-4, "shift": 2,
               "seed": 0, "device": "cpu", "amp": False},
}


def tiny_localisation(crops_dir: Path) -> Path:
    """Stage 1 trained for one epoch at tiny sizes on a tiny crop store's cohort, in a temporary folder (tests)."""
    import tempfile

    from spinelib.crops import open_store
    from spinelib.paths import resolve

    out = Path(tempfile.mkdtemp(prefix="spinelib-localisation-"))
    data_root = resolve(open_store(crops_dir).config()["data_root"])
    run_localisation(data_root, pd.read_csv(Path(crops_dir) / "splits.csv"), out, TINY_LOCALISATION, progress=False)
    return out
