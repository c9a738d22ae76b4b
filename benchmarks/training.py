"""Training throughput of the contrastive study's ResNet-18 (ROIs/s, forward + backward).

    python benchmarks/training.py                  # CPU, default (64 px) and paper (224 px) input sizes
    python benchmarks/training.py --device cuda    # on a GPU also with AMP and channels_last

Measures full training steps (forward, backward, AdamW step) of the fine-tuning
classifier on random single-channel ROIs; the first steps are warm-up.
"""

from __future__ import annotations

import argparse
import time

import torch

from spinelib.models.encoders import resnet18_encoder
from spinelib.models.heads import DiscClassifier
from spinelib.train import resolve_device


def throughput(size: int, batch: int, device: torch.device, amp: bool, channels_last: bool, steps: int) -> float:
    """ROIs per second of training steps at ``size`` x ``size``."""
    model = DiscClassifier(resnet18_encoder(1)).to(device)
    images = torch.randn(batch, 1, size, size, device=device)
    grades = torch.randint(0, 3, (batch,), device=device)
    if channels_last:
        model, images = model.to(memory_format=torch.channels_last), images.to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    scaler = torch.amp.GradScaler(enabled=amp)
    timed = 0.0
    for step in range(steps + 2):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        with torch.autocast(device.type, enabled=amp):
            loss = torch.nn.functional.cross_entropy(model(images), grades)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if step >= 2:
            timed += time.perf_counter() - start
    return batch * steps / timed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch", type=int, default=24, help="the paper's 24 discs per batch")
    parser.add_argument("--steps", type=int, default=5)
    args = parser.parse_args()
    device = resolve_device(args.device)
    settings = [(False, False)] + ([(True, False), (True, True)] if device.type == "cuda" else [])
    print(f"device: {device}, batch {args.batch}, threads {torch.get_num_threads()}")
    for size, profile in ((64, "default"), (224, "paper")):
        for amp, channels_last in settings:
            rate = throughput(size, args.batch, device, amp, channels_last, args.steps)
            print(f"{profile:8s} {size:3d} px  amp={amp!s:5s} channels_last={channels_last!s:5s}: {rate:8.1f} ROIs/s")


if __name__ == "__main__":
    main()
