"""Thresholds on a continuous score: each method recovers known cut points, outputs are well formed, bad input fails."""

import time

import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score

from spinelib.thresholds import (
    _equal_density_point,
    _sweep_objective,
    apply_thresholds,
    composite_objective,
    coordinate_descent_thresholds,
    fit_thresholds,
    quantile_thresholds,
)

METHODS = ["coordinate_descent", "isotonic", "youden", "gmm"]
CUTS = np.array([3.0, 6.0, 8.0])


def latent_uniform(n=2000, noise=0.1, cuts=CUTS, seed=0):
    """Grades cut from a uniform latent on [0, 10]; the score is the latent plus Gaussian noise."""
    rng = np.random.default_rng(seed)
    latent = rng.uniform(0, 10, n)
    return latent + rng.normal(0, noise, n), np.searchsorted(cuts, latent)


def clusters(n=2000, seed=0):
    """Equal-sized grade clusters at 1.5, 4.5, 7.5, 8.5 with equal spread: the equal-density points are 3, 6, 8."""
    rng = np.random.default_rng(seed)
    grades = np.repeat(np.arange(4), n // 4)
    return np.array([1.5, 4.5, 7.5, 8.5])[grades] + rng.normal(0, 0.25, len(grades)), grades


# --- apply_thresholds and the objective ---------------------------------------------------------------------------

def test_apply_thresholds_counts_thresholds_exceeded_and_ties_go_down():
    scores = [0.5, 1.0, 1.5, 2.0, 2.5, -3.0, 9.0]
    assert apply_thresholds(scores, [1.0, 2.0]).tolist() == [0, 0, 1, 1, 2, 0, 2]
    assert apply_thresholds([0.0, 5.0], [4.0]).tolist() == [0, 1]
    assert apply_thresholds([3.0], [1.0, 2.0]).dtype == np.int64


def test_apply_thresholds_rejects_unsorted_thresholds_and_nan_scores():
    with pytest.raises(ValueError, match="non-decreasing"):
        apply_thresholds([1.0], [2.0, 1.0])
    with pytest.raises(ValueError, match="not finite"):
        apply_thresholds([np.nan], [1.0])


def test_composite_objective_on_a_hand_computed_case():
    # grades 0 0 1 2, predicted 0 1 1 2 (K = 3): recalls 1/2, 1, 1 → BA 5/6; MAE 1/4 → 1 − 0.25/2 = 0.875;
    # QWK: Σ W∘O = 1/4, Σ W∘E = 5/4 → 0.8. J = 0.5·5/6 + 0.3·0.8 + 0.2·0.875 = 0.831666…
    assert cohen_kappa_score([0, 0, 1, 2], [0, 1, 1, 2], weights="quadratic") == pytest.approx(0.8)
    assert composite_objective([0, 0, 1, 2], [0, 1, 1, 2], 3) == pytest.approx(0.5 * 5 / 6 + 0.3 * 0.8 + 0.2 * 0.875)
    assert composite_objective([0, 0, 1, 2, -1], [0, 1, 1, 2, 0], 3) == pytest.approx(0.831666, abs=1e-6)
    assert composite_objective([0, 1, 2], [0, 1, 2], 3) == pytest.approx(1.0)
    assert composite_objective([0, 1], [1, 0], 2, weights=(1.0, 0.0, 0.0)) == pytest.approx(0.0)


def test_composite_objective_matches_sklearn_on_random_grades():
    from sklearn.metrics import balanced_accuracy_score

    rng = np.random.default_rng(1)
    y, p = rng.integers(0, 5, 300), rng.integers(0, 5, 300)
    expected = (0.5 * balanced_accuracy_score(y, p) + 0.3 * cohen_kappa_score(y, p, weights="quadratic")
                + 0.2 * (1 - np.abs(y - p).mean() / 4))
    assert composite_objective(y, p, 5) == pytest.approx(expected)


def test_vectorised_sweep_equals_direct_evaluation():
    scores, grades = latent_uniform(n=400, noise=1.0, cuts=np.array([2.0, 4.0, 6.0, 8.0]))
    thresholds = np.array([2.5, 4.0, 5.5, 8.5])
    candidates = np.linspace(4.01, 5.49, 37)
    swept = _sweep_objective(scores, grades, thresholds, 2, candidates, (0.5, 0.3, 0.2))
    direct = [composite_objective(grades, apply_thresholds(scores, np.r_[thresholds[:2], t, thresholds[3:]]), 5)
              for t in candidates]
    np.testing.assert_allclose(swept, direct)


# --- Every method -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("method", ["coordinate_descent", "isotonic", "youden"])
def test_supervised_methods_recover_known_cut_points(method):
    scores, grades = latent_uniform()
    np.testing.assert_allclose(fit_thresholds(scores, grades, 4, method), CUTS, atol=0.2)


@pytest.mark.parametrize("method", METHODS)
def test_every_method_recovers_equal_density_points_of_separated_clusters(method):
    scores, grades = clusters()
    np.testing.assert_allclose(fit_thresholds(scores, grades, 4, method), CUTS, atol=0.5 if method != "gmm" else 0.1)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("num_grades", [2, 5])
def test_output_has_k_minus_1_strictly_increasing_thresholds(method, num_grades):
    cuts = np.linspace(0, 10, num_grades + 1)[1:-1]
    scores, grades = latent_uniform(n=500, noise=1.0, cuts=cuts)
    thresholds = fit_thresholds(scores, grades, num_grades, method)
    assert thresholds.shape == (num_grades - 1,)
    assert np.all(np.isfinite(thresholds)) and np.all(np.diff(thresholds) > 0)


@pytest.mark.parametrize("method", METHODS)
def test_a_grade_absent_from_the_fitting_data_still_gives_increasing_thresholds(method):
    scores, grades = latent_uniform(n=600, noise=0.3, cuts=np.array([2.0, 4.0, 6.0, 8.0]))
    keep = grades != 2  # no disc of grade 2
    thresholds = fit_thresholds(scores[keep], grades[keep], 5, method)
    assert thresholds.shape == (4,) and np.all(np.diff(thresholds) > 0)
    predicted = apply_thresholds(scores[keep], thresholds)
    assert set(np.unique(predicted)) <= set(range(5))


@pytest.mark.parametrize("method", METHODS)
def test_missing_grades_are_ignored(method):
    scores, grades = latent_uniform(n=500, noise=0.5)
    rng = np.random.default_rng(3)
    extra_scores = rng.uniform(-50, 50, 200)  # wild scores with no grade must not move the thresholds
    with_missing = fit_thresholds(np.r_[scores, extra_scores], np.r_[grades, np.full(200, -1)], 4, method)
    np.testing.assert_allclose(with_missing, fit_thresholds(scores, grades, 4, method))


@pytest.mark.parametrize("method", METHODS)
def test_fewer_than_two_distinct_scores_warn_and_give_the_most_frequent_grade(method):
    with pytest.warns(RuntimeWarning, match="fewer than 2 distinct"):
        thresholds = fit_thresholds(np.full(6, 4.0), [0, 1, 1, 1, 2, -1], 3, method)
    assert thresholds.shape == (2,) and np.all(np.diff(thresholds) > 0)
    assert apply_thresholds([4.0], thresholds).tolist() == [1]


def test_gmm_boundary_is_the_equal_weighted_density_point_or_the_midpoint():
    # equal variances: w1·N(x; 0, 1) = w2·N(x; 2, 1) at x = 1 + ln(w1 / w2) / 2
    assert _equal_density_point(0.5, 0.0, 1.0, 0.5, 2.0, 1.0) == pytest.approx(1.0)
    assert _equal_density_point(2 / 3, 0.0, 1.0, 1 / 3, 2.0, 1.0) == pytest.approx(1 + np.log(2) / 2)
    # unequal variances: a quadratic with one root between the means
    x = _equal_density_point(0.5, 0.0, 1.0, 0.5, 4.0, 4.0)
    assert 0 < x < 4
    assert 0.5 * np.exp(-x ** 2 / 2) == pytest.approx(0.5 / 2 * np.exp(-(x - 4) ** 2 / 8))
    # a negligible first component: no crossing between the means → their midpoint
    assert _equal_density_point(1e-6, 0.0, 1.0, 1.0, 1.0, 1.0) == pytest.approx(0.5)


# --- Coordinate descent -------------------------------------------------------------------------------------------

def test_coordinate_descent_is_no_worse_than_its_start_or_isotonic_on_noisy_data():
    for seed in range(3):
        scores, grades = latent_uniform(n=800, noise=1.5, cuts=np.array([2.0, 4.0, 6.0, 8.0]), seed=seed)
        objective = {name: composite_objective(grades, apply_thresholds(scores, t), 5) for name, t in {
            "start": quantile_thresholds(scores, grades, 5),
            "isotonic": fit_thresholds(scores, grades, 5, "isotonic"),
            "descent": fit_thresholds(scores, grades, 5, "coordinate_descent"),
        }.items()}
        assert objective["descent"] >= objective["start"]
        assert objective["descent"] >= objective["isotonic"]


def test_coordinate_sweeps_alone_recover_the_cuts_from_a_poor_start():
    scores, grades = latent_uniform()
    swept = coordinate_descent_thresholds(scores, grades, 4, initial=[1.0, 2.0, 9.5], polish=False)
    np.testing.assert_allclose(swept, CUTS, atol=0.2)


def test_coordinate_descent_options_change_the_search():
    scores, grades = latent_uniform(n=800, noise=1.5, cuts=np.array([2.0, 4.0, 6.0, 8.0]))
    full = fit_thresholds(scores, grades, 5)
    coarse = fit_thresholds(scores, grades, 5, grid_size=5, refinements=0, polish=False)
    assert not np.allclose(full, coarse)
    ba_only = fit_thresholds(scores, grades, 5, weights=(1.0, 0.0, 0.0))
    assert not np.allclose(full, ba_only)


def test_coordinate_descent_is_fast_for_1000_scores_and_five_grades():
    scores, grades = latent_uniform(n=1000, noise=1.0, cuts=np.array([2.0, 4.0, 6.0, 8.0]))
    fit_thresholds(scores, grades, 5)  # warm-up (imports)
    start = time.perf_counter()
    fit_thresholds(scores, grades, 5)
    assert time.perf_counter() - start < 0.5


# --- Bad input ----------------------------------------------------------------------------------------------------

def test_bad_input_raises_naming_the_problem():
    scores, grades = latent_uniform(n=50)
    with pytest.raises(ValueError, match="coordinate_descent, isotonic, youden, gmm"):
        fit_thresholds(scores, grades, 4, "grid")
    with pytest.raises(ValueError, match="differ in length"):
        fit_thresholds(scores[:-1], grades, 4)
    with pytest.raises(ValueError, match="num_grades"):
        fit_thresholds(scores, np.zeros(50, dtype=int), 1)
    with pytest.raises(ValueError, match="outside 0..2"):
        fit_thresholds(scores, grades, 3)
    with pytest.raises(ValueError, match="all grades missing"):
        fit_thresholds(scores, np.full(50, -1), 4)
    with pytest.raises(ValueError, match="only apply to method 'coordinate_descent'"):
        fit_thresholds(scores, grades, 4, "isotonic", grid_size=50)
