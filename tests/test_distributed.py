"""torchrun helpers: the single-process fallbacks, and two gloo processes on the CPU (gather, DDP fit)."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pandas as pd
import pytest
import torch
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DistributedSampler, TensorDataset

from spinelib.distributed import (cleanup_distributed, gather_with_grad, is_distributed, is_main_process,
                                  setup_distributed)
from spinelib.train import TrainConfig, fit, make_loader

WORLD = 2


def test_single_process_fallbacks(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    rank, world_size, device = setup_distributed()
    assert (rank, world_size) == (0, 1) and isinstance(device, torch.device)
    assert not is_distributed() and is_main_process()
    x = torch.ones(3, 2)
    assert gather_with_grad(x) is x
    cleanup_distributed()  # nothing to leave: no error


def _join(rank: int, port: int) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(WORLD), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port), CUDA_VISIBLE_DEVICES="")
    assert setup_distributed() == (rank, WORLD, torch.device("cpu"))
    assert is_distributed() and is_main_process() == (rank == 0)


def _gather_worker(rank: int, port: int, out: Path) -> None:
    _join(rank, port)
    x = torch.full((2, 3), float(rank + 1), requires_grad=True)
    gathered = gather_with_grad(x)
    weight = torch.arange(12.0).view(4, 3)
    (gathered * weight).sum().backward()  # every rank computes the same global loss
    torch.save({"gathered": gathered.detach(), "grad": x.grad}, out / f"gather{rank}.pt")
    cleanup_distributed()


class Regression:
    """MSE on (x, y) pairs; counts the samples each rank trains on."""

    def __init__(self):
        self.seen = 0

    def train_step(self, model: nn.Module, batch, device: torch.device) -> torch.Tensor:
        x, y = batch
        self.seen += len(x)
        return F.mse_loss(model(x.to(device)).squeeze(-1), y.to(device))

    def evaluate(self, model: nn.Module, loader, device: torch.device) -> dict[str, float]:
        losses = [F.mse_loss(model(x).squeeze(-1), y).item() for x, y in loader]
        return {"val_loss": sum(losses) / len(losses)}


def _fit_worker(rank: int, port: int, out: Path) -> None:
    _join(rank, port)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 1))
    g = torch.Generator().manual_seed(1)
    x = torch.randn(16, 3, generator=g)
    data = TensorDataset(x, x.sum(dim=1))
    train, val = make_loader(data, 4, shuffle=True, seed=3), make_loader(data, 4, shuffle=False)
    assert isinstance(train.sampler, DistributedSampler) and isinstance(val.sampler, DistributedSampler)
    task = Regression()
    config = TrainConfig(epochs=3, seed=3, progress=False, checkpoint_dir=out / f"rank{rank}")
    result = fit(model, task, train, val, torch.optim.SGD(model.parameters(), lr=0.05), config)
    torch.save({"history": result.history.drop(columns="seconds").to_dict("list"), "seen": task.seen,
                "state": result.best_state, "weights": model.state_dict()}, out / f"fit{rank}.pt")
    cleanup_distributed()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _spawn(worker, tmp_path: Path, monkeypatch) -> list[dict]:
    if not torch.distributed.is_available() or not torch.distributed.is_gloo_available():
        pytest.skip("torch.distributed with the gloo backend is not available in this build")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # children stay on the CPU even on a GPU machine
    mp.spawn(worker, args=(_free_port(), tmp_path), nprocs=WORLD, join=True)
    name = "gather" if worker is _gather_worker else "fit"
    return [torch.load(tmp_path / f"{name}{r}.pt", weights_only=True) for r in range(WORLD)]


def test_gather_with_grad_concatenates_and_passes_gradients_back(tmp_path, monkeypatch):
    results = _spawn(_gather_worker, tmp_path, monkeypatch)
    expected = torch.cat([torch.full((2, 3), 1.0), torch.full((2, 3), 2.0)])
    weight = torch.arange(12.0).view(4, 3)
    for rank, result in enumerate(results):
        assert torch.equal(result["gathered"], expected)
        # each rank's gradient sums the identical global losses of both ranks: WORLD x its rows of the weight
        assert torch.equal(result["grad"], WORLD * weight[2 * rank:2 * rank + 2])


def test_fit_under_two_processes(tmp_path, monkeypatch):
    results = _spawn(_fit_worker, tmp_path, monkeypatch)
    assert [r["seen"] for r in results] == [3 * 8, 3 * 8]  # each rank trains on its half of 16 samples
    assert results[0]["history"] == results[1]["history"]  # losses and metrics averaged over ranks
    history = pd.DataFrame(results[0]["history"])
    assert history["train_loss"].iloc[-1] < history["train_loss"].iloc[0]
    for key, value in results[0]["weights"].items():  # DDP kept the replicas equal
        assert torch.equal(value, results[1]["weights"][key])
    assert {p.name for p in (tmp_path / "rank0").iterdir()} == {"last.pt", "best.pt", "history.csv"}
    assert not (tmp_path / "rank1").exists() or not any((tmp_path / "rank1").iterdir())
