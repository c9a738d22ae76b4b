"""The one training loop of the study (contrastive pretraining, fine-tuning, ranking, MIL, localisation).

A stage supplies a ``Task`` (one batch's loss, validation metrics); ``fit`` does
the rest: device, AMP and channels_last on CUDA, DDP under torchrun, gradient
clipping, schedulers, best weights, early stopping, atomic checkpoints, resume.
Epoch ``e`` (0-based) starts by reseeding python, numpy and torch from
``(seed, e)`` and ``sampler.set_epoch(e)``, so shuffling, augmentation and
dropout of an epoch do not depend on whether the run was resumed. History rows
and ``best_epoch`` count epochs from 1.

Checkpoints in ``checkpoint_dir``: ``best.pt`` (the best weights, rewritten
atomically whenever the monitored value improves) and ``last.pt``. While
training, ``last.pt`` holds the last epoch's weights, optimiser, scheduler and
scaler state, RNG state and progress, but not the best weights (a resume reads
them from ``best.pt``). When ``fit`` ends normally (all epochs or early stop),
``last.pt`` is replaced by a slim ``finished`` marker: progress, RNG state and
config, no weights (the best ones are in ``best.pt``; the last epoch's are not
kept) and no optimiser/scheduler/scaler state; calling ``fit`` again on that
folder returns the same result without training, the model holding the best
weights. A finished run thus costs one copy of its weights on disk.
"""

from __future__ import annotations

import math
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Protocol

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.hooks import RemovableHandle
from torch.utils.data import DataLoader, Dataset, DistributedSampler
from tqdm import tqdm

from spinelib.distributed import is_distributed, is_main_process, mean_over_ranks, resolve_device
from spinelib.progress import progress_bar


@dataclass
class TrainConfig:
    """Everything ``fit`` needs besides the model, data, task and optimiser (see the module docstring)."""

    epochs: int                                 # total epochs of the run (a resumed run continues up to it)
    seed: int = 0                               # with the epoch number, fixes every random draw of that epoch
    device: str = "auto"                        # "auto" (CUDA if present), "cpu", "cuda" or "cuda:N"
    amp: bool = True                            # mixed precision on CUDA (bf16 where supported, else fp16)
    channels_last: bool = True                  # NHWC memory layout on CUDA (faster convolutions on tensor cores)
    grad_clip: float | None = None              # max global gradient L2 norm; None: no clipping
    monitor: str = "val_loss"                   # history column that picks the best epoch and early stopping
    mode: str = "min"                           # "min" or "max": which direction of ``monitor`` is better
    patience: int | None = None                 # epochs without improvement before stopping; None: never stop
    min_epochs: int = 0                         # early stopping never fires before this many epochs
    checkpoint_dir: str | Path | None = None    # best.pt / last.pt / history.csv go here; None: nothing written
    resume: bool = True                         # continue from checkpoint_dir/last.pt when it exists
    progress: bool = True                       # show tqdm bars (rank 0 only)

    def __post_init__(self) -> None:
        if self.mode not in ("min", "max") or self.epochs < 0 or self.seed < 0:
            raise ValueError(f"need mode 'min'/'max', epochs >= 0, seed >= 0; got {self.mode!r}, {self.epochs}, "
                             f"{self.seed}")


class Task(Protocol):
    """What differs between stages."""

    def train_step(self, model: nn.Module, batch: Any, device: torch.device) -> torch.Tensor:
        """Scalar loss of one batch (forward only; the loop does backward and the optimiser step)."""
        ...

    def evaluate(self, model: nn.Module, loader: Iterable, device: torch.device) -> dict[str, float]:
        """Validation metrics; called under ``torch.no_grad()`` with ``model.eval()`` (the model never DDP-wrapped)."""
        ...


@dataclass
class FitResult:
    """History (one row per epoch), the best epoch (1-based), its monitored value and weights (CPU)."""

    history: pd.DataFrame
    best_epoch: int
    best_metric: float
    best_state: dict[str, torch.Tensor]
    checkpoint_dir: Path | None


def _derived_seed(*words: int) -> int:
    """A 32-bit seed that depends only on ``words`` (e.g. seed, epoch), well spread for neighbouring values."""
    return int(np.random.SeedSequence(list(words)).generate_state(1)[0])


def _seed_all(seed: int) -> None:
    """Seed python's, numpy's legacy global and torch's RNGs (numpy only takes 32-bit seeds)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also every CUDA device


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (CUDA included); prefer deterministic algorithms (warn where none exist)."""
    _seed_all(seed)
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # needed by deterministic cuBLAS
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True


def _seed_worker(worker_id: int) -> None:
    """DataLoader seeds torch in worker k as base_seed + k (base_seed drawn from the reseeded global RNG)."""
    # torch is seeded per worker already; python and numpy are not, and forked workers would otherwise all
    # start from the parent's identical numpy state (the same "random" augmentations in every worker).
    seed = torch.initial_seed() % 2**32
    random.seed(seed)
    np.random.seed(seed)


def make_loader(dataset: Dataset, batch_size: int, *, shuffle: bool, seed: int = 0, num_workers: int = 0,
                drop_last: bool = False, collate_fn: Callable | None = None) -> DataLoader:
    """A DataLoader whose order depends only on (seed, epoch); ``fit`` calls ``loader.sampler.set_epoch``.

    Shuffling uses a DistributedSampler: the rank's shard under torchrun (which
    pads the last shard with repeats and also shards ``shuffle=False`` loaders),
    the whole permutation in a single process. Workers are created anew each
    epoch rather than persistent, so their seeds come from the per-epoch
    reseeding in ``fit``; persistent workers would carry RNG state across
    epochs and break exact resume. Memory is pinned when workers are used and
    CUDA is available.
    """
    sampler = None
    if shuffle or is_distributed():
        # DistributedSampler even in one process: its permutation depends only on (seed, epoch), unlike a
        # RandomSampler that draws from the global RNG state. num_replicas/rank given explicitly, because without
        # them it would ask torch.distributed for a process group that does not exist.
        replicas = {} if is_distributed() else {"num_replicas": 1, "rank": 0}
        # The sampler's seed (seed, 0, 1) is kept apart from the per-epoch seeds _derived_seed(seed, epoch).
        sampler = DistributedSampler(dataset, shuffle=shuffle, seed=_derived_seed(seed, 0, 1),
                                     drop_last=drop_last, **replicas)
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=num_workers,
                      drop_last=drop_last, collate_fn=collate_fn,
                      pin_memory=num_workers > 0 and torch.cuda.is_available(),
                      worker_init_fn=_seed_worker if num_workers > 0 else None)


def _cpu_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """A detached CPU copy of the state dict, contiguous (not channels_last), safe from later training steps."""
    return {k: v.detach().cpu().clone(memory_format=torch.contiguous_format) for k, v in model.state_dict().items()}


def _write_atomically(path: Path, write: Callable[[Path], Any]) -> None:
    """``write`` a sibling temporary file, then rename it over ``path``: readers never see a half-written file.

    ``os.replace`` is atomic on one file system, so a run killed mid-save leaves the previous checkpoint intact.
    """
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    os.replace(tmp, path)


def _rng_state() -> dict[str, Any]:
    """Every global RNG's state as plain types, so that ``torch.load(weights_only=True)`` can read it back.

    numpy's key array becomes a list (weights_only refuses numpy arrays); torch's states are tensors already.
    """
    kind, keys, pos, has_gauss, gauss = np.random.get_state(legacy=True)  # type: ignore[misc]
    return {"python": random.getstate(), "numpy": (kind, keys.tolist(), pos, has_gauss, gauss),
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}


def _set_rng_state(state: dict[str, Any]) -> None:
    """Restore the states written by ``_rng_state`` (CUDA's only when both the file and this machine have it)."""
    random.setstate(state["python"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def load_checkpoint(path: str | Path, model: nn.Module, optimizer: torch.optim.Optimizer | None = None,
                    scheduler: Any = None) -> dict:
    """Load weights (and optimiser/scheduler state when given) from a checkpoint written by ``fit``.

    Also accepts a bare state_dict file. Strict: missing or unexpected keys
    raise ``KeyError`` naming them; a requested optimiser/scheduler state that
    the file lacks (``best.pt``, a finished run's ``last.pt``) raises too.
    Returns the loaded dictionary.
    """
    checkpoint = torch.load(Path(path), map_location="cpu", weights_only=True)
    _load_into(checkpoint, path, model, optimizer, scheduler)
    return checkpoint


def _load_into(checkpoint: dict, path: str | Path, model: nn.Module, optimizer: torch.optim.Optimizer | None = None,
               scheduler: Any = None) -> None:
    """``load_checkpoint`` for a dictionary already read from ``path``."""
    # A checkpoint of ``fit`` nests the weights under "model"; anything else is taken as a bare state dict.
    is_full = isinstance(checkpoint.get("model"), dict)
    state = checkpoint["model"] if is_full else checkpoint
    # DDP prefixes every key with "module."; load into the wrapped model so the keys match either way.
    target = model.module if isinstance(model, DistributedDataParallel) else model
    expected, found = set(target.state_dict()), set(state)
    if expected != found:
        raise KeyError(f"checkpoint {path} does not match the model: missing keys {sorted(expected - found)}, "
                       f"unexpected keys {sorted(found - expected)}")
    target.load_state_dict(state, strict=True)
    for name, obj in (("optimizer", optimizer), ("scheduler", scheduler)):
        if obj is None:
            continue
        if not is_full or checkpoint.get(name) is None:
            raise KeyError(f"checkpoint {path} holds no {name} state")
        obj.load_state_dict(checkpoint[name])


# Each convolution type, the rank of its input and the memory format of its fast cuDNN kernels (NHWC / NDHWC).
_CHANNELS_LAST: tuple[tuple[type[nn.Module], int, torch.memory_format], ...] = (
    (nn.Conv2d, 4, torch.channels_last), (nn.Conv3d, 5, torch.channels_last_3d))


def _inputs_in(memory_format: torch.memory_format, rank: int) -> Callable[[nn.Module, tuple], tuple]:
    """A forward pre-hook putting a module's floating inputs of ``rank`` dimensions in ``memory_format``."""
    def hook(module: nn.Module, args: tuple) -> tuple:
        # a no-op for an input already in the format, e.g. the output of the previous convolution
        return tuple(a.contiguous(memory_format=memory_format)
                     if isinstance(a, torch.Tensor) and a.dim() == rank and a.is_floating_point() else a
                     for a in args)
    return hook


def to_channels_last(model: nn.Module) -> list[RemovableHandle]:
    """Every 2-D and 3-D convolution of ``model`` in channels-last layout: its weights now, its input at each call.

    cuDNN uses its NHWC (NDHWC) kernels only when a convolution's weights and input are both in that layout.
    The layout is set per convolution, not at the model's entry: a MIL model's 5-D bags reach its 2-D encoder
    only after a reshape, and a 3D network needs ``channels_last_3d``. Returns the input hooks' handles (remove
    them to leave the model's calls as they were; the weights keep their layout, which changes no value).
    """
    handles = []
    for module in model.modules():
        for kind, rank, memory_format in _CHANNELS_LAST:
            if isinstance(module, kind):
                module.to(memory_format=memory_format)
                handles.append(module.register_forward_pre_hook(_inputs_in(memory_format, rank)))
    return handles


def _train_epoch(net: nn.Module, task: Task, loader: Iterable, optimizer: torch.optim.Optimizer,
                 scaler: torch.amp.GradScaler, device: torch.device, autocast: dict[str, Any],
                 grad_clip: float | None, bar: tqdm) -> float:
    """One pass over ``loader``; returns the mean batch loss (over all ranks)."""
    net.train()
    params = [p for group in optimizer.param_groups for p in group["params"]]
    # The running sums stay on the device: reading a loss with .item() every step would force a device sync.
    loss_and_steps = torch.zeros(2, dtype=torch.float64, device=device)  # (loss total, steps)
    for batch in loader:
        optimizer.zero_grad(set_to_none=True)
        # Only the forward pass (and the loss) runs under autocast; backward follows the dtypes it recorded.
        with torch.autocast(**autocast):
            loss = task.train_step(net, batch, device)
        # The scaler (enabled for fp16 only) multiplies the loss so small gradients do not underflow in fp16.
        scaler.scale(loss).backward()
        if grad_clip is not None:
            # Clip the true gradients: divide the loss scale out first, or the threshold would apply to scaled ones.
            scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_(params, grad_clip)
        # step() skips the update when the scaled gradients overflowed (inf/nan); update() then lowers the scale.
        scaler.step(optimizer)
        scaler.update()
        loss_and_steps[0] += loss.detach().double()
        loss_and_steps[1] += 1
        bar.update()
        if bar.n % 10 == 1:  # a device sync, so not every step
            bar.set_postfix(loss=f"{(loss_and_steps[0] / loss_and_steps[1]).item():.4g}")
    if is_distributed():
        # Sum (loss total, steps) over ranks: every rank then returns the same mean, and so stops alike.
        dist.all_reduce(loss_and_steps)
    return (loss_and_steps[0] / loss_and_steps[1]).item() if loss_and_steps[1] > 0 else float("nan")


def _place_on_device(model: nn.Module,
                     config: TrainConfig) -> tuple[torch.device, torch.dtype | None, list[RemovableHandle]]:
    """Move ``model`` to the device (channels_last on CUDA); returns (device, AMP dtype or None, input hooks)."""
    device = resolve_device(config.device)
    if device.type == "cuda" and device.index is None:  # "cuda"/"auto": the current device (torchrun's LOCAL_RANK)
        device = torch.device("cuda", torch.cuda.current_device())
    model.to(device)
    if device.type != "cuda":
        return device, None, []
    # the hooks convert each batch on its way into the convolutions, so that tasks need not know about it
    hooks = to_channels_last(model) if config.channels_last else []
    # bf16 has fp32's exponent range (no loss scaling needed); older GPUs without it fall back to fp16 + scaler.
    amp_dtype = (torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16) if config.amp else None
    return device, amp_dtype, hooks


@dataclass
class _Progress:
    """What a resumed run needs besides model/optimiser/scheduler/scaler state; ``best_state`` lives in ``best.pt``."""

    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int | None = None
    best_metric: float | None = None
    best_state: dict[str, torch.Tensor] | None = None

    def saved(self) -> dict[str, Any]:
        """The part written to ``last.pt`` (everything but the best weights)."""
        return {"history": self.history, "best_epoch": self.best_epoch, "best_metric": self.best_metric}

    def improved(self, value: float, mode: str) -> bool:
        """NaN never beats a number; the first epoch always counts as an improvement."""
        if math.isnan(value):
            return self.best_epoch is None
        if self.best_metric is None or math.isnan(self.best_metric):
            return True
        return value < self.best_metric if mode == "min" else value > self.best_metric

    def stop(self, config: TrainConfig) -> bool:
        """Early stopping: ``patience`` epochs without improvement, and at least ``min_epochs`` done."""
        done = len(self.history)
        return (config.patience is not None and self.best_epoch is not None and done >= config.min_epochs
                and done - self.best_epoch >= config.patience)


def _write_best(out: Path, run: _Progress, config: TrainConfig) -> None:
    """Write ``best.pt``: the best weights with their epoch, monitored value and that epoch's history row."""
    best = {"model": run.best_state, "epoch": run.best_epoch, "monitor": config.monitor,
            "best_metric": run.best_metric, "metrics": run.history[run.best_epoch - 1]}  # type: ignore[index]
    _write_atomically(out / "best.pt", lambda p: torch.save(best, p))


def _last_checkpoint(weights: dict[str, torch.Tensor] | None, run: _Progress, config: TrainConfig,
          **states: Any) -> dict[str, Any]:
    """The ``last.pt`` dictionary: the last weights (None: a finished marker), progress, RNG state, config, ``states``.

    The RNG state is the one at the end of the epoch just trained; ``_resume`` restores it, so a resumed run
    continues from the same global RNG state as an uninterrupted one before the next epoch reseeds.
    """
    return {**({"model": weights} if weights is not None else {}), "epoch": len(run.history), **run.saved(),
            "rng": _rng_state(), "config": {"seed": config.seed, "monitor": config.monitor, "mode": config.mode},
            **states}


def _best_weights(out: Path, last: dict, run: _Progress, config: TrainConfig, writes: bool) -> dict[str, torch.Tensor]:
    """The best weights of a resumed run: from ``best.pt``, or ``last.pt`` when the run stopped between the two.

    ``fit`` writes ``last.pt`` before ``best.pt``, so ``best.pt`` may only lag
    behind; then the best epoch is the last one and its weights are in
    ``last.pt`` (``best.pt`` is rewritten from them).
    """
    if last.get("best_state") is not None:  # a last.pt written before the best weights moved out of it
        return last["best_state"]
    path = out / "best.pt"
    best = torch.load(path, map_location="cpu", weights_only=True) if path.exists() else None
    if best is not None and best.get("epoch") == run.best_epoch:
        return best["model"]
    if run.best_epoch == last["epoch"]:
        run.best_state = last["model"]
        if writes:
            _write_best(out, run, config)
        return last["model"]
    found = "is missing" if best is None else f"holds epoch {best.get('epoch')}"
    raise ValueError(f"{path} {found}, but {out / 'last.pt'} names epoch {run.best_epoch} as the best; "
                     f"cannot resume without its weights (set resume=False to start again)")


def _resume(out: Path, model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any,
            scaler: torch.amp.GradScaler, config: TrainConfig, writes: bool) -> tuple[_Progress, bool]:
    """Restore a run from ``out/last.pt``; returns its progress and whether it is a finished run's marker."""
    # ---- read last.pt and put model/optimiser/scheduler back where the run left off ----
    path = out / "last.pt"
    last = torch.load(path, map_location="cpu", weights_only=True)
    finished = bool(last.get("finished", False))
    if not finished:  # a finished marker has no weights: the model gets the best ones below
        _load_into(last, path, model, optimizer, scheduler)
    # ---- refuse to continue a run under a different seed or selection rule: its history would not mean the same ----
    saved = last["config"]
    if (saved["seed"], saved["monitor"], saved["mode"]) != (config.seed, config.monitor, config.mode):
        raise ValueError(f"{path} was written with seed/monitor/mode {saved}; "
                         f"this config has {config.seed}/{config.monitor}/{config.mode}")
    # ---- scaler, RNG state and progress (history, best epoch and its weights) ----
    if not finished and scaler.is_enabled() and last["scaler"]:
        scaler.load_state_dict(last["scaler"])
    _set_rng_state(last["rng"])
    run = _Progress(**{name: last[name] for name in ("history", "best_epoch", "best_metric")})
    if run.best_epoch is not None:
        run.best_state = _best_weights(out, last, run, config, writes)
    if finished:
        if run.best_state is None:
            raise ValueError(f"{path} marks a finished run without a best epoch; nothing to restore")
        _load_into({"model": run.best_state}, out / "best.pt", model)
    return run, finished


def _checkpoint_folder(config: TrainConfig) -> tuple[Path | None, bool]:
    """The checkpoint folder (None: none) and whether this process writes to it; the writer creates it.

    Under DDP every rank trains and validates, but only rank 0 touches the folder (no write races).
    """
    out = Path(config.checkpoint_dir) if config.checkpoint_dir is not None else None
    writes = out is not None and is_main_process()
    if writes:
        out.mkdir(parents=True, exist_ok=True)  # type: ignore[union-attr]
    return out, writes


def _start_or_resume(out: Path | None, model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any,
                     scaler: torch.amp.GradScaler, config: TrainConfig, writes: bool) -> tuple[_Progress, bool]:
    """Fresh progress, or the run in ``out/last.pt`` when resuming; returns it and whether that run had finished.

    Refuses to train on from a finished marker that asks for more epochs (see ``fit``).
    """
    if out is None or not config.resume or not (out / "last.pt").exists():
        return _Progress(), False
    run, finished = _resume(out, model, optimizer, scheduler, scaler, config, writes)
    # A finished marker keeps no optimiser state, so training on from it would silently differ from one
    # uninterrupted run; an early-stopped finished run asked for more epochs is fine (it stays stopped).
    if finished and len(run.history) < config.epochs and not run.stop(config):
        raise ValueError(f"{out / 'last.pt'} marks a finished run of {len(run.history)} epochs, kept without "
                         f"optimiser state; it cannot go on to {config.epochs} epochs (set resume=False or "
                         f"use another checkpoint_dir)")
    return run, finished


def _wrap_for_ddp(model: nn.Module, device: torch.device) -> nn.Module:
    """The module that trains: ``model`` DDP-wrapped under torchrun (gradients averaged over ranks), else itself."""
    if not is_distributed():
        return model
    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def _begin_epoch(epoch: int, seed: int, train_loader: Iterable) -> None:
    """Reseed every RNG from ``(seed, epoch)`` and tell the sampler the epoch, so no draw depends on a resume."""
    _seed_all(_derived_seed(seed, epoch))
    # a DistributedSampler shuffles by its epoch number: without this every epoch sees the same order
    if hasattr(getattr(train_loader, "sampler", None), "set_epoch"):
        train_loader.sampler.set_epoch(epoch)  # type: ignore[attr-defined]


def _learning_rates(optimizer: torch.optim.Optimizer) -> dict[str, float]:
    """The current learning rate of each parameter group, as history columns ``lr_0``, ``lr_1``, ..."""
    return {f"lr_{i}": float(group["lr"]) for i, group in enumerate(optimizer.param_groups)}


def _train_checked(net: nn.Module, task: Task, loader: Iterable, optimizer: torch.optim.Optimizer,
                   scaler: torch.amp.GradScaler, device: torch.device, autocast: dict[str, Any],
                   config: TrainConfig, epoch: int, show: bool) -> float:
    """``_train_epoch`` under its own progress bar; raises ``FloatingPointError`` when the mean loss is not finite.

    A diverged loss stops the run at once: later epochs and checkpoints would only carry NaN weights.
    """
    with progress_bar(show=show, total=len(loader), desc=f"epoch {epoch + 1}/{config.epochs}",  # type: ignore[arg-type]
                      leave=False, mininterval=2.0) as bar:
        train_loss = _train_epoch(net, task, loader, optimizer, scaler, device, autocast, config.grad_clip, bar)
    if not math.isfinite(train_loss):
        raise FloatingPointError(f"epoch {epoch + 1}: training loss is {train_loss}")
    return train_loss


def _validate(model: nn.Module, task: Task, val_loader: Iterable | None, device: torch.device) -> dict[str, float]:
    """``task.evaluate`` on the bare model in eval mode, without gradients, averaged over ranks; {} without a loader.

    Runs in full precision (no autocast): metrics as reported, and no bf16 reaching numpy.
    """
    if val_loader is None:
        return {}
    model.eval()
    with torch.no_grad():
        metrics = {k: float(v) for k, v in task.evaluate(model, val_loader, device).items()}
    # each rank validated its own shard: the mean makes every rank see the same value, so all ranks take the
    # same scheduler step and the same early-stopping decision
    return mean_over_ranks(metrics, device)


def _epoch_row(epoch: int, train_loss: float, learning_rates: dict[str, float], metrics: dict[str, float],
               monitor: str) -> tuple[dict[str, float], float]:
    """The epoch's history row (without its wall time) and its monitored value.

    Raises ``KeyError`` when ``monitor`` is not in the row: a misspelt monitor fails after the first epoch,
    before any checkpoint claims a best epoch.
    """
    row = {"epoch": epoch + 1, "train_loss": train_loss, **learning_rates, **metrics}
    if monitor not in row:
        raise KeyError(f"monitor {monitor!r} is not among the metrics {sorted(row)}")
    return row, row[monitor]


def _step_scheduler(scheduler: Any, value: float) -> None:
    """End-of-epoch scheduler step: ``ReduceLROnPlateau`` on the monitored value, any other without arguments."""
    if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
        scheduler.step(value)
    elif scheduler is not None:
        scheduler.step()


def _update_best(run: _Progress, epoch: int, value: float, model: nn.Module, mode: str) -> bool:
    """When ``value`` improves on the best, make ``epoch`` (0-based) the best one in ``run``; returns whether it did.

    The weights are copied to the CPU: the model keeps training in place, and GPU memory is not spent on a
    second copy.
    """
    improved = run.improved(value, mode)
    if improved:
        run.best_epoch, run.best_metric, run.best_state = epoch + 1, value, _cpu_state(model)
    return improved


def _save_epoch(out: Path, run: _Progress, config: TrainConfig, model: nn.Module, improved: bool,
                optimizer: torch.optim.Optimizer, scheduler: Any, scaler: torch.amp.GradScaler) -> None:
    """Write ``last.pt``, then ``best.pt`` when the epoch improved, then the whole ``history.csv``, each atomically.

    ``last.pt`` comes first: a run stopped before ``best.pt`` is written finds the best weights in ``last.pt``.
    """
    # When this epoch is the best, its weights were just copied: reuse that copy.
    weights = run.best_state if improved else _cpu_state(model)
    last = _last_checkpoint(weights, run, config, optimizer=optimizer.state_dict(),
                            scheduler=scheduler.state_dict() if scheduler is not None else None,
                            scaler=scaler.state_dict())
    _write_atomically(out / "last.pt", lambda p: torch.save(last, p))
    if improved:
        _write_best(out, run, config)
    # rewritten whole each epoch, so an interrupted run leaves a readable history
    _write_atomically(out / "history.csv", lambda p: pd.DataFrame(run.history).to_csv(p, index=False))


def _write_finished(out: Path, run: _Progress, config: TrainConfig) -> None:
    """Replace ``last.pt`` by the slim ``finished`` marker: progress, RNG state and config, no weights or states."""
    marker = _last_checkpoint(None, run, config, finished=True)
    _write_atomically(out / "last.pt", lambda p: torch.save(marker, p))


def _result(run: _Progress, model: nn.Module, out: Path | None) -> FitResult:
    """The ``FitResult`` of ``run``; when no epoch was run, the model's current weights with best epoch 0 and NaN."""
    if run.best_state is None:
        return FitResult(pd.DataFrame(run.history), 0, float("nan"), _cpu_state(model), out)
    return FitResult(pd.DataFrame(run.history), int(run.best_epoch), float(run.best_metric),  # type: ignore[arg-type]
                     run.best_state, out)


def fit(model: nn.Module, task: Task, train_loader: Iterable, val_loader: Iterable | None,
        optimizer: torch.optim.Optimizer, config: TrainConfig, scheduler: Any = None) -> FitResult:
    """Train ``model`` in place for ``config.epochs`` epochs (resuming from ``checkpoint_dir/last.pt``).

    ``monitor`` may name a validation metric or ``train_loss``; ``val_loader``
    may be None. A ``ReduceLROnPlateau`` scheduler steps on the monitored value,
    any other scheduler once per epoch. Under DDP ``train_step`` gets the
    wrapped model, validation runs on every rank (its shard) and the metrics
    and train loss are averaged over ranks so that all ranks stop and step
    alike; only rank 0 writes files. The model ends with the last epoch's
    weights; the best ones are in the result. On a finished folder (see the
    module docstring) the model gets the best weights, nothing is trained, and
    asking for more epochs than it ran raises ``ValueError``: its optimiser
    state is gone.
    """
    # ---- set-up: seeds, device, precision, checkpoint folder, resume ----
    seed_everything(config.seed)
    device, amp_dtype, hooks = _place_on_device(model, config)
    # Loss scaling is needed for fp16 only; bf16 and full precision run with a disabled (pass-through) scaler.
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)
    out, writes = _checkpoint_folder(config)
    run, finished = _start_or_resume(out, model, optimizer, scheduler, scaler, config, writes)
    # ``net`` trains (DDP-wrapped under torchrun); ``model`` is the bare module that evaluation, state dicts and
    # the caller see.
    net = _wrap_for_ddp(model, device)
    # autocast arguments for _train_epoch; disabled (full precision) when no AMP dtype was chosen
    autocast = dict(device_type=device.type, dtype=amp_dtype, enabled=amp_dtype is not None)
    show = config.progress and is_main_process()
    # a resumed run starts its bar at the epochs already done, so the bar shows the whole run
    epochs_bar = progress_bar(show=show, total=config.epochs, initial=len(run.history), desc="epochs", mininterval=2.0)

    try:
        # resuming starts at the first epoch not in the history
        for epoch in range(len(run.history), config.epochs):
            if run.stop(config):
                break  # also makes resuming an early-stopped run a no-op
            start = time.perf_counter()
            _begin_epoch(epoch, config.seed, train_loader)
            learning_rates = _learning_rates(optimizer)  # as used in this epoch: read before the scheduler steps
            train_loss = _train_checked(net, task, train_loader, optimizer, scaler, device, autocast, config,
                                        epoch, show)
            metrics = _validate(model, task, val_loader, device)
            row, value = _epoch_row(epoch, train_loss, learning_rates, metrics, config.monitor)
            # the wall time is added after the monitor check in _epoch_row, so it can never be monitored
            run.history.append({**row, "seconds": time.perf_counter() - start})
            _step_scheduler(scheduler, value)
            improved = _update_best(run, epoch, value, model, config.mode)
            if writes:
                _save_epoch(out, run, config, model, improved, optimizer, scheduler, scaler)  # type: ignore[arg-type]
            epochs_bar.update()
            epochs_bar.set_postfix({"train_loss": f"{train_loss:.4g}", config.monitor: f"{value:.4g}"})
        # ended normally (all epochs or early stop): the slim marker replaces last.pt; a finished folder has one
        if writes and run.history and not finished:
            _write_finished(out, run, config)  # type: ignore[arg-type]
    finally:
        # Also on an exception: close the bar and remove the channels_last hooks, leaving the model's calls as they came
        epochs_bar.close()
        for hook in hooks:
            hook.remove()
    return _result(run, model, out)
