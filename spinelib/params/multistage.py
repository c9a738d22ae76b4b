"""Parameters of the multi-stage paper's notebooks: 08 localisation (Stage 1) and 09 MIL grading (Stage 2).

``params/localisation.yaml`` nests its two model families in sections (``instance``: Stage 1a, ``coords``:
Stages 1b/1c), so :class:`LocalisationParams` holds an :class:`InstanceParams` and a :class:`CoordsParams`.
``params/mil.yaml`` is flat: :class:`MilParams`. Mappings keyed by data (epochs per series type or per bag
kind, the crop scale per bag kind, the Table 1 ranges per condition) stay ``dict`` fields.

``TINY`` is what the notebooks' parameters cells held before: sizes and epochs a CPU runs in seconds on the
tiny phantom, and empty paths (the notebook then builds a tiny crop store and temporary folders).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from spinelib.params.base import Params, param

# ---- notebook 08: Stage 1 localisation --------------------------------------------------------------------------


@dataclass(frozen=True)
class InstanceParams(Params):
    """Stage 1a: the instance-number (slice) network and its training."""

    architecture: str = param("resnet3d18", why="CPU: paper 3D ConvNeXt (only the 3D ResNet-18 is implemented "
                                                "here)")
    base_width: int = param(8, paper=64, why="CPU: standard ResNet width 64")
    epochs: int = param(7, paper=30, why="unstated")
    batch_size: int = param(8, why="unstated")
    lr: float = param(1.0e-3, why="unstated (AdamW, cosine schedule)")
    weight_decay: float = param(1.0e-4, why="unstated")
    z_weight: float = param(2.0, why="unstated: the paper weights z' above x', y' in the L1 loss")
    reg_weight: float = param(5.0, why="unstated: weight of the L1 regression loss beside the cross-entropy")
    seed: int = param(0)
    device: str = param("auto")
    amp: bool = param(True)
    channels_last: bool = param(True, why="CUDA only")


@dataclass(frozen=True)
class CoordsParams(Params):
    """Stages 1b (sagittal) and 1c (axial): the in-plane coordinate networks and their training."""

    encoders: list[str] = param(["resnet18"], paper=["convnext_base", "efficientnet_v2_l"],
                                why="CPU: paper ConvNeXt-base and EfficientNet-V2-L, mean-ensembled")
    epochs: dict[str, int] = param({"sag_t2": 16, "sag_t1": 8, "axial": 4},
                                   paper={"sag_t2": 20, "sag_t1": 20, "axial": 20},
                                   why="unstated; per series type (CPU: the axial model is the costly one)")
    batch_size: int = param(16, why="unstated")
    lr: float = param(1.0e-3, paper=1.0e-4, why="unstated (AdamW, cosine schedule)")
    weight_decay: float = param(1.0e-4, why="unstated")
    shift: int = param(8, paper=16, why="unstated: random image shift (input px) as augmentation")
    seed: int = param(0)
    device: str = param("auto")
    amp: bool = param(True)
    channels_last: bool = param(True, why="CUDA only")


@dataclass(frozen=True)
class LocalisationParams(Params):
    """``params/localisation.yaml``: notebook 08, Stage 1 of the multi-stage paper."""

    # the former parameters cell of notebook 08: tiny inputs, one epoch, two examples; empty paths
    TINY: ClassVar[dict[str, Any]] = {
        "crops_dir": "", "out_dir": "", "figures_dir": "", "workers": 1, "stack_size": 16, "slice_size": 32,
        "instance": {"base_width": 4, "epochs": 1},
        "coords": {"epochs": {"sag_t2": 1, "sag_t1": 1, "axial": 1}, "shift": 2},
        "n_examples": 2,
    }

    crops_dir: str = param("data/crops", why="the crop store: its data root and the patient-level split "
                                              "(splits.csv)")
    out_dir: str = param("models/localisation")
    figures_dir: str = param("results/08_localisation")
    split_column: str = param("split_patient", why="patient level: the split every study of this repository uses")
    workers: int = param(2, paper=8, why="processes reading DICOM")
    folds: int = param(1, paper=5, why="CPU: paper 5-fold cross-validation, median/mean over the folds")
    max_shift: int = param(2, why="paper: Stage 2 simulates slice errors up to ±2")
    stack_depth: int = param(32, why="paper: sagittal volume padded to 32 slices")
    stack_size: int = param(64, paper=256, why="CPU: in-plane size of the 3D input (unstated in the paper)")
    slice_size: int = param(64, paper=512, why="CPU: paper 512 x 512 for the 2D coordinate models")
    instance: InstanceParams = param(InstanceParams, why="Stage 1a")
    coords: CoordsParams = param(CoordsParams, why="Stages 1b (sagittal) and 1c (axial)")
    n_examples: int = param(4, why="test studies shown with annotated and predicted points")


# ---- notebook 09: Stage 2 MIL grading ---------------------------------------------------------------------------

TABLE1_RANGES = {   # paper, Table 1: left, right, up, down (px) of each condition's box around its point
    "spinal_canal_stenosis": [96, 32, 40, 40],
    "left_neural_foraminal_narrowing": [96, 64, 32, 32],
    "right_neural_foraminal_narrowing": [96, 64, 32, 32],
    "left_subarticular_stenosis": [48, 144, 96, 96],
    "right_subarticular_stenosis": [144, 48, 96, 96],
}


@dataclass(frozen=True)
class MilParams(Params):
    """``params/mil.yaml``: notebook 09, Stage 2 of the multi-stage paper (Bi-LSTM attention MIL)."""

    # the former parameters cell of notebook 09: small bags and encoder, one epoch, one ablated kind; empty paths
    TINY: ClassVar[dict[str, Any]] = {
        "crops_dir": "", "localisation_dir": "", "out_dir": "", "figures_dir": "", "workers": 1,
        "crop_scale": {"bag_scs": 0.25, "bag_nfn": 0.25, "bag_ss": 0.125},
        "encoder_width": 16, "lstm_hidden": 32, "epochs": {"bag_scs": 1, "bag_nfn": 1, "bag_ss": 1},
        "n_boot": 200, "ablation_kinds": ["bag_scs"], "n_examples": 2,
    }

    crops_dir: str = param("data/crops", why="the crop store: its data root and the patient-level split "
                                              "(splits.csv)")
    localisation_dir: str = param("models/localisation", why="notebook 08: Stage 1 predictions and the measured "
                                                             "slice-error distribution")
    out_dir: str = param("models/mil")
    figures_dir: str = param("results/09_mil")
    split_column: str = param("split_patient")
    workers: int = param(2, paper=8, why="CPU: the 2 cores of the project machine; paper profile 8")
    bag_slices: int = param(5, why="paper: 5 slices centred on the instance")
    max_shift: int = param(2, why="paper: instance-number jitter up to ±2 slices")
    margin: int = param(10, why="paper: coordinate jitter up to ±10 px")
    slice_shift: bool = param(True, why="paper: slice shifts drawn from the measured Stage 1a errors")
    crop_scale: dict[str, float] = param({"bag_scs": 0.5, "bag_nfn": 0.5, "bag_ss": 0.25},
                                         paper={"bag_scs": 1.0, "bag_nfn": 1.0, "bag_ss": 1.0},
                                         why="CPU: paper crops at full resolution (1.0)")
    ranges: dict[str, list[int]] = param(TABLE1_RANGES, why="paper, Table 1: left, right, up, down (px)")
    encoders: list[str] = param(["resnet18"], paper=["convnext_small", "efficientnet_v2_s"],
                                why="CPU: paper ConvNeXt-small and EfficientNet-V2-s, probabilities averaged")
    encoder_width: int | None = param(32, paper=None, why="CPU: a half-width ResNet-18 (256-d features, a third of "
                                                          "the time per step on the 2-core CPU); paper: the named "
                                                          "networks as torchvision builds them (null)")
    lstm_hidden: int | None = param(None, why="paper: input_dim / 2 (Listing 1), here 128")
    lstm_layers: int = param(2, why="paper")
    lstm_dropout: float = param(0.1, why="paper")
    head_dropout: float = param(0.0, why="paper: a plain linear head")
    aggregator: str = param("bilstm", why='paper: Bi-LSTM + attention (ablation "attention_only": attention alone)')
    shared_attention: bool = param(False, why='paper: separate primary and auxiliary attention (ablation '
                                              '"shared_attention")')
    folds: int = param(1, paper=5, why="CPU: paper cross-validation folds, averaged")
    epochs: dict[str, int] = param({"bag_scs": 3, "bag_nfn": 3, "bag_ss": 2},
                                   paper={"bag_scs": 14, "bag_nfn": 14, "bag_ss": 14},
                                   why="CPU: paper 7 (ConvNeXt-small) and 14 (EfficientNet-V2-s)")
    batch_size: int = param(16, why="unstated")
    lr: float = param(3.0e-4, why="unstated (AdamW, cosine schedule)")
    weight_decay: float = param(1.0e-4, why="unstated")
    grad_clip: float = param(1.0, why="unstated")
    aux_weight: float = param(1.0, why="unstated: weight of the auxiliary attention loss")
    class_weights: list[float] = param([1.0, 2.0, 4.0], why="unstated: the competition's sample weights, used in "
                                                            "the cross-entropy")
    brightness_contrast_p: float = param(0.25, why="paper")
    brightness: float = param(0.1, why="unstated")
    contrast: float = param(0.2, why="unstated")
    shift_scale_rotate_p: float = param(0.5, why="paper")
    ssr_shift: float = param(0.0625, why="unstated (albumentations' default)")
    ssr_scale: float = param(0.1, why="unstated (albumentations' default)")
    ssr_rotate: float = param(15, why="unstated")
    seed: int = param(0)
    n_boot: int = param(1000, why="resamples of the test patients for the 95% intervals and paired differences")
    ablations: list[str] = param(["no_jitter", "no_aux_loss", "attention_only", "shared_attention"],
                                 why="the paper's ablations, one seed each")
    ablation_kinds: list[str] = param(["bag_scs", "bag_nfn", "bag_ss"], why="every bag kind retrained per ablation")
    device: str = param("auto")
    amp: bool = param(True)
    channels_last: bool = param(True, why="CUDA only")
    n_examples: int = param(4, why="bags shown with their attention weights")
