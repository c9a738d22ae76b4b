"""The ranking stage: objective losses dispatch, decisions, TTA with the left/right swap, thresholds in tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from spinelib.datasets.discs import VolumeDataset
from spinelib.models import OrdinalModel
from spinelib.params.ranking import RankingParams
from spinelib.studies import ranking
from spinelib.tasks import TaskSet
from spinelib.tta import View


class HalfMeans(nn.Module):
    """z = (mean of the first half of the slices, mean of the second half): sees left from right."""

    feature_dim = 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d = x.shape[2] // 2
        return torch.stack([x[:, 0, :d].mean(dim=(1, 2, 3)), x[:, 0, d:].mean(dim=(1, 2, 3))], dim=1)


def _model(tasks: TaskSet) -> OrdinalModel:
    model = OrdinalModel(HalfMeans(), tasks.num_grades, "mae", head="linear", beta=1.0)
    with torch.no_grad():
        for head, weights in zip(model.rank_heads, ([1.0, 0.0], [0.0, 1.0])):   # left head sees slices 0..d-1
            head.weight.copy_(torch.tensor([weights]) * 4)
            head.bias.zero_()
    return model


def _dataset(volumes: torch.Tensor, tasks: TaskSet) -> VolumeDataset:
    data = VolumeDataset.__new__(VolumeDataset)
    data.volumes = (volumes * 255).to(torch.uint8)
    data.grades = torch.zeros(len(volumes), len(tasks.names), dtype=torch.long)
    data.members = [np.array([i]) for i in range(len(volumes))]
    data.rows = pd.DataFrame({"study_id": range(len(volumes)), "level": "l1_l2",
                              "series_description": "Sagittal T2/STIR"})
    data.discs, data.sample_series, data.augment = data.rows[["study_id", "level"]], False, None
    return data


def test_flipped_views_are_mirrored_back_before_averaging():
    tasks = TaskSet(("left_x", "right_x"), (3, 3))
    volumes = torch.zeros(3, 4, 2, 2)
    volumes[:, :2] = torch.tensor([0.2, 0.5, 0.9])[:, None, None, None]     # bright on the "left" slices
    data, model = _dataset(volumes, tasks), _model(tasks)
    views = [View(False, 0, 0, 0), View(True, 0, 0, 0)]
    out = ranking.predict_tta({"m": model}, data, tasks, views, device="cpu", progress=False)
    assert np.allclose(out["score_std"], 0, atol=1e-3)            # a mirrored patient gets the same left/right scores
    left = out[out["task"] == "left_x"]["score"].to_numpy()
    right = out[out["task"] == "right_x"]["score"].to_numpy()
    assert (left > right).all()
    unswapped_tasks = TaskSet(("a_x", "b_x"), (3, 3))               # no left/right names: no swap, views disagree
    out = ranking.predict_tta({"m": model}, data, unswapped_tasks, views, device="cpu", progress=False)
    assert (out["score_std"] > 0.1).all()


def test_class_decisions():
    boundary = np.array([[0.9, 0.6], [0.4, 0.1], [0.7, 0.2]])
    assert ranking.class_decision(boundary, "corn").tolist() == [2, 0, 1]
    # class probabilities: [0.1, 0.3, 0.6], [0.6, 0.3, 0.1], [0.3, 0.5, 0.2]
    assert ranking.class_decision(boundary, "ce").tolist() == [2, 0, 1]


@pytest.mark.parametrize("objective", ["ce", "corn", "mae", "ranknet", "deep_rank_svm", "spineranknet"])
def test_every_objective_trains_a_step(objective):
    from spinelib.models import resnet3d18

    torch.manual_seed(0)
    model = OrdinalModel(resnet3d18(1, 4), [3, 5], objective)
    x, grades = torch.rand(6, 1, 4, 16, 16), torch.tensor([[0, 1], [1, 4], [2, -1], [0, 0], [1, 2], [-1, 3]])
    loss = ranking.objective_loss(model(x), grades, objective, [3, 5], RankingParams.tiny().train.loss,
                                  [torch.ones(3), torch.ones(5)])
    loss.backward()
    assert torch.isfinite(loss) and any(p.grad is not None for p in model.objective_parameters())


# --- the runs of the study --------------------------------------------------------------------------------------

# the tiny profile's runs (finetuned: ce, spineranknet; ablation_heads: kan; loss_ablations: no_similarity),
# with two frozen objectives only
RUNS = RankingParams.tiny().runs.replace(frozen=["corn", "spineranknet"])


def test_plan_names_every_run_and_its_phase1_source():
    plan = {r.name: r for r in ranking.plan_runs(RUNS, [0, 3])}
    assert list(plan) == ["ce", "ce_seed3", "ce_continued", "spineranknet_finetuned", "ce_continued_seed3",
                          "spineranknet_finetuned_seed3", "corn", "spineranknet", "spineranknet_kan",
                          "spineranknet_no_similarity"]
    assert plan["spineranknet_finetuned_seed3"].phase1 == "ce_seed3"
    assert plan["spineranknet_finetuned_seed3"].encoder == "finetune"
    assert plan["corn"].encoder == "frozen" and plan["corn"].phase1 == "ce"
    assert plan["spineranknet_no_similarity"].loss == {"lambda_sim": 0.0}
    with pytest.raises(ValueError, match="phase 1 itself"):
        ranking.plan_runs(RUNS.replace(frozen=["ce"]), [0])
    with pytest.raises(ValueError, match="share a name"):
        ranking.plan_runs(RUNS.replace(ablation_heads=["no_similarity"]), [0])
    assert plan["spineranknet_kan"].reference == "spineranknet"
    with pytest.raises(ValueError, match="compared with 'spineranknet_finetuned'"):
        ranking.plan_runs(RUNS.replace(ablation_encoder="finetune", finetuned=["ce"]), [0])


def _save(model: torch.nn.Module, folder) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    torch.save({"model": model.state_dict()}, folder / "best.pt")


def _checkpoints(tmp_path, training, num_grades: tuple[int, ...]):
    """Phase-1 weights, two fine-tuned runs whose encoders moved apart, and a frozen run (phase 1's encoder)."""
    from spinelib.models import resnet3d18

    torch.manual_seed(0)
    phase1 = OrdinalModel(resnet3d18(1, training.base_width), num_grades, "ce")
    _save(phase1, tmp_path / "ce")
    runs = RankingParams.tiny().runs.replace(finetuned=["ce", "spineranknet"], frozen=["spineranknet"],
                                             ablation_encoder="frozen", ablation_heads=[], loss_ablations={})
    plan = {r.name: r for r in ranking.plan_runs(runs, [0])}
    for name, shift in (("ce_continued", 0.05), ("spineranknet_finetuned", -0.05), ("spineranknet", 0.0)):
        model = ranking.build_model(training, num_grades, plan[name], tmp_path)
        with torch.no_grad():
            for p in model.encoder.parameters():
                p.add_(shift)
        _save(model, tmp_path / name)
    return list(plan.values())


def test_fine_tuned_runs_are_loaded_with_their_own_encoders(tmp_path):
    # The defect this guards: loading runs into one shared encoder overwrote it with the last run's weights.
    training = RankingParams.tiny().train
    num_grades = (3, 5)
    plan = _checkpoints(tmp_path, training, num_grades)
    models = ranking.load_models(training, num_grades, plan, tmp_path)
    for name in ("ce", "ce_continued", "spineranknet_finetuned", "spineranknet"):
        saved = torch.load(tmp_path / name / "best.pt", weights_only=True)["model"]
        loaded = models[name].state_dict()
        assert all(torch.equal(loaded[k], saved[k]) for k in saved), name
    assert models["ce_continued"].encoder is not models["spineranknet_finetuned"].encoder
    assert models["spineranknet"].encoder is models["ce"].encoder          # frozen: one shared forward pass
    x = torch.rand(2, 1, 4, 16, 16)
    z = {name: models[name].encoder(x) for name in ("ce", "ce_continued", "spineranknet_finetuned")}
    assert not torch.allclose(z["ce_continued"], z["spineranknet_finetuned"])
    assert not torch.allclose(z["ce"], z["ce_continued"])


def test_a_frozen_run_whose_encoder_moved_is_refused(tmp_path):
    training = RankingParams.tiny().train
    num_grades = (3, 5)
    plan = _checkpoints(tmp_path, training, num_grades)
    frozen = next(r for r in plan if r.name == "spineranknet")
    model = ranking.build_model(training, num_grades, frozen, tmp_path)
    with torch.no_grad():
        next(model.encoder.parameters()).add_(1.0)
    _save(model, tmp_path / "spineranknet")
    with pytest.raises(ValueError, match="marked frozen"):
        ranking.load_models(training, num_grades, plan, tmp_path)


def test_loss_ablation_keys_change_the_spineranknet_loss():
    torch.manual_seed(0)
    scores = torch.rand(8, 2) * 10
    grades = torch.tensor([[0, 1], [1, 4], [2, 0], [0, 3], [1, 2], [2, 2], [0, 1], [1, 0]])
    out = {"score": scores}
    base = RankingParams.tiny().train.loss.replace(hard_fraction=None)
    full = ranking.objective_loss(out, grades, "spineranknet", [3, 5], base)
    for change in ({"severity_weight": False}, {"adaptive_margin": False, "fixed_margin": 3.0}, {"lambda_sim": 0.0}):
        assert not torch.isclose(ranking.objective_loss(out, grades, "spineranknet", [3, 5], base.replace(**change)),
                                 full), change


def test_fine_tuning_needs_an_encoder_rate(tmp_path):
    tiny = RankingParams.tiny()
    runs = tiny.runs.replace(finetuned=["spineranknet"], frozen=[], ablation_encoder="frozen", ablation_heads=[],
                             loss_ablations={})
    spec = ranking.plan_runs(runs, [0])[1]
    training = tiny.train.replace(phase2={"encoder_lr": 0.0})
    with pytest.raises(ValueError, match="encoder_lr"):
        ranking.train_phase2(None, training, spec, tmp_path)
