"""Parameters of the ranking paper's notebooks: 04 (training), 05 (thresholds), 06 (evaluation), 07 (Fig. 2).

* :class:`RankingParams`: ``params/ranking.yaml`` (notebook 04), with the sections :class:`RunsParams` (which
  phase-2 runs exist), :class:`VolumesParams` (the disc volumes, tasks and augmentation), :class:`TrainParams`
  (model, both training phases in :class:`Phase1Params` / :class:`Phase2Params`, the losses in
  :class:`LossParams`) and :class:`TtaParams` (the test-time views);
* :class:`ThresholdsParams`: ``params/thresholds.yaml`` (notebook 05);
* :class:`EvaluationParams`: ``params/evaluation.yaml`` (notebook 06);
* :class:`ScoreFigureParams`: ``params/score_figure.yaml`` (notebook 07).

Defaults are the CPU profile (``params/*.yaml``), ``paper=`` the values of ``params/paper/*.yaml`` where they differ,
``why`` the YAML's comment. ``TINY`` is what the notebook tests run: the values the parameters cells (and, for
notebook 04, ``spinelib.examples``) held before they became typed, with empty paths (the notebook then builds a
tiny phantom, its crops and a tiny ranking run).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from spinelib.params.base import Params, param

# the phantom's extra tasks and the column of its extra-task CSV each grade was cut from (the task's true latent)
_EXTRA_TRUTH = {"pfirrmann": "pfirrmann_score", "disc_narrowing": "height_loss"}
_TRUTH_CSV = "data/phantom/phantom_truth.csv"
_EXTRA_TASKS_CSV = "data/phantom/phantom_extra_tasks.csv"
_THRESHOLDS_FILE = "results/05_thresholds/thresholds.json"


# ---- notebook 04: the runs --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RunsParams(Params):
    """The phase-2 runs of the study (phase 1, the CE run, is trained once per seed); see
    :func:`spinelib.studies.ranking.plan_runs` for the names each entry becomes."""

    finetuned: list[str] = param(
        ["ce", "spineranknet"], paper=["ce", "corn", "mae", "ranknet", "deep_rank_svm", "spineranknet"],
        why="CPU: paper fine-tunes every objective; here CE continued (the control) and SpineRankNet")
    frozen: list[str] = param(["corn", "mae", "ranknet", "deep_rank_svm", "spineranknet"], paper=[],
                              why="CPU: paper none; heads on the frozen phase-1 encoder")
    ablation_encoder: str = param("frozen", paper="finetune",
                                  why="CPU: ablations on the frozen encoder (paper: fine-tuned)")
    ablation_heads: list[str] = param(["linear", "transformer", "kan"],
                                      why="paper: MLP vs linear, KAN, transformer heads (SpineRankNet, frozen here)")
    # run name -> the LossParams fields it changes (checked against LossParams when the run trains)
    loss_ablations: dict[str, dict[str, Any]] = param(
        {"no_severity_weight": {"severity_weight": False},
         "fixed_margin": {"adaptive_margin": False},
         "no_similarity": {"lambda_sim": 0.0},
         "pair_selection": {"hard_fraction": None, "pair_fraction": 0.5, "pair_budget": None}},
        paper={"no_severity_weight": {"severity_weight": False},
               "fixed_margin": {"adaptive_margin": False},
               "no_similarity": {"lambda_sim": 0.0},
               "pair_selection": {"hard_fraction": 0.7, "pair_fraction": 0.5, "pair_budget": None}},
        why="SpineRankNet with one loss component changed; pair_selection: CPU every pair (this profile mines "
            "half), paper mines half of each task's pairs")


# ---- notebook 04: the disc volumes ------------------------------------------------------------------------------

@dataclass(frozen=True)
class VolumesParams(Params):
    """The disc volumes, their tasks and the training augmentation (what
    :func:`spinelib.studies.ranking.load_data` takes)."""

    split_column: str = param("split_patient",
                              why="patient-level split from notebook 01 (the paper splits by patient too)")
    tasks: dict[str, int] = param(
        {"spinal_canal_stenosis": 3, "left_neural_foraminal_narrowing": 3, "right_neural_foraminal_narrowing": 3,
         "left_subarticular_stenosis": 3, "right_subarticular_stenosis": 3, "pfirrmann": 5, "disc_narrowing": 4},
        why="task: number of grades K_t (grades indexed from 0); pfirrmann and disc_narrowing are the phantom's "
            "Genodisc-like extra tasks (unequal K_t)")
    extra_tasks_csv: str = param(_EXTRA_TASKS_CSV,
                                 why='per-disc grades of tasks not in volume.csv ("" for none, e.g. on RSNA)')
    first_grade: dict[str, int] = param({"pfirrmann": 1}, why="Pfirrmann is graded 1-5: index = grade - 1")
    masked: dict[str, list[str]] = param({"Sagittal T1": ["pfirrmann", "disc_narrowing"]},
                                         why="paper: Pfirrmann / disc narrowing masked on T1")
    train_series: list[str] = param(["Sagittal T2/STIR", "Sagittal T1"],
                                    why="released code: one of T1/T2 drawn per disc in training")
    eval_series: list[str] = param(["Sagittal T2/STIR"], why="released code: T2 only at evaluation")
    field: list[int] | None = param([32, 64], paper=None,
                                    why="CPU: the central 32 x 64 of the stored 64 x 128 volume (1.6 mm/px), "
                                        "paper: whole field")
    input_size: list[int] = param([32, 64], paper=[128, 256],
                                  why="CPU: paper 128 x 256 (H x W); 12 slices as in the paper")
    max_slice_shift: int = param(2, why="paper: +-2 slices, boundary slices zeroed")
    flip_p: float = param(0.5, why="paper: left-right slice-order flip (left/right labels swap)")
    intensity_offset: float = param(0.1, why="paper")
    translate: list[int] = param([8, 6], paper=[32, 24],
                                 why="CPU: paper 32 x 24 px at 128 x 256 native px; here px of the 1.6 mm field")
    scale: float = param(0.1, why="paper: isotropic scaling +-10%")
    rotation: float = param(15, why="paper: in-plane rotation +-15 degrees")


# ---- notebook 04: training --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Phase1Params(Params):
    """Phase 1: encoder + classification heads, inverse-frequency-weighted CE."""

    epochs: int = param(12, paper=300, why="CPU: paper up to 300")
    min_epochs: int = param(6, paper=50, why="CPU: paper 50")
    patience: int = param(4, paper=30, why="CPU: paper 30")
    batch_size: int = param(32, why="paper")
    lr: float = param(1.0e-3, why="paper (AdamW)")
    weight_decay: float = param(1.0e-4, why="paper (released code 1e-5)")


@dataclass(frozen=True)
class Phase2Params(Params):
    """Phase 2: the objective heads on the phase-1 encoder (which fine-tuned runs train too)."""

    epochs: int = param(6, paper=200, why="CPU: paper 200")
    min_epochs: int = param(3, paper=50, why="unstated (paper profile: as phase 1)")
    patience: int = param(3, paper=30, why="CPU: released code 30")
    batch_size: int = param(32, why="paper")
    lr: float = param(1.0e-3, why="released code: heads 1e-3")
    encoder_lr: float = param(1.0e-4, why="paper: the encoder is fine-tuned at 1e-4 (runs.finetuned; runs.frozen "
                                          "keep it fixed)")
    weight_decay: float = param(1.0e-4, why="paper")
    min_lr: float = param(1.0e-6, why="released code: cosine annealing to 1e-6")


@dataclass(frozen=True)
class LossParams(Params):
    """The objectives' loss settings (:func:`spinelib.studies.ranking.objective_loss`); a loss ablation changes
    some of them (``RunsParams.loss_ablations``)."""

    scale: float = param(10.0, why="paper: S")
    m_base: float = param(0.5, why="paper")
    m_scale: float = param(1.5, why="paper")
    lambda_dis: float = param(1.0, why="paper")
    lambda_sim: float = param(0.25, why="paper (released YAML 0.15)")
    hard_fraction: float | None = param(0.7, why="paper: 70% of the pairs by descending violation, 30% uniformly")
    pair_fraction: float | None = param(0.5, paper=None,
                                        why="this study's choice (paper: unstated; code: none, the budget "
                                            "decides): mine half of each task's pairs")
    pair_budget: int | None = param(None, paper=500,
                                    why="code: at most 500 pairs per task, which at B = 32 keeps every pair "
                                        "(never mines)")
    severity_weight: bool = param(True, why="paper: |dg| S / (K - 1) weight on the hinge")
    adaptive_margin: bool = param(True, why="paper: margin m_base + m_scale w / S")
    fixed_margin: float = param(1.0, why="margin when adaptive_margin is false (ablation)")
    task_reduction: str = param("sum", why="paper Eq. 2 sums over tasks (released code averages)")
    svm_margin: float = param(1.0, why="Deep-RankSVM's fixed margin")
    ranknet_sigma: float = param(1.0, why="RankNet's logistic scale")


@dataclass(frozen=True)
class TrainParams(Params):
    """Model and training of every run (the ``train`` section of params/ranking.yaml)."""

    seed: int = param(0)
    seeds: list[int] = param([0, 1, 2], paper=[0],
                             why="CPU: paper one run; phase 1 and the fine-tuned runs repeated over 3 seeds")
    base_width: int = param(16, paper=64,
                            why="CPU: standard ResNet-18 width 64 (512-d embedding); here 128-d")
    head_input: str = param("embedding",
                            why="embedding (paper Eq. 5) | logits (released code: head on the task's logits)")
    head_hidden: int = param(256, why="unstated: hidden width of the two-layer MLP ranking head")
    soft_clamp_beta: float = param(5.0, why="paper Eq. 6")
    phase1: Phase1Params = param(Phase1Params, why="encoder + classification heads, weighted CE")
    phase2: Phase2Params = param(Phase2Params, why="objective heads on the phase-1 encoder")
    loss: LossParams = param(LossParams)
    grad_clip: float | None = param(None)
    num_workers: int = param(0, paper=8, why="CPU: 0 (2 cores; the volumes sit in memory), paper profile 8")
    device: str = param("auto", why="cuda when present, else cpu")
    amp: bool = param(True, why="CUDA only")
    channels_last: bool = param(True, why="channels_last_3d on CUDA")


@dataclass(frozen=True)
class TtaParams(Params):
    """The deterministic test-time views (:func:`spinelib.tta.tta_views`)."""

    translate: int = param(0, paper=16, why="CPU: no translated views (6 views: flip x slice roll); "
                                            "released code 16 px, 54 views")
    slice_shift: int = param(1, why="released code: roll by -1, 0, +1")
    flips: bool = param(True, why="2 x 3 x 3 x 3 = 54 views")
    batch_size: int = param(64)


@dataclass(frozen=True)
class RankingParams(Params):
    """Notebook 04 (params/ranking.yaml): phase 1 per seed, every phase-2 run, TTA predictions, the pixel probe."""

    TINY: ClassVar[dict[str, Any]] = {
        "crops_dir": "", "out_dir": "", "figures_dir": "", "truth_csv": "",
        # every objective still trains (frozen), but one head and one loss ablation only
        "runs": {"ablation_heads": ["kan"], "loss_ablations": {"no_similarity": {"lambda_sim": 0.0}}},
        # the tiny crop store is cut by the 'split' column and holds 64 x 128 x 4 volumes; three of the RSNA
        # conditions and both extra tasks keep the left/right swap and the T1 mask in play
        "volumes": {"split_column": "split",
                    "tasks": {"spinal_canal_stenosis": 3, "left_neural_foraminal_narrowing": 3,
                              "right_neural_foraminal_narrowing": 3, "pfirrmann": 5, "disc_narrowing": 4},
                    "extra_tasks_csv": "", "field": [24, 48], "input_size": [16, 32], "max_slice_shift": 1,
                    "translate": [4, 3]},
        # two seeds (the seed summary needs two), a 4-wide encoder, one epoch per phase, on the CPU
        "train": {"seeds": [0, 1], "base_width": 4, "head_hidden": 16,
                  "phase1": {"epochs": 1, "min_epochs": 1, "patience": 1, "batch_size": 8},
                  "phase2": {"epochs": 1, "min_epochs": 1, "patience": 1, "batch_size": 8},
                  "device": "cpu", "amp": False, "channels_last": False},
        "tta": {"translate": 2, "batch_size": 32},
    }

    crops_dir: str = param("data/crops")
    out_dir: str = param("models/ranking")
    figures_dir: str = param("results/04_ranking")
    truth_csv: str = param(_TRUTH_CSV, paper="",
                           why='phantom truth for the pixel probe of notebook 06 ("" on real data)')
    extra_truth: dict[str, str] = param(_EXTRA_TRUTH, why="phantom: the latent behind each extra task")
    runs: RunsParams = param(RunsParams, why="the phase-2 runs (phase 1, the CE run, is trained once per seed)")
    volumes: VolumesParams = param(VolumesParams)
    train: TrainParams = param(TrainParams)
    tta: TtaParams = param(TtaParams)


# ---- notebook 05: thresholds ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ThresholdsParams(Params):
    """Notebook 05 (params/thresholds.yaml): thresholds fitted on validation, by every method."""

    TINY: ClassVar[dict[str, Any]] = {
        "predictions_dir": "", "figures_dir": "",
        # the tiny run trains one head ablation (KAN) and one loss ablation (no same-grade term)
        "head_runs": ["spineranknet", "spineranknet_kan"],
        "loss_runs": ["spineranknet", "spineranknet_no_similarity"],
    }

    predictions_dir: str = param("models/ranking")
    figures_dir: str = param("results/05_thresholds")
    methods: list[str] = param(["coordinate_descent", "isotonic", "youden", "gmm"],
                               why="released code compares these four")
    method: str = param("coordinate_descent",
                        why="the method notebooks 06-07 use (paper: grid search on validation)")
    main_runs: list[str] = param(
        ["spineranknet", "ce_thresholded", "spineranknet_finetuned", "ce_continued_thresholded"],
        paper=["spineranknet_finetuned", "ce_continued_thresholded", "corn_finetuned_thresholded", "mae_finetuned"],
        why="CPU: frozen and fine-tuned families (paper: all fine-tuned, the runs of the method table)")
    head_runs: list[str] = param(
        ["spineranknet", "spineranknet_linear", "spineranknet_transformer", "spineranknet_kan"],
        paper=["spineranknet_finetuned", "spineranknet_linear", "spineranknet_transformer", "spineranknet_kan"],
        why="CPU: frozen-encoder reference; MLP (paper) vs linear, transformer, KAN")
    loss_runs: list[str] = param(
        ["spineranknet", "spineranknet_no_severity_weight", "spineranknet_fixed_margin", "spineranknet_no_similarity",
         "spineranknet_pair_selection"],
        paper=["spineranknet_finetuned", "spineranknet_no_severity_weight", "spineranknet_fixed_margin",
               "spineranknet_no_similarity", "spineranknet_pair_selection"],
        why="CPU: frozen reference (paper: the fine-tuned SpineRankNet)")


# ---- notebook 06: evaluation ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class EvaluationParams(Params):
    """Notebook 06 (params/evaluation.yaml): Table 1 with TTA, bootstrap intervals, paired differences, truth."""

    TINY: ClassVar[dict[str, Any]] = {
        "predictions_dir": "", "thresholds_file": "", "figures_dir": "", "truth_csv": "", "extra_tasks_csv": "",
        "n_boot": 200,   # enough resamples to exercise the intervals in seconds
    }

    predictions_dir: str = param("models/ranking")
    thresholds_file: str = param(_THRESHOLDS_FILE)
    figures_dir: str = param("results/06_evaluation")
    table_runs: list[str] = param(
        ["ce", "ce_thresholded", "corn", "corn_thresholded", "mae", "ranknet", "deep_rank_svm", "spineranknet",
         "ce_continued", "ce_continued_thresholded", "spineranknet_finetuned"],
        paper=["ce", "ce_thresholded", "ce_continued", "ce_continued_thresholded", "corn_finetuned",
               "corn_finetuned_thresholded", "mae_finetuned", "ranknet_finetuned", "deep_rank_svm_finetuned",
               "spineranknet_finetuned"],
        why="CPU: frozen family, then fine-tuned (paper: all fine-tuned, the rows of Table 1 in the paper's order)")
    main_run: str = param("spineranknet_finetuned")
    n_boot: int = param(1000, why="bootstrap resamples of the test patients (95% percentile intervals)")
    seed: int = param(0)
    truth_csv: str = param(_TRUTH_CSV, why='phantom only ("" on real data)')
    extra_tasks_csv: str = param(_EXTRA_TASKS_CSV, why='phantom only ("" on real data)')
    extra_truth: dict[str, str] = param(_EXTRA_TRUTH, why="latent behind each extra task")


# ---- notebook 07: the score-ordered figure ----------------------------------------------------------------------

@dataclass(frozen=True)
class ScoreFigureParams(Params):
    """Notebook 07 (params/score_figure.yaml): the ranking paper's Fig. 2 and the score distributions."""

    TINY: ClassVar[dict[str, Any]] = {
        "crops_dir": "", "predictions_dir": "", "thresholds_file": "", "figures_dir": "", "truth_csv": "",
        "extra_tasks_csv": "",
        "discs_per_task": 8,   # the tiny test split has few discs per task
    }

    crops_dir: str = param("data/crops")
    predictions_dir: str = param("models/ranking")
    thresholds_file: str = param(_THRESHOLDS_FILE)
    figures_dir: str = param("results/07_score_figure")
    run: str = param("spineranknet_finetuned",
                     why="SpineRankNet with the encoder fine-tuned in phase 2 (as the paper trains it)")
    discs_per_task: int = param(12, why="discs shown per task, at evenly spaced score ranks of the test split")
    truth_csv: str = param(_TRUTH_CSV, why='phantom only ("" on real data)')
    extra_tasks_csv: str = param(_EXTRA_TASKS_CSV, why='phantom only ("" on real data)')
    extra_truth: dict[str, str] = param(_EXTRA_TRUTH, why="latent behind each extra task")
