"""Simulated centres and series geometry (Sagittal T1, Sagittal T2/STIR, Axial T2).

Slices are planned in the anatomy frame (aligned with the spine, with small
planning errors) and mapped to patient LPS coordinates by the study pose
``p = rot @ q + shift``.  A slice is described by the DICOM geometry of its
first pixel (ImagePositionPatient), row/column direction cosines
(ImageOrientationPatient) and PixelSpacing (row spacing, column spacing).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from spinelib.phantom.anatomy import Anatomy, canal_point, tangent, unstraighten

# Simulated centres: name, field, SNR (CSF), sagittal matrices (rows, cols) and spacing,
# sagittal slices/thickness/gap, axial matrix/spacing/slices per level/thickness,
# STIR for the sagittal T2/STIR series, instance-order rule, stored bits, rescale.
CENTRES: tuple[dict, ...] = (
    dict(name="Phantom Centre A", field=1.5, snr=16.0, sag_matrix=((272, 208), (280, 216)), sag_ps=0.81,
         sag_slices=(15, 17), sag_thick=4.0, sag_gap=0.4, ax_matrix=(176, 160), ax_ps=0.90, ax_slices=(3, 4),
         ax_thick=4.0, stir=False, reverse=0.1, bits=12, rescale=None, shared_sag=True, weight=0.28),
    dict(name="Phantom Centre B", field=3.0, snr=28.0, sag_matrix=((304, 232), (296, 224)), sag_ps=0.74,
         sag_slices=(15, 17), sag_thick=3.0, sag_gap=0.3, ax_matrix=(192, 176), ax_ps=0.84, ax_slices=(3, 4),
         ax_thick=3.5, stir=False, reverse=0.8, bits=16, rescale=(1.0, 0.0), shared_sag=False, weight=0.24),
    dict(name="Phantom Centre C", field=1.5, snr=13.0, sag_matrix=((256, 200), (264, 208)), sag_ps=0.87,
         sag_slices=(15, 16), sag_thick=4.0, sag_gap=0.5, ax_matrix=(160, 176), ax_ps=0.95, ax_slices=(3, 3),
         ax_thick=4.0, stir=True, reverse=0.3, bits=12, rescale=(1.0, 0.0), shared_sag=True, weight=0.18),
    dict(name="Phantom Centre D", field=3.0, snr=24.0, sag_matrix=((296, 232), (304, 232)), sag_ps=0.75,
         sag_slices=(16, 18), sag_thick=3.3, sag_gap=0.3, ax_matrix=(192, 176), ax_ps=0.82, ax_slices=(3, 4),
         ax_thick=3.5, stir=False, reverse=0.5, bits=16, rescale=(2.0, 0.0), shared_sag=False, weight=0.18),
    dict(name="Phantom Centre E", field=1.5, snr=19.0, sag_matrix=((272, 216), (280, 224)), sag_ps=0.81,
         sag_slices=(15, 17), sag_thick=3.5, sag_gap=0.5, ax_matrix=(176, 176), ax_ps=0.86, ax_slices=(3, 4),
         ax_thick=4.0, stir=True, reverse=0.0, bits=16, rescale=None, shared_sag=True, weight=0.12),
)


@dataclass(frozen=True)
class Slice:
    """One image plane in patient coordinates."""

    ipp: np.ndarray      # centre of the first pixel
    row_dir: np.ndarray  # direction of increasing column index
    col_dir: np.ndarray  # direction of increasing row index
    ps: tuple[float, float]  # (row spacing, column spacing) mm
    rows: int
    cols: int

    @property
    def normal(self) -> np.ndarray:
        """Slice normal (row x col)."""
        return np.cross(self.row_dir, self.col_dir)

    def project(self, p: np.ndarray) -> tuple[float, float, float]:
        """Patient point -> (x column, y row, distance along the normal)."""
        d = np.asarray(p, dtype=float) - self.ipp
        return float(d @ self.row_dir / self.ps[1]), float(d @ self.col_dir / self.ps[0]), float(d @ self.normal)

    def point(self, x: float, y: float) -> np.ndarray:
        """Pixel (column x, row y) -> patient point."""
        return self.ipp + x * self.ps[1] * self.row_dir + y * self.ps[0] * self.col_dir


@dataclass
class SeriesPlan:
    """A series: description, contrast kind, slices in spatial order, instance numbers."""

    description: str
    kind: str                      # "T1", "T2" or "STIR"
    slices: list[Slice]
    thickness: float
    spacing: float
    instance_numbers: list[int]
    disc_of_slice: list[int] = field(default_factory=list)  # axial: disc index per slice


def rotation(ax: float, ay: float, az: float) -> np.ndarray:
    """Rotation matrix from small angles (radians) about x, y, z."""
    cx, sx, cy, sy, cz, sz = np.cos(ax), np.sin(ax), np.cos(ay), np.sin(ay), np.cos(az), np.sin(az)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


def draw_pose(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Study pose: anatomy -> patient rotation and shift."""
    rot = rotation(*np.radians(rng.uniform([-5, -3, -3], [5, 3, 3])))
    shift = rng.uniform([-15, -40, -120], [15, 20, 80])
    return rot, shift


def _plane(centre: np.ndarray, row: np.ndarray, col: np.ndarray, ps: tuple[float, float],
           rows: int, cols: int, pose: tuple[np.ndarray, np.ndarray]) -> Slice:
    rot, shift = pose
    r, c = rot @ row, rot @ col
    first = rot @ centre + shift - (cols - 1) / 2 * ps[1] * r - (rows - 1) / 2 * ps[0] * c
    return Slice(np.round(first, 4), r, c, (float(ps[0]), float(ps[1])), int(rows), int(cols))


def _numbers(rng: np.random.Generator, n: int, reverse: bool) -> list[int]:
    start = 1 if rng.random() < 0.8 else int(rng.integers(2, 40))
    nums = list(range(start, start + n))
    return nums[::-1] if reverse else nums


def plan_sagittal(rng: np.random.Generator, an: Anatomy, centre: dict, pose, description: str,
                  kind: str, like: SeriesPlan | None = None) -> SeriesPlan:
    """A sagittal stack centred between L1/L2 and L5/S1 (reuses ``like``'s planes if given)."""
    if like is not None:
        return SeriesPlan(description, kind, like.slices, like.thickness, like.spacing,
                          _numbers(rng, len(like.slices), rng.random() < centre["reverse"]))
    mi = int(rng.integers(len(centre["sag_matrix"])))
    rows, cols = centre["sag_matrix"][mi]
    psv = centre["sag_ps"] * rng.uniform(0.97, 1.03)
    n = int(rng.integers(centre["sag_slices"][0], centre["sag_slices"][1] + 1))
    thick = centre["sag_thick"]
    spacing = thick + centre["sag_gap"]
    s_c = 0.5 * (an.s_disc[1] + an.s_disc[5]) + rng.uniform(-4, 4)
    centre_q = unstraighten(an, s_c, rng.uniform(-14, -4), rng.uniform(-2.5, 2.5))
    rot = rotation(*np.radians(rng.uniform([-2, -2, -2], [2, 2, 2])))
    row, col, normal = rot @ [0, 1.0, 0], rot @ [0, 0, -1.0], rot @ [-1.0, 0, 0]
    slices = []
    for i in range(n):           # spatial order: along the normal (patient left -> right)
        off = (i - (n - 1) / 2) * spacing
        slices.append(_plane(centre_q + off * normal, row, col, (psv, psv), rows, cols, pose))
    return SeriesPlan(description, kind, slices, thick, spacing,
                      _numbers(rng, n, rng.random() < centre["reverse"]))


def plan_axial(rng: np.random.Generator, an: Anatomy, centre: dict, pose, discs: tuple[int, ...] = (1, 2, 3, 4, 5),
               thin: bool = False) -> SeriesPlan:
    """Axial T2 blocks, one per disc, each parallel to its disc plane (small planning errors)."""
    rows = cols = int(centre["ax_matrix"][int(rng.integers(len(centre["ax_matrix"])))])
    psv = centre["ax_ps"] * rng.uniform(0.96, 1.04)
    thick = centre["ax_thick"] - (0.5 if thin else 0.0)
    spacing = thick + rng.choice([0.0, 0.3, 0.5])
    lo, hi = centre["ax_slices"]
    slices, disc_of = [], []
    a_c = rng.uniform(-10, 0)
    for k in discs:              # spatial order: head -> feet
        n = int(rng.integers(lo, hi + 1))
        up, post = tangent(an, an.s_disc[k])
        rot = rotation(*np.radians(rng.uniform([-3, -2, -3], [3, 2, 3])))
        normal = rot @ up
        row = rot @ np.array([1.0, 0, 0])
        row = row - (row @ normal) * normal
        row /= np.linalg.norm(row)
        col = np.cross(normal, row)
        s, _, _ = canal_point(an, k)
        c = unstraighten(an, s + rng.uniform(-1, 1), a_c, rng.uniform(-2, 2))
        for i in range(n - 1, -1, -1):
            off = (i - (n - 1) / 2) * spacing
            slices.append(_plane(c + off * normal, row, col, (psv, psv), rows, cols, pose))
            disc_of.append(k)
    return SeriesPlan("Axial T2", "T2", slices, thick, float(spacing),
                      _numbers(rng, len(slices), rng.random() < centre["reverse"]), disc_of)


def nearest_slice(plan: SeriesPlan, p: np.ndarray, disc: int | None = None) -> tuple[int, float, float, float]:
    """Index of the slice whose plane is nearest ``p`` (optionally among one disc's block)."""
    best = None
    for i, sl in enumerate(plan.slices):
        if disc is not None and plan.disc_of_slice and plan.disc_of_slice[i] != disc:
            continue
        x, y, d = sl.project(p)
        if best is None or abs(d) < abs(best[3]):
            best = (i, x, y, d)
    return best
