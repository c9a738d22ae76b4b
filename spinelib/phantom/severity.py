"""Latent severities, disc degeneration and grades with rater noise.

The latent model is vectorised over studies so that grade frequencies can be
checked on a large Monte-Carlo draw without rendering any image.

For each condition c and level j a standard-normal factor ``x`` (a unit-variance
mixture of a patient factor, a per-level disc factor, a factor shared by the
left/right pair and an individual term) is mapped to the latent severity in
[0, 1] by a piecewise-linear map of its probability u = Φ(x):

    u in [0, q1)   ->  latent in [0, T1)     (Normal/Mild band)
    u in [q1, q2)  ->  latent in [T1, T2)    (Moderate band)
    u in [q2, 1]   ->  latent in [T2, 1]     (Severe band)

with q1, q2 the target cumulative frequencies of (condition, level). Inside
each grade the latent is therefore spread evenly over the grade's band, so two
Normal/Mild discs differ by as much latent (and anatomy) as a Normal/Mild and
a Moderate one can: the within-grade ordering a ranking score claims to learn
is in the images (phantom.md item 4b). The bands are the same at every level,
so the same anatomy gets the same grade at any level.

The rater sees ``latent + centre shift + noise`` (a threshold shift per
simulated centre and a per-disc noise). Grade thresholds on that rater score
come in two flavours:

* :func:`calibrated_thresholds`, the population's: quantiles of a fixed
  100,000-study Monte-Carlo sample, so grades drawn from them match the target
  table in expectation;
* :func:`cohort_thresholds`, one cohort's: the same quantiles taken on the
  rater scores of the cohort actually drawn. A 300-study cohort graded with the
  population thresholds misses the target mix by up to two points in a cell by
  sampling alone (left subarticular Severe 11.2 % instead of 9.5 %); calibrating
  the raters to their cohort, as radiologists calibrate to their case mix,
  keeps every (condition, level) within 1/n of the target. The cohort writer
  (:mod:`spinelib.phantom.cohort`) uses these.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy.special import expit
from scipy.stats import norm

from spinelib.constants import CONDITIONS

# ---- the model's constants (all of them are recorded in phantom_params.json) ------------------------------------

# Target counts (Normal/Mild, Moderate, Severe) per condition and level (rsna-format.md).
TARGET_COUNTS: dict[str, tuple[tuple[int, int, int], ...]] = {
    "spinal_canal_stenosis":
        ((1886, 67, 21), (1770, 151, 53), (1622, 230, 122), (1482, 237, 255), (1904, 51, 19)),
    "left_neural_foraminal_narrowing":
        ((1908, 63, 2), (1791, 171, 11), (1522, 411, 40), (1204, 629, 140), (1247, 520, 206)),
    "right_neural_foraminal_narrowing":
        ((1891, 63, 13), (1793, 168, 6), (1512, 414, 41), (1208, 629, 130), (1281, 496, 190)),
    "left_subarticular_stenosis":
        ((1690, 93, 28), (1555, 255, 83), (1324, 454, 194), (887, 624, 461), (1408, 409, 147)),
    "right_subarticular_stenosis":
        ((1680, 110, 24), (1577, 243, 73), (1322, 454, 197), (891, 622, 460), (1399, 396, 173)),
}
NOMINAL_THRESHOLDS = (0.45, 0.75)  # latent band edges Normal/Mild | Moderate | Severe (before rater noise)
RATER_SD = 0.05           # per-disc rater noise on the latent
# Threshold shift of each simulated centre's raters (spinelib.phantom.series.CENTRES order): a stricter
# centre (positive shift) sees more disease in the same anatomy. The same shifts apply to the extra tasks.
CENTRE_SHIFT = (0.0, 0.04, -0.03, 0.02, -0.04)
EXTRA_RATER_SD = 0.04     # rater noise on the extra (Genodisc-like) tasks' scores
CALIBRATION_SEED = 20240917     # fixed seed of the calibration sample (independent of the cohort)
CALIBRATION_STUDIES = 100_000   # studies in that sample: a quantile's frequency within ~0.002 (1 SD)
# Mixture weights (patient, level/disc, left-right pair, individual); normalised to unit variance.
# Foraminal and subarticular narrowing often come in left/right pairs (one bulge narrows both sides), so those
# groups give the pair factor a large weight; the spinal canal is a single midline structure (no pair).
MIXTURE_WEIGHTS = {"spinal": (0.45, 0.60, 0.0, 0.66), "foraminal": (0.40, 0.45, 0.55, 0.58),
                   "subarticular": (0.40, 0.50, 0.50, 0.58)}
# Disc degeneration location per level L1/L2..L5/S1 (on the logit scale, before expit): the lower lumbar discs
# carry the most load and degenerate most, as in real cohorts (phantom.md item 4).
DEGENERATION_MU = (-1.6, -1.0, -0.5, 0.2, 0.4)
# Pfirrmann-like grade 1-5 and disc-narrowing grade 0-3: cut points on their scores.
PFIRRMANN_CUTS = (0.15, 0.35, 0.6, 0.8)
NARROWING_CUTS = (0.25, 0.5, 0.75)


# ---- target frequencies and the latent's bands --------------------------------------------------------------------

def target_frequencies() -> np.ndarray:
    """Target grade frequencies, shape (5 conditions, 5 levels, 3 grades)."""
    counts = np.array([TARGET_COUNTS[condition] for condition in CONDITIONS], dtype=float)
    return counts / counts.sum(axis=2, keepdims=True)


def band_edges() -> np.ndarray:
    """Cumulative target frequencies (5 conditions, 5 levels, 2): P(grade <= Normal/Mild), P(grade <= Moderate)."""
    frequencies = target_frequencies()
    return np.stack([frequencies[..., 0], frequencies[..., 0] + frequencies[..., 1]], axis=-1)


def latent_from_probability(u: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Piecewise-linear map of u = Φ(x) in [0, 1] onto the latent bands (see the module docstring).

    ``u`` (..., 5, 5) and ``q`` (5, 5, 2) cumulative band edges; returns the latent, same shape as ``u``.
    The floors of 1e-9 only guard a band of zero width (a grade with no target cases).
    """
    q1, q2 = q[..., 0], q[..., 1]
    t1, t2 = NOMINAL_THRESHOLDS
    low = t1 * u / q1
    mid = t1 + (t2 - t1) * (u - q1) / np.maximum(q2 - q1, 1e-9)
    high = t2 + (1.0 - t2) * (u - q2) / np.maximum(1.0 - q2, 1e-9)
    return np.clip(np.where(u < q1, low, np.where(u < q2, mid, high)), 0.0, 1.0)


# ---- drawing the latents -------------------------------------------------------------------------------------------

def _condition_group(condition: str) -> str:
    """The mixture-weight group of a condition: spinal, foraminal or subarticular."""
    if condition.startswith("spinal"):
        return "spinal"
    return "foraminal" if "foraminal" in condition else "subarticular"


def _severity_from_factors(patient: np.ndarray, disc: np.ndarray, pair: dict[str, np.ndarray],
                          individual: np.ndarray) -> np.ndarray:
    """Latent severity (n, 5 conditions, 5 levels) from the standard-normal factors.

    x[c] = w0·patient + w1·disc + w3·individual[c] (+ w2·pair[group] for the left/right conditions), with the
    weights of the condition's group scaled to unit norm, so x stays standard normal and Φ(x) uniform.
    """
    edges = band_edges()
    severity = np.empty((len(patient), 5, 5))
    for condition_index, condition in enumerate(CONDITIONS):
        group = _condition_group(condition)
        weights = np.array(MIXTURE_WEIGHTS[group]) / np.linalg.norm(MIXTURE_WEIGHTS[group])
        x = weights[0] * patient[:, None] + weights[1] * disc + weights[3] * individual[:, condition_index]
        if group != "spinal":
            x = x + weights[2] * pair[group]
        severity[:, condition_index] = latent_from_probability(norm.cdf(x), edges[condition_index])
    return severity


def _draw_disc_degeneration(rng: np.random.Generator, patient: np.ndarray,
                            disc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nucleus signal loss and disc height loss (n, 5 levels) in [0, 1].

    Degeneration shares the patient and disc factors with the severities (a degenerated disc bulges more), on a
    logistic scale centred per level; height loss follows degeneration with its own noise.
    """
    degeneration_noise = rng.standard_normal((len(patient), 5))
    height_noise = rng.standard_normal((len(patient), 5))
    degeneration = expit(np.array(DEGENERATION_MU)
                         + 1.7 * (0.5 * patient[:, None] + 0.7 * disc + 0.5 * degeneration_noise))
    height_loss = np.clip(0.8 * degeneration + 0.12 * height_noise - 0.05, 0.0, 1.0)
    return degeneration, height_loss


def draw_latents(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """Draw ``n`` studies' latents.

    Returns ``severity`` (n, 5 conditions, 5 levels) in [0, 1], ``degeneration``
    and ``height_loss`` (n, 5 levels) in [0, 1] (nucleus signal loss, disc height loss).
    """
    patient = rng.standard_normal(n)        # patient factor: shared by every disc and condition of a study
    disc = rng.standard_normal((n, 5))      # disc factor: shared by the conditions of one level
    pair = {"foraminal": rng.standard_normal((n, 5)), "subarticular": rng.standard_normal((n, 5))}
    individual = rng.standard_normal((n, 5, 5))
    severity = _severity_from_factors(patient, disc, pair, individual)
    degeneration, height_loss = _draw_disc_degeneration(rng, patient, disc)
    return {"severity": severity, "degeneration": degeneration, "height_loss": height_loss}


# ---- raters and grades -----------------------------------------------------------------------------------------

def centre_shift(centre: np.ndarray | int) -> np.ndarray:
    """Rater threshold shift of each study's centre: (n,) for ``centre`` (n,) centre indices."""
    return np.asarray(CENTRE_SHIFT)[np.asarray(centre)]


def rater_scores(rng: np.random.Generator, severity: np.ndarray, centre: np.ndarray | int = 0) -> np.ndarray:
    """The rater's perception of the latent: latent + centre shift + per-disc noise (same shape as ``severity``).

    ``severity`` is (n, 5, 5) (or (5, 5) for one study) and ``centre`` the study's centre index (n,) (or an int).
    """
    shift = centre_shift(centre)
    # (n,) -> (n, 1, 1): one shift per study, broadcast over its conditions and levels
    shift = shift.reshape(shift.shape + (1,) * (severity.ndim - shift.ndim))
    return severity + shift + RATER_SD * rng.standard_normal(severity.shape)


def _calibration_centres(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` centre indices drawn with the centres' case-mix weights."""
    from spinelib.phantom.series import CENTRES  # the centres' case mix (weights) lives with their scanners
    return rng.choice(len(CENTRES), size=n, p=[centre["weight"] for centre in CENTRES])


@lru_cache(maxsize=1)
def calibrated_thresholds() -> np.ndarray:
    """Grade thresholds (5 conditions, 5 levels, 2) from a fixed Monte-Carlo sample of rater scores."""
    rng = np.random.default_rng(CALIBRATION_SEED)
    latents = draw_latents(rng, CALIBRATION_STUDIES)
    scores = rater_scores(rng, latents["severity"], _calibration_centres(rng, CALIBRATION_STUDIES))
    frequencies = target_frequencies()
    thresholds = np.empty((5, 5, 2))
    for condition in range(5):
        for level in range(5):
            cell = scores[:, condition, level]
            thresholds[condition, level, 0] = np.quantile(cell, frequencies[condition, level, 0])
            thresholds[condition, level, 1] = np.quantile(cell, frequencies[condition, level, 0]
                                                          + frequencies[condition, level, 1])
    return thresholds


def cohort_thresholds(scores: np.ndarray) -> np.ndarray:
    """Grade thresholds (5 conditions, 5 levels, 2) calibrated on one cohort's rater scores ``scores`` (n, 5, 5).

    Threshold k of (condition c, level j) is the target cumulative frequency's quantile of that cell's
    scores, t[c, j, k] = Q_{F[c, j, k]}(scores[:, c, j]), so that ``grades_from_scores(scores, t)`` has the
    target mix up to 1/n per cell. An empty cohort falls back to :func:`calibrated_thresholds`.
    """
    if len(scores) == 0:
        return calibrated_thresholds()
    edges = band_edges()                                           # (5, 5, 2) cumulative target frequencies
    # "higher" keeps every threshold an observed score: with n scores, ceil(F·(n-1)) of them lie below it,
    # and the disc at the threshold takes the higher grade, as in grades_from_scores (score >= t).
    thresholds = np.empty((5, 5, 2))
    for condition in range(5):
        for level in range(5):
            thresholds[condition, level] = np.quantile(scores[:, condition, level], edges[condition, level],
                                                       method="higher")
    return thresholds


def grades_from_scores(scores: np.ndarray, thresholds: np.ndarray | None = None) -> np.ndarray:
    """Grade indices 0/1/2 from rater scores (..., 5 conditions, 5 levels).

    ``thresholds`` (5, 5, 2) defaults to the population's :func:`calibrated_thresholds`.
    grade = [score >= t0] + [score >= t1]: 0 Normal/Mild, 1 Moderate, 2 Severe.
    """
    t = calibrated_thresholds() if thresholds is None else thresholds
    return (scores >= t[..., 0]).astype(np.int8) + (scores >= t[..., 1]).astype(np.int8)


def draw_latents_and_grades(n: int, seed: int) -> dict[str, np.ndarray]:
    """Latents + grades for ``n`` studies without any image (cheap frequency checks)."""
    rng = np.random.default_rng([seed, 777])
    latents = draw_latents(rng, n)
    centre = _calibration_centres(rng, n)
    latents["grade"] = grades_from_scores(rater_scores(rng, latents["severity"], centre))
    latents["centre"] = centre
    return latents


# ---- the extra (Genodisc-like) tasks -------------------------------------------------------------------------------

def pfirrmann_score(degeneration: np.ndarray, height_loss: np.ndarray) -> np.ndarray:
    """The quantity the Pfirrmann-like grade is drawn from: 0.65 · nucleus signal loss + 0.35 · height loss."""
    return 0.65 * degeneration + 0.35 * height_loss


def pfirrmann(degeneration: np.ndarray, height_loss: np.ndarray, noise: np.ndarray | float = 0.0) -> np.ndarray:
    """Pfirrmann-like grade 1-5 from its score (:func:`pfirrmann_score`) plus the rater's ``noise``."""
    score = pfirrmann_score(degeneration, height_loss) + noise
    return (1 + np.digitize(score, PFIRRMANN_CUTS)).astype(np.int8)


def disc_narrowing(height_loss: np.ndarray, noise: np.ndarray | float = 0.0) -> np.ndarray:
    """Disc-narrowing grade 0-3 from disc height loss plus the rater's ``noise``."""
    return np.digitize(height_loss + noise, NARROWING_CUTS).astype(np.int8)


def extra_rater_noise(rng: np.random.Generator, n_levels: int, centre: int) -> tuple[np.ndarray, np.ndarray]:
    """Rater noise (centre shift + per-disc noise) on the Pfirrmann and disc-narrowing scores, (n_levels,) each."""
    shift = float(centre_shift(centre))
    return (shift + EXTRA_RATER_SD * rng.standard_normal(n_levels),
            shift + EXTRA_RATER_SD * rng.standard_normal(n_levels))
