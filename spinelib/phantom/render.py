"""Rendering one slice: tissue labels on the pixel grid, contrast, acquisition effects.

Labels are evaluated on the slice's pixel grid mapped to the anatomy frame, at
a few sub-slices across the slice thickness (partial volume); intensities
come from a per-series tissue table; then a slight in-plane blur, a smooth
bias field, Rician noise, a global scale/offset and uint16 storage.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter

from spinelib.phantom import anatomy as A
from spinelib.phantom.series import Slice

# Relative tissue signal per contrast, in label order
# AIR FAT MUSCLE ABDOMEN MARROW CORTEX ANNULUS CSF NERVE LIGAMENT BONE FLUID
_BASE = {
    "T2": (0.0, 0.70, 0.22, 0.38, 0.42, 0.04, 0.10, 1.00, 0.30, 0.08, 0.32, 0.75),
    "T1": (0.0, 0.95, 0.35, 0.48, 0.72, 0.05, 0.28, 0.16, 0.38, 0.12, 0.60, 0.20),
    "STIR": (0.0, 0.08, 0.20, 0.28, 0.12, 0.03, 0.10, 1.00, 0.32, 0.08, 0.10, 0.80),
}
_NUCLEUS = {"T2": (0.10, 0.85), "T1": (0.27, 0.06), "STIR": (0.10, 0.80)}  # (floor, healthy gain)


def tissue_table(kind: str, nucleus_signal: np.ndarray, jitter: np.ndarray) -> np.ndarray:
    """Signal per label for one series (``jitter``: multiplicative contrast factors, 12)."""
    lut = np.zeros(A.N_TISSUES, dtype=np.float32)
    lut[: A.NUCLEUS0] = np.asarray(_BASE[kind]) * jitter
    lo, gain = _NUCLEUS[kind]
    lut[A.NUCLEUS0:] = lo + gain * np.asarray(nucleus_signal)
    return lut


def anatomy_points(sl: Slice, pose: tuple[np.ndarray, np.ndarray], offsets: np.ndarray) -> tuple[np.ndarray, ...]:
    """Anatomy-frame (x, y, z) of every pixel at each offset along the normal: (n, rows, cols)."""
    rot, shift = pose
    o = rot.T @ (sl.ipp - shift)
    r, c, n = rot.T @ sl.row_dir, rot.T @ sl.col_dir, rot.T @ sl.normal
    j = np.arange(sl.cols, dtype=np.float32) * np.float32(sl.ps[1])
    i = np.arange(sl.rows, dtype=np.float32) * np.float32(sl.ps[0])
    out = []
    for d in range(3):
        base = (np.float32(o[d]) + i[:, None] * np.float32(c[d]) + j[None, :] * np.float32(r[d]))
        out.append(base[None] + (np.asarray(offsets, dtype=np.float32) * np.float32(n[d]))[:, None, None])
    return tuple(out)


def slice_labels(an: A.Anatomy, sl: Slice, pose, thickness: float, nsub: int) -> np.ndarray:
    """Tissue labels (nsub, rows, cols) at ``nsub`` sub-slices spread across the thickness."""
    offsets = (np.arange(nsub) + 0.5) / nsub * thickness - thickness / 2
    x, y, z = anatomy_points(sl, pose, offsets)
    s, a, l = A.straighten(an, x, y, z)
    return A.tissue_labels(an, s, a, l)


def bias_field(sl: Slice, pose, coef: np.ndarray) -> np.ndarray:
    """Smooth multiplicative field in anatomy space (posterior coil brighter)."""
    x, y, z = anatomy_points(sl, pose, np.zeros(1))
    u, v, w = x[0] / 100.0, (y[0] - 10.0) / 100.0, z[0] / 100.0
    return np.exp(coef[0] * u + coef[1] * v + coef[2] * w + coef[3] * v * v + coef[4] * w * w).astype(np.float32)


def acquire(labels: np.ndarray, lut: np.ndarray, bias: np.ndarray, sigma: float, scale: float,
            offset: float, max_value: int, rng: np.random.Generator) -> np.ndarray:
    """Labels -> stored uint16 pixels (partial volume, blur, bias, Rician noise, scale)."""
    img = lut[labels].mean(axis=0)
    img = gaussian_filter(img, 0.6, truncate=2.5) * bias
    noise = rng.standard_normal((2,) + img.shape, dtype=np.float32) * np.float32(sigma)
    img = np.sqrt((img + noise[0]) ** 2 + noise[1] ** 2)
    return np.clip(np.rint(img * scale + offset), 0, max_value).astype(np.uint16)
