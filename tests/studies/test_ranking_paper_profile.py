"""The ranking study's paper profile (params/paper/ranking.yaml) runs: every run it plans, one epoch each.

Only sizes and time are shrunk (input 8 × 16 × 12 instead of 128 × 256 × 12; one optimisation step on 8
training discs per run, 6 validation/test discs; CPU, no workers; the 54-view TTA of one run on 2 discs, the
other runs' predictions over 2 of the views); the model width (64), heads, losses, pair budget, schedule, fine-tuned encoder, TTA (54 views) and
the thresholds/evaluation path are the paper profile's own.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pandas as pd

from spinelib.crops import open_store
from spinelib.examples import tiny_ranking_inputs
from spinelib.params.ranking import EvaluationParams, RankingParams, ThresholdsParams
from spinelib.studies import ranking, ranking_eval
from spinelib.tta import tta_views

PAPER = Path(__file__).resolve().parents[2] / "params" / "paper"


def _first_discs(dataset, n: int):
    """The first ``n`` discs of a VolumeDataset (54 views × every run on a whole split is too slow for CI)."""
    small = copy.copy(dataset)
    small.members, small.discs = dataset.members[:n], dataset.discs.iloc[:n]
    return small


def test_every_paper_profile_run_trains_predicts_and_is_evaluated(tmp_path):
    crops, extra, truth = tiny_ranking_inputs()
    p = RankingParams.load(PAPER / "ranking.yaml")
    volumes = p.volumes.replace(extra_tasks_csv=str(extra), split_column="split",
                                input_size=[8, 16])                 # shrunk: 128 x 256 is too slow for CI
    shrunk_phase = {"epochs": 1, "min_epochs": 1, "patience": 1, "batch_size": 8}   # shrunk: one epoch, small batches
    train = p.train.replace(device="cpu", amp=False, num_workers=0, phase1=shrunk_phase, phase2=shrunk_phase)
    full = ranking.load_data(open_store(crops), volumes)
    data = ranking.RankingData(full.tasks, _first_discs(full.train, 8), _first_discs(full.val, 6),
                               _first_discs(full.test, 6), full.train_eval)
    plan = ranking.plan_runs(p.runs, train.seeds)
    assert {r.encoder for r in plan} == {"phase1", "finetune"}      # the paper fine-tunes every run
    assert train.loss.pair_budget == 500 and train.loss.pair_fraction is None
    for spec in plan:
        result = ranking.train_run(data, train, spec, tmp_path, progress=False)
        assert len(result.history) == 1, spec.name
    models = ranking.load_models(train, data.tasks.num_grades, plan, tmp_path)
    assert len({id(m.encoder) for m in models.values()}) == len(plan) - sum(r.encoder == "frozen" for r in plan)
    views = tta_views(p.tta.translate, p.tta.slice_shift, p.tta.flips)
    assert len(views) == 54
    main = {"spineranknet_finetuned": models["spineranknet_finetuned"]}
    full_tta = ranking.predict_tta(main, _first_discs(data.test, 2), data.tasks, views, 8, "cpu", progress=False)
    assert full_tta["score"].notna().all() and (full_tta["score_std"] >= 0).all()
    for split in ("val", "test"):
        ranking.predict_tta(models, getattr(data, split), data.tasks, views[:2], 8, "cpu", progress=False
                            ).to_csv(tmp_path / f"predictions_{split}.csv", index=False)
    # notebook 05 and 06 with the paper profile's thresholds and evaluation settings
    method = ThresholdsParams.load(PAPER / "thresholds.yaml").method
    val = ranking_eval.with_thresholded(pd.read_csv(tmp_path / "predictions_val.csv"))
    cuts = ranking_eval.fit_all_thresholds(val, method)
    test = ranking_eval.with_thresholded(pd.read_csv(tmp_path / "predictions_test.csv"))
    decided = ranking_eval.decide(test, cuts)
    latent = ranking_eval.truth_table(str(truth), str(extra), p.extra_truth)
    points, boot = ranking_eval.run_bootstrap(decided, latent, n_boot=20, seed=0)
    runs_file = tmp_path / "runs.json"
    ranking.write_plan(plan, runs_file)
    pairs = ranking_eval.comparison_pairs(ranking.read_plan(runs_file), list(points.index))
    assert ("spineranknet_finetuned", "ce_continued") in pairs
    evaluation = EvaluationParams.load(PAPER / "evaluation.yaml")
    assert set(evaluation.table_runs) <= set(points.index), set(evaluation.table_runs) - set(points.index)
    assert not ranking_eval.paired_table(points, boot, pairs).empty
    json.dumps(cuts.to_dict(orient="records"))
