"""Disc-plane geometry: where a disc's plane lies, and the grid a disc volume is sampled on.

The ranking paper cuts each disc volume "disc-centred, rotated and resampled": the disc lies as a horizontal band
across the middle rows whatever the curve of the spine. SPIDER gives the disc plane from its mask
(:mod:`spinelib.converters.spider`); the RSNA data give one spinal canal point per disc level, so there the plane
is estimated from the canal itself: the disc is taken perpendicular to the canal's local direction,

    t = p_above − p_below        (central difference over the neighbouring levels' canal points, mm)
    t = p_above − p  or  p − p_below   (one-sided at the ends of the annotated run: L1/L2, L5/S1)
    n = t / |t|                  (the disc normal, towards the head)

The series' own voxel grid around the disc centre is then turned by the smallest rotation R that carries the
image's "up" (−c, c the column direction cosines: rows run from head to feet on a sagittal slice) onto n, and the
volume is sampled there with trilinear interpolation::

    p(s, i, j) = p0 + (s − s0)·Δs·R w + (i − i0)·Δr·R c + (j − j0)·Δc·R r

with r, c the row and column direction cosines, w = r × c the slice normal, (Δs, Δr, Δc) the slice and pixel
spacings and (s0, i0, j0) = ((D−1)//2, H//2, W//2) the crop conventions of :mod:`spinelib.crops.geometry`, so
that R = I (no tilt) samples exactly the voxels an axis-aligned crop would take. With no neighbouring canal point
on the same series the plane cannot be estimated and R = I (recorded as ``plane = "image"``).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from spinelib.data.dicom import Volume

# neighbouring canal points closer than this (mm) give no direction: the plane falls back to the image's
MIN_CANAL_STEP_MM = 1.0
# sampling positions closer than this (voxels) to a voxel centre take that voxel (see sample_disc)
SNAP_VOXELS = 1e-3


def canal_normal(centre: np.ndarray, above: np.ndarray | None, below: np.ndarray | None) -> np.ndarray | None:
    """Unit disc normal n (3,) towards the head from the canal points (mm) of the level above and below.

    Central difference when both exist, one-sided when one does; ``None`` when neither does or they coincide.
    """
    if above is not None and below is not None:
        step = above - below
    elif above is not None:
        step = above - centre
    elif below is not None:
        step = centre - below
    else:
        return None
    length = float(np.linalg.norm(step))
    return step / length if length >= MIN_CANAL_STEP_MM else None


def rotation_onto(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The smallest rotation R (3, 3) with R a = b, for unit vectors a, b (Rodrigues' formula).

    R = I + [v]× + [v]×² / (1 + a·b), v = a × b; a = −b (a half turn, ambiguous) never occurs for a disc normal
    and raises ValueError.
    """
    v, cos = np.cross(a, b), float(a @ b)
    if cos <= -1.0 + 1e-9:
        raise ValueError("opposite vectors: the rotation between them is not unique")
    vx = np.array([[0.0, -v[2], v[1]], [v[2], 0.0, -v[0]], [-v[1], v[0], 0.0]])
    return np.eye(3) + vx + vx @ vx / (1.0 + cos)


def tilt_degrees(rotation: np.ndarray) -> float:
    """The angle (degrees) of a rotation matrix: how far the disc plane lies from the image's rows."""
    return float(np.degrees(np.arccos(np.clip((np.trace(rotation) - 1.0) / 2.0, -1.0, 1.0))))


def grid_points(centre: np.ndarray, axes: np.ndarray, steps: tuple[float, float, float],
                shape: tuple[int, int, int], origin: tuple[float, float, float]) -> np.ndarray:
    """Physical points (D, H, W, 3) of a regular grid: p = centre + Σ_d (index_d − origin_d)·steps_d·axes[d].

    ``axes`` (3, 3): rows are the unit directions of the grid's slice, row and column axes.
    """
    offsets = [(np.arange(n) - o) * step for n, o, step in zip(shape, origin, steps)]
    s, i, j = np.meshgrid(*offsets, indexing="ij")                      # (D, H, W) each
    return centre + s[..., None] * axes[0] + i[..., None] * axes[1] + j[..., None] * axes[2]


def volume_indices(vol: Volume, points: np.ndarray) -> np.ndarray:
    """Continuous voxel indices (3, N) = (slice, row, col) of physical points (N, 3): the vectorised
    :meth:`Volume.from_patient` (slice index interpolated along the normal, extrapolated by the slice spacing
    beyond the ends; row and col projected on the nearest slice's plane)."""
    along = vol.positions @ vol.normal                                  # (S,) slice distances, increasing
    target = points @ vol.normal                                        # (N,)
    spacing = vol.slice_spacing if np.isfinite(vol.slice_spacing) and vol.slice_spacing > 0 else 1.0
    last = len(along) - 1
    k = np.interp(target, along, np.arange(len(along), dtype=np.float64))
    k = np.where(target < along[0], (target - along[0]) / spacing, k)
    k = np.where(target > along[last], last + (target - along[last]) / spacing, k)
    nearest = np.clip(np.rint(k), 0, last).astype(int)
    orientation = vol.orientation[None] if vol.orientations is None else vol.orientations[nearest]   # (1|N, 6)
    delta = points - vol.positions[nearest]                             # (N, 3)
    row_spacing, col_spacing = vol.pixel_spacing
    col = np.einsum("nd,nd->n", delta, np.broadcast_to(orientation[:, :3], delta.shape)) / col_spacing
    row = np.einsum("nd,nd->n", delta, np.broadcast_to(orientation[:, 3:], delta.shape)) / row_spacing
    return np.stack([k, row, col])


def disc_axes(vol: Volume, normal: np.ndarray | None) -> tuple[np.ndarray, float]:
    """Grid axes (3, 3) (rows: slice, row and column directions) of a disc volume on ``vol``, and the tilt
    (degrees) of the disc plane from the image rows; the image's own axes when ``normal`` is None."""
    r, c = vol.orientation[:3], vol.orientation[3:]
    axes = np.stack([np.cross(r, c), c, r])
    if normal is None:
        return axes, 0.0
    rotation = rotation_onto(-c, normal)                                # image "up" onto the disc normal
    return axes @ rotation.T, tilt_degrees(rotation)


def sample_disc(vol: Volume, centre: np.ndarray, axes: np.ndarray, shape: tuple[int, int, int],
                fill: float) -> tuple[np.ndarray, int]:
    """Trilinear samples (D, H, W) float32 of ``vol`` on the disc grid around ``centre`` (mm), with the series'
    own slice and pixel spacings; points outside the volume take ``fill``. Also returns the number of grid slices
    whose centre lies outside the volume (the axis-aligned crop's padded slices)."""
    depth, height, width = shape
    steps = (vol.slice_spacing if np.isfinite(vol.slice_spacing) and vol.slice_spacing > 0 else 1.0,
             *map(float, vol.pixel_spacing))
    origin = ((depth - 1) // 2, height // 2, width // 2)
    points = grid_points(centre, axes, steps, shape, origin)
    index = volume_indices(vol, points.reshape(-1, 3))
    # indices within a thousandth of a voxel of a whole number are snapped onto it: DICOM stores the direction
    # cosines to about six decimals, so an untilted grid lands 1e-5 to 1e-4 voxels off the voxel centres; snapped,
    # it takes the voxels themselves, as the axis-aligned crop does
    whole = np.rint(index)
    index = np.where(np.abs(index - whole) < SNAP_VOXELS, whole, index)
    values = ndimage.map_coordinates(vol.pixels, index, output=np.float32, order=1, mode="constant", cval=fill,
                                     prefilter=False)
    centres = index[0].reshape(shape)[:, height // 2, width // 2]
    padded = int(((centres < -0.5) | (centres > vol.pixels.shape[0] - 0.5)).sum())
    return values.reshape(shape), padded
