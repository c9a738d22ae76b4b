"""Tiny inputs for notebooks run with their parameters-cell defaults (what the notebook tests do).

A notebook whose input paths are left empty builds what it needs here, in a
temporary folder, in seconds: a few-study phantom, its crop store, encoders
pretrained for one epoch. The DVC stages always pass real paths from params/.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pandas as pd

from spinelib.crops.extract import extract_crops
from spinelib.crops.plan import CropConfig
from spinelib.paths import data_root_or_tiny_phantom

TINY_CROPS = CropConfig(volume_slices=4, volume_size=(32, 64), bag_scale=0.25, loc_size=(64, 64))
TINY_PRETRAIN = {"condition": "spinal_canal_stenosis", "input_size": 32, "views": 2, "temperature": 0.1,
                 "epochs": 1, "batch_size": 16, "lr": 1e-3, "lr_min": 0.0, "weight_decay": 1e-4, "grad_clip": 1.0,
                 "hidden_dim": 64, "projection_dim": 32, "crop_scale": [0.8, 1.0], "rotation": 15,
                 "brightness": 0.2, "contrast": 0.2, "seed": 0, "num_workers": 0, "device": "cpu", "amp": False,
                 "channels_last": False}


def tiny_crop_store(studies: int = 12) -> Path:
    """A crop store of a ``studies``-study phantom in a temporary folder."""
    root = data_root_or_tiny_phantom("", studies=studies)
    out = Path(tempfile.mkdtemp(prefix="spinelib-crops-"))
    extract_crops(root, out, TINY_CROPS, fractions=(0.5, 0.25, 0.25), progress=False)
    return out


def tiny_encoders(crops_dir: Path, split_columns: list[str]) -> Path:
    """Encoders pretrained for one epoch per split column, in a temporary folder."""
    from spinelib.studies.contrastive import pretrain

    out = Path(tempfile.mkdtemp(prefix="spinelib-encoders-"))
    for split_column in split_columns:
        pretrain(TINY_PRETRAIN, crops_dir, out, split_column, progress=False)
    return out


TINY_VOLUMES = {"split_column": "split", "tasks": {"spinal_canal_stenosis": 3, "left_neural_foraminal_narrowing": 3,
                                                   "right_neural_foraminal_narrowing": 3, "pfirrmann": 5,
                                                   "disc_narrowing": 4},
                "extra_tasks_csv": "", "first_grade": {"pfirrmann": 1},
                "masked": {"Sagittal T1": ["pfirrmann", "disc_narrowing"]},
                "train_series": ["Sagittal T2/STIR", "Sagittal T1"], "eval_series": ["Sagittal T2/STIR"],
                "field": [24, 48], "input_size": [16, 32], "max_slice_shift": 1, "flip_p": 0.5,
                "intensity_offset": 0.1, "translate": [4, 3], "scale": 0.1, "rotation": 15}
TINY_RANKING = {"seed": 0, "seeds": [0, 1], "base_width": 4, "head_input": "embedding", "head_hidden": 16,
                "soft_clamp_beta": 5.0,
                "phase1": {"epochs": 1, "min_epochs": 1, "patience": 1, "batch_size": 8, "lr": 1e-3,
                           "weight_decay": 1e-4},
                "phase2": {"epochs": 1, "min_epochs": 1, "patience": 1, "batch_size": 8, "lr": 1e-3,
                           "encoder_lr": 1e-4, "weight_decay": 1e-4, "min_lr": 1e-6},
                "loss": {"scale": 10.0, "m_base": 0.5, "m_scale": 1.5, "lambda_dis": 1.0, "lambda_sim": 0.25,
                         "hard_fraction": 0.7, "pair_fraction": 0.5, "pair_budget": None, "severity_weight": True,
                         "adaptive_margin": True, "fixed_margin": 1.0, "task_reduction": "sum", "svm_margin": 1.0,
                         "ranknet_sigma": 1.0},
                "grad_clip": None, "num_workers": 0, "device": "cpu", "amp": False, "channels_last": False}
TINY_RUNS = {"finetuned": ["ce", "spineranknet"], "frozen": ["corn", "mae", "ranknet", "deep_rank_svm", "spineranknet"],
             "ablation_encoder": "frozen", "ablation_heads": ["kan"],
             "loss_ablations": {"no_similarity": {"lambda_sim": 0.0}}}
TINY_EXTRA_TRUTH = {"pfirrmann": "pfirrmann_score", "disc_narrowing": "height_loss"}   # latent behind each extra task
TINY_TTA = {"translate": 2, "slice_shift": 1, "flips": True, "batch_size": 32}


def tiny_ranking_inputs() -> tuple[Path, Path, Path]:
    """(crop store, extra-task CSV, truth CSV) of a tiny phantom."""
    crops = tiny_crop_store()
    from spinelib.crops import open_store

    root = Path(open_store(crops).config()["data_root"])
    return crops, root / "phantom_extra_tasks.csv", root / "phantom_truth.csv"


def tiny_ranking_run(runs: dict | None = None, method: str = "coordinate_descent") -> dict[str, Path]:
    """Notebook 04 in miniature: one epoch per run, TTA predictions, the pixel probe and validation
    thresholds, in a temp folder.

    Notebooks 05–07 each need one; inside a test session (whose temporary folder, made by
    tests/conftest.py, is removed after the run) the first call with the default runs leaves its result
    there and later calls reuse it (the files are only read).
    """
    import json

    session = Path(tempfile.gettempdir())
    cache = session / "spinelib-tiny-ranking.json"
    reusable = runs is None and method == "coordinate_descent" and session.name.startswith("spinelib-tests-")
    if reusable and cache.is_file():
        cached = {k: Path(v) for k, v in json.loads(cache.read_text()).items()}
        if all(p.exists() for p in cached.values()):
            return cached
    result = _tiny_ranking_run(runs, method)
    if reusable:
        cache.write_text(json.dumps({k: str(v) for k, v in result.items()}))  # written last: only complete runs
    return result


def _tiny_ranking_run(runs: dict | None, method: str) -> dict[str, Path]:
    import json

    from spinelib import instrument
    from spinelib.crops import open_store
    from spinelib.studies import ranking, ranking_eval
    from spinelib.tta import tta_views

    crops, extra, truth = tiny_ranking_inputs()
    out = Path(tempfile.mkdtemp(prefix="spinelib-ranking-"))
    data = ranking.load_data(open_store(crops), {**TINY_VOLUMES, "extra_tasks_csv": str(extra)})
    plan = ranking.plan_runs(runs or TINY_RUNS, TINY_RANKING["seeds"])
    for spec in plan:
        ranking.train_run(data, TINY_RANKING, spec, out, progress=False)
    ranking.write_plan(plan, out / "runs.json")
    models = ranking.load_models(TINY_RANKING, data.tasks.num_grades, plan, out)
    for split in ("val", "test"):
        predictions = ranking.predict_tta(models, getattr(data, split), data.tasks, tta_views(2), progress=False)
        predictions.to_csv(out / f"predictions_{split}.csv", index=False)
    latent = ranking_eval.truth_table(str(truth), str(extra), TINY_EXTRA_TRUTH)
    instrument.reference_scores(data.train_eval, {"val": data.val, "test": data.test}, latent, pd.read_csv(extra),
                                data.tasks.names).to_csv(out / "reference_scores.csv", index=False)
    val = ranking_eval.with_thresholded(pd.read_csv(out / "predictions_val.csv"))
    thresholds = ranking_eval.fit_all_thresholds(val, method)
    (out / "thresholds.json").write_text(json.dumps(thresholds.to_dict(orient="records")))
    return {"crops": crops, "extra": extra, "truth": truth, "run": out}

