"""Cluster (patient) bootstrap: resampling weights, weighted metrics, percentile intervals and paired differences.

The discs of one patient are correlated (same scanner, same anatomy, same
reader), so the unit of resampling is the patient, not the disc. A resample
draws P patients with replacement from the P patients of the evaluation set;
each row (disc) then carries the weight

    w_b[i] = number of times the patient of row i was drawn in resample b,

and a metric of the resample is the metric of the multiset in which row i
appears w_b[i] times. Every metric below is computed from the (n_boot, n)
weight matrix at once, without materialising the resamples.

Pairing: :func:`patient_weights` depends only on the seed and the set of
patient ids, so two methods evaluated on the same rows with the same seed see
the same resamples, and :func:`paired_difference` of their bootstrap values is
a paired comparison (the interval of the difference, not two intervals).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy.stats import kendalltau, spearmanr

from spinelib.metrics import NORMAL_MILD, SEVERE, _percentile_interval, _ratio, ordinal_from_confusion


def patient_weights(patients, n_boot: int, seed: int) -> np.ndarray:
    """(n_boot, n) int weights of the cluster bootstrap: row i counts how often its patient was drawn.

    ``patients`` holds one patient id per row (several rows may share one). Each
    resample draws the P distinct patients P times with replacement
    (``np.random.default_rng(seed)``); the rows of one patient get identical
    weights. With one row per patient this is the ordinary (disc) bootstrap:
    the draws equal ``rng.integers(0, n, (n_boot, n))`` counted per row.
    """
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    # np.unique sorts the ids: the draws depend on the set of patients, not on the order of the rows, which is
    # what makes two methods' resamples line up (pairing, module docstring).
    ids, row_patient = np.unique(np.asarray(patients).ravel(), return_inverse=True)
    n_patients = len(ids)
    if n_patients == 0:
        return np.zeros((n_boot, 0), dtype=np.int64)
    # draws[b, k] = index of the patient drawn k-th in resample b (n_boot, P); changing this call or its shape
    # changes every published interval.
    draws = np.random.default_rng(seed).integers(0, n_patients, size=(n_boot, n_patients))
    # Count draws per (resample, patient) with one bincount: resample b's patient indices live in block b.
    flat = draws + n_patients * np.arange(n_boot)[:, None]
    counts = np.bincount(flat.ravel(), minlength=n_boot * n_patients).reshape(n_boot, n_patients)
    # Patient counts (n_boot, P) -> row weights (n_boot, n): each row takes its patient's count.
    return counts[:, row_patient.ravel()]


def _check_weights(weights, n: int) -> np.ndarray:
    """``weights`` as an array, checked to be (n_boot, n) for n rows."""
    weights = np.asarray(weights)
    if weights.ndim != 2 or weights.shape[1] != n:
        raise ValueError(f"weights must have shape (n_boot, {n}), got {weights.shape}")
    return weights


# --- Confusion-matrix metrics -----------------------------------------------------------------------------------


def weighted_confusion(y_true, y_pred, k: int, weights) -> np.ndarray:
    """(n_boot, k, k) confusion matrices of the resamples: C_b[i, j] = Σ_rows w_b · [true = i, pred = j].

    Rows with y_true < 0 (missing grade) are ignored; a labelled row whose
    prediction lies outside 0..k−1 raises.
    """
    y_true = np.asarray(y_true).astype(np.int64).ravel()
    y_pred = np.asarray(y_pred).astype(np.int64).ravel()
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true and y_pred differ in length: {len(y_true)} vs {len(y_pred)}")
    weights = _check_weights(weights, len(y_true))
    keep = y_true >= 0
    y_true, y_pred, weights = y_true[keep], y_pred[keep], weights[:, keep]
    bad = (y_true >= k) | (y_pred < 0) | (y_pred >= k)
    if bad.any():
        raise ValueError(f"labels outside 0..{k - 1}: y_true {np.unique(y_true[bad]).tolist()}, "
                         f"y_pred {np.unique(y_pred[bad]).tolist()}")
    n_boot, cells = len(weights), k * k
    # Cell code k·true + pred, shifted into resample b's block of k² cells: one weighted bincount for all.
    flat = (k * y_true + y_pred)[None, :] + cells * np.arange(n_boot)[:, None]
    counts = np.bincount(flat.ravel(), weights=weights.ravel().astype(float), minlength=n_boot * cells)
    # bincount sums float weights; the counts are whole numbers, rounded back to exact ints.
    return np.rint(counts).astype(np.int64).reshape(n_boot, k, k)


def mcc_from_confusion(cm: np.ndarray) -> np.ndarray:
    """Multi-class Matthews correlation of confusion matrices (..., K, K); 0 where a margin is constant (as sklearn).

    MCC = (c·s − Σ_k p_k t_k) / sqrt((s² − Σ_k p_k²)(s² − Σ_k t_k²)), c = trace, s = total,
    t = row (true) sums, p = column (predicted) sums.
    """
    cm = np.asarray(cm, dtype=float)
    # Same formula as spinelib.metrics.matthews_from_confusion, vectorised over the leading (resample) axes.
    true, pred = cm.sum(axis=-1), cm.sum(axis=-2)
    correct, total = np.trace(cm, axis1=-2, axis2=-1), cm.sum(axis=(-2, -1))
    numerator = correct * total - (true * pred).sum(axis=-1)
    denominator = np.sqrt((total ** 2 - (pred ** 2).sum(axis=-1)) * (total ** 2 - (true ** 2).sum(axis=-1)))
    # nan for an empty resample; 0 where a margin is constant (one grade only), as sklearn defines it.
    return np.where(total > 0, np.where(denominator > 0, _ratio(numerator, denominator), 0.0), np.nan)


def bootstrap_ordinal_weighted(y_true, y_pred, k: int, weights, boundary_scores=None) -> dict[str, np.ndarray]:
    """Per-resample metrics (n_boot,): balanced_accuracy, qwk, mae, mcc, accuracy and, for k = 3, severe_to_normal.

    BA, QWK and MAE as :func:`spinelib.metrics.ordinal_from_confusion`; accuracy = trace / total;
    severe_to_normal = C[2, 0] / Σ_j C[2, j]. With ``boundary_scores`` ((n, K−1) or (n, 1)) also
    roc_auc, the mean boundary AUC of :func:`weighted_boundary_auc`.
    """
    cm = weighted_confusion(y_true, y_pred, k, weights)
    out = dict(ordinal_from_confusion(cm))
    out["mcc"] = mcc_from_confusion(cm)
    out["accuracy"] = _ratio(np.trace(cm, axis1=-2, axis2=-1), cm.sum(axis=(-2, -1)))
    if k == 3:
        out["severe_to_normal"] = _ratio(cm[:, SEVERE, NORMAL_MILD], cm[:, SEVERE].sum(axis=-1))
    if boundary_scores is not None:
        out["roc_auc"] = weighted_boundary_auc(y_true, boundary_scores, k, weights)
    return out


# --- Rank metrics -----------------------------------------------------------------------------------------------


def _tie_groups(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows sorted by value, and the start of each run of equal values in that order."""
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    # A run starts at position 0 and wherever the sorted value changes.
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    return order, starts


def weighted_auc(y_binary, score, weights) -> np.ndarray:
    """(n_boot,) Mann–Whitney ROC-AUC of the resamples, ties counted ½; nan where one class has zero weight.

    AUC_b = Σ_{i pos, j neg} w_i w_j ([s_i > s_j] + ½ [s_i = s_j]) / (W⁺ W⁻): the AUC of the resample
    with its duplicates. Rows are sorted once; per tie group g of the scores,
    negatives_below_g = cumulative negative weight of the groups below it.
    """
    positive = np.asarray(y_binary).astype(bool).ravel()
    score = np.asarray(score, dtype=float).ravel()
    if positive.shape != score.shape:
        raise ValueError(f"y_binary and score differ in length: {len(positive)} vs {len(score)}")
    weights = _check_weights(weights, len(score)).astype(float)
    if len(score) == 0:
        return np.full(len(weights), np.nan)
    order, starts = _tie_groups(score)
    sorted_weights = weights[:, order]                          # (n_boot, n), columns in score order
    # Per tie group g: total positive and negative weight (n_boot, G), one reduceat per class.
    pos_in_group = np.add.reduceat(sorted_weights * positive[order], starts, axis=1)
    neg_in_group = np.add.reduceat(sorted_weights * ~positive[order], starts, axis=1)
    # Exclusive cumulative sum: negative weight strictly below group g.
    negatives_below = np.cumsum(neg_in_group, axis=1) - neg_in_group
    # A positive in group g beats every negative below it and ties (½) with the negatives in g.
    wins = (pos_in_group * (negatives_below + 0.5 * neg_in_group)).sum(axis=1)
    return _ratio(wins, pos_in_group.sum(axis=1) * neg_in_group.sum(axis=1))


def weighted_boundary_auc(y_true, boundary_scores, k: int, weights) -> np.ndarray:
    """(n_boot,) mean over boundaries c = 0..k−2 of the weighted AUC of column c for grade > c.

    Same convention as :func:`spinelib.metrics.boundary_auc`: a single score column (n, 1) serves
    every boundary; rows with y_true < 0 are dropped; boundaries undefined in a resample are skipped
    (nan when all are).
    """
    y_true = np.asarray(y_true).astype(np.int64).ravel()
    scores = np.asarray(boundary_scores, dtype=float).reshape(len(y_true), -1)
    weights = _check_weights(weights, len(y_true))
    keep = y_true >= 0
    y_true, scores, weights = y_true[keep], scores[keep], weights[:, keep]
    # (k − 1, n_boot): one weighted AUC per boundary; min(c, ...) reuses a single score column for all.
    per_boundary = np.stack([weighted_auc(y_true > c, scores[:, min(c, scores.shape[1] - 1)], weights)
                             for c in range(k - 1)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # every boundary undefined: nan
        return np.nanmean(per_boundary, axis=0)


def _weighted_midranks(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """(n_boot, n) mid-ranks of each row in its resample: weight of smaller values + (weight of its ties + 1) / 2."""
    order, starts = _tie_groups(values)
    # Tie-group index of every row: counting group starts along the sorted order, then scattering back.
    is_start = np.zeros(len(values), dtype=bool)
    is_start[starts] = True
    group_of_row = np.empty(len(values), dtype=np.int64)
    group_of_row[order] = np.cumsum(is_start) - 1
    in_group = np.add.reduceat(weights[:, order], starts, axis=1)       # resampled size of each group (n_boot, G)
    # Ranks below the group + the average of the ranks 1..size the group's copies take: (size + 1) / 2.
    midrank = np.cumsum(in_group, axis=1) - in_group + (in_group + 1) / 2
    return midrank[:, group_of_row]


def weighted_spearman(x, y, weights) -> np.ndarray:
    """(n_boot,) Spearman ρ of each resample with its duplicates: weighted Pearson of the weighted mid-ranks.

    Mid-rank of a row = (weight of rows with smaller value) + (weight of rows with the same value + 1) / 2,
    the average rank its copies and ties take in the materialised resample; then
    ρ_b = Σ w (r_x − r̄_x)(r_y − r̄_y) / sqrt(Σ w (r_x − r̄_x)² · Σ w (r_y − r̄_y)²), r̄ the w-weighted means.
    Rows where x or y is not finite are dropped; nan where a resample has a constant x or y.
    """
    x, y = np.asarray(x, dtype=float).ravel(), np.asarray(y, dtype=float).ravel()
    if x.shape != y.shape:
        raise ValueError(f"x and y differ in length: {len(x)} vs {len(y)}")
    weights = _check_weights(weights, len(x))
    keep = np.isfinite(x) & np.isfinite(y)
    x, y, weights = x[keep], y[keep], weights[:, keep].astype(float)
    if len(x) == 0:
        return np.full(len(weights), np.nan)
    rank_x, rank_y = _weighted_midranks(x, weights), _weighted_midranks(y, weights)
    total = weights.sum(axis=1, keepdims=True)
    # ---- weighted Pearson correlation of the mid-ranks (an empty resample divides 0 by 0: nan) ----
    with np.errstate(invalid="ignore", divide="ignore"):
        dx = rank_x - (weights * rank_x).sum(axis=1, keepdims=True) / total
        dy = rank_y - (weights * rank_y).sum(axis=1, keepdims=True) / total
    covariance = (weights * dx * dy).sum(axis=1)
    spread = (weights * dx ** 2).sum(axis=1) * (weights * dy ** 2).sum(axis=1)
    # mid-ranks are multiples of ½, so a constant margin gives a spread of exactly 0
    return _ratio(covariance, np.sqrt(spread))


def _cell_ids(cells, n: int) -> tuple[np.ndarray, list]:
    """(code per row, cell id per code) of ``cells``: a 1-D sequence of hashable ids or a 2-D table (a cell per row)."""
    # Several cell columns become one hashable tuple per row, so a single factorize numbers the cells.
    if isinstance(cells, pd.DataFrame):
        cells = list(cells.itertuples(index=False, name=None))
    elif not isinstance(cells, pd.Series) and np.ndim(cells) == 2:
        cells = [tuple(row) for row in np.asarray(cells).tolist()]
    # sort=False: cells are numbered in order of first appearance, which is the row order of the per-cell table.
    codes, uniques = pd.factorize(pd.Series(list(cells), dtype=object), sort=False)
    if len(codes) != n:
        raise ValueError(f"cells has {len(codes)} entries for {n} rows")
    return codes, list(uniques)


def _within_cell(x, y, cells, min_n: int, correlation) -> tuple[float, pd.DataFrame, list[np.ndarray]]:
    """Pooled correlation, per-cell table and the rows of each used cell (see :func:`within_cell_spearman`)."""
    x, y = np.asarray(x, dtype=float).ravel(), np.asarray(y, dtype=float).ravel()
    if x.shape != y.shape:
        raise ValueError(f"x and y differ in length: {len(x)} vs {len(y)}")
    codes, labels = _cell_ids(cells, len(x))
    finite = np.isfinite(x) & np.isfinite(y)
    rows, used = [], []
    for code, cell in enumerate(labels):
        members = np.flatnonzero((codes == code) & finite)
        # A correlation needs enough rows and some spread in both variables; otherwise the cell is reported, unused.
        valid = len(members) >= min_n and len(np.unique(x[members])) > 1 and len(np.unique(y[members])) > 1
        rho = float(correlation(x[members], y[members]).statistic) if valid else np.nan
        rows.append({"cell": cell, "n": len(members), "rho": rho})
        if valid:
            used.append(members)
    per_cell = pd.DataFrame(rows, columns=["cell", "n", "rho"])
    ok = per_cell["rho"].notna()
    # Pooled ρ: the cells' ρ averaged with their sizes as weights (bigger cells estimate ρ more precisely).
    point = float(np.average(per_cell.loc[ok, "rho"], weights=per_cell.loc[ok, "n"])) if ok.any() else np.nan
    return point, per_cell, used


def within_cell_spearman(x, y, cells, weights=None,
                         min_n: int = 5) -> tuple[float, pd.DataFrame, np.ndarray | None]:
    """Spearman ρ inside each cell (e.g. grade × level), pooled as the n-weighted mean over the usable cells.

    A cell is used when it has at least ``min_n`` rows (finite x and y) and more than one distinct x and y.
    Returns (pooled ρ, per-cell table [cell, n, rho] with rho nan for unused cells, and with ``weights``
    the (n_boot,) pooled ρ of each resample: Σ_c n_bc ρ_bc / Σ_c n_bc over the used cells, n_bc the
    resampled size of the cell, cells whose resampled ρ is undefined left out; else None).
    """
    point, per_cell, used = _within_cell(x, y, cells, min_n, spearmanr)
    if weights is None:
        return point, per_cell, None
    x, y = np.asarray(x, dtype=float).ravel(), np.asarray(y, dtype=float).ravel()
    weights = _check_weights(weights, len(x))
    if not used:
        return point, per_cell, np.full(len(weights), np.nan)
    rho = np.stack([weighted_spearman(x[m], y[m], weights[:, m]) for m in used])  # (cells, n_boot)
    size = np.stack([weights[:, m].sum(axis=1) for m in used]).astype(float)      # n_bc (cells, n_boot)
    # A cell whose resample has an undefined ρ (constant x or y) gets weight 0 in that resample, and its nan
    # becomes 0 so that it cannot poison the sum.
    size = np.where(np.isfinite(rho), size, 0.0)
    boot = _ratio((size * np.nan_to_num(rho)).sum(axis=0), size.sum(axis=0))
    return point, per_cell, boot


def within_cell_kendall(x, y, cells, min_n: int = 5) -> tuple[float, pd.DataFrame]:
    """Kendall τ-b inside each cell, pooled like :func:`within_cell_spearman` (point estimate only)."""
    point, per_cell, _ = _within_cell(x, y, cells, min_n, kendalltau)
    return point, per_cell


# --- Intervals --------------------------------------------------------------------------------------------------


def percentile_interval(boot, level: float = 0.95) -> tuple[float, float]:
    """(low, high) percentile interval of bootstrap values, nan resamples ignored; (nan, nan) if all are nan."""
    low, high = _percentile_interval(np.asarray(boot, dtype=float).ravel(), level)
    return float(low), float(high)


def paired_difference(point_a: float, point_b: float, boot_a, boot_b, level: float = 0.95) -> dict:
    """Difference a − b with the percentile interval of the per-resample differences boot_a − boot_b.

    ``boot_a`` and ``boot_b`` must come from the same weights (same rows, same seed): the interval is then
    that of a paired comparison. ``excludes_zero`` is True when the whole interval lies on one side of 0.
    """
    boot_a, boot_b = np.asarray(boot_a, dtype=float).ravel(), np.asarray(boot_b, dtype=float).ravel()
    if boot_a.shape != boot_b.shape:
        raise ValueError(f"paired bootstrap values differ in length: {len(boot_a)} vs {len(boot_b)}")
    low, high = percentile_interval(boot_a - boot_b, level)
    return {"diff": float(point_a) - float(point_b), "low": low, "high": high,
            "excludes_zero": bool(low > 0 or high < 0)}
