"""Tiny inputs for notebooks run with their parameters-cell defaults (what the notebook tests do).

A notebook whose input paths are left empty builds what it needs here, in a
temporary folder, in seconds: a few-study phantom, its crop store, encoders
pretrained for one epoch. The DVC stages always pass real paths from params/.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from spinelib.crops.extract import extract_crops
from spinelib.params.data import CropsParams
from spinelib.paths import data_root_or_tiny_phantom

if TYPE_CHECKING:   # annotations only: the ranking params load with the study, when a ranking run is asked for
    from spinelib.params.ranking import RunsParams

# the crop store of notebooks 02, 03, 08 and 09's tests: notebook 01's CPU profile, smaller where it costs time
TINY_CROPS = CropsParams().replace(volume_slices=4, volume_size=[32, 64], bag_scale=0.25,
                                   loc_size=[64, 64]).crop_config()


def tiny_crop_store(studies: int = 12) -> Path:
    """A crop store of a ``studies``-study phantom in a temporary folder."""
    root = data_root_or_tiny_phantom("", studies=studies)
    out = Path(tempfile.mkdtemp(prefix="spinelib-crops-"))
    extract_crops(root, out, TINY_CROPS, fractions=(0.5, 0.25, 0.25), progress=False)
    return out


def tiny_encoders(crops_dir: Path, split_columns: list[str]) -> Path:
    """Encoders pretrained for one epoch per split column, in a temporary folder.

    Notebook 02's tiny profile (:meth:`ContrastiveParams.tiny`), with two views per disc and on the CPU without
    AMP: the cheapest run that still writes an encoder notebook 03 can load.
    """
    from spinelib.params.contrastive import ContrastiveParams
    from spinelib.studies.contrastive import pretrain

    hp = ContrastiveParams.tiny().pretrain.replace(views=2, device="cpu", amp=False, channels_last=False)
    out = Path(tempfile.mkdtemp(prefix="spinelib-encoders-"))
    for split_column in split_columns:
        pretrain(hp, crops_dir, out, split_column, progress=False)
    return out


def tiny_ranking_inputs() -> tuple[Path, Path, Path]:
    """(crop store, extra-task CSV, truth CSV) of a tiny phantom."""
    crops = tiny_crop_store()
    from spinelib.crops import open_store

    root = Path(open_store(crops).config()["data_root"])
    return crops, root / "phantom_extra_tasks.csv", root / "phantom_truth.csv"


def tiny_ranking_run(runs: RunsParams | None = None, method: str = "coordinate_descent") -> dict[str, Path]:
    """Notebook 04 in miniature (its tiny profile, :meth:`RankingParams.tiny`): one epoch per run, TTA
    predictions, the pixel probe and validation thresholds, in a temp folder.

    ``runs`` replaces the tiny profile's runs section. Notebooks 05–07 each need one; inside a test session (whose
    temporary folder, made by tests/conftest.py, is removed after the run) the first call with the default runs
    leaves its result there and later calls reuse it (the files are only read).
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


def _tiny_ranking_run(runs: RunsParams | None, method: str) -> dict[str, Path]:
    """What notebooks 04 and 05 write, for the tiny profile: cohort.json, runs.json, predictions, reference scores,
    thresholds."""
    import json

    from spinelib import instrument
    from spinelib.crops import open_store
    from spinelib.params.ranking import RankingParams
    from spinelib.studies import ranking, ranking_eval
    from spinelib.tta import tta_views

    params = RankingParams.tiny()
    crops, extra, truth = tiny_ranking_inputs()
    out = Path(tempfile.mkdtemp(prefix="spinelib-ranking-"))
    store = open_store(crops)
    ranking_eval.write_cohort(out, ranking_eval.cohort_of_store(str(crops), store.config()))  # as notebook 04 does
    data = ranking.load_data(store, params.volumes.replace(extra_tasks_csv=str(extra)))
    plan = ranking.plan_runs(runs or params.runs, params.train.seeds)
    for spec in plan:
        ranking.train_run(data, params.train, spec, out, progress=False)
    ranking.write_plan(plan, out / "runs.json")
    models = ranking.load_models(params.train, data.tasks.num_grades, plan, out)
    views = tta_views(params.tta.translate, params.tta.slice_shift, params.tta.flips)
    for split in ("val", "test"):
        predictions = ranking.predict_tta(models, getattr(data, split), data.tasks, views, params.tta.batch_size,
                                          progress=False)
        predictions.to_csv(out / f"predictions_{split}.csv", index=False)
    latent = ranking_eval.truth_table(str(truth), str(extra), params.extra_truth)
    instrument.reference_scores(data.train_eval, {"val": data.val, "test": data.test}, latent, pd.read_csv(extra),
                                data.tasks.names).to_csv(out / "reference_scores.csv", index=False)
    val = ranking_eval.with_thresholded(pd.read_csv(out / "predictions_val.csv"))
    thresholds = ranking_eval.fit_all_thresholds(val, method)
    (out / "thresholds.json").write_text(json.dumps(thresholds.to_dict(orient="records")))
    return {"crops": crops, "extra": extra, "truth": truth, "run": out}

