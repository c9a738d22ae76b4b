"""GPU check of the paper profiles: a few training steps of every stage, with AMP and channels_last.

    make gpu-check                                         # every stage, 3 warm-up + 10 timed steps
    make gpu-check GPU_CHECK_ARGS="--stages ranking --json gpu_check.json"
    python benchmarks/gpu_check.py --steps 20 --stages ranking,stage2 --json gpu_check.json
    python benchmarks/gpu_check.py --cpu-smoke             # no GPU: every stage, 1 + 1 steps, tiny shapes

For each stage the model is built by the library's own constructors from the
stage's PAPER profile (``params/paper/*.yaml``), so a broken paper-profile path
fails here, and trained on one fixed batch of random tensors of the paper's
input shape and batch size, through the stage's own ``Task.train_step`` (its
loss). A step is what ``spinelib.train._train_epoch`` does: autocast (bf16
where the GPU supports it, else fp16 with a GradScaler), backward, optional
gradient-norm clipping after unscaling, optimiser step. Every convolution's weights
and inputs are channels-last (channels_last_3d for 3D ones), placed by
``spinelib.train.to_channels_last`` as ``fit`` places them on CUDA. Printed per row:

* items/s over the timed steps (items: the unit of the row: views, ROIs, volumes, stacks, slices, bags);
* peak GPU memory (``torch.cuda.max_memory_allocated``, reset before each row);
* the loss of the first and last step and whether it decreased: a fixed random
  batch can be memorised, so a working model and optimiser must reduce it.

Exit codes: 0 every row ran and every loss decreased; 1 a row failed (its
error is printed) or a loss did not decrease; 2 no CUDA device (nothing run)
unless ``--cpu-smoke``, which only proves that every path builds and steps.

Several GPUs: this check is single-process. Of the stages only contrastive
pretraining runs under torchrun today (``spinelib.distributed``, DDP in
``spinelib.train.fit``), on the real crop store, e.g.
``torchrun --nproc_per_node=4 -m spinelib.studies.contrastive --params params/paper/contrastive.yaml``;
the other stages' entry points are not torchrun-ready.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from spinelib.constants import SAGITTAL_T1
from spinelib.losses.ordinal import inverse_frequency_weights
from spinelib.models.encoders import resnet18_encoder
from spinelib.models.heads import ContrastiveModel, ProjectionHead
from spinelib.models.ranking import OrdinalModel
from spinelib.models.resnet import resnet3d18
from spinelib.data.study_images import heads
from spinelib.models.localisers import CoordNet
from spinelib.studies.multistage.grading import MILTask, bag_config, build_grader, model_settings
from spinelib.studies.multistage.localisation import CoordTask, InstanceTask, Localisers
from spinelib.params import Params, params_class
from spinelib.studies.contrastive import ContrastiveTask
from spinelib.studies.finetune import ClassifyTask, build_classifier
from spinelib.studies.ranking import OrdinalTask
from spinelib.tasks import TaskSet
from spinelib.train import to_channels_last

ROOT = Path(__file__).resolve().parents[1]
PARAMS = ROOT / "params" / "paper"
NO_CUDA = "no CUDA device: the GPU check needs an NVIDIA GPU with CUDA; nothing was run"
STAGES = ("contrastive", "finetune", "ranking", "stage1a", "stage1b", "stage2")
MIL_CONDITIONS = {"bag_scs": "spinal_canal_stenosis", "bag_nfn": "left_neural_foraminal_narrowing",
                  "bag_ss": "left_subarticular_stenosis"}   # one condition per bag kind: the kind's crop size


@dataclass
class Case:
    """One row: a model, its stage's task and optimiser, one fixed batch, and how to count and place it."""

    stage: str
    name: str
    unit: str
    items: int                    # items per step (the unit above)
    shape: str                    # input shape, for the table
    model: nn.Module
    task: Any                     # the stage's Task: train_step(model, batch, device) -> loss
    batch: tuple
    optimizer: torch.optim.Optimizer
    grad_clip: float | None = None


@dataclass
class Row:
    """One result row of the table (and of the JSON file)."""

    stage: str
    name: str
    shape: str
    unit: str
    items_per_s: float | None
    peak_gib: float | None
    first_loss: float | None
    last_loss: float | None
    decreased: bool | None
    amp: str
    error: str | None = None


def load_params(name: str) -> Params:
    """``params/paper/<name>.yaml`` loaded strictly into its class (a clear error naming the file when missing)."""
    path = PARAMS / f"{name}.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: paper profile not found")
    return params_class(name).load(path)


def _grades(batch: int, k: int, generator: torch.Generator) -> torch.Tensor:
    return torch.randint(0, k, (batch,), generator=generator)


# ---------------------------------------------------------------------------------------------------------------
# One builder per stage: paper shapes, or tiny ones with ``smoke``. Each returns a list of cases.
# ---------------------------------------------------------------------------------------------------------------

def contrastive_cases(smoke: bool, g: torch.Generator, tmp: Path) -> list[Case]:
    """NT-Xent over V views of B discs: views (B, V, 1, S, S), S = input_size (paper 224, B 64, V 3)."""
    p = load_params("contrastive").pretrain
    batch, views, size = (2, 2, 32) if smoke else (p.batch_size, p.views, p.input_size)
    model = ContrastiveModel(resnet18_encoder(1), ProjectionHead(512, p.hidden_dim, p.projection_dim))
    optimizer = torch.optim.AdamW(model.parameters(), lr=p.lr, weight_decay=p.weight_decay)
    x = torch.randn(batch, views, 1, size, size, generator=g)
    return [Case("contrastive", "contrastive", "views", batch * views, f"{batch}x{views}x1x{size}x{size}", model,
                 ContrastiveTask(p.temperature), (x,), optimizer, p.grad_clip)]


def finetune_cases(smoke: bool, g: torch.Generator, tmp: Path) -> list[Case]:
    """The ``finetune`` configuration (layers 1-3 frozen, paper lrs) on ROIs (B, 1, S, S), paper B 24, S 224.

    The configuration loads a pretrained encoder; a random one written to a temporary file stands in.
    """
    hp = load_params("finetune").finetune
    batch, size = (2, 32) if smoke else (hp.batch_size, hp.input_size)
    encoder_file = tmp / "encoder.pt"
    torch.save(resnet18_encoder(1).state_dict(), encoder_file)
    model, groups = build_classifier("finetune", encoder_file, hp)
    optimizer = torch.optim.AdamW(groups, weight_decay=hp.weight_decay)
    batch_ = (torch.randn(batch, 1, size, size, generator=g), _grades(batch, 3, g), None)
    return [Case("finetune", "finetune", "ROIs", batch, f"{batch}x1x{size}x{size}", model,
                 ClassifyTask(tuple(hp.focal_alpha), hp.focal_gamma), batch_, optimizer)]


def ranking_cases(smoke: bool, g: torch.Generator, tmp: Path) -> list[Case]:
    """Phase 1 (3D ResNet-18 + CE heads per task) on volumes (B, 1, D, H, W), paper B 32, 12 x 128 x 256."""
    p = load_params("ranking")
    hp, tasks = p.train, TaskSet.from_params(p.volumes.tasks)
    depth = load_params("crops").volume_slices
    height, width = p.volumes.input_size
    batch, depth, height, width = (2, 4, 32, 32) if smoke else (hp.phase1.batch_size, depth, height, width)
    model = OrdinalModel(resnet3d18(1, hp.base_width), tasks.num_grades, "ce")
    optimizer = torch.optim.AdamW(model.parameters(), lr=hp.phase1.lr, weight_decay=hp.phase1.weight_decay)
    grades = torch.stack([_grades(batch, k, g) for k in tasks.num_grades], dim=1)          # (B, T)
    weights = inverse_frequency_weights(grades.numpy(), tasks.num_grades)
    task = OrdinalTask("ce", list(tasks.num_grades), hp.loss, weights)
    x = torch.randn(batch, 1, depth, height, width, generator=g)
    return [Case("ranking", "ranking phase 1", "volumes", batch, f"{batch}x1x{depth}x{height}x{width}", model, task,
                 (x, grades, None), optimizer, hp.grad_clip)]


def stage1a_cases(smoke: bool, g: torch.Generator, tmp: Path) -> list[Case]:
    """Instance-number net (3D ResNet-18) on sagittal T1 stacks (B, 1, D, S, S), paper B 8, D 32, S 256."""
    p = load_params("localisation")
    hp = p.instance
    batch, depth, size = (2, 4, 32) if smoke else (hp.batch_size, p.stack_depth, p.stack_size)
    # the Stage 1 config.json layout Localisers reads back (spinelib.studies.multistage.localisation)
    config = {"stack_depth": depth, "instance": {"architecture": hp.architecture, "base_width": hp.base_width}}
    model = Localisers(config, {}, {}).build_instance(SAGITTAL_T1)   # the constructor Stage 1 training uses
    n_heads = len(heads(SAGITTAL_T1))
    optimizer = torch.optim.AdamW(model.parameters(), lr=hp.lr, weight_decay=hp.weight_decay)
    z = torch.randint(0, depth, (batch, n_heads), generator=g)
    xy = torch.rand(batch, n_heads, 2, generator=g)
    x = torch.randn(batch, 1, depth, size, size, generator=g)
    return [Case("stage1a", "stage1a instance", "stacks", batch, f"{batch}x1x{depth}x{size}x{size}", model,
                 InstanceTask(depth, hp.z_weight, hp.reg_weight), (x, z, xy, None), optimizer)]


def stage1b_cases(smoke: bool, g: torch.Generator, tmp: Path) -> list[Case]:
    """In-plane coordinates (one row per paper encoder) on 3-slice inputs (B, 3, S, S), paper B 16, S 512."""
    p = load_params("localisation")
    hp = p.coords
    batch, size = (2, 32) if smoke else (hp.batch_size, p.slice_size)
    n_heads = len(heads(SAGITTAL_T1))
    cases = []
    for encoder in hp.encoders:
        model = CoordNet(n_heads, encoder)
        optimizer = torch.optim.AdamW(model.parameters(), lr=hp.lr, weight_decay=hp.weight_decay)
        batch_ = (torch.randn(batch, 3, size, size, generator=g), torch.rand(batch, n_heads, 2, generator=g),
                  torch.ones(batch, n_heads, dtype=torch.bool), None)
        cases.append(Case("stage1b", f"stage1b {encoder}", "slices", batch, f"{batch}x3x{size}x{size}", model,
                          CoordTask(), batch_, optimizer))
    return cases


def stage2_cases(smoke: bool, g: torch.Generator, tmp: Path) -> list[Case]:
    """Bi-LSTM attention MIL per encoder and bag kind on bags (B, N, 1, h, w), paper B 16, N 5, Table 1 crops."""
    hp = load_params("mil")
    cfg = bag_config(hp)
    kinds = list(MIL_CONDITIONS)[:1] if smoke else list(MIL_CONDITIONS)   # smoke: one kind, the path is the same
    cases = []
    for encoder in hp.encoders:
        for kind in kinds:
            batch, n = (2, hp.bag_slices) if smoke else (hp.batch_size, hp.bag_slices)
            h, w = (32, 32) if smoke else cfg.bag_size(MIL_CONDITIONS[kind])
            model = build_grader(model_settings(hp), encoder)
            optimizer = torch.optim.AdamW(model.parameters(), lr=hp.lr, weight_decay=hp.weight_decay)
            task = MILTask(hp.aux_weight, torch.tensor(hp.class_weights, dtype=torch.float32))
            batch_ = (torch.randn(batch, n, 1, h, w, generator=g), _grades(batch, 3, g), _grades(batch, n, g), None)
            cases.append(Case("stage2", f"stage2 {encoder} {kind}", "bags", batch, f"{batch}x{n}x1x{h}x{w}", model,
                              task, batch_, optimizer, hp.grad_clip))
    return cases


BUILDERS: dict[str, Callable[[bool, torch.Generator, Path], list[Case]]] = {
    "contrastive": contrastive_cases, "finetune": finetune_cases, "ranking": ranking_cases,
    "stage1a": stage1a_cases, "stage1b": stage1b_cases, "stage2": stage2_cases}


# ---------------------------------------------------------------------------------------------------------------
# Running one case
# ---------------------------------------------------------------------------------------------------------------

def _place(case: Case, device: torch.device, channels_last: bool) -> tuple:
    """Model, optimiser state and batch on ``device``, the convolutions channels-last as ``fit`` sets them on CUDA
    (:func:`spinelib.train.to_channels_last`); returns the batch."""
    case.model.to(device)
    if channels_last:
        to_channels_last(case.model)
    return tuple(v.to(device) if isinstance(v, torch.Tensor) else v for v in case.batch)


def amp_dtype(device: torch.device) -> torch.dtype | None:
    """The autocast dtype ``spinelib.train`` uses: bf16 where supported, else fp16; None (no AMP) on CPU."""
    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def run_case(case: Case, device: torch.device, warmup: int, steps: int, dtype: torch.dtype | None = None,
             channels_last: bool = False) -> Row:
    """``warmup`` + ``steps`` training steps on the case's fixed batch; the timed ones give items/s.

    ``dtype``: the autocast dtype (None: full precision); fp16 also scales the loss (GradScaler), as
    ``spinelib.train.fit`` does. The check passes :func:`amp_dtype` and ``channels_last=True`` on CUDA.
    """
    cuda = device.type == "cuda"
    batch = _place(case, device, channels_last)
    scaler = torch.amp.GradScaler("cuda", enabled=dtype == torch.float16)
    params = [p for group in case.optimizer.param_groups for p in group["params"]]
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    case.model.train()
    losses: list[torch.Tensor] = []
    start = 0.0
    for step in range(warmup + steps):
        if step == warmup:
            if cuda:
                torch.cuda.synchronize(device)
            start = time.perf_counter()
        case.optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            loss = case.task.train_step(case.model, batch, device)
        scaler.scale(loss).backward()
        if case.grad_clip is not None:
            scaler.unscale_(case.optimizer)
            nn.utils.clip_grad_norm_(params, case.grad_clip)
        scaler.step(case.optimizer)
        scaler.update()
        losses.append(loss.detach().float())
    if cuda:
        torch.cuda.synchronize(device)
    elapsed = time.perf_counter() - start
    values = torch.stack(losses).cpu().tolist()
    first, last = values[0], values[-1]
    return Row(case.stage, case.name, case.shape, case.unit,
               items_per_s=case.items * steps / elapsed if steps and elapsed > 0 else None,
               peak_gib=torch.cuda.max_memory_allocated(device) / 2**30 if cuda else None,
               first_loss=first, last_loss=last,
               decreased=bool(last < first) if len(values) > 1 else None,
               amp=str(dtype).removeprefix("torch.") if dtype is not None else "off")


def run_stage(stage: str, device: torch.device, smoke: bool, warmup: int, steps: int) -> list[Row]:
    """Every row of ``stage``; a failure (build or step) becomes a row with its error, the others still run."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        torch.manual_seed(0)
        try:
            cases = BUILDERS[stage](smoke, torch.Generator().manual_seed(0), Path(tmp))
        except Exception as error:   # a broken paper-profile path: reported, the other stages still run
            return [Row(stage, stage, "", "", None, None, None, None, None, "", f"{type(error).__name__}: {error}")]
        while cases:
            case = cases.pop(0)
            try:
                rows.append(run_case(case, device, warmup, steps, amp_dtype(device), device.type == "cuda"))
            except Exception as error:
                rows.append(Row(case.stage, case.name, case.shape, case.unit, None, None, None, None, None, "",
                                f"{type(error).__name__}: {error}"))
            del case                 # free the model and its optimiser state before the next row
            if device.type == "cuda":
                torch.cuda.empty_cache()
    return rows


def format_row(row: Row) -> str:
    """One line of the printed table."""
    if row.error:
        return f"{row.name:36s} {row.shape:22s} FAILED: {row.error}"
    rate = f"{row.items_per_s:9.1f} {row.unit:7s}/s" if row.items_per_s is not None else f"{'-':>9s} {'':9s}"
    peak = f"{row.peak_gib:7.2f}" if row.peak_gib is not None else f"{'-':>7s}"
    verdict = {True: "yes", False: "NO", None: "-"}[row.decreased]
    return (f"{row.name:36s} {row.shape:22s} {rate} {peak} GiB  loss {row.first_loss:.4g} -> {row.last_loss:.4g} "
            f"decreased: {verdict}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--steps", type=int, default=10, help="timed steps per row (after --warmup)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (cuDNN autotuning, allocator)")
    parser.add_argument("--stages", default=",".join(STAGES), help=f"comma-separated subset of {','.join(STAGES)}")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows to this JSON file")
    parser.add_argument("--cpu-smoke", action="store_true",
                        help="no GPU needed: every stage at tiny shapes on the CPU, 1 warm-up + 1 timed step")
    args = parser.parse_args(argv)
    args.stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    unknown = sorted(set(args.stages) - set(STAGES))
    if unknown:
        parser.error(f"unknown stage(s) {unknown}; choose from {list(STAGES)}")
    if args.steps < 1 or args.warmup < 0:
        parser.error("--steps must be >= 1 and --warmup >= 0")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the check; returns the exit code (0 all good, 1 a row failed or did not learn, 2 no CUDA)."""
    args = parse_args(argv)
    if args.cpu_smoke:
        device, warmup, steps = torch.device("cpu"), 1, 1
    elif not torch.cuda.is_available():
        print(NO_CUDA)
        return 2
    else:
        device, warmup, steps = torch.device("cuda", torch.cuda.current_device()), args.warmup, args.steps
        torch.backends.cudnn.benchmark = True
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU (smoke: tiny shapes, not figures)"
    print(f"device: {name}; torch {torch.__version__}; AMP {amp_dtype(device) or 'off'}; "
          f"{warmup} warm-up + {steps} timed steps per row; paper profiles from {PARAMS}")
    rows: list[Row] = []
    threads = torch.get_num_threads()
    if args.cpu_smoke:
        torch.set_num_threads(1)   # tiny shapes: on a busy 2-core machine 2 spinning threads run 5x slower than 1
    try:
        for stage in args.stages:
            for row in run_stage(stage, device, args.cpu_smoke, warmup, steps):
                print(format_row(row), flush=True)
                rows.append(row)
    finally:
        torch.set_num_threads(threads)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"device": name, "warmup": warmup, "steps": steps,
                                         "rows": [asdict(r) for r in rows]}, indent=2))
    failed = [r.name for r in rows if r.error or (not args.cpu_smoke and r.decreased is False)]
    if failed:
        print(f"{len(failed)} row(s) failed or did not reduce the loss: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
