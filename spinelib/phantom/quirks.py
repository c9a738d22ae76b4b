"""The real RSNA 2024 files' quirks, drawn on top of a finished study without changing any of its content.

What the real download does that a clean phantom does not (issue: "the phantom writes real RSNA files' quirks"):

* pixel data stored as RLE Lossless, 12 bits stored in 16-bit words (BitsStored 12, HighBit 11);
* ``SeriesDescription`` in the DICOM headers says only "T1" or "T2" (the descriptions CSVs keep the full
  "Sagittal T1", "Sagittal T2/STIR", "Axial T2", so every reader that types series from the CSV is unaffected);
* instance numbers with gaps (a series numbered 1, 2, 3, 5, 6, ...);
* axial series made of several blocks with different orientations (one block per disc, each parallel to its
  disc): the phantom always plans axial series that way (:func:`spinelib.phantom.series.plan_axial`), quirks or not;
* a label annotated a second time, on a neighbouring slice of the same series;
* a label annotated a second time on a series of another type (a spinal canal point also given on the
  Sagittal T1 series).

Neutral by construction: every quirk draws from its own random stream, ``default_rng([seed, index,
QUIRK_STREAM])``, after the study's own stream has made everything else, so the pixels, geometry, grades and
genuine coordinates are exactly those of the clean cohort. The extra annotation rows come *after* their label's
genuine row in train_label_coordinates.csv, and the renumbered instances are renumbered consistently in the file
names, the headers and the coordinate rows.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from spinelib.phantom.series import SeriesPlan, nearest_slice

# The quirk stream's tag: default_rng([seed, index, 7]) never meets the study's own stream default_rng([seed, index])
QUIRK_STREAM = 7
# How often each drawn quirk occurs (the keys are written as they are to phantom_params.json when quirks are on):
#   instance_gap            per series: its instance numbers skip one or two numbers somewhere in the middle
#   repeated_annotation     per coordinate row: the label is annotated again on a neighbouring slice
#   other_series_annotation per spinal canal coordinate: the point is annotated again on the Sagittal T1 series
# About 3 % of labels get an extra row, as "a few %" of the real file's labels.
QUIRK_RATES = dict(instance_gap=0.15, repeated_annotation=0.02, other_series_annotation=0.05)
# The real headers' SeriesDescription by contrast kind: the real files say "T1" or "T2" only (a STIR is "T2")
SHORT_DESCRIPTIONS = {"T1": "T1", "T2": "T2", "STIR": "T2"}
# The largest value 12 stored bits hold (BitsStored 12, HighBit 11)
MAX_12_BIT = (1 << 12) - 1

CoordinateRow = tuple   # (study_id, series_id, instance_number, condition words, level words, x, y)


def quirk_rng(seed: int, index: int) -> np.random.Generator:
    """Study ``index``'s quirk stream: separate from its own ``default_rng([seed, index])``, so that drawing
    quirks moves none of the study's draws."""
    return np.random.default_rng([seed, index, QUIRK_STREAM])


# ---- headers and pixel data ----------------------------------------------------------------------------------------

def short_description(kind: str) -> str:
    """The real headers' SeriesDescription of a series of contrast ``kind`` ("T1", "T2" or "STIR")."""
    return SHORT_DESCRIPTIONS[kind]


def stored_bits(images: list[np.ndarray], centre_bits: int) -> int:
    """BitsStored of a series under quirks: 12 when every stored value fits in 0..4095, else the centre's.

    Never clips: a series whose values need more bits keeps them (the phantom's stored values are
    ``signal · scale + offset`` with scale up to 2100, so only an unusually bright, strongly biased series could).
    """
    largest = max(int(image.max()) for image in images) if images else 0
    return 12 if largest <= MAX_12_BIT else centre_bits


# ---- instance-number gaps ------------------------------------------------------------------------------------------

def with_gap(numbers: list[int], cut: int, skip: int) -> list[int]:
    """``numbers`` with a gap of ``skip`` missing numbers before the ``cut``-th smallest one.

    Works on the numbers' values, not their order, so a series stored against the spatial order (numbers
    reversed) gets its gap in the same place of its numbering: [5, 4, 3, 2, 1], cut 2, skip 1 -> [6, 5, 4, 2, 1].
    """
    threshold = min(numbers) + cut
    return [number + skip if number >= threshold else number for number in numbers]


def draw_instance_gaps(rng: np.random.Generator, plans: dict[str, SeriesPlan]) -> dict[str, SeriesPlan]:
    """The plans with some series' instance numbers given a gap (:data:`QUIRK_RATES` ``instance_gap``).

    Three draws per series, whatever happens (keeps the quirk stream's position fixed): whether, where, how many.
    The plans are copied, never changed in place.
    """
    renumbered = {}
    for key, plan in plans.items():
        happens, position, skip = rng.random(), rng.random(), int(rng.integers(1, 3))
        n = len(plan.instance_numbers)
        if happens < QUIRK_RATES["instance_gap"] and n >= 2:
            cut = 1 + int(position * (n - 1))     # 1..n-1: the gap lies inside the numbering, never at an end
            plan = replace(plan, instance_numbers=with_gap(list(plan.instance_numbers), cut, skip))
        renumbered[key] = plan
    return renumbered


# ---- extra annotation rows ---------------------------------------------------------------------------------------

def _neighbour(plan: SeriesPlan, index: int, step: int) -> int | None:
    """The slice ``step`` (+1 or -1) away from ``index``, else the one on the other side; on an axial series only
    within the same disc's block. None when neither exists."""
    for candidate in (index + step, index - step):
        if not 0 <= candidate < len(plan.slices):
            continue
        if plan.disc_of_slice and plan.disc_of_slice[candidate] != plan.disc_of_slice[index]:
            continue
        return candidate
    return None


def _row_on(plan: SeriesPlan, index: int, point: np.ndarray, genuine: CoordinateRow,
            series_id: int) -> CoordinateRow | None:
    """The coordinate row of ``point`` projected on slice ``index`` of ``plan`` (None when off the image)."""
    x, y, _ = plan.slices[index].project(point)
    if not (0 <= x < plan.slices[index].cols and 0 <= y < plan.slices[index].rows):
        return None
    study_id, _, _, condition, level, _, _ = genuine
    return (study_id, series_id, plan.instance_numbers[index], condition, level, round(x, 6), round(y, 6))


def extra_annotation_rows(rng: np.random.Generator, annotations: list[tuple], plans: dict[str, SeriesPlan],
                          series_ids: list[int]) -> list[tuple[int, CoordinateRow]]:
    """(position of the genuine row, extra row) of the study's repeated and other-series annotations.

    ``annotations``: per genuine coordinate row (row, series key, slice index, patient point), in row order.
    Three draws per genuine row, whatever happens: a repeat on a neighbouring slice (and which side), and, for a
    spinal canal point (the "t2" rows), a second annotation on the Sagittal T1 series at its nearest slice.
    """
    order = list(plans)   # series_ids are in the plans' order
    extras = []
    for position, (row, key, index, point) in enumerate(annotations):
        repeat, side, other = rng.random(), (1 if rng.random() < 0.5 else -1), rng.random()
        if repeat < QUIRK_RATES["repeated_annotation"]:
            neighbour = _neighbour(plans[key], index, side)
            extra = None if neighbour is None else _row_on(plans[key], neighbour, point, row, row[1])
            if extra is not None:
                extras.append((position, extra))
        if key == "t2" and "t1" in plans and other < QUIRK_RATES["other_series_annotation"]:
            t1_index = nearest_slice(plans["t1"], point)[0]
            extra = _row_on(plans["t1"], t1_index, point, row, series_ids[order.index("t1")])
            if extra is not None:
                extras.append((position, extra))
    return extras
