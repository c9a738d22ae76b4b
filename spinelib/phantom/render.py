"""Rendering one slice: tissue labels on the pixel grid, contrast, acquisition effects.

Labels are evaluated on the slice's pixel grid mapped to the anatomy frame, at
a few sub-slices across the slice thickness (partial volume); intensities
come from a per-series tissue table; then a slight in-plane blur, a smooth
bias field, Rician noise, a global scale/offset and uint16 storage
(../shared/spec/phantom.md, item 8).
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter

from spinelib.phantom.anatomy import FIRST_NUCLEUS, N_TISSUES, Anatomy, straighten, tissue_labels
from spinelib.phantom.series import Pose, Slice

# Relative tissue signal per contrast, in label order. The usual MR look: on T2 CSF and fluid are bright and fat
# fairly bright; on T1 fat and marrow are bright, CSF dark; STIR is T2 with the fat suppressed (marrow dark too).
# Cortex and ligament are dark everywhere (few mobile protons).
# AIR FAT MUSCLE ABDOMEN MARROW CORTEX ANNULUS CSF NERVE LIGAMENT BONE FLUID
_TISSUE_SIGNAL = {
    "T2": (0.0, 0.70, 0.22, 0.38, 0.42, 0.04, 0.10, 1.00, 0.30, 0.08, 0.32, 0.75),
    "T1": (0.0, 0.95, 0.35, 0.48, 0.72, 0.05, 0.28, 0.16, 0.38, 0.12, 0.60, 0.20),
    "STIR": (0.0, 0.08, 0.20, 0.28, 0.12, 0.03, 0.10, 1.00, 0.32, 0.08, 0.10, 0.80),
}
# Nucleus signal = floor + gain · nucleus_signal: a hydrated nucleus is T2-bright, a desiccated one as dark as the
# annulus. On T1 the nucleus hardly changes with degeneration (gain 0.06 on a 0.27 floor), as in real discs.
_NUCLEUS_SIGNAL = {"T2": (0.10, 0.85), "T1": (0.27, 0.06), "STIR": (0.10, 0.80)}  # (floor, healthy gain)


def tissue_table(kind: str, nucleus_signal: np.ndarray, jitter: np.ndarray) -> np.ndarray:
    """Signal per label for one series (``jitter``: multiplicative contrast factors, 12): (N_TISSUES,) float32."""
    table = np.zeros(N_TISSUES, dtype=np.float32)
    table[:FIRST_NUCLEUS] = np.asarray(_TISSUE_SIGNAL[kind]) * jitter
    floor, gain = _NUCLEUS_SIGNAL[kind]
    table[FIRST_NUCLEUS:] = floor + gain * np.asarray(nucleus_signal)
    return table


def anatomy_points(plane: Slice, pose: Pose, offsets: np.ndarray) -> tuple[np.ndarray, ...]:
    """Anatomy-frame (x, y, z) of every pixel at each offset along the normal: (n, rows, cols) each.

    The pose maps anatomy to patient (p = rot @ q + shift), so a patient point goes back by q = rotᵀ (p - shift)
    and a patient direction by rotᵀ d. Built in float32, one coordinate at a time, to keep memory small.
    """
    rot, shift = pose
    origin = rot.T @ (plane.image_position - shift)
    row_dir, col_dir, normal = rot.T @ plane.row_dir, rot.T @ plane.col_dir, rot.T @ plane.normal
    column_mm = np.arange(plane.cols, dtype=np.float32) * np.float32(plane.pixel_spacing[1])
    row_mm = np.arange(plane.rows, dtype=np.float32) * np.float32(plane.pixel_spacing[0])
    coordinates = []
    for axis in range(3):   # x, y, z: origin + row_mm · col_dir + column_mm · row_dir (+ offset · normal)
        in_plane = (np.float32(origin[axis]) + row_mm[:, None] * np.float32(col_dir[axis])
                    + column_mm[None, :] * np.float32(row_dir[axis]))
        coordinates.append(in_plane[None]
                           + (np.asarray(offsets, dtype=np.float32) * np.float32(normal[axis]))[:, None, None])
    return tuple(coordinates)


def slice_labels(anatomy: Anatomy, plane: Slice, pose: Pose, thickness: float, n_sub: int) -> np.ndarray:
    """Tissue labels (n_sub, rows, cols) at ``n_sub`` sub-slices spread evenly across the thickness.

    Sub-slice centres sit at (i + ½)/n_sub of the thickness: averaging their signals later is the partial-volume
    effect of a thick slice (a thin structure fades rather than vanishes).
    """
    offsets = (np.arange(n_sub) + 0.5) / n_sub * thickness - thickness / 2   # mm along the normal, centred on 0
    x, y, z = anatomy_points(plane, pose, offsets)
    s, a, l = straighten(anatomy, x, y, z)
    return tissue_labels(anatomy, s, a, l)


def bias_field(plane: Slice, pose: Pose, coefficients: np.ndarray) -> np.ndarray:
    """Smooth multiplicative field in anatomy space (posterior coil brighter): (rows, cols) float32.

    field = exp(c0·u + c1·v + c2·w + c3·v² + c4·w²) with (u, v, w) the anatomy coordinates in decimetres (v from
    10 mm behind the canal): the spine coil under the patient's back makes posterior tissue brighter.
    """
    x, y, z = anatomy_points(plane, pose, np.zeros(1))
    u, v, w = x[0] / 100.0, (y[0] - 10.0) / 100.0, z[0] / 100.0
    c = coefficients
    return np.exp(c[0] * u + c[1] * v + c[2] * w + c[3] * v * v + c[4] * w * w).astype(np.float32)


def acquire(labels: np.ndarray, table: np.ndarray, bias: np.ndarray, sigma: float, scale: float,
            offset: float, max_value: int, rng: np.random.Generator) -> np.ndarray:
    """Labels (n_sub, rows, cols) -> stored uint16 pixels (rows, cols).

    Steps: partial volume (mean over sub-slices), a slight blur (the point-spread function), the bias field,
    Rician noise |signal + n1 + i·n2| (magnitude images of complex Gaussian noise, which is why the background
    is not zero), then the scanner's scale and offset, rounded and clipped to the stored bits.
    """
    image = table[labels].mean(axis=0)               # (n_sub, rows, cols) signals -> their mean: partial volume
    image = gaussian_filter(image, 0.6, truncate=2.5) * bias   # sigma 0.6 px: a slightly soft point-spread
    # real and imaginary noise channels, drawn as float32 (a float32 draw is its own stream: keep the dtype)
    noise = rng.standard_normal((2,) + image.shape, dtype=np.float32) * np.float32(sigma)
    image = np.sqrt((image + noise[0]) ** 2 + noise[1] ** 2)   # the magnitude image
    return np.clip(np.rint(image * scale + offset), 0, max_value).astype(np.uint16)
