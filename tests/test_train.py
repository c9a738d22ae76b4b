"""The shared training loop: convergence, determinism, exact resume, early stopping, clipping, checkpoints."""

from __future__ import annotations

import io
import shutil

import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from spinelib.train import FitResult, TrainConfig, fit, load_checkpoint, make_loader

METRICS = ["epoch", "train_loss", "lr_0", "lr_1", "val_loss"]


class NoisyLine(Dataset):
    """y = x . (1, -2, 3, 0.5) on 32 fixed points; each read adds fresh input noise (an 'augmentation')."""

    def __init__(self, n: int = 32):
        g = torch.Generator().manual_seed(7)
        self.x = torch.randn(n, 4, generator=g)
        self.y = self.x @ torch.tensor([1.0, -2.0, 3.0, 0.5])

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x[i] + 0.05 * torch.randn(4), self.y[i]


class Regression:
    """Mean squared error; validation reports the mean batch loss."""

    def train_step(self, model: nn.Module, batch, device: torch.device) -> torch.Tensor:
        x, y = batch
        return F.mse_loss(model(x.to(device)).squeeze(-1), y.to(device))

    def evaluate(self, model: nn.Module, loader, device: torch.device) -> dict[str, float]:
        losses = [self.train_step(model, batch, device).item() for batch in loader]
        return {"val_loss": sum(losses) / len(losses)}


class Interrupted(Exception):
    """Stands for a killed process."""


class ScoredRegression(Regression):
    """Adds a scripted ``val_score`` per epoch (from ``start``, the epochs already done); optionally raises
    ``Interrupted`` at train step ``stop_at`` of this process (0-based; NoisyLine in batches of 8: 4 steps an epoch)."""

    def __init__(self, score: list[float], start: int = 0, stop_at: int | None = None):
        self.score, self.epoch, self.stop_at, self.steps = score, start, stop_at, 0

    def train_step(self, model: nn.Module, batch, device: torch.device) -> torch.Tensor:
        if model.training:  # not the validation batches (evaluate calls train_step too)
            if self.steps == self.stop_at:
                raise Interrupted
            self.steps += 1
        return super().train_step(model, batch, device)

    def evaluate(self, model: nn.Module, loader, device: torch.device) -> dict[str, float]:
        self.epoch += 1
        return {**super().evaluate(model, loader, device), "val_score": self.score[self.epoch - 1]}


def net(width: int = 16) -> nn.Module:
    torch.manual_seed(123)
    return nn.Sequential(nn.Linear(4, width), nn.ReLU(), nn.Dropout(0.2), nn.Linear(width, 1))


def train(epochs: int, checkpoint_dir=None, seed: int = 0, num_workers: int = 0, task: Regression | None = None,
          monitor: str = "val_loss", mode: str = "min") -> tuple[FitResult, nn.Module]:
    """A fresh model/optimiser/scheduler each call, as a new process would build them."""
    model = net()
    optimizer = torch.optim.Adam([{"params": model[0].parameters()}, {"params": model[3].parameters(), "lr": 0.01}],
                                 lr=0.05)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.9)
    data = NoisyLine()
    loaders = (make_loader(data, 8, shuffle=True, seed=seed, num_workers=num_workers),
               make_loader(data, 16, shuffle=False))
    config = TrainConfig(epochs=epochs, seed=seed, checkpoint_dir=checkpoint_dir, monitor=monitor, mode=mode,
                         progress=False)
    return fit(model, task or Regression(), *loaders, optimizer, config, scheduler), model


def same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    # compared on the CPU: on a CUDA machine ``fit`` leaves the model there while its best state is a CPU copy
    return a.keys() == b.keys() and all(torch.equal(a[k].cpu(), b[k].cpu()) for k in a)


def test_converges_and_writes_history(tmp_path):
    result, _ = train(8, tmp_path)
    history = result.history
    assert list(history.columns) == [*METRICS, "seconds"]
    assert history["epoch"].tolist() == list(range(1, 9))
    assert history["train_loss"].iloc[-1] < 0.2 * history["train_loss"].iloc[0]
    assert history["lr_0"].iloc[1] == pytest.approx(0.05 * 0.9) and history["lr_1"].iloc[0] == 0.01
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "history.csv")[METRICS], history[METRICS])
    assert result.best_metric == history["val_loss"].min()
    assert result.best_epoch == history["val_loss"].idxmin() + 1


def test_same_seed_same_run_other_seed_differs():
    (a, model_a), (b, model_b), (c, _) = train(3), train(3), train(3, seed=1)
    pd.testing.assert_frame_equal(a.history[METRICS], b.history[METRICS])
    assert same_weights(model_a.state_dict(), model_b.state_dict())
    assert not a.history["train_loss"].equals(c.history["train_loss"])


RESUME_SCORE = [0.1, 0.5, 0.3, 0.6, 0.2]  # monitored in mode max: epochs 1, 2 and 4 improve, 3 and 5 do not


def scored_train(checkpoint_dir, start: int = 0, stop_at: int | None = None, num_workers: int = 0):
    return train(5, checkpoint_dir, num_workers=num_workers, task=ScoredRegression(RESUME_SCORE, start, stop_at),
                 monitor="val_score", mode="max")


def interrupt(checkpoint_dir, cut: int, start: int = 0, num_workers: int = 0) -> None:
    """Run (from epoch ``start``) until the middle of epoch ``cut + 1`` and die there: last.pt holds epoch ``cut``."""
    with pytest.raises(Interrupted):
        scored_train(checkpoint_dir, start, stop_at=4 * (cut - start) + 2, num_workers=num_workers)


def assert_same_run(a: tuple[FitResult, nn.Module], b: tuple[FitResult, nn.Module]) -> None:
    (result_a, model_a), (result_b, model_b) = a, b
    pd.testing.assert_frame_equal(result_a.history.drop(columns="seconds"), result_b.history.drop(columns="seconds"))
    assert same_weights(model_a.state_dict(), model_b.state_dict())
    assert same_weights(result_a.best_state, result_b.best_state)
    assert (result_a.best_epoch, result_a.best_metric) == (result_b.best_epoch, result_b.best_metric)


@pytest.mark.parametrize(("num_workers", "cut"), [(0, 2), (0, 3), (2, 3)])
def test_resume_reproduces_the_uninterrupted_run(tmp_path, num_workers, cut):
    """Killed after an epoch that improved the monitored value (cut 2) or one that did not (cut 3)."""
    full = scored_train(tmp_path / "full", num_workers=num_workers)
    assert full[0].best_epoch == 4
    interrupt(tmp_path / "cut", cut, num_workers=num_workers)
    last = torch.load(tmp_path / "cut" / "last.pt", weights_only=True)
    assert last["epoch"] == cut and last["best_epoch"] == 2 and last["optimizer"] is not None
    assert "best_state" not in last and not last.get("finished")  # the best weights are only in best.pt
    assert torch.load(tmp_path / "cut" / "best.pt", weights_only=True)["epoch"] == 2
    resumed = scored_train(tmp_path / "cut", start=cut, num_workers=num_workers)
    assert_same_run(resumed, full)
    again = scored_train(tmp_path / "cut", start=5, num_workers=num_workers)  # finished: a no-op
    pd.testing.assert_frame_equal(again[0].history, resumed[0].history)
    assert same_weights(again[0].best_state, full[0].best_state)
    assert same_weights(again[1].state_dict(), full[0].best_state)  # the finished marker keeps no last weights


def test_resume_between_last_and_best_and_without_best(tmp_path):
    """last.pt is written before best.pt: a run killed between the two finds the best weights in last.pt."""
    full = scored_train(tmp_path / "full")
    interrupt(tmp_path / "cut", 3)
    shutil.copy(tmp_path / "cut" / "best.pt", tmp_path / "best_of_epoch_2.pt")
    interrupt(tmp_path / "cut", 4, start=3)
    shutil.copy(tmp_path / "best_of_epoch_2.pt", tmp_path / "cut" / "best.pt")  # as if killed before best.pt
    resumed = scored_train(tmp_path / "cut", start=4)
    assert_same_run(resumed, full)
    assert torch.load(tmp_path / "cut" / "best.pt", weights_only=True)["epoch"] == 4  # rewritten

    interrupt(tmp_path / "lost", 3)
    (tmp_path / "lost" / "best.pt").unlink()
    with pytest.raises(ValueError, match="best.pt is missing, but .* names epoch 2"):
        scored_train(tmp_path / "lost", start=3)


def _size(obj) -> int:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.tell()


def test_a_finished_run_keeps_a_slim_last_checkpoint(tmp_path):
    def run() -> tuple[FitResult, nn.Module, torch.optim.Optimizer]:
        model = net(width=2048)
        optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
        loader = make_loader(NoisyLine(), 8, shuffle=True)
        config = TrainConfig(epochs=2, checkpoint_dir=tmp_path, progress=False)
        return fit(model, Regression(), loader, loader, optimizer, config), model, optimizer

    result, _, _ = run()
    last = torch.load(tmp_path / "last.pt", weights_only=True)
    assert last["finished"] is True and last["epoch"] == 2
    assert not {"model", "optimizer", "scheduler", "scaler", "best_state"} & set(last)  # one copy: best.pt
    assert (last["best_epoch"], last["best_metric"]) == (result.best_epoch, result.best_metric)
    best = torch.load(tmp_path / "best.pt", weights_only=True)
    assert (tmp_path / "last.pt").stat().st_size < 0.5 * _size(best["model"])  # progress and RNG state only
    again, again_model, _ = run()
    pd.testing.assert_frame_equal(again.history, result.history)  # seconds too: nothing was trained again
    assert (again.best_epoch, again.best_metric) == (result.best_epoch, result.best_metric)
    assert same_weights(again.best_state, result.best_state)
    assert same_weights(again_model.state_dict(), result.best_state)  # a finished folder restores the best weights


def test_a_finished_run_cannot_train_on(tmp_path):
    train(2, tmp_path)
    with pytest.raises(ValueError, match="finished run of 2 epochs"):
        train(3, tmp_path)
    assert len(train(2, tmp_path)[0].history) == 2


class Scripted(Regression):
    """Validation metrics read from a script, one value per epoch; remembers the weights after each epoch."""

    def __init__(self, score: list[float]):
        self.score, self.weights = score, []

    def evaluate(self, model: nn.Module, loader, device: torch.device) -> dict[str, float]:
        self.weights.append({k: v.clone() for k, v in model.state_dict().items()})
        epoch = len(self.weights)
        return {"val_loss": 1.0 / epoch, "val_score": self.score[epoch - 1]}


def scripted_fit(score: list[float], patience: int | None, min_epochs: int = 0, scheduler: bool = False):
    model = net()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    plateau = (torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="max", patience=1, factor=0.1)
               if scheduler else None)
    task = Scripted(score)
    loader = make_loader(NoisyLine(8), 4, shuffle=True)
    config = TrainConfig(epochs=len(score), monitor="val_score", mode="max", patience=patience,
                         min_epochs=min_epochs, progress=False)
    return fit(model, task, loader, loader, optimizer, config, plateau), task


SCORE = [0.1, 0.2, 0.5, 0.4, 0.3, 0.45, 0.2, 0.1, 0.1, 0.1]  # best at epoch 3


def test_early_stopping_after_patience_keeps_the_best_weights():
    result, task = scripted_fit(SCORE, patience=2)
    assert result.history["epoch"].tolist() == [1, 2, 3, 4, 5]
    assert (result.best_epoch, result.best_metric) == (3, 0.5)
    assert same_weights(result.best_state, task.weights[2])
    assert not same_weights(result.best_state, task.weights[4])


def test_early_stopping_waits_for_min_epochs():
    result, _ = scripted_fit(SCORE, patience=2, min_epochs=7)
    assert len(result.history) == 7 and result.best_epoch == 3


def test_plateau_scheduler_steps_on_the_monitored_metric():
    result, _ = scripted_fit(SCORE[:7], patience=None, scheduler=True)
    # val_loss improves every epoch; val_score (monitored, mode max) stalls after epoch 3 -> two bad epochs
    assert result.history["lr_0"].tolist() == pytest.approx([0.01] * 5 + [0.001] * 2)


class HugeLoss(Regression):
    def train_step(self, model: nn.Module, batch, device: torch.device) -> torch.Tensor:
        return 1e6 * model(batch[0].to(device)).sum()


@pytest.mark.parametrize("clip", [1.0, None])
def test_grad_clipping_bounds_the_update(clip):
    model = net()
    before = torch.cat([p.detach().flatten().clone() for p in model.parameters()])
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    loader = make_loader(NoisyLine(4), 4, shuffle=False)  # one batch: one step
    fit(model, HugeLoss(), loader, None, optimizer,
        TrainConfig(epochs=1, grad_clip=clip, monitor="train_loss", progress=False))
    step = torch.cat([p.detach().cpu().flatten() for p in model.parameters()]) - before  # fit may move it to CUDA
    assert (step.norm() <= 1.0 + 1e-4) == (clip is not None)


def test_load_checkpoint_is_strict_and_names_keys(tmp_path):
    result, _ = train(1, tmp_path)
    model = net()
    checkpoint = load_checkpoint(tmp_path / "best.pt", model)
    assert checkpoint["epoch"] == result.best_epoch
    assert same_weights(model.state_dict(), result.best_state)
    other = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 1))
    with pytest.raises(KeyError, match=r"missing keys \['2.bias', '2.weight'\].*unexpected keys \['3.bias'"):
        load_checkpoint(tmp_path / "best.pt", other)
    with pytest.raises(KeyError, match="no optimizer state"):
        load_checkpoint(tmp_path / "best.pt", net(), torch.optim.SGD(net().parameters(), lr=0.1))


def test_resume_refuses_another_seed(tmp_path):
    train(1, tmp_path)
    with pytest.raises(ValueError, match="seed"):
        train(2, tmp_path, seed=5)


def test_non_finite_loss_fails_loudly():
    class NanLoss(Regression):
        def train_step(self, model, batch, device):
            return model(batch[0].to(device)).sum() * float("nan")

    model = net()
    with pytest.raises(FloatingPointError, match="epoch 1"):
        fit(model, NanLoss(), make_loader(NoisyLine(4), 4, shuffle=False), None,
            torch.optim.SGD(model.parameters(), lr=0.1), TrainConfig(epochs=1, monitor="train_loss", progress=False))


def test_loader_order_depends_only_on_seed_and_epoch():
    def order(seed: int, epoch: int) -> list[int]:
        loader = make_loader(list(range(10)), 10, shuffle=True, seed=seed)
        loader.sampler.set_epoch(epoch)
        return next(iter(loader)).tolist()

    assert order(0, 3) == order(0, 3) and sorted(order(0, 3)) == list(range(10))
    assert order(0, 3) != order(0, 4) and order(0, 3) != order(1, 3)


def test_every_epoch_draws_a_new_order():
    class Order(Regression):
        def __init__(self):
            self.batches = []

        def train_step(self, model, batch, device):
            self.batches.append(batch[1].tolist())
            return super().train_step(model, batch, device)

    model, task, data = net(), Order(), NoisyLine(6)
    fit(model, task, make_loader(data, 6, shuffle=True), None, torch.optim.SGD(model.parameters(), lr=0.01),
        TrainConfig(epochs=3, monitor="train_loss", progress=False))
    assert all(sorted(b) == sorted(data.y.tolist()) for b in task.batches)
    assert task.batches[0] != task.batches[1] != task.batches[2]
