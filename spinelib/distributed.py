"""torchrun / DistributedDataParallel helpers.

The same entry point runs in three ways: in-process in a notebook (one device),
``python -m spinelib.studies.X`` (one device) or ``torchrun --nproc_per_node=N -m
spinelib.studies.X`` (N processes, one device each). ``setup_distributed`` reads
the environment torchrun sets (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR,
MASTER_PORT) and joins the process group only when WORLD_SIZE > 1; every other
helper here degrades to the single-process case when no group is active.
"""

from __future__ import annotations

import os
import warnings

import torch
import torch.distributed as dist


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` -> cuda if available else cpu; ``cpu``, ``cuda``, ``cuda:N`` as named (CUDA must exist)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {name!r} requested but CUDA is not available (use 'auto' or 'cpu')")
    return device


def setup_distributed() -> tuple[int, int, torch.device]:
    """Join torchrun's process group when WORLD_SIZE > 1; returns ``(rank, world_size, device)``.

    Under torchrun each process takes ``cuda:LOCAL_RANK`` and the NCCL backend
    when CUDA is available, the CPU and gloo otherwise. Without torchrun (or with
    one process) nothing is initialised and the result is ``(0, 1, auto device)``.
    Calling it again in a process that already joined returns the same values.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return 0, 1, resolve_device("auto")
    # RANK is global (0..N−1 over all machines); LOCAL_RANK numbers the processes of this machine and so picks
    # its GPU. On a single machine they coincide, hence the fallback.
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    if torch.cuda.is_available():
        device, backend = torch.device("cuda", local_rank), "nccl"
        # Make it the current device, so that a bare "cuda" (and NCCL's own buffers) refer to this rank's GPU.
        torch.cuda.set_device(device)
    else:
        device, backend = torch.device("cpu"), "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, init_method="env://", rank=rank, world_size=world_size)
    return dist.get_rank(), dist.get_world_size(), device


def is_distributed() -> bool:
    """True when a process group with more than one process is active."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def is_main_process() -> bool:
    """True on rank 0, and in a single-process run: the process that writes files and shows progress."""
    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


def cleanup_distributed() -> None:
    """Leave the process group if one was joined (safe to call when none was).

    All ranks meet at a barrier first: a rank that tears its gloo connections down while a peer is still
    finishing the last collective makes that peer abort (seen as a SIGABRT of one process).
    """
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def mean_over_ranks(values: dict[str, float], device: torch.device) -> dict[str, float]:
    """Each value averaged over ranks (every rank passes the same keys); unchanged when not distributed.

    ``device`` is where the collective runs: the rank's CUDA device under NCCL, the CPU under gloo.
    """
    if not is_distributed():
        return values
    # Sorted keys fix one order on every rank: all_reduce adds position by position, so orders must agree.
    keys = sorted(values)
    tensor = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return dict(zip(keys, (tensor / dist.get_world_size()).tolist()))


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """Concatenate ``x`` of every rank along dim 0 (rank order); gradients flow back to each rank's ``x``.

    Every rank must pass a tensor of the same shape. In the backward pass the
    gradient reaching rank r's ``x`` is the SUM over ranks of d(loss_k)/d(x_r).
    When every rank computes the same global loss from the gathered tensor,
    that sum is ``world_size`` times the gradient of the global loss; DDP's
    averaging of parameter gradients over ranks divides it back, so the update
    equals the single-process update on the concatenated batch. Identity when
    not distributed.
    """
    if not is_distributed():
        return x
    from torch.distributed.nn.functional import all_gather

    with warnings.catch_warnings():  # deprecated in favour of a private API; still the portable autograd gather
        warnings.filterwarnings("ignore", message=".*distributed.nn.functional.all_gather is deprecated",
                                category=FutureWarning)
        parts = all_gather(x)
    return torch.cat(parts, dim=0)
