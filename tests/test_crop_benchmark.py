"""benchmarks/crops.py --by-step: every step of a study's extraction is timed, and the library is left as it was."""

from __future__ import annotations

from pathlib import Path

import spinelib.crops.extract as extract
from spinelib.examples import TINY_CROPS
from spinelib.phantom import generate_phantom

BENCHMARK = Path(__file__).resolve().parents[1] / "benchmarks" / "crops.py"


def test_by_step_times_reading_and_every_crop_kind_and_restores_the_extractor(load_script, tmp_path):
    generate_phantom(tmp_path / "phantom", studies=1, seed=0, test_studies=0, progress=False)
    kinds, read = dict(extract.CROP_KINDS), extract.read_series
    total, steps = load_script(BENCHMARK).by_step(tmp_path / "phantom", tmp_path / "crops", TINY_CROPS)
    assert {"read series", "intensity window", "to uint8"} | {f"cut {k}" for k in kinds} <= set(steps)
    assert all(seconds > 0 for seconds in steps.values()) and sum(steps.values()) < total
    assert extract.CROP_KINDS == kinds and extract.read_series is read
