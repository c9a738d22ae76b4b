"""Disc-level classification metrics of the contrastive paper's Table 1, with bootstrap confidence intervals.

All metrics come from the confusion matrix C (rows: true grade, columns:
predicted grade), for grades 0 = Normal/Mild, 1 = Moderate, 2 = Severe:

    recall_k          = C[k, k] / sum_j C[k, j]
    accuracy          = sum_k C[k, k] / sum C
    balanced_accuracy = mean of recall_k over the grades present in y_true
    severe_to_normal  = C[2, 0] / sum_j C[2, j]   (share of true Severe called Normal/Mild)

Entries with y_true < 0 (missing grade) are dropped before anything else.
Undefined ratios (no sample of a grade) are nan.

Intervals are percentile bootstrap intervals. Given ``groups`` (one patient id
per disc, e.g. study_id) they resample patients, the unit whose discs are
correlated (the cluster bootstrap of :mod:`spinelib.bootstrap`); without it
each disc is its own patient.
"""

from __future__ import annotations

import warnings
from typing import Callable

import numpy as np
import pandas as pd

GRADE_NAMES = ("normal_mild", "moderate", "severe")
NORMAL_MILD, SEVERE = 0, 2      # grade indices; Moderate is 1
# Column order of the Table 1 summary (also the row order of ``summary_with_ci``'s frame and of the JSON written).
SUMMARY_COLUMNS = ("recall_normal_mild", "recall_moderate", "recall_severe", "accuracy", "balanced_accuracy",
                   "severe_to_normal")

Metric = Callable[[np.ndarray, np.ndarray], float]      # metric(y_true, y_pred) -> value, for ``bootstrap_ci``


def _labelled(y_true, y_pred, num_classes: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(y_true, y_pred) as int arrays with the entries of missing grade (y_true < 0) removed."""
    y_true = np.asarray(y_true).astype(np.int64, copy=False).ravel()
    y_pred = np.asarray(y_pred).astype(np.int64, copy=False).ravel()
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true and y_pred differ in length: {len(y_true)} vs {len(y_pred)}")
    keep = y_true >= 0
    y_true, y_pred = y_true[keep], y_pred[keep]
    if num_classes is not None:
        bad = (y_true >= num_classes) | (y_pred < 0) | (y_pred >= num_classes)
        if bad.any():
            raise ValueError(f"labels outside 0..{num_classes - 1}: y_true {np.unique(y_true[bad]).tolist()}, "
                             f"y_pred {np.unique(y_pred[bad]).tolist()}")
    return y_true, y_pred


def confusion_from_codes(codes: np.ndarray, num_classes: int) -> np.ndarray:
    """Confusion matrices (..., K, K) from codes K * true + pred (..., n), one per leading index."""
    lead = codes.shape[:-1]
    n_cells = num_classes * num_classes
    matrices = int(np.prod(lead, dtype=np.int64))
    # One bincount for all matrices: matrix m's codes are shifted into their own block [m·K², (m+1)·K²).
    flat = codes.reshape(matrices, codes.shape[-1]) + n_cells * np.arange(matrices)[:, None]  # n = 0 allowed
    counts = np.bincount(flat.ravel(), minlength=flat.shape[0] * n_cells)
    return counts.reshape(*lead, num_classes, num_classes)


def confusion(y_true, y_pred, num_classes: int = 3) -> np.ndarray:
    """Confusion matrix C (K, K): C[i, j] = number of discs of true grade i predicted as j."""
    y_true, y_pred = _labelled(y_true, y_pred, num_classes)
    return confusion_from_codes(num_classes * y_true + y_pred, num_classes)


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator, nan where the denominator is 0 (it may be a float below 1, e.g. Σ W∘E of QWK)."""
    positive = denominator > 0
    # Divide by 1 where the denominator is 0 (the result is replaced by nan anyway): no divide-by-zero warning.
    return np.where(positive, numerator / np.where(positive, denominator, 1), np.nan)


def summary_from_confusion(cm: np.ndarray) -> dict[str, np.ndarray]:
    """Table 1 columns from confusion matrices (..., K, K), K = 3; vectorised over the leading axes."""
    support = cm.sum(axis=-1)                           # discs per true grade (..., K)
    correct = np.diagonal(cm, axis1=-2, axis2=-1)        # C[k, k] (..., K)
    recall = _ratio(correct, support)
    present = support > 0
    # Balanced accuracy averages recall over the grades that occur: an absent grade's nan recall is excluded
    # (as sklearn's balanced_accuracy_score does), not counted as 0.
    balanced = _ratio(np.where(present, recall, 0.0).sum(axis=-1), present.sum(axis=-1))
    return {
        "recall_normal_mild": recall[..., NORMAL_MILD],
        "recall_moderate": recall[..., 1],
        "recall_severe": recall[..., SEVERE],
        "accuracy": _ratio(correct.sum(axis=-1), support.sum(axis=-1)),
        "balanced_accuracy": balanced,
        "severe_to_normal": _ratio(cm[..., SEVERE, NORMAL_MILD], support[..., SEVERE]),
    }


def recall_per_class(y_true, y_pred, num_classes: int = 3) -> np.ndarray:
    """recall_k = C[k, k] / sum_j C[k, j] for each grade k; nan where the grade has no sample."""
    cm = confusion(y_true, y_pred, num_classes)
    return _ratio(np.diagonal(cm), cm.sum(axis=1))


def severe_to_normal_rate(y_true, y_pred) -> float:
    """C[2, 0] / sum_j C[2, j]: share of true Severe discs predicted Normal/Mild; nan with no Severe disc."""
    return float(summary_from_confusion(confusion(y_true, y_pred, 3))["severe_to_normal"])


def classification_summary(y_true, y_pred, num_classes: int = 3) -> dict[str, float]:
    """The contrastive paper's Table 1 columns (see the module docstring) as plain floats."""
    if num_classes != len(GRADE_NAMES):
        raise ValueError(f"the Table 1 summary is defined for {len(GRADE_NAMES)} grades, got {num_classes}")
    summary = summary_from_confusion(confusion(y_true, y_pred, num_classes))
    return {name: float(value) for name, value in summary.items()}


def _resample_weights(n: int, groups, n_boot: int, seed: int) -> np.ndarray:
    """(n_boot, n) bootstrap weights of the n discs: patients resampled when ``groups`` is given, else discs."""
    # Imported here: spinelib.bootstrap imports this module at its top, so a top-level import would be circular.
    from spinelib.bootstrap import patient_weights

    patients = np.arange(n) if groups is None else np.asarray(groups).ravel()
    if len(patients) != n:
        raise ValueError(f"groups has {len(patients)} entries for {n} discs")
    return patient_weights(patients, n_boot, seed)


def _labelled_groups(y_true, groups) -> np.ndarray | None:
    """The patient ids of the labelled discs (y_true >= 0), or None."""
    if groups is None:
        return None
    groups = np.asarray(groups).ravel()
    y_true = np.asarray(y_true).astype(np.int64, copy=False).ravel()
    if len(groups) != len(y_true):
        raise ValueError(f"groups has {len(groups)} entries for {len(y_true)} discs")
    return groups[y_true >= 0]


def _percentile_interval(values: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval over axis 0, ignoring nan resamples; nan where every resample is nan."""
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    tail = 100 * (1 - level) / 2        # e.g. 2.5 for a 95 % interval: the 2.5th and 97.5th percentiles
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-nan columns: nan, reported as such
        low, high = np.nanpercentile(values, [tail, 100 - tail], axis=0)
    return low, high


def bootstrap_ci(y_true, y_pred, metric: Metric, n_boot: int = 1000, seed: int = 0,
                 level: float = 0.95, groups=None) -> tuple[float, float]:
    """Percentile bootstrap interval of ``metric(y_true, y_pred)``.

    With ``groups`` (a patient id per disc) each resample draws the patients with
    replacement and keeps all their discs; without it, discs are drawn. Resamples
    on which the metric is undefined (nan) are dropped; (nan, nan) when there is
    no labelled disc or every resample is undefined.
    """
    # Drop unlabelled discs from the patient ids first, while y_true still has its original length.
    groups = _labelled_groups(y_true, groups)
    y_true, y_pred = _labelled(y_true, y_pred)
    if len(y_true) == 0:
        return float("nan"), float("nan")
    rows = np.arange(len(y_true))
    # A generic metric needs the resample itself: row i repeated w_b[i] times (slower than the weighted
    # confusion matrices of summary_with_ci, but it accepts any function of (y_true, y_pred)).
    values = np.array([metric(y_true[idx], y_pred[idx]) for idx in
                       (np.repeat(rows, w) for w in _resample_weights(len(y_true), groups, n_boot, seed))],
                      dtype=float)
    low, high = _percentile_interval(values, level)
    return float(low), float(high)


def summary_with_ci(y_true, y_pred, n_boot: int = 1000, seed: int = 0, level: float = 0.95,
                    groups=None) -> pd.DataFrame:
    """Table 1 columns with percentile bootstrap intervals: one row per metric, columns value, ci_low, ci_high.

    Pass ``groups`` (the patient id of each disc) to resample patients, as every
    interval of the study should. Same resamples as :func:`bootstrap_ci` with the
    same seed and groups; the n_boot confusion matrices come from one weighted ``bincount``.
    """
    from spinelib.bootstrap import weighted_confusion      # here, not at the top: bootstrap imports this module

    groups = _labelled_groups(y_true, groups)
    y_true, y_pred = _labelled(y_true, y_pred, len(GRADE_NAMES))
    k = len(GRADE_NAMES)
    value = summary_from_confusion(confusion(y_true, y_pred, k))
    if len(y_true):
        # (n_boot, n) weights -> (n_boot, 3, 3) confusion matrices -> each column's (n_boot,) resampled values.
        weights = _resample_weights(len(y_true), groups, n_boot, seed)
        resampled = summary_from_confusion(weighted_confusion(y_true, y_pred, k, weights))
        low, high = _percentile_interval(np.stack([resampled[c] for c in SUMMARY_COLUMNS], axis=1), level)
    else:
        low = high = np.full(len(SUMMARY_COLUMNS), np.nan)
    return pd.DataFrame({"value": [float(value[c]) for c in SUMMARY_COLUMNS], "ci_low": low, "ci_high": high},
                        index=pd.Index(SUMMARY_COLUMNS, name="metric"))


# --- Ordinal metrics (ranking paper Table 1; multi-stage evaluation) -------------------------------------------

ORDINAL_COLUMNS = ("balanced_accuracy", "roc_auc", "qwk", "mae", "mcc")


def boundary_scores_from_proba(proba: np.ndarray) -> np.ndarray:
    """(N, K) class probabilities → (N, K−1) scores for the boundaries: column c is P(grade > c)."""
    proba = np.asarray(proba, dtype=float)
    # Reverse cumulative sum: column c of the reversed cumsum is P(grade ≥ c); dropping c = 0 (always 1) leaves
    # P(grade ≥ c + 1) = P(grade > c) for c = 0..K−2.
    return np.cumsum(proba[:, ::-1], axis=1)[:, ::-1][:, 1:]


def boundary_auc(y_true, boundary_scores: np.ndarray, num_grades: int | None = None) -> np.ndarray:
    """Per-boundary ROC-AUC: AUC_c of ``boundary_scores[:, c]`` for the binary target grade > c.

    A raw continuous score serves every boundary: pass it as an (N, 1) column
    with ``num_grades`` K (boundaries 0..K−2); nan for a boundary where one side
    has no disc.
    """
    from sklearn.metrics import roc_auc_score

    y_true = np.asarray(y_true).astype(int).ravel()
    scores = np.asarray(boundary_scores, dtype=float).reshape(len(y_true), -1)
    keep = y_true >= 0
    y_true, scores = y_true[keep], scores[keep]
    n_boundaries = scores.shape[1] if num_grades is None else num_grades - 1
    out = np.full(n_boundaries, np.nan)
    for c in range(n_boundaries):
        target = y_true > c
        # AUC needs both classes; roc_auc_score would raise otherwise.
        if 0 < target.sum() < len(target):
            # min(c, ...): a single score column (N, 1) is reused for every boundary.
            out[c] = roc_auc_score(target, scores[:, min(c, scores.shape[1] - 1)])
    return out


def ordinal_summary(y_true, y_pred, boundary_scores: np.ndarray | None, num_grades: int) -> dict[str, float]:
    """BA, ROC-AUC, QWK, MAE and MCC of predicted grades (entries with y_true < 0 dropped).

    * balanced accuracy: mean recall over the grades present in y_true;
    * ROC-AUC: mean over boundaries c = 0..K−2 of the AUC of ``boundary_scores[:, c]``
      for grade > c (see :func:`boundary_auc`; a single score column is used for every
      boundary); nan when ``boundary_scores`` is None;
    * QWK: Cohen's kappa with quadratic weights over the K grades;
    * MAE: mean |y_pred − y_true| in grade units;
    * MCC: multi-class Matthews correlation coefficient.
    """
    # The unfiltered grades are kept to index boundary_scores, which has one row per disc including unlabelled ones.
    y_all = np.asarray(y_true).astype(int).ravel()
    keep = y_all >= 0
    y_true, y_pred = _labelled(y_true, y_pred, num_grades)
    if len(y_true) == 0:
        return {name: float("nan") for name in ORDINAL_COLUMNS}
    cm = confusion_from_codes(num_grades * y_true + y_pred, num_grades)
    from_cm = ordinal_from_confusion(cm)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)     # nanmean of all-nan boundaries: nan, no warning
        # ROC-AUC is undefined when only one grade is present (no boundary has both sides).
        auc = float(np.nanmean(boundary_auc(y_all[keep], np.asarray(boundary_scores)[keep], num_grades))) \
            if boundary_scores is not None and len(np.unique(y_true)) > 1 else float("nan")
    return {"balanced_accuracy": float(from_cm["balanced_accuracy"]), "roc_auc": auc, "qwk": float(from_cm["qwk"]),
            "mae": float(from_cm["mae"]), "mcc": matthews_from_confusion(cm)}


def matthews_from_confusion(cm: np.ndarray) -> float:
    """Multi-class Matthews correlation of a confusion matrix (K, K), rows true, columns predicted.

    MCC = (c·s − Σ_k p_k t_k) / √((s² − Σ_k p_k²)(s² − Σ_k t_k²)), with c the correct count, s the total, t_k and
    p_k the true and predicted counts of grade k; 0 when a factor under the root is 0 (one grade only), as
    scikit-learn defines it (computed here so that a one-grade subset does not warn).
    """
    cm = np.asarray(cm, dtype=np.float64)
    # t: true counts per grade, p: predicted counts, c: correct, s: total (the names of the formula above).
    t, p, c, s = cm.sum(axis=1), cm.sum(axis=0), np.trace(cm), cm.sum()
    denominator = (s * s - p @ p) * (s * s - t @ t)
    return float((c * s - p @ t) / np.sqrt(denominator)) if denominator > 0 else 0.0


def ordinal_from_confusion(cm: np.ndarray) -> dict[str, np.ndarray]:
    """BA, QWK and MAE from confusion matrices (..., K, K), vectorised over the leading axes.

    QWK = 1 − Σ W∘O / Σ W∘E with W_ij = (i − j)² / (K − 1)², E = row sums ⊗ column sums / n.
    """
    k = cm.shape[-1]
    n = cm.sum(axis=(-2, -1))                               # discs per matrix (...)
    support = cm.sum(axis=-1)                               # row sums: true counts (..., K)
    recall = _ratio(np.diagonal(cm, axis1=-2, axis2=-1), support)
    present = support > 0
    balanced = _ratio(np.where(present, recall, 0.0).sum(axis=-1), present.sum(axis=-1))
    # ---- QWK: observed vs chance-expected disagreement, both weighted by the squared grade distance ----
    i, j = np.meshgrid(np.arange(k), np.arange(k), indexing="ij")      # (K, K) true and predicted grade
    weight = (i - j) ** 2 / (k - 1) ** 2
    # E = outer product of row and column sums / n (..., K, K): the counts expected if predictions ignored truth.
    expected = support[..., :, None] * cm.sum(axis=-2)[..., None, :] / np.maximum(n, 1)[..., None, None]
    qwk = 1 - _ratio((weight * cm).sum(axis=(-2, -1)), (weight * expected).sum(axis=(-2, -1)))
    # ---- MAE: mean |true − predicted| grade distance, read off the matrix ----
    mae = _ratio((np.abs(i - j) * cm).sum(axis=(-2, -1)), n)
    return {"balanced_accuracy": balanced, "qwk": qwk, "mae": mae}
