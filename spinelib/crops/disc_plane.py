"""Disc-plane geometry: where a disc's plane lies on a sagittal series, and the disc volume cut in that plane.

The ranking paper cuts each disc volume "disc-centred, rotated and resampled": the disc lies as a horizontal band
across the middle rows whatever the curve of the spine. SPIDER gives the disc plane from its mask
(:mod:`spinelib.converters.spider`); the RSNA data give one spinal canal point per disc level, so there the plane
is estimated from the canal itself: the disc is taken perpendicular to the canal's local direction,

    t = the slope at the disc of the parabola through its canal point and two neighbouring levels' (mm),
        parameterised by the distance along the canal: the levels above and below, or at the ends of the
        annotated run (L1/L2, L5/S1) the two nearest on the one side there is

projected into the series' slice plane (t − (t·w) w, w the slice normal): the lateral part of t mostly says which
sagittal slice the annotator picked at each level (one slice, 3–4 mm, over the 30–40 mm between levels is a 5–7°
tilt that is not anatomy), and a sagittal series resolves a coronal tilt poorly anyway. The disc normal is
n = t / |t|, towards the head, and its tilt θ is the signed angle from the image's "up" (−c, rows run from head to
feet) to n about w. Each slice of the volume is then resampled on its own grid turned by θ about the disc centre
(bilinear; the slices themselves are the series' own, as in the axis-aligned crop)::

    (row, col) = (row_c, col_c) + M (i' − i0, j' − j0)
    M = [[c'·c · s_r,  (Δc/Δr) r'·c · s_c],  [(Δr/Δc) c'·r · s_r,  r'·r · s_c]]

with c' = R c, r' = R r the turned column and row directions (R the rotation by θ about w), (Δr, Δc) the pixel
spacing, s_r, s_c the field pixels per stored pixel and (i0, j0) the centre of the stored grid. With no
neighbouring canal point on the series the plane cannot be estimated and θ = 0 (recorded as ``plane = "image"``);
at θ = 0 and a stored size of the whole field the volume holds the voxels of the axis-aligned crop (to the float32
rounding of the sampling coordinates, about 1e-5 pixel: :func:`bilinear_affine`).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from spinelib.crops.geometry import resize_stack, slice_window
from spinelib.data.dicom import Volume, cross

# neighbouring canal points closer than this (mm) give no direction of their own (see canal_direction)
MIN_CANAL_STEP_MM = 1.0
# a canal direction whose projection into the slice plane keeps less than this share of its length gives no tilt
MIN_IN_PLANE = 0.5
# sampling-map entries within this of a whole number become it (see _snapped)
SNAP_MATRIX, SNAP_OFFSET = 1e-4, 1e-3


def _slope_at_first(p: np.ndarray, q: np.ndarray, t_q: float, r: np.ndarray, t_r: float) -> np.ndarray:
    """dp/dt at t = 0 of the parabola through p (t = 0), q (t = t_q) and r (t = t_r): the derivatives of the
    Lagrange basis at 0, −(1/t_q + 1/t_r) for p, −t_r / (t_q (t_q − t_r)) for q, −t_q / (t_r (t_r − t_q)) for r."""
    return (-(1 / t_q + 1 / t_r) * p - t_r / (t_q * (t_q - t_r)) * q - t_q / (t_r * (t_r - t_q)) * r)


def canal_direction(centre: np.ndarray, above: np.ndarray | None, below: np.ndarray | None,
                    above2: np.ndarray | None = None, below2: np.ndarray | None = None) -> np.ndarray | None:
    """The canal's direction t (3,) at a disc, towards the head, from the canal points (mm) of the neighbouring
    levels (``above``, ``below``; ``above2``, ``below2`` the second ones); None when there is no neighbour.

    The canal is taken as the parabola through three consecutive canal points, parameterised by the distance
    along it (positive towards the head), and t is its slope at the disc: through the level above and below when
    both exist, else through the two nearest levels on the one side there is (at L1/L2 and L5/S1). A straight
    difference to a single neighbour would be the canal's direction halfway to it, off by half the turn between
    two levels (4–6° on the phantom's lordosis); with one neighbour only, that is what is left.
    """
    def length(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.linalg.norm(a - b))

    if above is not None and below is not None:
        t_above, t_below = length(above, centre), -length(below, centre)
        if min(t_above, -t_below) < MIN_CANAL_STEP_MM:
            return above - below
        return _slope_at_first(centre, above, t_above, below, t_below)
    near, far, sign = (above, above2, 1.0) if above is not None else (below, below2, -1.0)
    if near is None:
        return None
    if far is None or min(length(near, centre), length(far, near)) < MIN_CANAL_STEP_MM:
        return sign * (near - centre)
    t_near = sign * length(near, centre)
    return _slope_at_first(centre, near, t_near, far, t_near + sign * length(far, near))


def in_plane_tilt(vol: Volume, direction: np.ndarray | None) -> float | None:
    """The signed angle θ (radians) about the slice normal w from the image's "up" (−c) to ``direction`` projected
    into the slice plane; None when there is no direction or it lies mostly across the slices (its projection
    shorter than :data:`MIN_IN_PLANE` of its length: no plane can be read from it)."""
    if direction is None:
        return None
    r, c = vol.orientation[:3], vol.orientation[3:]
    # coordinates of the projection on the plane's axes "up" (−c) and r; the angle from up towards r about w
    up, right = float(direction @ -c), float(direction @ r)
    if np.hypot(up, right) <= MIN_IN_PLANE * float(np.linalg.norm(direction)):
        return None
    return float(np.arctan2(right, up))


def _snapped(values: np.ndarray, tolerance: float) -> np.ndarray:
    """``values`` with those within ``tolerance`` of a whole number set to it.

    DICOM stores direction cosines to about six decimals, so an untilted map lands 1e-5 to 1e-4 pixels off the
    pixel centres; snapped, it takes the pixels themselves, as the axis-aligned crop does.
    """
    whole = np.rint(values)
    return np.where(np.abs(values - whole) < tolerance, whole, values)


def slice_map(vol: Volume, row: float, col: float, tilt: float, field: tuple[int, int],
              size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """The map (M (2, 2), b (2,)) from a stored pixel (i', j') to its source pixel (row, col) = M (i', j') + b on a
    slice, for a field of ``field`` (H, W) source pixels centred on (row, col), turned by ``tilt`` and stored at
    ``size`` (H', W') (module docstring).

    Stored pixel i' stands for the field pixels around i = s_r i' + (s_r − 1) / 2, so with s_r ≤ 2 one bilinear
    sample there is their mean (the block mean :func:`spinelib.crops.geometry.resize_stack` takes); field pixel
    H // 2 is the centre, as in :meth:`spinelib.crops.geometry.Box.centred`.
    """
    (height, width), (out_h, out_w) = field, size
    step_r, step_c = height / out_h, width / out_w
    r, c = vol.orientation[:3], vol.orientation[3:]
    w = cross(r, c)
    w = w / np.linalg.norm(w)
    # Rodrigues about w by θ: v' = v cos θ + (w × v) sin θ (+ w (w·v)(1 − cos θ), zero for in-plane v)
    cos, sin = np.cos(tilt), np.sin(tilt)
    c_turned = c * cos + cross(w, c) * sin + w * (w @ c) * (1 - cos)
    r_turned = r * cos + cross(w, r) * sin + w * (w @ r) * (1 - cos)
    row_mm, col_mm = float(vol.pixel_spacing[0]), float(vol.pixel_spacing[1])
    matrix = np.array([[c_turned @ c * step_r, r_turned @ c * (col_mm / row_mm) * step_c],
                       [c_turned @ r * (row_mm / col_mm) * step_r, r_turned @ r * step_c]])
    centre_out = np.array([(height // 2 - (step_r - 1) / 2) / step_r, (width // 2 - (step_c - 1) / 2) / step_c])
    matrix = _snapped(matrix, SNAP_MATRIX)
    offset = _snapped(np.array([row, col]) - matrix @ centre_out, SNAP_OFFSET)
    return matrix, offset


def sample_disc(vol: Volume, k: int, row: float, col: float, tilt: float, slices: int, field: tuple[int, int],
                size: tuple[int, int], fill: float) -> tuple[np.ndarray, int]:
    """The disc volume (slices, H', W') float32 of ``vol`` around pixel (row, col) of slice ``k``: the slices of
    :func:`spinelib.crops.geometry.slice_window`, each resampled on the field turned by ``tilt`` (radians) at the
    stored ``size``; pixels and slices outside the series take ``fill``. Also returns the number of padded slices.

    The image is taken as surrounded by ``fill`` pixels ("grid-constant"), so a sample half a pixel beyond the edge
    blends the edge with the fill. A stored size below half the field (more than 2 field pixels per stored pixel)
    samples the whole field and takes block means, so that nothing aliases.
    """
    (height, width), (out_h, out_w) = field, size
    if height / out_h > 2 or width / out_w > 2:
        full, padded = sample_disc(vol, k, row, col, tilt, slices, field, field, fill)
        return resize_stack(full, size), padded
    matrix, offset = slice_map(vol, row, col, tilt, field, size)
    index, inside = slice_window(k, slices, vol.pixels.shape[0])
    out = np.full((slices, out_h, out_w), fill, dtype=np.float32)
    if inside.any():
        first, last = index[inside][0], index[inside][-1]
        out[inside] = bilinear_affine(vol.pixels[first : last + 1], matrix, offset, size, fill)  # a view, no copy
    return out, int((~inside).sum())


def bilinear_affine(images: np.ndarray, matrix: np.ndarray, offset: np.ndarray, size: tuple[int, int],
                    fill: float) -> np.ndarray:
    """Bilinear samples (N, H', W') float32 of ``images`` (N, H, W) (float32, or cast to it) at
    (row, col) = M (i', j') + b for every stored pixel (i', j') of ``size`` (H', W'), the same map on every image;
    beyond the images' edges the pixels are ``fill`` (a sample half a pixel out blends the edge with it: scipy's
    "grid-constant").

    One ``grid_sample`` call for the whole stack, about ten times faster than scipy's ``affine_transform`` slice
    by slice, which computes the same (tested, to float32 rounding of the coordinates). It reads only the box of
    pixels the samples touch, copied alone (so the cost does not grow with the matrix), and pads it with
    zeros: a sample is then Σ w v over its neighbours inside the images, and adding fill × (1 − Σ w), the weight
    of its neighbours outside (the same sampling of ones), gives the fill padding without a padded copy.
    torch takes coordinates normalised to the box, −1 and 1 at the outer edges of its first and last pixel
    (align_corners=False): box pixel (row, col) is (x, y) = ((2 col + 1) / w − 1, (2 row + 1) / h − 1).
    """
    (height, width), (out_h, out_w) = images.shape[-2:], size
    # the box: every sample's two rows and two columns (floor, floor + 1) and a pixel of margin, inside the images
    corners = matrix @ np.array([[0, 0, out_h - 1, out_h - 1], [0, out_w - 1, 0, out_w - 1]]) + offset[:, None]
    r0, c0 = np.maximum(np.floor(corners.min(axis=1)).astype(int) - 1, 0)
    r1, c1 = np.minimum(np.floor(corners.max(axis=1)).astype(int) + 3, (height, width))
    if r0 >= r1 or c0 >= c1:
        return np.full((len(images), out_h, out_w), fill, dtype=np.float32)   # the field lies wholly beyond
    h, w = r1 - r0, c1 - c0
    i, j = np.arange(out_h, dtype=np.float64)[:, None], np.arange(out_w, dtype=np.float64)[None, :]
    rows = matrix[0, 0] * i + matrix[0, 1] * j + (offset[0] - r0)   # (H', W') box coordinates of every sample
    cols = matrix[1, 0] * i + matrix[1, 1] * j + (offset[1] - c0)
    grid = torch.from_numpy(np.stack([(2 * cols + 1) / w - 1, (2 * rows + 1) / h - 1], axis=-1).astype(np.float32))
    grid = grid.unsqueeze(0)                                          # one grid for the stack: (1, H', W', (x, y))
    # the N images as the N channels of one image: grid_sample computes each sample's weights once for all
    # channels, three times faster than N images of one channel, and the same values
    # (1, N, h, w): a contiguous float32 copy of the box alone (stored integers cast; grid_sample also reads a
    # contiguous box faster than a strided view of the whole images)
    box = torch.from_numpy(np.ascontiguousarray(images[:, r0:r1, c0:c1], dtype=np.float32)).unsqueeze(0)
    sampled = F.grid_sample(box, grid, mode="bilinear", padding_mode="zeros", align_corners=False)[0]
    if r0 == 0 or c0 == 0 or r1 == height or c1 == width:            # samples may have neighbours beyond an edge
        inside = F.grid_sample(torch.ones(1, 1, h, w), grid, mode="bilinear", padding_mode="zeros",
                               align_corners=False)[0]                # Σ w over neighbours inside: (1, H', W')
        sampled += fill * (1 - inside)
    return sampled.numpy()
