"""Per-study lumbar anatomy as implicit shapes in a straightened spine frame.

Anatomy coordinates ``q = (x, y, z)`` follow the patient LPS axes (+x left,
+y posterior, +z head) before the study's global pose.  The canal axis is a
circular arc in the y-z plane (lordosis): centre ``C = (y=R, z=0)``, so the
straightened coordinates of a point are ``s`` (arc length along the canal, +
up), ``a`` (distance anterior of the canal axis) and ``l = x`` (lateral, +
patient left).  Six discs (T12/L1 .. L5/S1) are stacked along ``s``; every
structure is painted as a tissue label from (s, a, l) using per-disc
parameters gathered by the nearest disc, so cost does not grow with levels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Tissue labels (nucleus of disc k has label NUCLEUS0 + k).
AIR, FAT, MUSCLE, ABDOMEN, MARROW, CORTEX, ANNULUS, CSF, NERVE, LIGAMENT, BONE, FLUID = range(12)
NUCLEUS0 = 12
N_TISSUES = NUCLEUS0 + 6
# Cauda equina roots (a, l) in units of the sac radii: dependent (posterior) cluster.
_ROOTS = np.array([(-0.55, -0.35), (-0.55, 0.35), (-0.35, -0.6), (-0.35, 0.6), (-0.7, 0.0),
                   (-0.2, -0.2), (-0.2, 0.25), (-0.45, 0.05)], dtype=np.float32)


@dataclass(frozen=True)
class Anatomy:
    """Shape parameters of one study (mm); per-disc arrays have 6 entries (T12/L1..L5/S1)."""

    R: float                 # lordosis radius
    s_disc: np.ndarray       # disc centres along s
    hd: np.ndarray           # disc half heights
    bulge: np.ndarray        # posterior disc bulge at the midline
    lf: np.ndarray           # ligamentum flavum intrusion into the sac
    fscale: np.ndarray       # foramen size factor, (6, 2) [right, left]
    rscale: np.ndarray       # subarticular recess size factor, (6, 2) [right, left]
    nucleus_signal: np.ndarray  # 1 = healthy nucleus, 0 = black disc
    rca: float               # dural sac AP half-axis
    rcl: float               # dural sac lateral half-axis
    a0: float                # posterior wall of the vertebral bodies
    rab: float               # body AP half-axis
    rlb: float               # body lateral half-axis
    skin: float              # posterior skin distance from canal axis
    fat_depth: float         # subcutaneous fat thickness


def make_anatomy(rng: np.random.Generator, severity: np.ndarray, degeneration: np.ndarray,
                 height_loss: np.ndarray) -> Anatomy:
    """Shape of one study from its latents (severity: 5 conditions x 5 levels)."""
    pad = lambda v, first: np.concatenate([[first], v])  # noqa: E731 - T12/L1 is healthy
    sc, fl, fr, sl, sr = (pad(severity[i], 0.02) for i in range(5))
    deg, hl = pad(degeneration, 0.05), pad(height_loss, 0.03)
    base_h = np.array([7.0, 8.5, 9.5, 10.5, 11.5, 11.0]) * rng.uniform(0.9, 1.1)
    hd = 0.5 * base_h * (1.0 - 0.45 * hl) * rng.uniform(0.95, 1.05, 6)
    hv = np.array([24.0, 25.0, 26.0, 26.5, 27.0, 27.0]) * rng.uniform(0.93, 1.07)
    # stack discs from L5/S1 upwards: vertebra k+1 (hv[k]) lies between disc k and disc k+1
    s = np.zeros(6)
    for k in range(4, -1, -1):
        s[k] = s[k + 1] + hd[k + 1] + hv[k + 1] + hd[k]
    s = s - (s[3] + hd[3] + 0.5 * hv[3])  # L3 body centre at s = 0
    rca, rcl = rng.uniform(6.5, 7.5), rng.uniform(9.5, 12.0)
    return Anatomy(
        R=float(rng.uniform(190.0, 280.0)), s_disc=s, hd=hd,
        # The latent moves the anatomy linearly over its whole range [0, 1], inside each grade too: between
        # latents 0.05 and 0.30 the canal loses about 3 mm of its ~14 mm AP diameter (phantom.md item 4b).
        bulge=1.0 + 8.0 * sc + 1.0 * deg, lf=0.5 + 5.0 * sc,
        fscale=np.stack([1.0 - 0.85 * fr, 1.0 - 0.85 * fl], axis=1),
        rscale=np.stack([1.0 - 0.8 * sr, 1.0 - 0.8 * sl], axis=1),
        nucleus_signal=1.0 - 0.9 * deg, rca=float(rca), rcl=float(rcl),
        a0=float(rca + rng.uniform(1.5, 3.0)), rab=float(rng.uniform(17.0, 20.0)),
        rlb=float(rng.uniform(22.0, 26.0)), skin=float(rng.uniform(55.0, 75.0)),
        fat_depth=float(rng.uniform(8.0, 25.0)))


def straighten(an: Anatomy, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, ...]:
    """Anatomy coordinates -> (s, a, l)."""
    vy = y - np.float32(an.R)
    r = np.hypot(vy, z)
    return np.float32(an.R) * np.arctan2(z, -vy), r - np.float32(an.R), x


def unstraighten(an: Anatomy, s: float, a: float, l: float) -> np.ndarray:
    """(s, a, l) -> anatomy coordinates (x, y, z)."""
    phi, r = s / an.R, an.R + a
    return np.array([l, an.R - r * np.cos(phi), r * np.sin(phi)])


def tangent(an: Anatomy, s: float) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors (up along the canal, posterior) at arc position ``s``."""
    phi = s / an.R
    return np.array([0.0, np.sin(phi), np.cos(phi)]), np.array([0.0, np.cos(phi), -np.sin(phi)])


def _ell(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return u * u + v * v


def _level(an: Anatomy, s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Nearest disc index (0 = T12/L1 .. 5 = L5/S1), offset from its centre, its half height."""
    mids = (0.5 * (an.s_disc[:-1] + an.s_disc[1:])).astype(np.float32)
    k = np.searchsorted(-mids, -s)
    return k, s - an.s_disc.astype(np.float32)[k], an.hd.astype(np.float32)[k]


def _background(an: Anatomy, a: np.ndarray, al: np.ndarray) -> np.ndarray:
    """Fat, paraspinal and psoas muscles, abdomen, air behind the back."""
    f32 = np.float32
    lab = np.full(a.shape, FAT, dtype=np.int8)
    pa_c, pa_r = -(an.skin + an.rca + 5) / 2, (an.skin - an.rca - 5) / 2
    lab[_ell((a - f32(pa_c)) / f32(pa_r), (al - 17) / f32(21)) <= 1] = MUSCLE
    lab[_ell((a - f32(an.a0 + 0.9 * an.rab)) / f32(13), (al - f32(an.rlb + 11)) / f32(11)) <= 1] = MUSCLE
    lab[(a > f32(an.a0 + 2 * an.rab + 3)) | ((a > f32(an.a0 + an.rab)) & (al > f32(an.rlb + 23)))] = ABDOMEN
    lab[a < -f32(an.skin + an.fat_depth)] = AIR
    return lab


def _bodies(an: Anatomy, s: np.ndarray, a: np.ndarray, l: np.ndarray, lab: np.ndarray) -> np.ndarray:
    """Vertebral bodies (marrow, cortex, endplates), discs (annulus, nucleus)."""
    f32 = np.float32
    k, ds, hd = _level(an, s)
    ads = np.abs(ds)
    a0, rab, rlb = f32(an.a0), f32(an.rab), f32(an.rlb)
    u, v = (a - a0 - rab) / rab, l / rlb
    u, v = u * u, v * v
    e4 = u * u + v * v
    in_v = ads > hd
    body = in_v & (e4 <= 1.0)
    lab[body] = MARROW
    lab[body & ((e4 > 0.72) | (ads - hd < 1.2))] = CORTEX
    u, v = (a - a0 - rab) / (rab + 0.8), l / (rlb + 1.0)
    u, v = u * u, v * v
    disc = (~in_v) & (u * u + v * v <= 1.0)
    lab[disc] = ANNULUS
    nuc = disc & (_ell(ds / (hd * 0.72), (a - a0 - rab + 2) / (rab * 0.55)) + (l / (rlb * 0.58)) ** 2 <= 1.0)
    lab[nuc] = (NUCLEUS0 + k[nuc]).astype(np.int8)
    return lab


def _posterior(an: Anatomy, s: np.ndarray, a: np.ndarray, l: np.ndarray, lab: np.ndarray) -> np.ndarray:
    """Canal (sac, roots, epidural fat), bulge, ligamentum flavum, posterior elements, foramina, recesses."""
    f32 = np.float32
    k, ds, hd = _level(an, s)
    ads, al = np.abs(ds), np.abs(l)
    left = l > 0
    rca, rcl, a0 = f32(an.rca), f32(an.rcl), f32(an.a0)
    in_v = ads > hd
    lab[(al < rcl * 0.8) & (a > -rca - 3.5) & (a < a0) & (a < rca + 1.5)] = FAT
    sac = _ell(a / rca, l / rcl) <= 1.0
    lab[sac] = CSF
    i = np.flatnonzero(sac)
    sa, sl = a[i] / rca, l[i] / rcl
    root = np.zeros(i.size, dtype=bool)
    for ra, rl in _ROOTS:
        root |= _ell((sa - ra) * (rca / f32(0.9)), (sl - rl) * (rcl / f32(0.9))) <= 1.0
    lab[i[root]] = NERVE
    # posterior disc bulge (broad based) effacing the anterior sac
    prof = np.clip(1.0 - (ds / (hd + 1.5)) ** 2, 0.0, 1.0)
    bul = an.bulge.astype(f32)[k] * prof * np.exp(-(l / f32(11.0)) ** 2)
    lab[(a < a0 + 0.5) & (a > a0 - bul)] = ANNULUS
    # ligamentum flavum thickening at the disc level effacing the posterior sac
    gl = np.clip(1.0 - (ds / (hd + 5.0)) ** 2, 0.0, 1.0)
    lfa = -rca + an.lf.astype(f32)[k] * gl * np.exp(-(l / f32(9.0)) ** 2)
    lab[(gl > 0) & (a > -rca - 4.0) & (a < lfa) & (al < rcl + 3.0) & (a < 0)] = LIGAMENT
    # posterior elements: laminae, spinous processes, pedicles, facets
    lab[in_v & (ads > hd + 4) & (a > -rca - 11) & (a < -rca - 3.5) & (al < rcl + 8)] = BONE
    spin = (al < 3.5) & (a < -rca - 8) & (a > -rca - 45)
    lab[spin] = BONE
    lab[spin & (np.abs(ds + 2) < 4.5)] = LIGAMENT
    lab[in_v & (ads > hd + 6) & (al > rcl + 1) & (al < rcl + 8) & (a > -rca - 3.5) & (a < a0 + 2)] = BONE
    fac = (ads < hd + 8) & (al > rcl + 3) & (al < rcl + 14) & (a > -rca - 12) & (a < -rca + 2)
    lab[fac] = BONE
    lab[fac & (np.abs(al - rcl - 8.5 + 0.3 * (a + rca + 5)) < 0.7)] = FLUID
    # neural foramen: fat around the exiting root, narrowed by the latent
    lat = (al > rcl + 3) & (al < rcl + 10)
    lab[lat & (ds > -hd - 2) & (ds < hd + 6) & (a > -rca - 2) & (a < a0 + 4)] = LIGAMENT
    ff = np.where(left, an.fscale[:, 1].astype(f32)[k], an.fscale[:, 0].astype(f32)[k])
    fc_s = 0.2 * hd + 3.5
    half_s, half_a = 8.5 * ff + 0.3, 5.5 * (0.2 + 0.8 * ff)     # the foramen's half-axes (mm)
    fora = lat & (_ell((ds - fc_s) / half_s, (a - a0 + 4.0) / half_a) <= 1.0)
    lab[fora] = FAT
    # foraminal venous plexus: a fluid-bright core that narrows with the foramen. On STIR the fat is suppressed
    # (as dark as the ligament around it), so without it the foramen's size would be invisible on that series.
    lab[fora & (_ell((ds - fc_s) / (0.6 * half_s), (a - a0 + 4.0) / (0.6 * half_a)) <= 1.0)] = FLUID
    lab[fora & (_ell((ds - fc_s - 2.5 * ff) / 2.2, (a - a0 + 4.0) / 2.2) <= 1.0)] = NERVE
    # subarticular recess: CSF around the traversing root, narrowed by the latent
    near = ads < hd + 3
    lab[near & (al > rcl - 2) & (al < rcl + 5) & (a > -0.6 * rca - 2) & (a < a0 - 0.5) & ~sac] = LIGAMENT
    rr = np.where(left, an.rscale[:, 1].astype(f32)[k], an.rscale[:, 0].astype(f32)[k])
    rec = near & (_ell((a - 1.0) / (3.4 * rr), (al - rcl - 1.0) / (3.2 * rr)) <= 1.0)
    lab[rec] = CSF
    lab[rec & (_ell((a - 1.0) / 1.1, (al - rcl - 1.0) / 1.1) <= 1.0)] = NERVE
    return lab


def tissue_labels(an: Anatomy, s: np.ndarray, a: np.ndarray, l: np.ndarray) -> np.ndarray:
    """Tissue label (int8) at each point given its straightened coordinates (any shape)."""
    shape = s.shape
    s, a, l = s.ravel(), a.ravel(), l.ravel()
    al = np.abs(l)
    lab = _background(an, a, al)
    i = np.flatnonzero((a > an.a0 - 0.5) & (a < an.a0 + 2 * an.rab + 1.7) & (al < an.rlb + 1.1))
    if i.size:
        lab[i] = _bodies(an, s[i], a[i], l[i], lab[i])
    i = np.flatnonzero((a > -an.rca - 46) & (a < an.a0 + 4) & (al < an.rcl + 14))
    if i.size:
        lab[i] = _posterior(an, s[i], a[i], l[i], lab[i])
    return lab.reshape(shape)


def canal_point(an: Anatomy, k: int) -> tuple[float, float, float]:
    """(s, a, l) of the centre of the residual canal behind disc ``k``."""
    front = min(an.rca, an.a0 - an.bulge[k])
    back = -an.rca + an.lf[k]
    return float(an.s_disc[k]), 0.5 * (front + back), 0.0


def foramen_point(an: Anatomy, k: int, left: bool) -> tuple[float, float, float]:
    """(s, a, l) of the centre of the left/right neural foramen at disc ``k``."""
    return (float(an.s_disc[k] + 0.2 * an.hd[k] + 3.5), an.a0 - 4.0,
            (1.0 if left else -1.0) * (an.rcl + 6.5))


def recess_point(an: Anatomy, k: int, left: bool) -> tuple[float, float, float]:
    """(s, a, l) of the left/right subarticular recess at disc ``k``."""
    return float(an.s_disc[k]), 1.0, (1.0 if left else -1.0) * (an.rcl + 1.0)
