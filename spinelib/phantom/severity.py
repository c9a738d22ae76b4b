"""Latent severities, disc degeneration and grades with rater noise.

The latent model is vectorised over studies so that grade frequencies can be
checked on a large Monte-Carlo draw without rendering any image.

For each condition c and level j the latent is ``sigmoid(mu[c, j] + s[c, j] * x)``
with ``x`` a unit-variance mixture of a patient factor, a per-level disc factor,
a factor shared by the left/right pair and an individual term.  ``mu`` and
``s`` are solved in closed form so that, without rater noise, the latent
crosses 0.5 (Moderate) and 0.8 (Severe) with the target frequencies; the
grade thresholds are then recalibrated on a fixed Monte-Carlo sample of
latent + rater noise, so the final frequencies match the target table.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy.special import expit, logit
from scipy.stats import norm

from spinelib.constants import CONDITIONS, LEVELS

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
NOMINAL_T = (0.5, 0.8)   # nominal latent thresholds Moderate / Severe
RATER_SD = 0.045          # rater noise on the latent
CALIB_SEED = 20240917     # fixed seed of the calibration sample (independent of the cohort)
CALIB_N = 100_000
# Mixture weights (patient, level/disc, left-right pair, individual); normalised to unit variance.
WEIGHTS = {"spinal": (0.45, 0.60, 0.0, 0.66), "foraminal": (0.40, 0.45, 0.55, 0.58),
           "subarticular": (0.40, 0.50, 0.50, 0.58)}
DEG_MU = (-1.6, -1.0, -0.5, 0.2, 0.4)   # disc degeneration location per level (lower = worse)


def target_frequencies() -> np.ndarray:
    """Target grade frequencies, shape (5 conditions, 5 levels, 3 grades)."""
    c = np.array([TARGET_COUNTS[k] for k in CONDITIONS], dtype=float)
    return c / c.sum(axis=2, keepdims=True)


def latent_location_scale() -> tuple[np.ndarray, np.ndarray]:
    """Closed-form ``mu, s`` (5x5) so that P(latent > 0.5 / 0.8) match the targets."""
    f = target_frequencies()
    p_mod_plus = np.clip(f[..., 1] + f[..., 2], 1e-4, 0.999)
    p_sev = np.clip(f[..., 2], 5e-4, 0.999)
    q1, q2 = norm.isf(p_mod_plus), norm.isf(p_sev)
    s = (logit(NOMINAL_T[1]) - logit(NOMINAL_T[0])) / np.maximum(q2 - q1, 0.15)
    mu = logit(NOMINAL_T[0]) - s * q1
    return mu, s


def _group(cond: str) -> str:
    return "spinal" if cond.startswith("spinal") else ("foraminal" if "foraminal" in cond else "subarticular")


def draw_latents(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """Draw ``n`` studies' latents.

    Returns ``severity`` (n, 5 conditions, 5 levels) in [0, 1], ``degeneration``
    and ``height_loss`` (n, 5 levels) in [0, 1] (nucleus signal loss, disc height loss).
    """
    mu, s = latent_location_scale()
    g = rng.standard_normal(n)
    u = rng.standard_normal((n, 5))
    pair = {"foraminal": rng.standard_normal((n, 5)), "subarticular": rng.standard_normal((n, 5))}
    own = rng.standard_normal((n, 5, 5))
    sev = np.empty((n, 5, 5))
    for ci, cond in enumerate(CONDITIONS):
        grp = _group(cond)
        w = np.array(WEIGHTS[grp]) / np.linalg.norm(WEIGHTS[grp])
        x = w[0] * g[:, None] + w[1] * u + w[3] * own[:, ci]
        if grp != "spinal":
            x = x + w[2] * pair[grp]
        sev[:, ci] = expit(mu[ci] + s[ci] * x)
    e_d = rng.standard_normal((n, 5))
    e_h = rng.standard_normal((n, 5))
    deg = expit(np.array(DEG_MU) + 1.7 * (0.5 * g[:, None] + 0.7 * u + 0.5 * e_d))
    height = np.clip(0.8 * deg + 0.12 * e_h - 0.05, 0.0, 1.0)
    return {"severity": sev, "degeneration": deg, "height_loss": height}


def rater_scores(rng: np.random.Generator, severity: np.ndarray) -> np.ndarray:
    """The rater's noisy perception of the latent (same shape)."""
    return severity + RATER_SD * rng.standard_normal(severity.shape)


@lru_cache(maxsize=1)
def calibrated_thresholds() -> np.ndarray:
    """Grade thresholds (5 conditions, 5 levels, 2) from a fixed Monte-Carlo sample."""
    rng = np.random.default_rng(CALIB_SEED)
    lat = draw_latents(rng, CALIB_N)
    r = rater_scores(rng, lat["severity"])
    f = target_frequencies()
    t = np.empty((5, 5, 2))
    for ci in range(5):
        for li in range(5):
            t[ci, li, 0] = np.quantile(r[:, ci, li], f[ci, li, 0])
            t[ci, li, 1] = np.quantile(r[:, ci, li], f[ci, li, 0] + f[ci, li, 1])
    return t


def grades_from_scores(scores: np.ndarray) -> np.ndarray:
    """Grade indices 0/1/2 from rater scores (..., 5 conditions, 5 levels)."""
    t = calibrated_thresholds()
    return (scores >= t[..., 0]).astype(np.int8) + (scores >= t[..., 1]).astype(np.int8)


def draw_latents_and_grades(n: int, seed: int) -> dict[str, np.ndarray]:
    """Latents + grades for ``n`` studies without any image (cheap frequency checks)."""
    rng = np.random.default_rng([seed, 777])
    lat = draw_latents(rng, n)
    lat["grade"] = grades_from_scores(rater_scores(rng, lat["severity"]))
    return lat


def pfirrmann(degeneration: np.ndarray, height_loss: np.ndarray) -> np.ndarray:
    """Pfirrmann-like grade 1-5 from nucleus signal loss and disc height loss."""
    score = 0.65 * degeneration + 0.35 * height_loss
    return (1 + np.digitize(score, [0.15, 0.35, 0.6, 0.8])).astype(np.int8)


def disc_narrowing(height_loss: np.ndarray) -> np.ndarray:
    """Disc-narrowing grade 0-3 from disc height loss."""
    return np.digitize(height_loss, [0.25, 0.5, 0.75]).astype(np.int8)


def level_names() -> tuple[str, ...]:
    """The five labelled levels (snake case)."""
    return LEVELS
