"""Patient geometry of a series without its pixels, and the sagittal → axial projection (Stage 1c).

A pixel (row, col) of slice k lies at (DICOM PS3.3 C.7.6.2)

    P = p_k + col · Δc · r_k + row · Δr · c_k

with p_k = ImagePositionPatient, (r_k, c_k) = ImageOrientationPatient and
(Δr, Δc) = PixelSpacing. A point P is nearest to the slice k* minimising the
plane distance |(P − p_k) · n_k|, n_k = r_k × c_k (per slice: axial series may
hold blocks of slices with different orientations), and its in-plane pixel is

    col = (P − p_k*) · r_k* / Δc,   row = (P − p_k*) · c_k* / Δr.

The multi-stage paper's Stage 1c uses this to carry the spinal canal point
found on a sagittal series into the axial series: the axial slice of a level is
the one whose plane passes nearest to that point.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from spinelib.data.dicom import Volume


@dataclass(frozen=True)
class Geometry:
    """Per-slice positions (D, 3) and orientations (D, 6) in sorted order, pixel spacing, image shape (D, H, W)."""

    positions: np.ndarray
    orientations: np.ndarray
    pixel_spacing: np.ndarray
    shape: tuple[int, int, int]

    @classmethod
    def of(cls, volume: Volume) -> "Geometry":
        """The geometry of a read series (its pixels are not kept)."""
        depth = volume.pixels.shape[0]
        orientations = volume.orientations
        if orientations is None:
            # one orientation for the whole series: repeat it per slice so that every slice has its own row
            orientations = np.tile(volume.orientation, (depth, 1))
        return cls(np.asarray(volume.positions, float), np.asarray(orientations, float),
                   np.asarray(volume.pixel_spacing, float), tuple(int(s) for s in volume.pixels.shape))

    @property
    def normals(self) -> np.ndarray:
        """(D, 3) slice normals n_k = r_k × c_k."""
        return np.cross(self.orientations[:, :3], self.orientations[:, 3:])


def to_patient(geometry: Geometry, k: int, x: float, y: float) -> np.ndarray:
    """Patient position (mm) of pixel (x = col, y = row) on slice k: P = p_k + x · Δc · r_k + y · Δr · c_k."""
    r, c = geometry.orientations[k, :3], geometry.orientations[k, 3:]
    row_spacing, col_spacing = geometry.pixel_spacing       # DICOM order: (between rows, between columns)
    return geometry.positions[k] + x * col_spacing * r + y * row_spacing * c


def locate(geometry: Geometry, point: np.ndarray) -> tuple[int, float, float, float]:
    """(k*, x, y, distance in mm) of ``point``: nearest slice plane and the in-plane pixel on it."""
    delta = np.asarray(point, float)[None, :] - geometry.positions            # (D, 3): P − p_k per slice
    distances = np.abs(np.einsum("kd,kd->k", delta, geometry.normals))       # (D,): |(P − p_k) · n_k|
    k = int(np.argmin(distances))
    row_spacing, col_spacing = geometry.pixel_spacing
    # project onto the slice's row and column directions, then mm → pixels
    x = float(delta[k] @ geometry.orientations[k, :3]) / col_spacing
    y = float(delta[k] @ geometry.orientations[k, 3:]) / row_spacing
    return k, x, y, float(distances[k])


def inside(geometry: Geometry, x: float, y: float) -> bool:
    """Whether pixel (x, y) lies inside the image."""
    _, height, width = geometry.shape
    return 0.0 <= x < width and 0.0 <= y < height


def project(point: np.ndarray, targets: dict[int, Geometry]) -> tuple[int, int, float, float, float] | None:
    """The target series whose slice plane is nearest to ``point`` (and the point inside its image).

    Returns (series_id, k, x, y, distance mm), or None when no target holds the point in-plane.
    """
    best = None
    for series_id, geometry in targets.items():   # a study may hold several axial series (e.g. one per block)
        k, x, y, distance = locate(geometry, point)
        if inside(geometry, x, y) and (best is None or distance < best[-1]):
            best = (series_id, k, x, y, distance)
    return best
