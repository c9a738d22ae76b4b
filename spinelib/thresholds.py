"""Cut points that turn a continuous severity score into K ordinal grades (ranking paper §2.1 and §4).

K − 1 strictly increasing thresholds τ_0 < … < τ_{K−2} map a score s to

    grade(s) = #{c : s > τ_c}                      (a score equal to τ_c stays below it)

and are fitted on validation scores by one of four methods (the paper's threshold ablation):

* ``coordinate_descent`` (the released code's grid search) maximises the composite objective

      J(τ) = 0.5·BA + 0.3·QWK + 0.2·(1 − MAE / (K − 1))

  with BA the mean recall over the grades present, QWK = 1 − Σ W∘O / Σ W∘E
  (W_ij = (i − j)² / (K − 1)², O the confusion matrix, E = row sums ⊗ column
  sums / n; QWK := 0 where Σ W∘E = 0) and MAE in grade units. Each τ_c is swept
  over a coarse grid of the score range between its neighbours (repeated while
  that helps), then over two finer grids around its current value, then the
  whole vector is polished by Nelder–Mead; a move is kept only if it raises J.
* ``isotonic``: ĝ = isotonic (increasing) regression of grade on score, linear
  between its fitted points; τ_c = the first s with ĝ(s) ≥ c + ½.
* ``youden``: τ_c = argmax_t TPR_c(t) − FPR_c(t) for the binary target grade > c
  (cuts midway between consecutive distinct scores).
* ``gmm``: a K-component 1-D Gaussian mixture of the scores, components sorted by
  mean; τ_c solves π_c N(s; μ_c, σ_c²) = π_{c+1} N(s; μ_{c+1}, σ_{c+1}²) for s in
  (μ_c, μ_{c+1}), else τ_c = (μ_c + μ_{c+1}) / 2.

Every method ends with the same repair: τ_c ← max(τ_c, τ_{c−1} + ε), ε = 1e-6 ·
max(score range, 1), so the output is strictly increasing even when a grade is
absent from the fitting data. Grades < 0 mean "missing" and are ignored.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy.optimize import minimize

from spinelib.metrics import confusion_from_codes, ordinal_from_confusion

_DEFAULT_WEIGHTS = (0.5, 0.3, 0.2)  # BA, QWK, 1 − MAE/(K − 1): the released code's composite


# --- Input checks and shared pieces -------------------------------------------------------------------------------

def _labelled(scores, grades, num_grades: int) -> tuple[np.ndarray, np.ndarray]:
    """(scores, grades) as float / int arrays with the missing grades (< 0) removed; ValueError on bad input."""
    if int(num_grades) != num_grades or num_grades < 2:
        raise ValueError(f"num_grades must be an integer ≥ 2, got {num_grades!r}")
    scores = np.asarray(scores, dtype=float)
    grades_raw = np.asarray(grades)
    if scores.ndim != 1 or grades_raw.ndim != 1:
        raise ValueError(f"scores and grades must be 1-D, got shapes {scores.shape} and {grades_raw.shape}")
    if len(scores) != len(grades_raw):
        raise ValueError(f"scores and grades differ in length: {len(scores)} vs {len(grades_raw)}")
    # Go through float so that 2.0 is accepted as a grade but 2.5 is refused (int() would silently truncate it).
    grades_float = grades_raw.astype(float)
    if np.any(grades_float != np.round(grades_float)):
        raise ValueError("grades must be integers (−1 for missing)")
    grades = grades_float.astype(np.int64)
    keep = grades >= 0
    if np.any(grades[keep] >= num_grades):
        raise ValueError(f"grades {sorted(set(grades[grades >= num_grades].tolist()))} outside 0..{num_grades - 1}")
    if not np.all(np.isfinite(scores[keep])):
        raise ValueError(f"{int((~np.isfinite(scores[keep])).sum())} graded scores are not finite")
    if not keep.any():
        raise ValueError("no score has a grade (all grades missing): nothing to fit thresholds on")
    return scores[keep], grades[keep]


def _epsilon(scores: np.ndarray) -> float:
    """The smallest gap kept between consecutive thresholds."""
    # Relative to the score range (floor 1): negligible against any real gap between scores, yet well above
    # float rounding, so ``s > τ_c`` stays unambiguous.
    return 1e-6 * max(float(np.ptp(scores)), 1.0)


def _strictly_increasing(thresholds: np.ndarray, eps: float) -> np.ndarray:
    """τ_c ← max(τ_c, τ_{c−1} + eps) in one pass: running maximum of τ_c − c·eps, plus c·eps."""
    # Subtracting c·eps turns "each at least eps above the previous" into "non-decreasing", which a running
    # maximum enforces in one vectorised pass.
    offset = eps * np.arange(len(thresholds))
    return np.maximum.accumulate(np.asarray(thresholds, dtype=float) - offset) + offset


def apply_thresholds(scores, thresholds) -> np.ndarray:
    """Grades (int64) = number of thresholds each score exceeds strictly.

    A score equal to a threshold goes to the lower grade (``np.searchsorted``
    with side="left"). ``thresholds`` must be non-decreasing; scores must be finite.
    """
    scores = np.asarray(scores, dtype=float)
    thresholds = np.asarray(thresholds, dtype=float).ravel()
    if np.any(np.diff(thresholds) < 0):
        raise ValueError(f"thresholds must be non-decreasing, got {thresholds.tolist()}")
    if not np.all(np.isfinite(scores)):
        raise ValueError(f"{int((~np.isfinite(scores)).sum())} scores are not finite")
    return np.searchsorted(thresholds, scores, side="left").astype(np.int64)


# --- The composite objective --------------------------------------------------------------------------------------

def _objective_from_confusion(cm: np.ndarray, weights=_DEFAULT_WEIGHTS) -> np.ndarray:
    """J = w_BA·BA + w_QWK·QWK + w_MAE·(1 − MAE/(K − 1)) of confusion matrices (..., K, K), vectorised.

    QWK counts as 0 where it is undefined (Σ W∘E = 0).
    """
    k = cm.shape[-1]
    # BA, QWK and MAE of every matrix at once (..., K, K) -> (...): the sweeps below score whole grids in one call.
    terms = ordinal_from_confusion(np.asarray(cm, dtype=float))
    w_ba, w_qwk, w_mae = weights
    return w_ba * terms["balanced_accuracy"] + w_qwk * np.nan_to_num(terms["qwk"], nan=0.0) \
        + w_mae * (1 - terms["mae"] / (k - 1))


def _confusion(grades: np.ndarray, predicted: np.ndarray, num_grades: int) -> np.ndarray:
    """Confusion matrix (K, K) of int grades against int predictions (both already checked to lie in 0..K−1)."""
    return confusion_from_codes(num_grades * grades + predicted, num_grades)


def composite_objective(grades, predicted, num_grades: int, weights=_DEFAULT_WEIGHTS) -> float:
    """0.5·BA + 0.3·QWK + 0.2·(1 − MAE/(K − 1)) of predicted grades (weights: BA, QWK, MAE term).

    Entries with a missing true grade (< 0) are dropped; QWK counts as 0 where it
    is undefined (no spread in the expected agreement).
    """
    grades = np.asarray(grades, dtype=np.int64)
    predicted = np.asarray(predicted, dtype=np.int64)
    if grades.shape != predicted.shape:
        raise ValueError(f"grades and predicted differ in shape: {grades.shape} vs {predicted.shape}")
    keep = grades >= 0
    if not keep.any():
        raise ValueError("no entry has a grade")
    if np.any(grades[keep] >= num_grades) or np.any((predicted[keep] < 0) | (predicted[keep] >= num_grades)):
        raise ValueError(f"grades or predictions outside 0..{num_grades - 1}")
    return float(_objective_from_confusion(_confusion(grades[keep], predicted[keep], num_grades), weights))


# --- Coordinate descent on the composite objective ----------------------------------------------------------------

def quantile_thresholds(scores, grades, num_grades: int) -> np.ndarray:
    """Starting point: τ_c = the P(grade ≤ c) quantile of the scores (class frequencies of the fitting data)."""
    scores, grades = _labelled(scores, grades, num_grades)
    # P(grade ≤ c) for c = 0..K−2 (the last cumulative share, 1, is no boundary).
    cumulative = np.cumsum(np.bincount(grades, minlength=num_grades))[:-1] / len(grades)
    return _strictly_increasing(np.quantile(scores, cumulative), _epsilon(scores))


def _sweep_objective(scores: np.ndarray, grades: np.ndarray, thresholds: np.ndarray, c: int,
                     candidates: np.ndarray, weights) -> np.ndarray:
    """J for τ_c set to each candidate (all strictly between τ_{c−1} and τ_{c+1}), the other thresholds fixed.

    Scores outside (τ_{c−1}, τ_{c+1}] keep their grade whatever the candidate, so
    their confusion counts are fixed; a score inside gets grade c + [s > τ_c].
    Counting the inside scores above each candidate per true grade (one sorted
    search per grade) gives every candidate's confusion matrix at once.
    """
    k = len(thresholds) + 1
    low = thresholds[c - 1] if c > 0 else -np.inf
    high = thresholds[c + 1] if c < k - 2 else np.inf
    # ---- the scores whose grade cannot change: one confusion matrix, copied for every candidate ----
    inside = (scores > low) & (scores <= high)
    fixed = _confusion(grades[~inside], apply_thresholds(scores[~inside], thresholds), k)
    cm = np.broadcast_to(fixed, (len(candidates), k, k)).copy()       # (candidates, K, K)
    # ---- the scores in play: per true grade g, how many lie above each candidate (grade c + 1) or not (c) ----
    for true_grade in np.unique(grades[inside]):
        in_play = np.sort(scores[inside & (grades == true_grade)])
        # side="right": a score equal to the candidate is not above it (grade(s) counts s > τ strictly).
        above = len(in_play) - np.searchsorted(in_play, candidates, side="right")
        cm[:, true_grade, c + 1] += above
        cm[:, true_grade, c] += len(in_play) - above
    return _objective_from_confusion(cm, weights)


def _plateau_centre(values: np.ndarray) -> int:
    """Index in the middle of the run of maximal values that holds the first maximum."""
    # Within a flat run of maxima every threshold is equally good on the fitting data; the middle of the run
    # is the choice least sensitive to new scores (a margin on both sides).
    best = values.max()
    top = np.isclose(values, best, rtol=0, atol=1e-12)
    first = int(np.argmax(top))
    # The run ends at the first non-maximal value after ``first`` (argmin of a bool array = first False).
    last = first + int(np.argmin(top[first:])) if not top[first:].all() else len(values)
    return (first + last - 1) // 2


def _coordinate_pass(scores, grades, thresholds, value, centre, width, grid_size, weights):
    """Sweep each τ_c in turn over ``grid_size`` points of [centre − width, centre + width] between its neighbours.

    ``centre`` None means around each threshold's current value. A threshold
    moves (to the middle of the best plateau of the grid) only if J rises.
    """
    for c in range(len(thresholds)):
        low = thresholds[c - 1] if c > 0 else -np.inf
        high = thresholds[c + 1] if c < len(thresholds) - 1 else np.inf
        middle = thresholds[c] if centre is None else centre
        grid = np.linspace(middle - width, middle + width, grid_size)
        # Candidates must stay strictly between the neighbours, so the thresholds remain ordered.
        grid = grid[(grid > low) & (grid < high)]
        if len(grid) == 0:
            continue
        values = _sweep_objective(scores, grades, thresholds, c, grid, weights)
        # 1e-12: a move must raise J by more than rounding noise, so ties never shuffle thresholds around.
        if values.max() > value + 1e-12:
            thresholds = thresholds.copy()
            thresholds[c] = grid[_plateau_centre(values)]
            value = float(values.max())
    return thresholds, value


def coordinate_descent_thresholds(scores, grades, num_grades: int, *, weights=_DEFAULT_WEIGHTS,
                                  grid_size: int = 200, refinements: int = 2, polish: bool = True,
                                  initial=None, max_coarse_passes: int = 10) -> np.ndarray:
    """Thresholds maximising the composite objective J (released code's grid search; module docstring).

    A coarse sweep of ``grid_size`` points over the score range for each
    threshold in turn (candidates between its neighbours; the sweep of all
    thresholds is repeated while it raises J, at most ``max_coarse_passes``
    times), ``refinements`` sweeps of ``grid_size`` points over ± the previous
    grid step around the current value, then (``polish``) Nelder–Mead on the
    whole vector. Starts from ``initial`` or :func:`quantile_thresholds`; J
    never decreases.
    """
    scores, grades = _labelled(scores, grades, num_grades)
    if grid_size < 2 or refinements < 0:
        raise ValueError(f"grid_size must be ≥ 2 and refinements ≥ 0, got {grid_size} and {refinements}")
    if len(weights) != 3:
        raise ValueError(f"weights are (BA, QWK, MAE term): 3 numbers, got {weights!r}")
    eps = _epsilon(scores)
    thresholds = _strictly_increasing(quantile_thresholds(scores, grades, num_grades) if initial is None
                                      else np.asarray(initial, dtype=float), eps)
    if len(thresholds) != num_grades - 1:
        raise ValueError(f"initial has {len(thresholds)} thresholds, expected {num_grades - 1}")

    def objective(t: np.ndarray) -> float:
        """J of a threshold vector; sorted first, as Nelder–Mead may propose them out of order."""
        return float(_objective_from_confusion(_confusion(grades, apply_thresholds(scores, np.sort(t)),
                                                          num_grades), weights))

    # ---- coarse passes over the whole score range, then refinements around the current values ----
    value = objective(thresholds)
    lo, hi = float(scores.min()), float(scores.max())
    step = (hi - lo) / (grid_size - 1)
    if step > 0:
        for _ in range(max_coarse_passes):  # a threshold held back by a neighbour gets another chance
            before = value
            thresholds, value = _coordinate_pass(scores, grades, thresholds, value, (lo + hi) / 2, (hi - lo) / 2,
                                                 grid_size, weights)
            if value <= before + 1e-12:
                break
        for _ in range(refinements):
            thresholds, value = _coordinate_pass(scores, grades, thresholds, value, None, step, grid_size, weights)
            # The next grid spans ± one step of this one: each refinement zooms in by (grid_size − 1) / 2.
            step = 2 * step / (grid_size - 1)
    # ---- Nelder–Mead polish of all thresholds jointly (J is piecewise constant, so a gradient method would not
    # move); its initial simplex steps 1 % of the score range along each threshold ----
    if polish and step > 0:
        simplex = thresholds + np.vstack([np.zeros(len(thresholds)), np.eye(len(thresholds)) * (hi - lo) / 100])
        result = minimize(lambda t: -objective(t), thresholds, method="Nelder-Mead",
                          options={"initial_simplex": simplex, "xatol": eps, "fatol": 1e-9})
        polished = _strictly_increasing(np.sort(result.x), eps)
        # Kept only if strictly better: J never decreases (the docstring's promise).
        if objective(polished) > value + 1e-12:
            thresholds = polished
    return _strictly_increasing(thresholds, eps)


# --- Isotonic regression, Youden's index, Gaussian mixture --------------------------------------------------------

def isotonic_thresholds(scores, grades, num_grades: int) -> np.ndarray:
    """τ_c = first score where the isotonic fit of grade on score reaches c + ½ (linear between fitted points).

    If the fit is already ≥ c + ½ at the lowest score, τ_c sits just below it
    (every score exceeds τ_c); if it never reaches c + ½, τ_c = the highest score.
    """
    from sklearn.isotonic import IsotonicRegression

    scores, grades = _labelled(scores, grades, num_grades)
    eps = _epsilon(scores)
    fit = IsotonicRegression(increasing=True, out_of_bounds="clip").fit(scores, grades)
    # The fit's knots: x increasing scores, y the non-decreasing fitted grades; ĝ is linear between them.
    x, y = np.asarray(fit.X_thresholds_, dtype=float), np.asarray(fit.y_thresholds_, dtype=float)
    levels = np.arange(num_grades - 1) + 0.5    # τ_c is where ĝ crosses c + ½, the midpoint between grades c and c+1
    first = np.searchsorted(y, levels, side="left")  # y is non-decreasing: first fitted point ≥ level
    out = np.empty(num_grades - 1)
    for c, (level, i) in enumerate(zip(levels, first)):
        if i == 0:
            out[c] = x[0] - eps
        elif i == len(x):
            out[c] = x[-1]
        else:
            # Linear interpolation on the segment where ĝ crosses the level (y[i − 1] < level ≤ y[i]).
            out[c] = x[i - 1] + (level - y[i - 1]) / (y[i] - y[i - 1]) * (x[i] - x[i - 1])
    return _strictly_increasing(out, eps)


def youden_thresholds(scores, grades, num_grades: int) -> np.ndarray:
    """τ_c maximising Youden's J = TPR − FPR for grade > c, then forced increasing (running maximum + ε).

    Candidate cuts lie midway between consecutive distinct scores, plus one
    below the lowest score and one at the highest; the first maximum is taken.
    A boundary with no disc on one side gets the cut that puts every score on
    the side that exists (below the lowest score, or at the highest).
    """
    scores, grades = _labelled(scores, grades, num_grades)
    eps = _epsilon(scores)
    # values: the distinct scores, sorted; which: each score's index among them.
    values, which = np.unique(scores, return_inverse=True)
    cuts = np.concatenate([[values[0] - eps], (values[:-1] + values[1:]) / 2, [values[-1]]])
    # counts[v, g]: how many discs of grade g have the v-th distinct score.
    counts = np.bincount(which * num_grades + grades, minlength=len(values) * num_grades).reshape(
        len(values), num_grades)
    # above[j, g]: scores of grade g strictly above cut j (cut j lies just below values[j]; the last is at the top)
    above = np.vstack([np.cumsum(counts[::-1], axis=0)[::-1], np.zeros((1, num_grades), dtype=np.int64)])
    out = np.empty(num_grades - 1)
    for c in range(num_grades - 1):
        # Binary target grade > c: positives above each cut (TP), negatives above it (FP); cut 0 lies below every
        # score, so row 0 holds the class totals.
        positive, negative = above[:, c + 1:].sum(axis=1), above[:, :c + 1].sum(axis=1)
        n_pos, n_neg = positive[0], negative[0]
        if n_pos == 0:
            out[c] = cuts[-1]
        elif n_neg == 0:
            out[c] = cuts[0]
        else:
            out[c] = cuts[int(np.argmax(positive / n_pos - negative / n_neg))]
    return _strictly_increasing(out, eps)


def _equal_density_point(w1, m1, v1, w2, m2, v2) -> float:
    """Root in (m1, m2) of w1·N(s; m1, v1) = w2·N(s; m2, v2) (a x² + b x + c = 0), else the midpoint of the means."""
    # Taking logs of both sides: log w1 − ½ log v1 − (s − m1)² / (2 v1) = log w2 − ½ log v2 − (s − m2)² / (2 v2),
    # a quadratic in s with these coefficients.
    a = 1 / (2 * v2) - 1 / (2 * v1)
    b = m1 / v1 - m2 / v2
    c = m2 ** 2 / (2 * v2) - m1 ** 2 / (2 * v1) + np.log(w1 / w2) + 0.5 * np.log(v2 / v1)
    # Equal variances make a vanish: then the equation is linear (b s + c = 0); np.roots would misbehave.
    roots = np.roots([a, b, c]) if abs(a) > 1e-12 * (abs(b) + abs(c) + 1e-300) else (
        np.array([-c / b]) if b != 0 else np.array([]))
    roots = np.real(roots[np.isreal(roots)])
    # Of the (up to two) crossings, the one between the means, nearest their midpoint, separates the components.
    between = roots[(roots > m1) & (roots < m2)]
    if len(between) == 0:
        return (m1 + m2) / 2
    return float(between[np.argmin(np.abs(between - (m1 + m2) / 2))])


def gmm_thresholds(scores, grades, num_grades: int, *, random_state: int = 0) -> np.ndarray:
    """Equal weighted-density points between mean-adjacent components of a K-Gaussian mixture of the scores.

    Only the scores of graded discs are used (grades themselves are not). With
    fewer distinct scores than K the mixture is degenerate; the thresholds are
    then still returned, forced increasing.
    """
    from sklearn.mixture import GaussianMixture

    scores, grades = _labelled(scores, grades, num_grades)
    eps = _epsilon(scores)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # degenerate fits (few distinct scores) warn about convergence
        # reg_covar scaled to the scores' variance: keeps a component on a single repeated score from collapsing
        # to zero variance whatever the score units.
        mixture = GaussianMixture(n_components=num_grades, covariance_type="full", random_state=random_state,
                                  reg_covar=1e-6 * max(float(np.var(scores)), 1e-12)).fit(scores[:, None])
    # Components come out in arbitrary order: sort by mean so that component c is grade c's.
    order = np.argsort(mixture.means_.ravel())
    means = mixture.means_.ravel()[order]
    variances = mixture.covariances_.reshape(-1)[order]
    weights = mixture.weights_[order]
    out = np.array([_equal_density_point(weights[c], means[c], variances[c], weights[c + 1], means[c + 1],
                                         variances[c + 1]) for c in range(num_grades - 1)])
    return _strictly_increasing(out, eps)


# --- Entry point --------------------------------------------------------------------------------------------------

def _single_value_thresholds(value: float, grades: np.ndarray, num_grades: int, eps: float) -> np.ndarray:
    """Thresholds that put one repeated score in the most frequent grade m: τ_c < value for c < m, ≥ value after."""
    most_frequent = int(np.argmax(np.bincount(grades, minlength=num_grades)))
    boundary = np.arange(num_grades - 1)
    # Thresholds below the value count toward its grade; m of them below gives grade m. Steps of eps keep them
    # strictly increasing.
    return np.where(boundary < most_frequent, value - (most_frequent - boundary) * eps,
                    value + (boundary - most_frequent) * eps)


def fit_thresholds(scores, grades, num_grades: int, method: str = "coordinate_descent", *,
                   weights=_DEFAULT_WEIGHTS, grid_size: int = 200, refinements: int = 2, polish: bool = True,
                   random_state: int = 0) -> np.ndarray:
    """K − 1 strictly increasing thresholds for a 1-D score (higher = more severe) by ``method``.

    ``method``: "coordinate_descent", "isotonic", "youden" or "gmm" (module
    docstring). ``grades`` are ints with −1 (any negative) for missing; those
    entries are ignored. ``weights`` (BA, QWK, MAE term), ``grid_size``,
    ``refinements`` and ``polish`` set the coordinate descent and may only be
    changed for it; ``random_state`` seeds the Gaussian mixture.

    With fewer than two distinct graded scores nothing separates the grades:
    a RuntimeWarning is issued and the thresholds put every score in the most
    frequent grade.
    """
    fitters = {"coordinate_descent": coordinate_descent_thresholds, "isotonic": isotonic_thresholds,
               "youden": youden_thresholds, "gmm": gmm_thresholds}
    if method not in fitters:
        raise ValueError(f"unknown threshold method {method!r}; valid methods: {', '.join(fitters)}")
    # Options of the coordinate descent only: another method given a non-default one is a configuration error,
    # not something to ignore silently.
    descent_options = {"weights": tuple(weights), "grid_size": grid_size, "refinements": refinements,
                       "polish": polish}
    defaults = {"weights": _DEFAULT_WEIGHTS, "grid_size": 200, "refinements": 2, "polish": True}
    changed = [name for name, v in descent_options.items() if v != defaults[name]]
    if method != "coordinate_descent" and changed:
        raise ValueError(f"{', '.join(changed)} only apply to method 'coordinate_descent', not {method!r}")
    labelled_scores, labelled_grades = _labelled(scores, grades, num_grades)
    if len(np.unique(labelled_scores)) < 2:
        warnings.warn(f"fewer than 2 distinct graded scores ({len(labelled_scores)} discs): thresholds put every "
                      "score in the most frequent grade", RuntimeWarning, stacklevel=2)
        return _single_value_thresholds(float(labelled_scores[0]), labelled_grades, num_grades,
                                        _epsilon(labelled_scores))
    if method == "coordinate_descent":
        return coordinate_descent_thresholds(labelled_scores, labelled_grades, num_grades, **descent_options)
    if method == "gmm":
        return gmm_thresholds(labelled_scores, labelled_grades, num_grades, random_state=random_state)
    return fitters[method](labelled_scores, labelled_grades, num_grades)
