"""Every paper profile runs: each stage's code path with its params/paper/*.yaml values, on CPU, on a tiny phantom.

One test per stage (notebooks 01-03 and 05-09). Each loads the stage's paper
YAML and overrides only what CI cannot afford: epochs (one), data-loader
workers (none), device (CPU), AMP (off), output folders (tmp_path), the number
of cross-validation folds (paper 5, here 2: still the fold partition and the
fold ensemble), notebook 03's seeds per split column (paper 3, here 2) and,
where a paper value makes even one step too slow on a CPU, an input size;
every such override says so where it is made (``override`` also fails if the
key is no longer in the paper profile). Model widths and encoders, heads,
losses, schedulers, jitter and ensembles stay as the paper profile says, so a key renamed in a YAML, a shape that only the paper's
sizes produce or a branch only the paper takes fails here.

The phantom has four studies; its crop store (the paper's crop sizes, every
split holding a patient) and the paper-profile Stage 1 of notebook 08 (which
notebook 09's test grades on, as the pipeline does) are built once per
session. Training splits are so small that one paper batch holds each of them:
every fit is one optimisation step (the training loop has no step limit to
set) followed by the stage's validation and evaluation passes.
``ranking.yaml`` is not covered (its stage has its own paper-profile test);
notebooks 05-07 run on a tiny prediction table shaped like that stage's output.
The multi-stage tests are marked slow: their paper encoders (ConvNeXt-base,
EfficientNet-V2-L, ConvNeXt-small, EfficientNet-V2-s) cost seconds per step on
a CPU at any input size.
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from spinelib.constants import CONDITIONS
from spinelib.crops import open_store
from spinelib.crops.extract import extract_crops
from spinelib.datasets.discs import ShiftedRoiDataset
from spinelib.params.data import CropsParams
from spinelib.paths import data_root_or_tiny_phantom

PAPER = Path(__file__).resolve().parents[1] / "params" / "paper"
TINY_STUDIES = 4                      # 2 train / 1 val / 1 test patients under the fractions below
TINY_FRACTIONS = (0.5, 0.25, 0.25)    # shared store only: the paper's 80/10/10 leaves 4 studies no test patient
CPU = {"device": "cpu", "amp": False}  # what every section gets instead of device auto / amp true


def paper(name: str) -> dict:
    """params/paper/<name>.yaml as a dict."""
    return yaml.safe_load((PAPER / f"{name}.yaml").read_text())


def override(section: dict, **values) -> dict:
    """A copy of ``section`` with ``values`` replaced; every key must already be in the paper profile."""
    missing = sorted(set(values) - set(section))
    assert not missing, f"the paper profile has no key(s) {missing} (renamed or dropped?); it has {sorted(section)}"
    return {**section, **values}


def close_figures() -> None:
    plt.close("all")


@pytest.fixture(scope="session")
def phantom_root() -> Path:
    return data_root_or_tiny_phantom("", studies=TINY_STUDIES, seed=0)


@pytest.fixture(scope="session")
def paper_store(phantom_root, tmp_path_factory):
    """The tiny phantom's crop store at the paper's crop sizes (params/paper/crops.yaml), split 50/25/25."""
    p = CropsParams.load(PAPER / "crops.yaml").replace(
        split_fractions=list(TINY_FRACTIONS),  # the paper's 80/10/10 leaves 4 studies no test patient
        workers=1,                             # paper: 8 processes
    )
    out = tmp_path_factory.mktemp("paper-crops")
    extract_crops(phantom_root, out, p.crop_config(), split_unit=p.split_unit, fractions=tuple(p.split_fractions),
                  seed=p.seed, workers=p.workers, progress=False)
    return open_store(out)


# --------------------------------------------------------------------------------------------------------------------
# Notebook 01: crops
# --------------------------------------------------------------------------------------------------------------------

def test_crops_paper_profile(phantom_root, tmp_path):
    """Every crop kind at the paper's sizes (no value shrunk), the split QC and the linear probe of notebook 01."""
    from spinelib.figures import crops as figs
    from spinelib.probe import latent_ceiling, roi_probe
    from spinelib.splits import shared_patients

    p = CropsParams.load(PAPER / "crops.yaml").replace(workers=1)  # paper: 8 processes
    config = p.crop_config()
    out = tmp_path / "crops"
    summary = extract_crops(phantom_root, out, config, split_unit=p.split_unit,
                            fractions=tuple(p.split_fractions), seed=p.seed, workers=p.workers, progress=False)
    expected = {"roi": [*p.roi_size], "volume": [p.volume_slices, *p.volume_size],
                "loc": [p.loc_slices, *p.loc_size]}
    expected |= {kind: [p.bag_slices, *config.bag_size(kind)] for kind in ("bag_scs", "bag_nfn", "bag_ss")}
    assert {kind: info["shape"] for kind, info in summary["kinds"].items()} == expected
    for kind, info in summary["kinds"].items():
        assert info["ok"] > 0, f"{kind}: no crop made at the paper's sizes ({info})"
    assert summary["read_failures"] == 0
    store = open_store(out)
    assert store.config()["split_unit"] == p.split_unit
    for kind in store.kinds():
        index, array = store.index(kind), store.array(kind)
        assert len(index) == len(array) and array.dtype == np.uint8
        if kind.startswith("bag_"):  # the stored box is Table 1's reach at bag_scale
            condition = index["condition"].iloc[0]
            left, right, up, down = p.bag_ranges[condition]
            assert array.shape[2:] == (round((up + down) * p.bag_scale), round((left + right) * p.bag_scale))
    splits = pd.read_csv(out / "splits.csv")
    assert len(shared_patients(splits, f"split_{p.split_unit}")) == 0
    assert set(splits["split_patient"]) <= {"train", "val", "test"}
    # evaluation pass: the notebook's probe, latent ceiling and QC figures on the paper-sized crops
    conditions = sorted(store.index("roi")["condition"].unique())
    probe = pd.DataFrame({c: roi_probe(store, c, seed=p.seed) for c in conditions}).T
    assert list(probe.index) == sorted(CONDITIONS) and (probe["n_train"] > 0).all()
    truth = pd.read_csv(phantom_root / "phantom_truth.csv")
    assert set(latent_ceiling(truth).index) == set(CONDITIONS)
    figs.split_table(store.index("roi"))
    figs.roi_montage(store, CONDITIONS[0], seed=p.seed)
    for kind in store.kinds():
        if kind != "roi":
            first = int(store.index(kind).query("status == 'ok'").index[0])
            figs.stack_strip(store.array(kind)[first], kind, centre=(len(store.array(kind)[first]) - 1) // 2)
    figs.ordered_by_truth(store, truth, CONDITIONS[0])
    close_figures()


# --------------------------------------------------------------------------------------------------------------------
# Notebook 02: contrastive pretraining
# --------------------------------------------------------------------------------------------------------------------

def test_contrastive_paper_profile(paper_store, tmp_path):
    """Multi-positive NT-Xent pretraining with the paper's head, views, augmentation and schedule, per split column."""
    from spinelib.datasets.discs import RoiDataset
    from spinelib.augment import eval_transform
    from spinelib.params.contrastive import ContrastiveParams
    from spinelib.studies import contrastive

    p = ContrastiveParams.load(PAPER / "contrastive.yaml")
    pre = p.pretrain.replace(epochs=1, num_workers=0, **CPU,
                             input_size=64)  # paper 224 px: one ResNet-18 step on 224 px views is too slow for CI
    models = tmp_path / "contrastive"
    for column in p.split_columns:
        train = RoiDataset(paper_store, pre.condition, "train", eval_transform(pre.input_size), column)
        assert 0 < len(train) <= pre.batch_size, "the tiny training split should fit one paper batch (one step)"
        result = contrastive.pretrain(pre, paper_store.root, models, column, progress=False)
        assert len(result.history) == 1 and result.best_epoch == 1
        assert np.isfinite(result.best_metric), f"{column}: validation NT-Xent is {result.best_metric}"
        assert result.history["lr_0"].iloc[0] == pytest.approx(pre.lr)
        head = {k: v.shape for k, v in result.best_state.items() if k.startswith("head.")}
        assert any(s == (pre.hidden_dim, 512) for s in head.values()), f"no hidden_dim x 512 layer in {head}"
        assert any(s == (pre.projection_dim, pre.hidden_dim) for s in head.values())
        # evaluation pass: embeddings of the validation discs under the saved encoder (notebook 02)
        embeddings, index = contrastive.embed(contrastive.encoder_path(models, column), paper_store.root,
                                              pre.condition, "val", column, pre.input_size, pre.device)
        assert embeddings.shape == (len(index), 512) and len(index) > 0 and np.isfinite(embeddings).all()


# --------------------------------------------------------------------------------------------------------------------
# Notebook 03: fine-tuning (Table 1) and the disc localiser
# --------------------------------------------------------------------------------------------------------------------

def test_finetune_paper_profile(paper_store, tmp_path):
    """The three configurations x the paper's split columns and seeds, Table 1 with CIs, localiser and re-cut crops."""
    from spinelib.models.encoders import resnet18_encoder
    from spinelib.params.contrastive import FinetuneParams
    from spinelib.studies import disc_localiser as localise, finetune as ft

    p = FinetuneParams.load(PAPER / "finetune.yaml")
    hp = p.finetune.replace(epochs=1, num_workers=0, **CPU,
                            input_size=64)  # paper 224 px: 18 fits of a ResNet-18 on 224 px ROIs are too slow for CI
    loc_hp = p.localiser.replace(epochs=1, num_workers=0, **CPU)  # input: the store's paper 256 x 256 loc crops
    # paper: 3 seeds per split column (18 fits); the first 2 keep the mean +- std over seeds and fit CI time
    split_seeds = {column: seeds[:2] for column, seeds in p.split_seeds.items()}
    assert all(len(seeds) >= 2 for seeds in split_seeds.values())
    # stage 02's output: an encoder.pt per split column (random weights; the contrastive test covers pretraining)
    encoders = tmp_path / "encoders"
    for column in split_seeds:
        (encoders / column).mkdir(parents=True)
        torch.manual_seed(0)
        torch.save(resnet18_encoder(1).state_dict(), encoders / column / "encoder.pt")
    models = tmp_path / "finetune"
    for column in split_seeds:
        assert 0 < len(ft.datasets(paper_store, hp, column)["train"]) <= hp.batch_size, "one step per fit expected"

    metrics, predictions, histories = ft.run_experiments(paper_store, encoders, models, hp, split_seeds, progress=False)
    runs = len(split_seeds) * len(hp.configs) * len(next(iter(split_seeds.values())))
    assert len(metrics) == runs and len(histories) == runs
    assert all(len(h) == 1 for h in histories.values())
    assert set(metrics["config"]) == set(hp.configs)
    lrs = histories[f"split_patient/finetune/seed{split_seeds['split_patient'][0]}"].filter(like="lr_").iloc[0]
    assert sorted(lrs) == sorted([hp.lr_backbone, hp.lr_head])
    table = ft.mean_std_table(metrics)
    assert (table["seeds"] == len(split_seeds["split_patient"])).all()
    first = predictions[(predictions["split_column"] == list(split_seeds)[0])
                        & (predictions["seed"] == predictions["seed"].min())]
    intervals = ft.intervals_by(first, "config", n_boot=p.n_boot)
    assert {"value", "ci_low", "ci_high"} <= set(intervals.columns)
    assert set(intervals.index.get_level_values(0)) == set(hp.configs)
    differences = ft.paired_differences(first, "scratch", n_boot=p.n_boot)
    assert {"diff", "low", "high", "excludes_zero"} <= set(differences.columns)
    summary = ft.metrics_json(metrics)
    assert len(summary) == len(split_seeds) * len(hp.configs) * len(ft.TABLE_COLUMNS)
    ft.markdown_table(table)

    # the localiser (§4.5) and grading on crops cut at its predictions
    fit, model, data = localise.train_localiser(paper_store, loc_hp, loc_hp.split_column, models / "localiser",
                                                progress=False)
    assert len(fit.history) == 1 and 0 < len(data["train"]) <= loc_hp.batch_size
    assert model.level_embedding.embedding_dim == loc_hp.level_dim
    assert model.mlp[0].out_features == loc_hp.hidden and model.mlp[2].p == loc_hp.dropout
    coordinates = localise.predicted_coordinates(model, data["test"], loc_hp.device)
    assert len(coordinates) == len(data["test"]) > 0 and np.isfinite(localise.rmse_of(coordinates))
    column, seed = loc_hp.split_column, split_seeds[loc_hp.split_column][0]
    predicted_store = localise.crops_at_predictions(paper_store, coordinates, hp.condition, models / "predicted")
    predicted_test = ft.datasets(predicted_store, hp, column)["test"]
    on_predicted = ft.predict_with_checkpoints(models, column, hp.configs, seed, predicted_test, hp.device)
    assert len(on_predicted) == len(hp.configs) * len(predicted_test)
    by_config = ft.summary_by(on_predicted, "config")
    assert list(by_config.index) == list(hp.configs)
    errors = localise.level_errors(coordinates)
    assert set(errors["wrong_level"]) <= {True, False} and len(localise.level_error_table(errors)) >= 1

    # the label-fraction experiment: the paper profile's fractions, one seed; 100 % reuses the runs above
    fractions = p.label_fractions
    runs, fraction_predictions = ft.run_label_fractions(paper_store, encoders, models, hp, column,
                                                        fractions.fractions, fractions.seeds[:1],
                                                        fractions.equal_steps, progress=False)
    assert set(runs["fraction"]) == set(fractions.fractions) and set(runs["config"]) == set(hp.configs)
    assert (runs.loc[runs["fraction"] == 1.0, "repeats"] == 1).all()
    assert (runs.loc[runs["fraction"] < 1, "repeats"] > 1).all() == fractions.equal_steps
    small = runs["labelled_discs"][runs["fraction"] < 1]
    assert (small < runs.loc[runs["fraction"] == 1.0, "labelled_discs"].max()).all()
    table = ft.pooled_table(fraction_predictions, ["fraction", "config"], ["seed"], n_boot=p.n_boot)
    assert {"balanced_accuracy_pooled", "balanced_accuracy_low", "severe_to_normal_mean"} <= set(table.columns)
    ft.differences_by(fraction_predictions, "fraction", "finetune", "scratch", ("seed",), n_boot=p.n_boot)

    # the shift curve: wide ROIs (paper margin), the shift-augmented row, every distance once
    shift = p.shift
    wide = localise.wide_rois(paper_store, hp.condition, shift.margin, models / "wide")
    shifted = ft.shifted_datasets(wide, hp, column, shift.margin, shift.jitter)
    plain = ft.datasets(paper_store, hp, column)["test"]
    assert torch.equal(shifted["test"][0][0], plain[0][0])   # the centred window is the original ROI
    _, augmented = ft.train_classifier("finetune", shifted, encoders / column / "encoder.pt", hp, seed,
                                       models / column / "finetune_shift" / f"seed{seed}", progress=False)
    classifiers = {("finetune", seed): ft.load_classifier(models / column / "finetune" / f"seed{seed}"),
                   ("finetune_shift", seed): augmented}
    test = shifted["test"]
    curve = localise.shift_predictions(
        classifiers, lambda offsets: ShiftedRoiDataset(wide, hp.condition, "test", test.transform,
                                                       shift.margin, column, offsets=offsets),
        len(test), shift.distances, 1, device=hp.device)
    assert len(curve) == len(shift.distances) * len(classifiers) * len(test)
    ft.differences_by(curve, "distance", "finetune_shift", "finetune", ("seed", "draw"), n_boot=p.n_boot)


# --------------------------------------------------------------------------------------------------------------------
# Notebook 08: Stage 1 localisation (multi-stage paper)
# --------------------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def paper_localisation(paper_store, tmp_path_factory):
    """Notebook 08 with params/paper/localisation.yaml on the tiny phantom: (params, models folder, run).

    Session-scoped: notebook 09's test grades on these Stage 1 predictions, as the pipeline does.
    """
    from spinelib.params.multistage import LocalisationParams
    from spinelib.studies.multistage import notebooks

    p = LocalisationParams.load(PAPER / "localisation.yaml")
    # Input sizes only: stack_size paper 256 px (a step of the width-64 3D ResNet at 32 x 256 x 256 is too slow),
    # slice_size paper 512 px (64, not 32: at 32 px EfficientNet-V2-L's last feature maps are 1 x 1, and the
    # one-slice training batch of a tiny fold then fails its batch norm).
    p = p.replace(workers=1,  # paper: 8 processes
                  folds=2,        # paper 5: two folds still take the cross-validation and fold-ensemble paths
                  stack_size=32, slice_size=64,
                  instance={"epochs": 1, **CPU},
                  coords={"epochs": {k: 1 for k in p.coords.epochs}, **CPU})
    data_root = Path(paper_store.config()["data_root"])
    splits = pd.read_csv(paper_store.root / "splits.csv")
    models = tmp_path_factory.mktemp("paper-localisation")
    return p, models, notebooks.run_localisation(data_root, splits, models, p, progress=False)


@pytest.mark.slow
def test_localisation_paper_profile(paper_localisation):
    """Stage 1a (3D ResNet-18, width 64, depth 32) and 1b/1c (ConvNeXt-base + EfficientNet-V2-L), two folds each."""
    from spinelib.params.multistage import LocalisationParams
    from spinelib.studies.multistage import localisation

    paper_p = LocalisationParams.load(PAPER / "localisation.yaml")
    p, models, run = paper_localisation
    config = json.loads((models / "config.json").read_text())
    assert config["stack_depth"] == paper_p.stack_depth
    assert config["instance"]["base_width"] == paper_p.instance.base_width
    assert sorted(config["checkpoints"]["instance"]) == ["Sagittal T1", "Sagittal T2/STIR"]
    for series_type, checkpoints in config["checkpoints"]["instance"].items():
        assert len(checkpoints) == p.folds, f"Stage 1a {series_type}: {checkpoints}"
    assert len(config["checkpoints"]["coords"]) == 3
    for series_type, checkpoints in config["checkpoints"]["coords"].items():
        assert sorted(e for e, _ in checkpoints) == sorted(paper_p.coords.encoders * p.folds), series_type
    assert len(run["histories"]) == 2 * p.folds + 3 * p.folds * len(paper_p.coords.encoders)
    assert all(len(h) == 1 for h in run["histories"].values())
    # evaluation pass of notebook 08: Table 2, coordinate errors, the slice-shift distribution handed to Stage 2
    errors = run["errors"]
    assert set(errors["split"]) == {"val", "test"}
    assert len(run["shift"]) == p.max_shift + 1 and sum(run["shift"]) == pytest.approx(1.0, abs=1e-3)
    test = errors[errors["split"] == "test"]
    for series_type in ("Sagittal T2/STIR", "Sagittal T1"):
        assert len(localisation.table2(test, series_type)) == 3
    assert set(localisation.coordinate_errors(test).index) <= set(CONDITIONS)
    assert (models / "stage1_predictions.csv").is_file() and (models / "shift_probabilities.json").is_file()


# --------------------------------------------------------------------------------------------------------------------
# Notebook 09: Stage 2 Bi-LSTM attention MIL (multi-stage paper)
# --------------------------------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_mil_paper_profile(paper_store, paper_localisation, tmp_path):
    """The paper's two MIL encoders (LSTM width input_dim / 2), two folds per kind, on annotated and Stage 1 points."""
    from spinelib.competition import PROBABILITY_COLUMNS
    from spinelib.params.multistage import MilParams
    from spinelib.studies.multistage import notebooks as stages

    p = MilParams.load(PAPER / "mil.yaml")
    hp = p.replace(workers=1,  # paper: 8 processes
                   folds=2,        # paper 5: two folds still take the cross-validation and fold-ensemble paths
                   epochs={k: 1 for k in p.epochs}, **CPU,
                   # paper 1.0 (full resolution, e.g. 5 x 192 x 192 subarticular bags): input size only, too slow
                   # on a CPU with ConvNeXt-small; 0.5 / 0.5 / 0.25 keeps every bag side >= 32 px (ConvNeXt's minimum)
                   crop_scale={"bag_scs": 0.5, "bag_nfn": 0.5, "bag_ss": 0.25})
    data_root = Path(paper_store.config()["data_root"])
    splits = pd.read_csv(paper_store.root / "splits.csv")
    _, stage1, _ = paper_localisation  # the paper-profile Stage 1 of the test above
    models = tmp_path / "mil"

    run = stages.run_mil(data_root, splits, stage1, models, hp, progress=False)

    config = json.loads((models / "config.json").read_text())
    assert config["model"]["lstm_hidden"] is None and config["model"]["lstm_layers"] == p.lstm_layers
    assert set(config["checkpoints"]) == {"bag_scs", "bag_nfn", "bag_ss"}
    for kind, checkpoints in config["checkpoints"].items():
        assert sorted(e for e, _ in checkpoints) == sorted(p.encoders * hp.folds), f"{kind}: {checkpoints}"
    for kind, members in run["models"].items():
        for model in members:  # Listing 1: LSTM hidden = encoder feature width / 2
            assert model.mil.lstm.hidden_size * 2 == model.mil.lstm.input_size
            assert model.mil.lstm.num_layers == p.lstm_layers
    assert all(len(h) == 1 for h in run["histories"].values())
    predictions = run["predictions"]
    assert set(predictions["coordinates"]) == {"annotated", "predicted"}
    assert np.allclose(predictions[list(PROBABILITY_COLUMNS)].sum(axis=1), 1.0, atol=1e-5)
    assert {"annotated", "predicted", "prior_only"} <= set(run["scores"].columns)
    # evaluation pass of notebook 09: metrics with patient-bootstrap intervals (the paper's n_boot), paired
    by_condition = stages.side_by_side(predictions, ["condition"], n_boot=p.n_boot, seed=p.seed)
    assert len(by_condition) > 0
    stages.side_by_side(predictions, ["condition", "level"], n_boot=p.n_boot, seed=p.seed)
    paired = stages.annotated_minus_predicted(predictions, ["condition"], n_boot=p.n_boot, seed=p.seed)
    assert {"diff", "low", "high"} <= set(paired.columns)
    # the paper's ablations (first encoder, one fold: every ablation path with the paper's model settings)
    ablated = stages.run_ablations(run, hp.replace(folds=1, encoders=p.encoders[:1]), p.ablations,
                                   models / "ablations", p.ablation_kinds, progress=False)
    assert set(ablated["predictions"]["model"]) == {"full", *p.ablations}
    assert set(ablated["scores"].index) == {"full", *p.ablations}
    differences = stages.ablation_differences(ablated["predictions"], n_boot=p.n_boot, seed=p.seed,
                                              kinds=p.ablation_kinds)
    assert set(differences.index.get_level_values("model")) == set(p.ablations)


# --------------------------------------------------------------------------------------------------------------------
# Notebooks 05-07: thresholds, evaluation tables, score-ordered figure
# --------------------------------------------------------------------------------------------------------------------

def paper_run_plan(folder: Path) -> pd.DataFrame:
    """The runs the paper ranking profile trains (params/paper/ranking.yaml, read only), as notebook 06 reads them."""
    from spinelib.params.ranking import RankingParams
    from spinelib.studies import ranking

    rk = RankingParams.load(PAPER / "ranking.yaml")
    ranking.write_plan(ranking.plan_runs(rk.runs, rk.train.seeds), folder / "runs.json")
    return ranking.read_plan(folder / "runs.json")


def prediction_table(store, phantom_root: Path, plan: pd.DataFrame, seed: int) -> pd.DataFrame:
    """A tiny table shaped like ``ranking.predict_tta``'s output: one row per (run, disc, task).

    Every run of ``plan`` over the tiny phantom's 20 T2 disc volumes and the paper profile's tasks
    (five conditions with 3 grades, the phantom's extra tasks with 5 and 4); the score is the grade plus
    noise (``seed``), P(grade > c) a logistic of it.
    """
    from spinelib.models.ranking import SCORE_OBJECTIVES
    from spinelib.params.ranking import RankingParams

    volumes = RankingParams.load(PAPER / "ranking.yaml").volumes
    rng = np.random.default_rng(seed)
    discs = store.index("volume")
    discs = discs[(discs["status"] == "ok") & (discs["series_description"] == volumes.eval_series[0])]
    extra = pd.read_csv(phantom_root / Path(volumes.extra_tasks_csv).name)
    discs = discs.merge(extra, on=["study_id", "level"], how="left", suffixes=("", "_extra"))
    m = max(volumes.tasks.values()) - 1
    frames = []
    for run in plan.itertuples():
        for task, k in volumes.tasks.items():
            grade = (discs[task] - volumes.first_grade.get(task, 0)).fillna(-1).astype(int).to_numpy()
            latent = np.clip(grade, 0, None) + rng.normal(0, 0.4, len(discs))
            frame = pd.DataFrame({"run": run.name, "objective": run.objective, "study_id": discs["study_id"].to_numpy(),
                                  "level": discs["level"].to_numpy(), "series_description": volumes.eval_series[0],
                                  "task": task, "num_grades": k, "grade": grade,
                                  "score_std": rng.uniform(0.01, 0.2, len(discs))})
            boundary = np.stack([1 / (1 + np.exp(-4 * (latent - c - 0.5))) for c in range(m)], axis=1)
            boundary[:, k - 1:] = 0.0
            for c in range(m):
                frame[f"p_gt_{c}"] = boundary[:, c]
            frame["score"] = latent if run.objective in SCORE_OBJECTIVES else boundary.sum(axis=1)
            frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def test_runs_named_by_paper_05_07_exist_in_the_paper_ranking_plan(tmp_path):
    """Every run params/paper/{thresholds,evaluation,score_figure}.yaml names is one the paper ranking plan makes,
    and every run of notebook 05's threshold-method table is graded by thresholds.

    Notebooks 05-07 keep only the named runs that exist (``if r in ...``), so a name the paper profile never
    trains, or a method-table run without thresholds, vanishes from the paper's tables without an error;
    this test is that error.
    """
    from spinelib.params.ranking import EvaluationParams, ScoreFigureParams, ThresholdsParams
    from spinelib.studies.ranking_eval import THRESHOLDED, scored

    plan = paper_run_plan(tmp_path)
    objective = dict(zip(plan["name"], plan["objective"]))
    objective |= {f"{n}{THRESHOLDED}": f"{o}{THRESHOLDED}" for n, o in list(objective.items()) if o in ("ce", "corn")}
    th = ThresholdsParams.load(PAPER / "thresholds.yaml")
    evaluation = EvaluationParams.load(PAPER / "evaluation.yaml")
    figure = ScoreFigureParams.load(PAPER / "score_figure.yaml")
    named = {"thresholds.yaml main_runs": th.main_runs, "thresholds.yaml head_runs": th.head_runs,
             "thresholds.yaml loss_runs": th.loss_runs, "evaluation.yaml table_runs": evaluation.table_runs,
             "evaluation.yaml main_run": [evaluation.main_run], "score_figure.yaml run": [figure.run]}
    problems = {f"{key}: not trained by params/paper/ranking.yaml": [r for r in runs if r not in objective]
                for key, runs in named.items()}
    problems["thresholds.yaml main_runs: no thresholds (argmax runs)"] = [
        r for r in th.main_runs if r in objective and not scored(objective[r])]
    problems = {key: runs for key, runs in problems.items() if runs}
    assert not problems, f"{problems}; the paper plan's runs: {sorted(objective)}"


def test_thresholds_evaluation_score_figure_paper_profiles(paper_store, phantom_root, tmp_path):
    """Notebooks 05-07 with their paper profiles (no value shrunk) on a tiny prediction table of the paper's runs.

    The table stands in for the ranking stage's predictions (that stage has its own paper-profile test);
    notebook 06's instrument section, which reads the ranking stage's reference scores, is not run.
    """
    from spinelib import tables
    from spinelib.figures import ranking as figs
    from spinelib.params.ranking import EvaluationParams, ScoreFigureParams, ThresholdsParams
    from spinelib.studies import ranking_eval as ev

    th = ThresholdsParams.load(PAPER / "thresholds.yaml")
    evaluation = EvaluationParams.load(PAPER / "evaluation.yaml")
    figure = ScoreFigureParams.load(PAPER / "score_figure.yaml")
    plan = paper_run_plan(tmp_path)
    val = ev.with_thresholded(prediction_table(paper_store, phantom_root, plan, seed=0))
    test = ev.with_thresholded(prediction_table(paper_store, phantom_root, plan, seed=1))
    # the paper profile's phantom truth files, here the tiny phantom's (input paths -> the tiny phantom)
    truth_files = {name: (phantom_root / Path(p.truth_csv).name, phantom_root / Path(p.extra_tasks_csv).name)
                   for name, p in (("evaluation", evaluation), ("score_figure", figure))}

    # notebook 05: every method on validation, scored on val and test; head and loss ablations with the chosen one
    fitted = {m: ev.fit_all_thresholds(val, m) for m in th.methods}
    rows = []
    for m, cuts in fitted.items():
        assert len(cuts) > 0 and all(np.all(np.diff(c) > 0) for c in cuts["thresholds"]), m
        for split, frame in (("val", val), ("test", test)):
            metrics = ev.per_task_metrics(ev.decide(frame[frame["run"].isin(cuts["run"])], cuts))
            means = metrics.groupby("run")[["balanced_accuracy", "qwk"]].mean()
            rows += [{"run": r, "method": m, "split": split, "BA (%)": 100 * v.balanced_accuracy, "QWK": v.qwk}
                     for r, v in means.iterrows()]
    methods_table = pd.DataFrame(rows).pivot_table(index=["run", "method"], columns="split", values=["BA (%)", "QWK"])
    main_rows = methods_table.loc[[r for r in th.main_runs if r in methods_table.index.get_level_values("run")]]
    assert len(main_rows) > 0  # which main runs are missing is the test above
    tables.to_markdown(methods_table.round(3))
    main = th.main_runs[0]
    task = CONDITIONS[0]
    cuts = {m: fitted[m].set_index(["run", "task"]).loc[(main, task), "thresholds"] for m in th.methods}
    figs.thresholds_on_scores(val, cuts, task, main)
    chosen = fitted[th.method]
    for key in ("head_runs", "loss_runs"):
        ablation = ev.table1(ev.per_task_metrics(ev.decide(test[test["run"].isin(getattr(th, key))], chosen)))
        assert len(ablation) > 0, key
    thresholds_file = tmp_path / "thresholds.json"
    thresholds_file.write_text(json.dumps(chosen.to_dict(orient="records"), indent=1))

    # notebook 06: Table 1, patient-bootstrap intervals (the paper's n_boot), paired differences, seeds, truth
    thresholds = pd.DataFrame(json.loads(thresholds_file.read_text()))
    decided = ev.decide(test, thresholds)
    per_task = ev.per_task_metrics(decided)
    truth = ev.truth_table(*truth_files["evaluation"], evaluation.extra_truth)
    assert set(evaluation.extra_truth) <= set(truth["task"])
    shown = [r for r in evaluation.table_runs if r in set(per_task["run"])]
    assert ev.table1(per_task).loc[shown].shape[0] == len(shown) > 0
    points, boot = ev.run_bootstrap(decided, truth, n_boot=evaluation.n_boot, seed=evaluation.seed)
    assert all(len(v) == evaluation.n_boot for values in boot.values() for v in values.values())
    intervals = ev.interval_table(points, boot)
    assert set(shown) <= set(intervals.index)
    pairs = ev.comparison_pairs(plan, list(points.index))
    assert pairs, "no run has a reference to be compared with"
    paired = ev.paired_table(points, boot, pairs)
    assert {"diff", "low", "high", "excludes_zero"} <= set(paired.columns)
    figs.paired_differences(paired)
    seeds = ev.seed_summary(points, plan)
    if len(seeds):
        ev.format_seeds(seeds)
    spearman = ev.spearman_table(decided, truth)
    assert set(shown) <= set(spearman.index)
    figs.uncertainty_vs_margin(decided, evaluation.main_run if evaluation.main_run in set(decided["run"])
                               else shown[-1])

    # notebook 07: the score-ordered figure of the paper's run, from the paper-sized (128 x 256) disc volumes
    decided = ev.decide(test[test["run"] == figure.run], thresholds).reset_index(drop=True)
    assert len(decided) > 0, f"score_figure.yaml run {figure.run!r} has no predictions"
    images = ev.mid_slices(paper_store, decided)
    assert images.shape[1:] == tuple(paper("crops")["volume_size"])
    for task, frame in decided.groupby("task", sort=False):
        rows = ev.evenly_ranked(frame, figure.discs_per_task)
        assert 0 < len(rows) <= figure.discs_per_task
        figs.score_ordered(images[rows.index], rows["score"].to_numpy(), rows["grade"].to_numpy(), task)
    figs.score_distributions(decided, figure.run)
    figs.score_vs_truth(decided, ev.truth_table(*truth_files["score_figure"], figure.extra_truth), figure.run)
    close_figures()
