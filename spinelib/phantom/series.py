"""Simulated centres and series geometry (Sagittal T1, Sagittal T2/STIR, Axial T2).

Slices are planned in the anatomy frame (aligned with the spine, with small
planning errors) and mapped to patient LPS coordinates by the study pose
``p = rot @ q + shift``.  A slice is described by the DICOM geometry of its
first pixel (ImagePositionPatient), row/column direction cosines
(ImageOrientationPatient) and PixelSpacing (row spacing, column spacing).

Planning follows what an MR technologist does on the scanner: a sagittal stack
centred on the lumbar canal from L1/L2 to L5/S1, and one short axial block per
disc, each tilted to lie parallel to its disc (so the axial blocks of a
lordotic spine fan out). Small random planning errors make every study's
geometry different, as in the real dataset (../shared/spec/phantom.md, item 3).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from spinelib.phantom.anatomy import Anatomy, canal_point, tangent, unstraighten

# Simulated centres (phantom.md item 8): each is one scanner and protocol, so a model can learn the centre effect
# and splits can be stratified by centre. Keys:
#   name, field        InstitutionName and MagneticFieldStrength (T) in the DICOM headers
#   snr                signal-to-noise of CSF; 3 T scanners get more
#   sag_matrix         the sagittal (rows, cols) options; sag_ps pixel size (mm); sag_slices (fewest, most)
#   sag_thick, sag_gap sagittal slice thickness and the gap between slices (mm)
#   ax_matrix          the axial matrix options (square: one value is drawn for both); ax_ps pixel size (mm)
#   ax_slices          (fewest, most) axial slices per disc block; ax_thick axial thickness (mm)
#   stir               the "Sagittal T2/STIR" series is a STIR (fat-suppressed) rather than a T2
#   reverse            probability that a series' instance numbers run against the spatial order
#   bits, rescale      BitsStored and (RescaleSlope, RescaleIntercept) or None (no rescale tags)
#   shared_sag         T1 and T2 sagittal series share their planes (one planning for both)
#   weight             the centre's share of the cohort's studies
# (The keys are written as they are to phantom_params.json: renaming one changes the phantom.)
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

Pose = tuple[np.ndarray, np.ndarray]   # (rotation (3, 3), shift (3,)): anatomy -> patient, p = rot @ q + shift


@dataclass(frozen=True)
class Slice:
    """One image plane in patient coordinates."""

    image_position: np.ndarray          # centre of the first pixel (DICOM ImagePositionPatient)
    row_dir: np.ndarray                 # direction of increasing column index
    col_dir: np.ndarray                 # direction of increasing row index
    pixel_spacing: tuple[float, float]  # (row spacing, column spacing) mm, in DICOM PixelSpacing order
    rows: int
    cols: int

    @property
    def normal(self) -> np.ndarray:
        """Slice normal (row x col)."""
        return np.cross(self.row_dir, self.col_dir)

    def project(self, p: np.ndarray) -> tuple[float, float, float]:
        """Patient point -> (x column, y row, distance along the normal)."""
        d = np.asarray(p, dtype=float) - self.image_position
        # a step along a row moves by the column spacing (pixel_spacing[1]), a step down a column by the row spacing
        return (float(d @ self.row_dir / self.pixel_spacing[1]), float(d @ self.col_dir / self.pixel_spacing[0]),
                float(d @ self.normal))

    def point(self, x: float, y: float) -> np.ndarray:
        """Pixel (column x, row y) -> patient point."""
        return (self.image_position + x * self.pixel_spacing[1] * self.row_dir
                + y * self.pixel_spacing[0] * self.col_dir)


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


def rotation(angle_x: float, angle_y: float, angle_z: float) -> np.ndarray:
    """Rotation matrix from small angles (radians) about x, y, z: Rz @ Ry @ Rx."""
    cos_x, sin_x = np.cos(angle_x), np.sin(angle_x)
    cos_y, sin_y = np.cos(angle_y), np.sin(angle_y)
    cos_z, sin_z = np.cos(angle_z), np.sin(angle_z)
    about_x = np.array([[1, 0, 0], [0, cos_x, -sin_x], [0, sin_x, cos_x]])
    about_y = np.array([[cos_y, 0, sin_y], [0, 1, 0], [-sin_y, 0, cos_y]])
    about_z = np.array([[cos_z, -sin_z, 0], [sin_z, cos_z, 0], [0, 0, 1]])
    return about_z @ about_y @ about_x


def draw_pose(rng: np.random.Generator) -> Pose:
    """Study pose: anatomy -> patient rotation (a few degrees of tilt) and shift (the table position)."""
    rot = rotation(*np.radians(rng.uniform([-5, -3, -3], [5, 3, 3])))
    shift = rng.uniform([-15, -40, -120], [15, 20, 80])
    return rot, shift


def _plane(centre: np.ndarray, row: np.ndarray, col: np.ndarray, pixel_spacing: tuple[float, float],
           rows: int, cols: int, pose: Pose) -> Slice:
    """The slice through anatomy point ``centre`` with in-plane axes ``row``, ``col`` (anatomy frame), in patient
    coordinates. DICOM positions the *first* pixel, so the centre moves back by half the field of view."""
    rot, shift = pose
    row_patient, col_patient = rot @ row, rot @ col
    first = (rot @ centre + shift - (cols - 1) / 2 * pixel_spacing[1] * row_patient
             - (rows - 1) / 2 * pixel_spacing[0] * col_patient)
    return Slice(np.round(first, 4), row_patient, col_patient, (float(pixel_spacing[0]), float(pixel_spacing[1])),
                 int(rows), int(cols))


def _instance_numbers(rng: np.random.Generator, n: int, reverse: bool) -> list[int]:
    """Instance numbers of ``n`` slices in spatial order: usually 1..n, sometimes starting later (a series that
    followed a localiser), reversed where the centre stores its stacks the other way round."""
    start = 1 if rng.random() < 0.8 else int(rng.integers(2, 40))
    numbers = list(range(start, start + n))
    return numbers[::-1] if reverse else numbers


def _draw_instance_numbers(rng: np.random.Generator, n: int, centre: dict) -> list[int]:
    """Draw the centre's stacking direction, then the numbers (in that order: part of the phantom's bytes)."""
    reverse = rng.random() < centre["reverse"]
    return _instance_numbers(rng, n, reverse)


def plan_sagittal(rng: np.random.Generator, anatomy: Anatomy, centre: dict, pose: Pose, description: str,
                  kind: str, like: SeriesPlan | None = None) -> SeriesPlan:
    """A sagittal stack centred between L1/L2 and L5/S1 (reuses ``like``'s planes if given).

    Centres with ``shared_sag`` acquire T1 and T2 on the same planes, as many real protocols do; the others
    plan each sagittal series afresh.
    """
    if like is not None:
        return SeriesPlan(description, kind, like.slices, like.thickness, like.spacing,
                          _draw_instance_numbers(rng, len(like.slices), centre))
    matrix_index = int(rng.integers(len(centre["sag_matrix"])))
    rows, cols = centre["sag_matrix"][matrix_index]
    pixel_size = centre["sag_ps"] * rng.uniform(0.97, 1.03)
    n_slices = int(rng.integers(centre["sag_slices"][0], centre["sag_slices"][1] + 1))
    thickness = centre["sag_thick"]
    spacing = thickness + centre["sag_gap"]
    # the stack's centre: mid-way between L1/L2 and L5/S1, a little behind the canal axis, near the midline
    centre_s = 0.5 * (anatomy.disc_centre_s[1] + anatomy.disc_centre_s[5]) + rng.uniform(-4, 4)
    stack_centre = unstraighten(anatomy, centre_s, rng.uniform(-14, -4), rng.uniform(-2.5, 2.5))
    tilt = rotation(*np.radians(rng.uniform([-2, -2, -2], [2, 2, 2])))
    # rows run posterior (+y), columns run down (-z): the usual sagittal display, the face to the left
    row, col, normal = tilt @ [0, 1.0, 0], tilt @ [0, 0, -1.0], tilt @ [-1.0, 0, 0]
    slices = []
    for i in range(n_slices):           # spatial order: along the normal (patient left -> right)
        offset = (i - (n_slices - 1) / 2) * spacing
        slices.append(_plane(stack_centre + offset * normal, row, col, (pixel_size, pixel_size), rows, cols, pose))
    return SeriesPlan(description, kind, slices, thickness, spacing, _draw_instance_numbers(rng, n_slices, centre))


def _disc_plane_axes(anatomy: Anatomy, disc: int, tilt: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(normal, row, col) of an axial block parallel to disc ``disc``'s plane, with a small planning ``tilt``.

    The normal follows the canal's tangent at the disc; the row axis is patient left (x) made orthogonal to it
    (Gram-Schmidt), and col = normal x row completes a right-handed frame.
    """
    up, _posterior = tangent(anatomy, anatomy.disc_centre_s[disc])
    normal = tilt @ up
    row = tilt @ np.array([1.0, 0, 0])
    row = row - (row @ normal) * normal
    row /= np.linalg.norm(row)
    return normal, row, np.cross(normal, row)


def plan_axial(rng: np.random.Generator, anatomy: Anatomy, centre: dict, pose: Pose,
               discs: tuple[int, ...] = (1, 2, 3, 4, 5), thin: bool = False) -> SeriesPlan:
    """Axial T2 blocks, one per disc, each parallel to its disc plane (small planning errors).

    ``thin``: a second, thinner axial series (some real studies have one, over the lower discs).
    """
    rows = cols = int(centre["ax_matrix"][int(rng.integers(len(centre["ax_matrix"])))])
    pixel_size = centre["ax_ps"] * rng.uniform(0.96, 1.04)
    thickness = centre["ax_thick"] - (0.5 if thin else 0.0)
    spacing = thickness + rng.choice([0.0, 0.3, 0.5])
    fewest, most = centre["ax_slices"]
    slices, disc_of_slice = [], []
    block_a = rng.uniform(-10, 0)       # every block of the series is centred at the same depth
    for k in discs:              # spatial order: head -> feet
        n_slices = int(rng.integers(fewest, most + 1))
        tilt = rotation(*np.radians(rng.uniform([-3, -2, -3], [3, 2, 3])))
        normal, row, col = _disc_plane_axes(anatomy, k, tilt)
        disc_s, _, _ = canal_point(anatomy, k)
        block_centre = unstraighten(anatomy, disc_s + rng.uniform(-1, 1), block_a, rng.uniform(-2, 2))
        for i in range(n_slices - 1, -1, -1):   # the normal points up: head -> feet is decreasing offset
            offset = (i - (n_slices - 1) / 2) * spacing
            slices.append(_plane(block_centre + offset * normal, row, col, (pixel_size, pixel_size), rows, cols,
                                 pose))
            disc_of_slice.append(k)
    return SeriesPlan("Axial T2", "T2", slices, thickness, float(spacing),
                      _draw_instance_numbers(rng, len(slices), centre), disc_of_slice)


def nearest_slice(plan: SeriesPlan, p: np.ndarray, disc: int | None = None) -> tuple[int, float, float, float]:
    """(index, x column, y row, distance) of the slice whose plane is nearest ``p`` (optionally among one disc's
    block)."""
    best = None
    for i, candidate in enumerate(plan.slices):
        if disc is not None and plan.disc_of_slice and plan.disc_of_slice[i] != disc:
            continue
        x, y, distance = candidate.project(p)
        if best is None or abs(distance) < abs(best[3]):
            best = (i, x, y, distance)
    return best
