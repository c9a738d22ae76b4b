"""Benchmark of the ranking study: one SpineRankNet loss evaluation, and 3D-encoder training throughput.

    python benchmarks/ranking.py [--device cpu|cuda|auto] [--repeats 5]

Loss: B = 32, 256, 1024 discs, T = 11 tasks (Genodisc's count), all pairs and
with 70/30 mining, forward + backward. Throughput: volumes per second of a
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


def loss_time(batch: int, device: torch.device, hard_fraction: float | None, repeats: int) -> float:
    """Median seconds of one forward + backward of the loss."""
    g = torch.Generator().manual_seed(0)
    scores = (torch.rand(batch, 11, generator=g) * 10).to(device).requires_grad_()
    grades = torch.randint(-1, 4, (batch, 11), generator=g).to(device)
    times = []
    for _ in range(repeats + 1):
        _sync(device)
        start = time.perf_counter()
        spineranknet_loss(scores, grades, [4] * 11, hard_fraction=hard_fraction).backward()
        _sync(device)
        times.append(time.perf_counter() - start)
    return sorted(times[1:])[len(times[1:]) // 2]


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
    args = parser.parse_args()
    device = resolve_device(args.device)
    print(f"device: {device} (torch {torch.__version__}, {torch.get_num_threads()} threads)")
    for batch in (32, 256, 1024):
        full = loss_time(batch, device, None, args.repeats)
        mined = loss_time(batch, device, 0.7, args.repeats)
        print(f"SpineRankNet loss B={batch:5d} T=11: all pairs {1e3 * full:8.2f} ms, mined 70/30 {1e3 * mined:8.2f} ms")
    profiles = [("default", 16, (12, 32, 64), 32, 3), ("paper", 64, (12, 128, 256), 32 if device.type == "cuda" else 4,
                                                       5 if device.type == "cuda" else 1)]
    for name, width, shape, batch, steps in profiles:
        rate = throughput(width, shape, batch, device, steps)
        print(f"3D ResNet-18 {name:7s} width {width:2d} input {shape}: {rate:8.1f} volumes/s (batch {batch})")


if __name__ == "__main__":
    main()
