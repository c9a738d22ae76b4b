"""Parameters of the contrastive paper's notebooks: 02 (pretraining) and 03 (fine-tuning and localisation).

* :class:`ContrastiveParams`: ``params/contrastive.yaml`` (notebook 02), its hyper-parameters in the nested
  :class:`PretrainParams` section (what :func:`spinelib.studies.contrastive.pretrain` takes);
* :class:`FinetuneParams`: ``params/finetune.yaml`` (notebook 03), with the sections :class:`LabelFractionParams`,
  :class:`ShiftParams`, :class:`ClassifierParams` (the YAML's ``finetune``: the three configurations of Table 1)
  and :class:`LocaliserParams` (the disc localisation module).

Defaults are the CPU profile (``params/*.yaml``), ``paper=`` the values of ``params/paper/*.yaml`` where they differ,
``why`` the YAML's comment. ``TINY`` is what the notebook tests run: the values the parameters cells held before
they became typed, with empty paths (the notebook then builds a tiny phantom, its crops and encoders).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from spinelib.params.base import Params, param

# one reason, five fields: the CPU profile loads its data in the main process
_CPU_WORKERS = "CPU: 0 on the 2-core machine (data in memory); paper profile 8"


# ---- notebook 02: contrastive pretraining ------------------------------------------------------------------------

@dataclass(frozen=True)
class PretrainParams(Params):
    """Hyper-parameters of one contrastive pretraining run (the ``pretrain`` section of params/contrastive.yaml)."""

    condition: str = param("spinal_canal_stenosis", why="paper: sagittal T2 ROIs of the spinal canal annotation")
    input_size: int = param(64, paper=224, why="CPU: the paper resizes ROIs to 224 x 224")
    views: int = param(3, why="paper: V = 3 stochastic views per disc")
    temperature: float = param(0.1, why="paper: tau = 0.1")
    epochs: int = param(16, paper=60,
                        why="CPU: paper 60; notebook 02 shows where the default run's validation loss flattens")
    batch_size: int = param(64, why="discs per batch (x views); unstated")
    lr: float = param(0.001, why="unstated")
    lr_min: float = param(0.0, why="cosine annealing floor; unstated")
    weight_decay: float = param(0.0001, why="unstated")
    grad_clip: float = param(1.0, why="paper clips the gradient norm; the value is unstated")
    hidden_dim: int = param(512, why="projection head: two FC layers with BN and ReLU (widths unstated)")
    projection_dim: int = param(128)
    crop_scale: list[float] = param([0.8, 1.0], why="paper: random resized crop, scale 0.8-1.0")
    rotation: float = param(15, why="paper: +-15 degrees")
    brightness: float = param(0.2, why="paper: intensity jitter (strength unstated)")
    contrast: float = param(0.2)
    seed: int = param(0)
    num_workers: int = param(0, paper=8, why=_CPU_WORKERS)
    device: str = param("auto", why="cuda when present, else cpu")
    amp: bool = param(True, why="CUDA only")
    channels_last: bool = param(True, why="CUDA only")


@dataclass(frozen=True)
class ContrastiveParams(Params):
    """Notebook 02 (params/contrastive.yaml): one encoder pretrained per split column."""

    TINY: ClassVar[dict[str, Any]] = {
        "crops_dir": "", "out_dir": "", "figures_dir": "",
        # a one-epoch run at 32 px with a narrow head: enough for notebook 03's tests to load an encoder
        "pretrain": {"input_size": 32, "epochs": 1, "batch_size": 16, "hidden_dim": 64, "projection_dim": 32},
    }

    crops_dir: str = param("data/crops")
    out_dir: str = param("models/contrastive")
    figures_dir: str = param("results/02_contrastive")
    split_columns: list[str] = param(["split_patient", "split_disc"],
                                     why="one encoder per split: patient level (leak-free) and disc level (paper)")
    pretrain: PretrainParams = param(PretrainParams)


# ---- notebook 03: fine-tuning, label fractions, shift curve, disc localiser --------------------------------------

@dataclass(frozen=True)
class LabelFractionParams(Params):
    """The label-scarcity experiment (not in the paper: its low-supervision hypothesis, tested)."""

    fractions: list[float] = param([0.1, 0.25, 1.0],
                                   why="shares of the training labels, nested and stratified by grade")
    seeds: list[int] = param([0, 1, 2],
                             why="a seed draws the subset and initialises the run; 1.0 reuses the Table 1 runs")
    equal_steps: bool = param(True,
                              why="an epoch passes over the subset round(1 / fraction) times: the 100 % run's steps")


@dataclass(frozen=True)
class ShiftParams(Params):
    """The shift curve (not in the paper: the cost of an off-centre ROI, measured)."""

    margin: int = param(20, why="px cut around each ROI so that its window can move over real anatomy")
    distances: list[int] = param([0, 5, 10, 15, 20],
                                 why="px the ROI centre is moved from the annotated point, in a random direction")
    draws: int = param(3, why="random directions per distance")
    jitter: int = param(10, why="shift augmentation of the extra fine-tuned row: uniform ±10 px "
                                "(multi-stage paper's pre-crop jitter)")


@dataclass(frozen=True)
class ClassifierParams(Params):
    """The three Table 1 configurations' hyper-parameters (the ``finetune`` section of params/finetune.yaml)."""

    condition: str = param("spinal_canal_stenosis")
    configs: list[str] = param(["scratch", "linear_probe", "finetune"])
    input_size: int = param(64, paper=224, why="CPU: the paper resizes ROIs to 224 x 224")
    epochs: int = param(4, paper=40, why="CPU: paper 40")
    batch_size: int = param(24, why="paper: 24 discs")
    lr_backbone: float = param(5.0e-5, why="paper: layer4")
    lr_head: float = param(5.0e-4, why="paper: classification head")
    lr_scratch: float = param(5.0e-4,
                              why="unstated: the from-scratch baseline trains every layer at the head's rate")
    frozen_layers: list[str] = param(["conv1", "bn1", "layer1", "layer2", "layer3"], why="paper: layers 1-3 frozen")
    weight_decay: float = param(1.0e-4, why="unstated (AdamW; the optimiser is unstated too)")
    focal_gamma: float = param(2.0, why="paper")
    focal_alpha: list[float] = param([0.8, 4.0, 5.0], why="paper: Normal/Mild, Moderate, Severe")
    plateau_patience: int = param(4, why="paper: ReduceLROnPlateau on validation balanced accuracy")
    plateau_factor: float = param(0.5, why="paper")
    num_workers: int = param(0, paper=8, why=_CPU_WORKERS)
    device: str = param("auto")
    amp: bool = param(True)
    channels_last: bool = param(True)


@dataclass(frozen=True)
class LocaliserParams(Params):
    """The disc localisation module (contrastive paper §3.2, §4.5)."""

    split_column: str = param("split_patient")
    epochs: int = param(3, paper=40, why="CPU: paper 40")
    batch_size: int = param(32, why="paper")
    lr: float = param(1.0e-4, why="paper (AdamW)")
    weight_decay: float = param(0.01, why="paper")
    plateau_patience: int = param(3, why="paper: ReduceLROnPlateau")
    plateau_factor: float = param(0.1, why="paper")
    level_dim: int = param(32, why="paper: level embedding")
    hidden: int = param(256, why="paper: FC 256")
    dropout: float = param(0.5, why="paper")
    seed: int = param(0)
    num_workers: int = param(0, paper=8, why=_CPU_WORKERS)
    device: str = param("auto")
    amp: bool = param(True)
    channels_last: bool = param(True)


@dataclass(frozen=True)
class FinetuneParams(Params):
    """Notebook 03 (params/finetune.yaml): Table 1, label fractions, the shift curve and the disc localiser."""

    TINY: ClassVar[dict[str, Any]] = {
        "crops_dir": "", "encoder_dir": "", "out_dir": "", "figures_dir": "",
        "split_seeds": {"split_patient": [0], "split_disc": [0]},
        "n_boot": 200,
        "label_fractions": {"fractions": [0.5, 1.0], "seeds": [0]},
        "shift": {"margin": 8, "distances": [0, 4, 8], "draws": 1, "jitter": 4},
        "finetune": {"input_size": 32, "epochs": 1},
        "localiser": {"epochs": 1},
    }

    crops_dir: str = param("data/crops")
    encoder_dir: str = param("models/contrastive")
    out_dir: str = param("models/finetune")
    figures_dir: str = param("results/03_finetune")
    # keys are split columns (data, not settings): a plain mapping, replaced whole by a profile
    split_seeds: dict[str, list[int]] = param(
        {"split_patient": [0, 1, 2], "split_disc": [0]},
        paper={"split_patient": [0, 1, 2], "split_disc": [0, 1, 2]},
        why="seeds per split column; Table 1 reports mean ± std over them. "
            "CPU: one seed for the paper's disc-level split")
    n_boot: int = param(1000, why="bootstrap resamples of the test patients for the 95% intervals")
    label_fractions: LabelFractionParams = param(
        LabelFractionParams, why="not in the paper: its low-supervision hypothesis, tested (notebook 03)")
    shift: ShiftParams = param(ShiftParams,
                               why="not in the paper: the cost of an off-centre ROI, measured (notebook 03)")
    finetune: ClassifierParams = param(ClassifierParams)
    localiser: LocaliserParams = param(LocaliserParams)
