"""Notebooks 05–06: thresholded CE/CORN rows, fair reference pairs, paired patient-bootstrap differences, seeds."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from spinelib.params.ranking import RankingParams
from spinelib.studies import ranking, ranking_eval as ev


def _predictions(runs: dict[str, str], n_patients: int = 12, seed: int = 0) -> pd.DataFrame:
    """Two tasks (3 and 4 grades), 5 discs per patient; every run's score = grade + run-specific noise."""
    rng = np.random.default_rng(seed)
    discs = pd.DataFrame([(p, lv) for p in range(n_patients) for lv in ("l1_l2", "l2_l3", "l3_l4", "l4_l5", "l5_s1")],
                         columns=["study_id", "level"])
    frames = []
    grades = {"a": rng.integers(0, 3, len(discs)), "b": rng.integers(0, 4, len(discs))}
    for i, (run, objective) in enumerate(runs.items()):
        for task, k in (("a", 3), ("b", 4)):
            g = grades[task]
            score = g + (0.1 + 0.3 * i) * rng.standard_normal(len(g))
            frame = discs.assign(run=run, objective=objective, series_description="Sagittal T2/STIR", task=task,
                                 num_grades=k, grade=g, score=score, score_std=0.0)
            p = np.clip(np.stack([(score > c + 0.5) * 0.8 + 0.1 for c in range(3)], axis=1), 0, 1)
            for c in range(3):
                frame[f"p_gt_{c}"] = p[:, c] if c < k - 1 else np.nan
            frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def test_thresholded_copies_are_graded_by_thresholds():
    pred = ev.with_thresholded(_predictions({"ce": "ce", "spineranknet": "spineranknet"}))
    assert set(pred["run"]) == {"ce", "spineranknet", "ce_thresholded"}
    cuts = ev.fit_all_thresholds(pred, "coordinate_descent")
    assert set(cuts["run"]) == {"spineranknet", "ce_thresholded"}          # argmax CE needs none
    decided = ev.decide(pred, cuts)
    assert decided.loc[decided["run"] == "ce_thresholded", "margin"].notna().all()
    assert decided.loc[decided["run"] == "ce", "margin"].isna().all()


def test_a_run_against_itself_differs_by_exactly_zero_and_pairs_share_resamples():
    pred = _predictions({"ce": "ce", "spineranknet": "spineranknet"})
    decided = ev.decide(pred, ev.fit_all_thresholds(pred, "coordinate_descent"))
    points, boot = ev.run_bootstrap(decided, n_boot=50, seed=1)
    assert ev.paired_table(points, boot, []).empty
    points.loc["copy"] = points.loc["ce"]
    table = ev.paired_table(points, {**boot, "copy": boot["ce"]}, [("copy", "ce")])
    assert (table["diff"] == 0).all() and (table["low"] == 0).all() and (table["high"] == 0).all()
    assert not table["excludes_zero"].any()
    # the noisier run is worse, and the paired interval says so with these well-separated runs
    table = ev.paired_table(points, boot, [("spineranknet", "ce")])
    mae = table.set_index("metric").loc["mae"]
    assert mae["diff"] > 0 and mae["low"] <= mae["diff"] <= mae["high"]


def test_patient_resampling_keeps_a_patients_discs_together():
    pred = _predictions({"ce": "ce"}, n_patients=6)
    decided = ev.decide(pred, ev.fit_all_thresholds(pred, "coordinate_descent"))
    from spinelib.bootstrap import patient_weights
    weights = patient_weights(decided.drop_duplicates(["study_id", "level"])["study_id"].to_numpy(), 20, 0)
    assert (weights.reshape(20, 6, 5) == weights.reshape(20, 6, 5)[:, :, :1]).all()


def test_reference_pairs_are_the_fair_controls():
    runs = RankingParams.tiny().runs.replace(finetuned=["ce", "spineranknet"], frozen=["corn", "spineranknet"],
                                             ablation_encoder="frozen", ablation_heads=["kan"],
                                             loss_ablations={"no_similarity": {"lambda_sim": 0}})
    plan_specs = ranking.plan_runs(runs, [0, 1])
    plan = pd.DataFrame([{"name": r.name, "objective": r.objective, "encoder": r.encoder, "seed": r.seed,
                          "phase1": r.phase1, "reference": r.reference} for r in plan_specs])
    runs = [r.name for r in plan_specs] + ["ce_thresholded", "corn_thresholded", "ce_continued_thresholded"]
    pairs = set(ev.comparison_pairs(plan, runs))
    assert ("corn", "ce") in pairs and ("spineranknet", "ce") in pairs
    assert ("spineranknet_finetuned", "ce_continued") in pairs
    assert ("spineranknet_finetuned_seed1", "ce_continued_seed1") in pairs
    assert ("spineranknet", "ce_thresholded") in pairs                       # the same decision rule
    assert ("spineranknet_finetuned", "ce_continued_thresholded") in pairs
    assert ("corn", "ce_thresholded") not in pairs                         # CORN is a class objective
    assert ("spineranknet_kan", "spineranknet") in pairs and ("spineranknet_no_similarity", "spineranknet") in pairs
    assert ("ce_thresholded", "ce") in pairs and ("corn_thresholded", "corn") in pairs
    assert ("ce_continued_thresholded", "ce_continued") in pairs
    assert not any(b == a for a, b in pairs)


def test_seed_summary_means_and_spreads_over_seeds():
    plan = pd.DataFrame([{"name": "ce", "objective": "ce", "encoder": "phase1", "seed": 0, "phase1": "ce"},
                         {"name": "ce_seed1", "objective": "ce", "encoder": "phase1", "seed": 1, "phase1": "ce_seed1"},
                         {"name": "corn", "objective": "corn", "encoder": "frozen", "seed": 0, "phase1": "ce"}])
    points = pd.DataFrame({"balanced_accuracy": [0.5, 0.7, 0.9]}, index=["ce", "ce_seed1", "corn"])
    seeds = ev.seed_summary(points, plan)
    assert list(seeds.index) == ["ce"] and seeds.loc["ce", "seeds"] == 2
    assert seeds.loc["ce", "balanced_accuracy_mean"] == pytest.approx(0.6)
    assert seeds.loc["ce", "balanced_accuracy_std"] == pytest.approx(np.std([0.5, 0.7], ddof=1))
    assert ev.format_seeds(seeds).loc["ce", "balanced_accuracy"] == "0.600 ± 0.141"


def test_runs_on_different_discs_cannot_be_paired():
    pred = _predictions({"ce": "ce", "corn": "corn"})
    pred = pred[~((pred["run"] == "corn") & (pred["study_id"] == 0))]
    with pytest.raises(ValueError, match="same test discs"):
        ev.run_bootstrap(ev.decide(pred, pd.DataFrame(columns=["run", "task", "thresholds"])), n_boot=5)
