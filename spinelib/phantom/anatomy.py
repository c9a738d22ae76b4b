"""Per-study lumbar anatomy as implicit shapes in a straightened spine frame.

Anatomy coordinates ``q = (x, y, z)`` follow the patient LPS axes (+x left,
+y posterior, +z head) before the study's global pose.  The canal axis is a
circular arc in the y-z plane (lordosis): centre ``C = (y=R, z=0)``, so the
straightened coordinates of a point are ``s`` (arc length along the canal, +
up), ``a`` (distance anterior of the canal axis) and ``l = x`` (lateral, +
patient left).  Six discs (T12/L1 .. L5/S1) are stacked along ``s``; every
structure is painted as a tissue label from (s, a, l) using per-disc
parameters gathered by the nearest disc, so cost does not grow with levels.

Painting order matters: later structures overwrite earlier ones, exactly as a
radiologist reads a slice from the outside in (background, then the vertebral
column, then the canal and what narrows it). The latent severities of
:mod:`spinelib.phantom.severity` enter only through the per-disc shape
parameters of :class:`Anatomy` (bulge, ligamentum flavum, foramen and recess
sizes, nucleus signal), which is what makes the images carry the grade
(../shared/spec/phantom.md, items 3, 4 and 4b).

Arithmetic note: the painting code mixes float32 point arrays with Python
floats and float32 scalars on purpose (float32 halves the memory of the
per-pixel arrays); the exact mix decides the phantom's bytes, so keep it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

# ---- tissue labels ---------------------------------------------------------------------------------------------

# Tissue labels (int8). The nucleus of disc k has its own label FIRST_NUCLEUS + k, so that each disc's nucleus
# can get its own T2 signal (its degeneration) from the per-series tissue table (spinelib.phantom.render).
AIR, FAT, MUSCLE, ABDOMEN, MARROW, CORTEX, ANNULUS, CSF, NERVE, LIGAMENT, BONE, FLUID = range(12)
FIRST_NUCLEUS = 12
N_TISSUES = FIRST_NUCLEUS + 6   # 12 tissues + one nucleus per disc T12/L1..L5/S1
N_DISCS = 6

# Cauda equina roots (a, l) in units of the sac radii. The roots lie in a dependent (posterior) cluster because
# the patient lies supine and the nerve roots sink in the CSF.
_CAUDA_EQUINA_ROOTS = np.array([(-0.55, -0.35), (-0.55, 0.35), (-0.35, -0.6), (-0.35, 0.6), (-0.7, 0.0),
                                (-0.2, -0.2), (-0.2, 0.25), (-0.45, 0.05)], dtype=np.float32)


# ---- shape parameters --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Anatomy:
    """Shape parameters of one study (mm); per-disc arrays have 6 entries (T12/L1..L5/S1)."""

    lordosis_radius: float           # radius R of the canal arc (lumbar lordosis)
    disc_centre_s: np.ndarray        # disc centres along the arc length s
    disc_half_height: np.ndarray     # disc half heights
    disc_bulge: np.ndarray           # posterior disc bulge at the midline (effaces the sac from the front)
    flavum_thickening: np.ndarray    # ligamentum flavum intrusion into the sac (effaces it from behind)
    foramen_scale: np.ndarray        # neural foramen size factor, (6, 2) [right, left]
    recess_scale: np.ndarray         # subarticular recess size factor, (6, 2) [right, left]
    nucleus_signal: np.ndarray       # 1 = healthy (T2-bright) nucleus, 0 = black (desiccated) disc
    sac_ap_radius: float             # dural sac anterior-posterior half axis
    sac_lateral_radius: float        # dural sac lateral half axis
    body_posterior_a: float          # a of the posterior wall of the vertebral bodies
    body_ap_radius: float            # vertebral body anterior-posterior half axis
    body_lateral_radius: float       # vertebral body lateral half axis
    skin_depth: float                # posterior skin distance from the canal axis
    fat_depth: float                 # subcutaneous fat thickness


def _with_healthy_t12_l1(per_level: np.ndarray, healthy_value: float) -> np.ndarray:
    """Prepend the T12/L1 disc, which the RSNA grades do not cover, as a healthy disc: (5,) -> (6,)."""
    return np.concatenate([[healthy_value], per_level])


def _stack_disc_centres(disc_half_height: np.ndarray, vertebra_height: np.ndarray) -> np.ndarray:
    """Disc centres along s (6,), stacked upwards from L5/S1, with the L3 vertebral body centred at s = 0.

    Vertebra k+1 (height ``vertebra_height[k+1]``) lies between disc k and disc k+1, so the distance between two
    neighbouring disc centres is half a disc + a vertebra + half a disc.
    """
    centres = np.zeros(N_DISCS)
    for k in range(4, -1, -1):
        centres[k] = centres[k + 1] + disc_half_height[k + 1] + vertebra_height[k + 1] + disc_half_height[k]
    # index 3 is the disc L3/L4 (T12/L1..L5/S1 order); the L3 body sits just above it, vertebra_height[3] tall
    return centres - (centres[3] + disc_half_height[3] + 0.5 * vertebra_height[3])


def make_anatomy(rng: np.random.Generator, severity: np.ndarray, degeneration: np.ndarray,
                 height_loss: np.ndarray) -> Anatomy:
    """Shape of one study from its latents (severity: 5 conditions x 5 levels; the others: 5 levels).

    Random draws, in this order (the order is part of the phantom's bytes): disc height scale, per-disc height
    jitter (6), vertebra height scale, sac radii (AP, lateral), lordosis radius, body wall offset, body radii
    (AP, lateral), skin depth, fat depth.
    """
    canal, foramen_left, foramen_right, recess_left, recess_right = (
        _with_healthy_t12_l1(severity[i], 0.02) for i in range(5))
    degeneration_6 = _with_healthy_t12_l1(degeneration, 0.05)
    height_loss_6 = _with_healthy_t12_l1(height_loss, 0.03)
    # Lumbar discs get taller towards L4/L5; height loss takes up to 45 % of a disc's height (disc narrowing).
    base_disc_height = np.array([7.0, 8.5, 9.5, 10.5, 11.5, 11.0]) * rng.uniform(0.9, 1.1)
    disc_half_height = 0.5 * base_disc_height * (1.0 - 0.45 * height_loss_6) * rng.uniform(0.95, 1.05, 6)
    vertebra_height = np.array([24.0, 25.0, 26.0, 26.5, 27.0, 27.0]) * rng.uniform(0.93, 1.07)
    disc_centre_s = _stack_disc_centres(disc_half_height, vertebra_height)
    sac_ap_radius, sac_lateral_radius = rng.uniform(6.5, 7.5), rng.uniform(9.5, 12.0)
    return Anatomy(
        lordosis_radius=float(rng.uniform(190.0, 280.0)), disc_centre_s=disc_centre_s,
        disc_half_height=disc_half_height,
        # The latent moves the anatomy linearly over its whole range [0, 1], inside each grade too: between
        # latents 0.05 and 0.30 the canal loses about 3 mm of its ~14 mm AP diameter (phantom.md item 4b).
        disc_bulge=1.0 + 8.0 * canal + 1.0 * degeneration_6, flavum_thickening=0.5 + 5.0 * canal,
        # a severe latent closes the foramen / recess to 15 % / 20 % of its healthy size
        foramen_scale=np.stack([1.0 - 0.85 * foramen_right, 1.0 - 0.85 * foramen_left], axis=1),
        recess_scale=np.stack([1.0 - 0.8 * recess_right, 1.0 - 0.8 * recess_left], axis=1),
        # a desiccated nucleus loses its T2 signal ("black disc"): the Pfirrmann grade's main sign
        nucleus_signal=1.0 - 0.9 * degeneration_6,
        sac_ap_radius=float(sac_ap_radius), sac_lateral_radius=float(sac_lateral_radius),
        # a thin epidural space separates the sac from the back of the vertebral bodies
        body_posterior_a=float(sac_ap_radius + rng.uniform(1.5, 3.0)), body_ap_radius=float(rng.uniform(17.0, 20.0)),
        body_lateral_radius=float(rng.uniform(22.0, 26.0)), skin_depth=float(rng.uniform(55.0, 75.0)),
        fat_depth=float(rng.uniform(8.0, 25.0)))


# ---- the straightened frame --------------------------------------------------------------------------------------

def straighten(anatomy: Anatomy, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, ...]:
    """Anatomy coordinates -> (s, a, l).

    With the arc centre C = (y=R, z=0): s = R · atan2(z, R - y) (arc length), a = |q - C| - R (anterior of
    the canal axis), l = x.
    """
    radius = np.float32(anatomy.lordosis_radius)
    from_centre_y = y - radius
    distance = np.hypot(from_centre_y, z)
    return radius * np.arctan2(z, -from_centre_y), distance - radius, x


def unstraighten(anatomy: Anatomy, s: float, a: float, l: float) -> np.ndarray:
    """(s, a, l) -> anatomy coordinates (x, y, z): the inverse of :func:`straighten`."""
    angle, distance = s / anatomy.lordosis_radius, anatomy.lordosis_radius + a
    return np.array([l, anatomy.lordosis_radius - distance * np.cos(angle), distance * np.sin(angle)])


def tangent(anatomy: Anatomy, s: float) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors (up along the canal, posterior) at arc position ``s``."""
    angle = s / anatomy.lordosis_radius
    return np.array([0.0, np.sin(angle), np.cos(angle)]), np.array([0.0, np.cos(angle), -np.sin(angle)])


# ---- painting helpers --------------------------------------------------------------------------------------------

def _ellipse(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """u² + v²: inside the ellipse where <= 1, for u, v already divided by the half axes."""
    return u * u + v * v


def _superellipse4(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """u⁴ + v⁴: a rounded rectangle (a vertebral body's axial outline), inside where <= 1."""
    u, v = u * u, v * v
    return u * u + v * v


def _nearest_disc(anatomy: Anatomy, s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Nearest disc index (0 = T12/L1 .. 5 = L5/S1), offset from its centre, its half height; each like ``s``.

    Discs are ordered head first, so s decreases with the index; the midpoints between neighbouring discs
    split the column into one slab per disc (the searchsorted on negated values handles the descending order).
    """
    midpoints = (0.5 * (anatomy.disc_centre_s[:-1] + anatomy.disc_centre_s[1:])).astype(np.float32)
    disc = np.searchsorted(-midpoints, -s)
    return (disc, s - anatomy.disc_centre_s.astype(np.float32)[disc],
            anatomy.disc_half_height.astype(np.float32)[disc])


class _Neighbourhood(NamedTuple):
    """Where each point lies relative to its nearest disc and the canal (all arrays like the points)."""

    disc: np.ndarray            # nearest disc index
    offset_s: np.ndarray        # s - the disc's centre (+ up)
    half_height: np.ndarray     # the disc's half height
    abs_offset_s: np.ndarray    # |offset_s|
    abs_lateral: np.ndarray     # |l|
    on_left: np.ndarray         # l > 0 (patient left)
    in_vertebra: np.ndarray     # beyond the disc's half height: at the level of a vertebra, not a disc
    sac_ap: np.float32          # the sac's half axes and the bodies' posterior wall, as float32 scalars
    sac_lateral: np.float32
    body_wall: np.float32


def _neighbourhood(anatomy: Anatomy, s: np.ndarray, l: np.ndarray) -> _Neighbourhood:
    disc, offset_s, half_height = _nearest_disc(anatomy, s)
    abs_offset_s, abs_lateral = np.abs(offset_s), np.abs(l)
    return _Neighbourhood(disc, offset_s, half_height, abs_offset_s, abs_lateral, l > 0, abs_offset_s > half_height,
                          np.float32(anatomy.sac_ap_radius), np.float32(anatomy.sac_lateral_radius),
                          np.float32(anatomy.body_posterior_a))


def _left_or_right(n: _Neighbourhood, per_side: np.ndarray) -> np.ndarray:
    """Per-point value of a (6 discs, [right, left]) parameter: the point's disc and side."""
    return np.where(n.on_left, per_side[:, 1].astype(np.float32)[n.disc],
                    per_side[:, 0].astype(np.float32)[n.disc])


# ---- background and vertebral column -----------------------------------------------------------------------------

def _paint_background(anatomy: Anatomy, a: np.ndarray, abs_lateral: np.ndarray) -> np.ndarray:
    """Fat, paraspinal and psoas muscles, abdomen, air behind the back."""
    f32 = np.float32
    labels = np.full(a.shape, FAT, dtype=np.int8)
    # paraspinal (erector spinae) muscles fill the space between the canal and the skin, either side
    paraspinal_centre = -(anatomy.skin_depth + anatomy.sac_ap_radius + 5) / 2
    paraspinal_radius = (anatomy.skin_depth - anatomy.sac_ap_radius - 5) / 2
    labels[_ellipse((a - f32(paraspinal_centre)) / f32(paraspinal_radius), (abs_lateral - 17) / f32(21)) <= 1] = MUSCLE
    # psoas muscles: beside the vertebral bodies
    labels[_ellipse((a - f32(anatomy.body_posterior_a + 0.9 * anatomy.body_ap_radius)) / f32(13),
                    (abs_lateral - f32(anatomy.body_lateral_radius + 11)) / f32(11)) <= 1] = MUSCLE
    labels[(a > f32(anatomy.body_posterior_a + 2 * anatomy.body_ap_radius + 3))
           | ((a > f32(anatomy.body_posterior_a + anatomy.body_ap_radius))
              & (abs_lateral > f32(anatomy.body_lateral_radius + 23)))] = ABDOMEN
    labels[a < -f32(anatomy.skin_depth + anatomy.fat_depth)] = AIR
    return labels


def _paint_bodies_and_discs(anatomy: Anatomy, s: np.ndarray, a: np.ndarray, l: np.ndarray,
                            labels: np.ndarray) -> np.ndarray:
    """Vertebral bodies (marrow, cortex, endplates), discs (annulus, nucleus)."""
    f32 = np.float32
    disc, offset_s, half_height = _nearest_disc(anatomy, s)
    abs_offset_s = np.abs(offset_s)
    wall, ap_radius, lateral_radius = (f32(anatomy.body_posterior_a), f32(anatomy.body_ap_radius),
                                       f32(anatomy.body_lateral_radius))
    body_outline = _superellipse4((a - wall - ap_radius) / ap_radius, l / lateral_radius)
    in_vertebra = abs_offset_s > half_height
    body = in_vertebra & (body_outline <= 1.0)
    labels[body] = MARROW
    # cortical rim and endplates: dark on every sequence (no mobile protons)
    labels[body & ((body_outline > 0.72) | (abs_offset_s - half_height < 1.2))] = CORTEX
    # the disc is slightly wider than the bodies (the annulus bulges a little at every level)
    disc_outline = _superellipse4((a - wall - ap_radius) / (ap_radius + 0.8), l / (lateral_radius + 1.0))
    in_disc = (~in_vertebra) & (disc_outline <= 1.0)
    labels[in_disc] = ANNULUS
    nucleus = in_disc & (_ellipse(offset_s / (half_height * 0.72), (a - wall - ap_radius + 2) / (ap_radius * 0.55))
                         + (l / (lateral_radius * 0.58)) ** 2 <= 1.0)
    labels[nucleus] = (FIRST_NUCLEUS + disc[nucleus]).astype(np.int8)
    return labels


# ---- the canal and what narrows it -------------------------------------------------------------------------------

def _paint_dural_sac(n: _Neighbourhood, a: np.ndarray, l: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Epidural fat, the CSF-filled dural sac and the cauda equina roots in it; returns the sac's mask."""
    labels[(n.abs_lateral < n.sac_lateral * 0.8) & (a > -n.sac_ap - 3.5) & (a < n.body_wall)
           & (a < n.sac_ap + 1.5)] = FAT
    sac = _ellipse(a / n.sac_ap, l / n.sac_lateral) <= 1.0
    labels[sac] = CSF
    inside = np.flatnonzero(sac)
    a_unit, l_unit = a[inside] / n.sac_ap, l[inside] / n.sac_lateral   # in units of the sac radii
    root = np.zeros(inside.size, dtype=bool)
    for root_a, root_l in _CAUDA_EQUINA_ROOTS:
        root |= _ellipse((a_unit - root_a) * (n.sac_ap / np.float32(0.9)),
                         (l_unit - root_l) * (n.sac_lateral / np.float32(0.9))) <= 1.0
    labels[inside[root]] = NERVE
    return sac


def _paint_disc_bulge(anatomy: Anatomy, n: _Neighbourhood, a: np.ndarray, l: np.ndarray,
                      labels: np.ndarray) -> None:
    """Posterior disc bulge (broad based) effacing the anterior sac: spinal canal stenosis from the front."""
    f32 = np.float32
    # strongest at the disc's mid height, fading over the endplates; a Gaussian across the midline
    height_profile = np.clip(1.0 - (n.offset_s / (n.half_height + 1.5)) ** 2, 0.0, 1.0)
    bulge = anatomy.disc_bulge.astype(f32)[n.disc] * height_profile * np.exp(-(l / f32(11.0)) ** 2)
    labels[(a < n.body_wall + 0.5) & (a > n.body_wall - bulge)] = ANNULUS


def _paint_ligamentum_flavum(anatomy: Anatomy, n: _Neighbourhood, a: np.ndarray, l: np.ndarray,
                             labels: np.ndarray) -> None:
    """Ligamentum flavum thickening at the disc level effacing the posterior sac: stenosis from behind."""
    f32 = np.float32
    height_profile = np.clip(1.0 - (n.offset_s / (n.half_height + 5.0)) ** 2, 0.0, 1.0)
    front = -n.sac_ap + anatomy.flavum_thickening.astype(f32)[n.disc] * height_profile * np.exp(-(l / f32(9.0)) ** 2)
    labels[(height_profile > 0) & (a > -n.sac_ap - 4.0) & (a < front) & (n.abs_lateral < n.sac_lateral + 3.0)
           & (a < 0)] = LIGAMENT


def _paint_posterior_elements(n: _Neighbourhood, a: np.ndarray, labels: np.ndarray) -> None:
    """Laminae, spinous processes (with the interspinous ligament), pedicles, facet joints."""
    sac_ap, sac_lateral = n.sac_ap, n.sac_lateral
    # laminae: the roof of the canal, at vertebral levels only
    labels[n.in_vertebra & (n.abs_offset_s > n.half_height + 4) & (a > -sac_ap - 11) & (a < -sac_ap - 3.5)
           & (n.abs_lateral < sac_lateral + 8)] = BONE
    spinous = (n.abs_lateral < 3.5) & (a < -sac_ap - 8) & (a > -sac_ap - 45)
    labels[spinous] = BONE
    labels[spinous & (np.abs(n.offset_s + 2) < 4.5)] = LIGAMENT   # the gap between two spinous processes
    # pedicles: the canal's side walls, between the bodies and the laminae
    labels[n.in_vertebra & (n.abs_offset_s > n.half_height + 6) & (n.abs_lateral > sac_lateral + 1)
           & (n.abs_lateral < sac_lateral + 8) & (a > -sac_ap - 3.5) & (a < n.body_wall + 2)] = BONE
    facet = ((n.abs_offset_s < n.half_height + 8) & (n.abs_lateral > sac_lateral + 3)
             & (n.abs_lateral < sac_lateral + 14) & (a > -sac_ap - 12) & (a < -sac_ap + 2))
    labels[facet] = BONE
    # the facet joint space: a thin oblique line of synovial fluid between the two articular processes
    labels[facet & (np.abs(n.abs_lateral - sac_lateral - 8.5 + 0.3 * (a + sac_ap + 5)) < 0.7)] = FLUID


def _paint_foramina(anatomy: Anatomy, n: _Neighbourhood, a: np.ndarray, labels: np.ndarray) -> None:
    """Neural foramina: fat around the exiting root, narrowed by the latent (foraminal narrowing)."""
    lateral = (n.abs_lateral > n.sac_lateral + 3) & (n.abs_lateral < n.sac_lateral + 10)
    labels[lateral & (n.offset_s > -n.half_height - 2) & (n.offset_s < n.half_height + 6)
           & (a > -n.sac_ap - 2) & (a < n.body_wall + 4)] = LIGAMENT
    size = _left_or_right(n, anatomy.foramen_scale)
    # the foramen sits in the upper part of the disc level (its centre above the disc's mid height)
    centre_s = 0.2 * n.half_height + 3.5
    half_s, half_a = 8.5 * size + 0.3, 5.5 * (0.2 + 0.8 * size)     # the foramen's half-axes (mm)
    foramen = lateral & (_ellipse((n.offset_s - centre_s) / half_s, (a - n.body_wall + 4.0) / half_a) <= 1.0)
    labels[foramen] = FAT
    # foraminal venous plexus: a fluid-bright core that narrows with the foramen. On STIR the fat is suppressed
    # (as dark as the ligament around it), so without it the foramen's size would be invisible on that series.
    labels[foramen & (_ellipse((n.offset_s - centre_s) / (0.6 * half_s),
                               (a - n.body_wall + 4.0) / (0.6 * half_a)) <= 1.0)] = FLUID
    # the exiting root (2.2 mm radius) lies in the foramen's upper part, 2.5 mm x its size factor above the centre
    labels[foramen & (_ellipse((n.offset_s - centre_s - 2.5 * size) / 2.2,
                               (a - n.body_wall + 4.0) / 2.2) <= 1.0)] = NERVE


def _paint_recesses(anatomy: Anatomy, n: _Neighbourhood, a: np.ndarray, sac: np.ndarray, labels: np.ndarray) -> None:
    """Subarticular recesses: CSF around the traversing root, narrowed by the latent (subarticular stenosis)."""
    near_disc = n.abs_offset_s < n.half_height + 3
    labels[near_disc & (n.abs_lateral > n.sac_lateral - 2) & (n.abs_lateral < n.sac_lateral + 5)
           & (a > -0.6 * n.sac_ap - 2) & (a < n.body_wall - 0.5) & ~sac] = LIGAMENT
    size = _left_or_right(n, anatomy.recess_scale)
    # an ellipse just lateral of the sac's edge, its half axes (3.4, 3.2 mm) shrinking with the latent
    recess = near_disc & (_ellipse((a - 1.0) / (3.4 * size),
                                   (n.abs_lateral - n.sac_lateral - 1.0) / (3.2 * size)) <= 1.0)
    labels[recess] = CSF
    labels[recess & (_ellipse((a - 1.0) / 1.1, (n.abs_lateral - n.sac_lateral - 1.0) / 1.1) <= 1.0)] = NERVE


def _paint_canal_and_posterior(anatomy: Anatomy, s: np.ndarray, a: np.ndarray, l: np.ndarray,
                               labels: np.ndarray) -> np.ndarray:
    """Canal (sac, roots, epidural fat), bulge, ligamentum flavum, posterior elements, foramina, recesses."""
    n = _neighbourhood(anatomy, s, l)
    sac = _paint_dural_sac(n, a, l, labels)
    _paint_disc_bulge(anatomy, n, a, l, labels)
    _paint_ligamentum_flavum(anatomy, n, a, l, labels)
    _paint_posterior_elements(n, a, labels)
    _paint_foramina(anatomy, n, a, labels)
    _paint_recesses(anatomy, n, a, sac, labels)
    return labels


def tissue_labels(anatomy: Anatomy, s: np.ndarray, a: np.ndarray, l: np.ndarray) -> np.ndarray:
    """Tissue label (int8) at each point given its straightened coordinates (any shape).

    The two detailed painters only run on the points inside their bounding box (most of a slice is background),
    which keeps a slice's cost proportional to the spine it shows.
    """
    shape = s.shape
    s, a, l = s.ravel(), a.ravel(), l.ravel()
    abs_lateral = np.abs(l)
    labels = _paint_background(anatomy, a, abs_lateral)
    column = np.flatnonzero((a > anatomy.body_posterior_a - 0.5)
                            & (a < anatomy.body_posterior_a + 2 * anatomy.body_ap_radius + 1.7)
                            & (abs_lateral < anatomy.body_lateral_radius + 1.1))
    if column.size:
        labels[column] = _paint_bodies_and_discs(anatomy, s[column], a[column], l[column], labels[column])
    canal = np.flatnonzero((a > -anatomy.sac_ap_radius - 46) & (a < anatomy.body_posterior_a + 4)
                           & (abs_lateral < anatomy.sac_lateral_radius + 14))
    if canal.size:
        labels[canal] = _paint_canal_and_posterior(anatomy, s[canal], a[canal], l[canal], labels[canal])
    return labels.reshape(shape)


# ---- landmarks (where the RSNA coordinates point) ----------------------------------------------------------------

def canal_point(anatomy: Anatomy, k: int) -> tuple[float, float, float]:
    """(s, a, l) of the centre of the residual canal behind disc ``k``: between the bulge and the flavum."""
    front = min(anatomy.sac_ap_radius, anatomy.body_posterior_a - anatomy.disc_bulge[k])
    back = -anatomy.sac_ap_radius + anatomy.flavum_thickening[k]
    return float(anatomy.disc_centre_s[k]), 0.5 * (front + back), 0.0


def foramen_point(anatomy: Anatomy, k: int, left: bool) -> tuple[float, float, float]:
    """(s, a, l) of the centre of the left/right neural foramen at disc ``k`` (see :func:`_paint_foramina`)."""
    return (float(anatomy.disc_centre_s[k] + 0.2 * anatomy.disc_half_height[k] + 3.5), anatomy.body_posterior_a - 4.0,
            (1.0 if left else -1.0) * (anatomy.sac_lateral_radius + 6.5))


def recess_point(anatomy: Anatomy, k: int, left: bool) -> tuple[float, float, float]:
    """(s, a, l) of the left/right subarticular recess at disc ``k`` (see :func:`_paint_recesses`)."""
    return float(anatomy.disc_centre_s[k]), 1.0, (1.0 if left else -1.0) * (anatomy.sac_lateral_radius + 1.0)
