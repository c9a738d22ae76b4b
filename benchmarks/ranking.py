"""Benchmark of the ranking study: one SpineRankNet loss evaluation, and 3D-encoder training throughput.

    python benchmarks/ranking.py [--device cpu|cuda|auto] [--repeats 5] [--threads N] [--loss-only]

Loss: B = 32, 256, 1024 discs, T = 11 tasks (Genodisc's count), forward +
backward with all pairs, mined (70 % hard / 30 % uniform of half the pairs:
pair_fraction 0.5) and the released code's budget of 500 pairs per task (70/30
of min(n, 500); every pair at B = 32). Throughput: volumes per second of a
training step (forward, backward, AdamW) for the default profile (width 16,
12 × 32 × 64) and the paper's (width 64, 12 × 128 × 256), with AMP and
channels_last_3d on CUDA.
"""

from __future__ import annotations

import argparse
import time

import torch

from spinelib.losses import spineranknet_loss
from spinelib.models import OrdinalModel, resnet3d18
from spinelib.train import resolve_device


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# The pair selections of params/ranking.yaml's train.loss (LossParams): "mined 0.5" is the default profile's,
# "budget 500" the paper profile's, "all pairs" the loss ablation pair_selection of the default profile.
SELECTIONS = {"all pairs": dict(hard_fraction=None),
              "mined 0.5": dict(hard_fraction=0.7, pair_fraction=0.5),
              "budget 500": dict(hard_fraction=0.7, pair_fraction=None, pair_budget=500)}


def loss_times(batch: int, device: torch.device, repeats: int) -> dict[str, float]:
    """Best-of-``repeats`` seconds of one forward + backward of the loss per pair selection of ``SELECTIONS``.

    The selections take turns within each repeat, so a load change on a shared machine hits them alike,
    and the minimum is the least disturbed run (other load only ever adds time).
    """
    g = torch.Generator().manual_seed(0)
    scores = (torch.rand(batch, 11, generator=g) * 10).to(device).requires_grad_()
    grades = torch.randint(-1, 4, (batch, 11), generator=g).to(device)
    times: dict[str, list[float]] = {name: [] for name in SELECTIONS}
    for _ in range(repeats + 1):
        for name, selection in SELECTIONS.items():
            _sync(device)
            start = time.perf_counter()
            spineranknet_loss(scores, grades, [4] * 11, **selection).backward()
            _sync(device)
            times[name].append(time.perf_counter() - start)
    return {name: min(t[1:]) for name, t in times.items()}


def throughput(width: int, shape: tuple[int, int, int], batch: int, device: torch.device, steps: int) -> float:
    """Training volumes per second of the 3D ResNet-18 with seven task heads."""
    model = OrdinalModel(resnet3d18(1, width), [3, 3, 3, 3, 3, 5, 4], "ce").to(device)
    cuda = device.type == "cuda"
    if cuda:
        model.to(memory_format=torch.channels_last_3d)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.rand(batch, 1, *shape, device=device)
    if cuda:
        x = x.contiguous(memory_format=torch.channels_last_3d)
    y = torch.randint(0, 3, (batch,), device=device)
    dtype = torch.bfloat16 if cuda and torch.cuda.is_bf16_supported() else torch.float16
    for step in range(steps + 1):
        if step == 1:
            _sync(device)
            start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=dtype, enabled=cuda):
            loss = sum(torch.nn.functional.cross_entropy(z, y.clamp(max=z.shape[1] - 1)) for z in model(x)["logits"])
        loss.backward()
        optimizer.step()
    _sync(device)
    return batch * steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's)")
    parser.add_argument("--loss-only", action="store_true", help="skip the 3D-encoder throughput")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    print(f"device: {device} (torch {torch.__version__}, {torch.get_num_threads()} threads)")
    for batch in (32, 256, 1024):
        times = loss_times(batch, device, args.repeats if batch > 32 else 10 * args.repeats)
        full = times["all pairs"]
        print(f"SpineRankNet loss B={batch:5d} T=11: " + ", ".join(
            f"{name} {1e3 * seconds:8.2f} ms" + (f" ({seconds / full:.2f}x)" if name != "all pairs" else "")
            for name, seconds in times.items()))
    if args.loss_only:
        return
    profiles = [("default", 16, (12, 32, 64), 32, 3), ("paper", 64, (12, 128, 256), 32 if device.type == "cuda" else 4,
                                                       5 if device.type == "cuda" else 1)]
    for name, width, shape, batch, steps in profiles:
        rate = throughput(width, shape, batch, device, steps)
        print(f"3D ResNet-18 {name:7s} width {width:2d} input {shape}: {rate:8.1f} volumes/s (batch {batch})")


if __name__ == "__main__":
    main()
