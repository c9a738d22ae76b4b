"""The ranking stage: objective losses dispatch, decisions, TTA with the left/right swap, thresholds in tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from spinelib.datasets import VolumeDataset
from spinelib.models import OrdinalModel
from spinelib.stages import ranking
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
    from spinelib.examples import TINY_RANKING
    from spinelib.models import resnet3d18

    torch.manual_seed(0)
    model = OrdinalModel(resnet3d18(1, 4), [3, 5], objective)
    x, grades = torch.rand(6, 1, 4, 16, 16), torch.tensor([[0, 1], [1, 4], [2, -1], [0, 0], [1, 2], [-1, 3]])
    loss = ranking.objective_loss(model(x), grades, objective, [3, 5], TINY_RANKING["loss"],
                                  [torch.ones(3), torch.ones(5)])
    loss.backward()
    assert torch.isfinite(loss) and any(p.grad is not None for p in model.objective_parameters())
