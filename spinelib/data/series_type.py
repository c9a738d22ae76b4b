"""The RSNA series type of a DICOM series from its header, when no descriptions CSV says it.

Real RSNA files say only "T1" or "T2" in ``SeriesDescription``; the type is
put together from two independent answers:

* **plane** from ``ImageOrientationPatient``: the slice normal ``n = r x c``
  (row and column direction cosines) points mostly along the patient's x
  axis (left-right) for a sagittal slice and along z (head-foot) for an
  axial one: ``plane = argmax(|n_x|, |n_y|, |n_z|)`` → sagittal, coronal,
  axial. Without a usable orientation the description's words decide
  ("sag", "ax").
* **weighting** from the description's words ("STIR" → T2/STIR, "T1", "T2"),
  else from the timing (ms): an ``InversionTime`` → STIR; ``TR <`` 1000 and
  ``TE <`` 30 → T1; ``TR >=`` 1500 → T2 (T2 and STIR both have long TR).

Sagittal + T1 → "Sagittal T1", sagittal + T2/STIR → "Sagittal T2/STIR",
axial + T2 → "Axial T2"; any other combination is not one of the three RSNA
types and gives ``None``.
"""

from __future__ import annotations

import re

import numpy as np

from spinelib.constants import AXIAL_T2, SAGITTAL_T1, SAGITTAL_T2, SERIES_TYPES

# Timing thresholds (ms). T1-weighted spin echo: TR ~400-800, TE ~8-20;
# T2 / STIR: TR > 2000, TE 60-120 (STIR ~30-70 with TI ~150).
T1_MAX_TR = 1000.0
T1_MAX_TE = 30.0
T2_MIN_TR = 1500.0


def series_plane(orientation) -> str | None:
    """"sagittal", "coronal" or "axial" from the 6 ImageOrientationPatient cosines; None if unusable."""
    cosines = np.asarray(orientation if orientation is not None else [], dtype=np.float64).ravel()
    if cosines.size != 6 or not np.isfinite(cosines).all():
        return None
    normal = np.cross(cosines[:3], cosines[3:])   # n = r x c
    if not np.linalg.norm(normal) > 1e-6:          # parallel (or zero) cosines: no plane
        return None
    return ("sagittal", "coronal", "axial")[int(np.argmax(np.abs(normal)))]


def _words(description: str) -> str:
    """Lower-case words of a description, punctuation as spaces: "Sag_T2-STIR" -> "sag t2 stir"."""
    return re.sub(r"[^a-z0-9]+", " ", str(description or "").lower()).strip()


def _plane_from_words(words: str) -> str | None:
    """The plane a description names ("sag...", "ax..." or "tra..."), or None."""
    if re.search(r"\bsag", words):
        return "sagittal"
    if re.search(r"\b(ax|tra)", words):
        return "axial"
    return None


def series_weighting(description: str, echo_time: float = np.nan, repetition_time: float = np.nan,
                     inversion_time: float = np.nan) -> str | None:
    """"T1" or "T2/STIR" from the description's words, else from TE/TR/TI (ms); None if undecidable."""
    words = _words(description)
    # words first: a description that says the weighting is more reliable than timing thresholds
    if re.search(r"\bstir\b", words) or re.search(r"\bt2\b|\bt2w", words):
        return "T2/STIR"
    if re.search(r"\bt1\b|\bt1w", words):
        return "T1"
    te, tr, ti = (float(v) if v is not None else np.nan for v in (echo_time, repetition_time, inversion_time))
    if np.isfinite(ti) and ti > 0:   # an inversion pulse: STIR (fat suppressed), grouped with T2 by RSNA
        return "T2/STIR"
    if np.isfinite(tr) and tr >= T2_MIN_TR:
        return "T2/STIR"
    if np.isfinite(tr) and tr < T1_MAX_TR and (not np.isfinite(te) or te < T1_MAX_TE):
        return "T1"
    return None   # between the thresholds (1000 <= TR < 1500) or no timing: undecidable


def infer_series_type(header: dict) -> str | None:
    """One of :data:`SERIES_TYPES`, or None, from a :func:`spinelib.data.dicom.read_header` dict.

    A description that already names an RSNA type (any case) is taken as is.
    Otherwise the plane comes from ``orientation`` and the weighting from
    ``series_description``, ``echo_time``, ``repetition_time`` and
    ``inversion_time`` (see the module docstring); missing keys count as
    unknown.
    """
    description = str(header.get("series_description", "") or "")
    exact = {t.lower(): t for t in SERIES_TYPES}.get(description.strip().lower())
    if exact is not None:
        return exact
    words = _words(description)
    # the geometry decides the plane; words only when the orientation is missing or degenerate
    plane = series_plane(header.get("orientation")) or _plane_from_words(words)
    weighting = series_weighting(description, header.get("echo_time", np.nan),
                                 header.get("repetition_time", np.nan), header.get("inversion_time", np.nan))
    # the three RSNA types; e.g. axial T1 or coronal anything is not one of them
    return {("sagittal", "T1"): SAGITTAL_T1, ("sagittal", "T2/STIR"): SAGITTAL_T2,
            ("axial", "T2/STIR"): AXIAL_T2}.get((plane, weighting))
