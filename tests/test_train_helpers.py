"""The small steps ``fit`` is made of: the history row, the scheduler step, the best-epoch update, channels-last."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from spinelib.train import _epoch_row, _Progress, _step_scheduler, _update_best, to_channels_last


def test_epoch_row_orders_columns_and_rejects_an_unknown_monitor():
    row, value = _epoch_row(2, 0.5, {"lr_0": 0.1}, {"val_loss": 0.25}, "val_loss")
    assert list(row) == ["epoch", "train_loss", "lr_0", "val_loss"] and row["epoch"] == 3 and value == 0.25
    assert _epoch_row(0, 0.5, {}, {}, "train_loss")[1] == 0.5
    with pytest.raises(KeyError, match="monitor 'seconds' is not among"):  # wall time is never monitorable
        _epoch_row(0, 0.5, {}, {}, "seconds")


def test_step_scheduler_passes_the_monitored_value_to_plateau_only():
    optimizer = torch.optim.SGD(nn.Linear(1, 1).parameters(), lr=1.0)
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, patience=0, factor=0.5)
    _step_scheduler(plateau, 1.0)
    _step_scheduler(plateau, 2.0)  # no improvement in mode min: the rate halves
    assert optimizer.param_groups[0]["lr"] == 0.5
    step = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.1)
    optimizer.step()  # no gradients: no update, but the scheduler no longer warns about the call order
    _step_scheduler(step, float("nan"))  # the value is ignored
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.05)
    _step_scheduler(None, 0.0)  # no scheduler: nothing happens


def test_update_best_keeps_a_cpu_copy_and_never_prefers_nan():
    model, run = nn.Linear(2, 1), _Progress()
    assert _update_best(run, 0, float("nan"), model, "max")  # the first epoch counts, even NaN
    assert (run.best_epoch, math.isnan(run.best_metric)) == (1, True)
    assert _update_best(run, 1, 0.3, model, "max") and (run.best_epoch, run.best_metric) == (2, 0.3)
    with torch.no_grad():
        model.weight.add_(1.0)
    assert not torch.equal(run.best_state["weight"], model.weight)  # a copy, not a view of the training weights
    assert not _update_best(run, 2, float("nan"), model, "max") and run.best_epoch == 2
    assert not _update_best(run, 3, 0.2, model, "max") and _update_best(run, 4, 0.2, model, "min")


class BagModel(nn.Module):
    """A MIL-like model: 5-D bags (B, N, C, h, w) reach a 2-D encoder only after a reshape; a 3-D branch beside it."""

    def __init__(self):
        super().__init__()
        self.encoder = nn.Sequential(nn.Conv2d(2, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 1))
        self.volume = nn.Conv3d(2, 2, 3)

    def forward(self, bags: torch.Tensor) -> torch.Tensor:
        b, n = bags.shape[:2]
        features = self.encoder(bags.reshape(b * n, *bags.shape[2:])).mean(dim=(1, 2, 3)).reshape(b, n)
        return features.sum(1) + self.volume(bags.transpose(1, 2)).mean(dim=(1, 2, 3, 4))


def test_to_channels_last_sets_every_convolution_and_its_input_and_leaves_the_values():
    torch.manual_seed(0)
    model, bags = BagModel(), torch.randn(2, 5, 2, 8, 8)
    expected = model(bags)
    handles = to_channels_last(model)
    seen = {}   # each convolution's input as it arrives (pre-hooks run in order: ours converted it first)
    for name, module in model.named_modules():
        if isinstance(module, (nn.Conv2d, nn.Conv3d)):
            module.register_forward_pre_hook(lambda m, args, name=name: seen.__setitem__(name, args[0]))
    assert torch.allclose(model(bags), expected, atol=1e-6)
    formats = {"encoder.0": torch.channels_last, "encoder.2": torch.channels_last, "volume": torch.channels_last_3d}
    assert set(seen) == set(formats) and len(handles) == 3
    for name, memory_format in formats.items():
        conv = model.get_submodule(name)
        assert conv.weight.is_contiguous(memory_format=memory_format), name
        assert seen[name].is_contiguous(memory_format=memory_format), name
    for handle in handles:
        handle.remove()
    model(bags)
    # without the hooks the reshaped bags reach the encoder as plain NCHW again
    assert seen["encoder.0"].is_contiguous() and not seen["encoder.0"].is_contiguous(memory_format=torch.channels_last)
