"""Crop-extraction throughput, and its cost relative to reading the DICOM files once.

    python benchmarks/crops.py                 # a fresh 40-study phantom in a temporary folder
    python benchmarks/crops.py --root data/phantom --workers 2
    python benchmarks/crops.py --by-step          # where the time goes (one process)

Prints discs/s and crops/s of ``extract_crops`` (default CPU profile of
params/crops.yaml) and the ratio of its wall time to the time of only reading
and decoding every DICOM file of the same series once with pydicom
(``dcmread(path).pixel_array``), in the same number of processes: the
budget's baseline. It also prints the ratio to reading the same files with this
library's own reader (``read_instance``), which crop extraction uses and which
parses Explicit VR Little Endian files faster than ``dcmread``
(:mod:`spinelib.data.elements`): what extraction adds beyond its own reading.
Both sides run one thread per process (torch included). The files are read
once before timing so both measurements see a warm page cache, and each side
is the faster of two runs (the first extraction in a process also pays one-off
costs: torch's first calls, lazy imports); the scratch folder is removed at
the end.

``--by-step`` times, in a second single-process run, the steps of each study's
extraction (reading each series, its intensity window, each crop kind's cuts,
the uint8 conversion) by wrapping them with timers in this process; the rest of
the wall time is planning and writing the store.
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pydicom
import torch

from spinelib.crops.extract import extract_crops
from spinelib.data.dicom import read_instance
from spinelib.data.rsna import read_dataset, series_dir
from spinelib.parallel import process_map
from spinelib.params.data import CropsParams
from spinelib.paths import resolve


def _read_files(files: list[Path]) -> None:
    """Read and decode ``files`` with pydicom, keeping nothing: the baseline's unit of work (one series)."""
    for path in files:
        pydicom.dcmread(path).pixel_array


def _read_files_here(files: list[Path]) -> None:
    """The same with this library's reader (:func:`spinelib.data.dicom.read_instance`: header, decoded and
    rescaled pixels), which crop extraction uses: the second baseline."""
    for path in files:
        read_instance(path)


def read_only(series_files: list[list[Path]], workers: int = 1, reader: Callable = _read_files) -> float:
    """Seconds to read and decode every file once, series by series in ``workers`` processes (the extraction's
    number), so both sides of the ratio use the same processes."""
    start = time.perf_counter()
    for _ in process_map(reader, series_files, workers, chunksize=4, progress=False):
        pass
    return time.perf_counter() - start


def extraction(root: Path, out: Path, cfg, workers: int) -> tuple[float, dict]:
    """(seconds, summary) of one extraction into a fresh store ``out``."""
    start = time.perf_counter()
    summary = extract_crops(root, out, cfg, workers=workers, progress=False)
    return time.perf_counter() - start, summary


def timed(function: Callable, totals: Counter, name: str) -> Callable:
    """``function`` adding its wall time to ``totals[name]`` at each call."""
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            totals[name] += time.perf_counter() - start
    return wrapper


def by_step(root: Path, out: Path, cfg) -> tuple[float, Counter]:
    """One single-process extraction with its steps timed (seconds per step, summed over studies)."""
    import spinelib.crops.extract as extract

    totals: Counter = Counter()
    saved = (dict(extract.CROP_KINDS), extract.read_series, extract.intensity_window, extract.to_uint8)
    try:
        for name, kind in saved[0].items():
            extract.CROP_KINDS[name] = dataclasses.replace(kind, cut=timed(kind.cut, totals, f"cut {name}"))
        extract.read_series = timed(saved[1], totals, "read series")
        extract.intensity_window = timed(saved[2], totals, "intensity window")
        extract.to_uint8 = timed(saved[3], totals, "to uint8")
        start = time.perf_counter()
        extract_crops(root, out, cfg, workers=1, progress=False)
        return time.perf_counter() - start, totals
    finally:
        extract.CROP_KINDS.clear()
        extract.CROP_KINDS.update(saved[0])
        extract.read_series, extract.intensity_window, extract.to_uint8 = saved[1:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", help="dataset root (default: generate a phantom)")
    parser.add_argument("--studies", type=int, default=40, help="phantom size when --root is not given")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--params", default="params/crops.yaml")
    parser.add_argument("--by-step", action="store_true", help="also time each step in a single-process run")
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="spinelib-bench-"))
    try:
        run(args, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)   # the stores are hundreds of MB: none left behind


def run(args: argparse.Namespace, scratch: Path) -> None:
    """The measurements of :func:`main`, with their files under ``scratch``."""
    # one thread per process on both sides: the pool's workers run torch on one thread each, and so does a single
    # process here, so that "the same number of processes" also means the same number of cores (restored after)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        measure(args, scratch)
    finally:
        torch.set_num_threads(threads)


def measure(args: argparse.Namespace, scratch: Path) -> None:
    """:func:`run`'s measurements, on one thread."""
    if args.root:
        root = resolve(args.root)
    else:
        from spinelib.phantom import generate_phantom

        root = scratch / "phantom"
        generate_phantom(root, studies=args.studies, seed=0, test_studies=0, progress=False)
    # ---- baseline: read and decode every file of the listed series, nothing else ----
    series = read_dataset(root).series
    series_files = [sorted(series_dir(root, rec.study_id, rec.series_id).glob("*.dcm")) for rec in series.itertuples()]
    files = [path for paths in series_files for path in paths]
    read_only(series_files)  # warm the page cache
    t_read = min(read_only(series_files, args.workers) for _ in range(2))
    t_here = min(read_only(series_files, args.workers, _read_files_here) for _ in range(2))
    # ---- crop extraction with the profile's crop sizes (the split settings do not change the cost) ----
    cfg = CropsParams.load(resolve(args.params)).crop_config()
    t_crop, summary = min((extraction(root, scratch / f"crops-{run}", cfg, args.workers) for run in range(2)),
                          key=lambda result: result[0])
    crops = sum(k["ok"] for k in summary["kinds"].values())
    discs = summary["kinds"]["volume"]["ok"] // max(len(cfg.volume_series), 1)  # one volume per disc and series type
    print(f"dataset: {root} ({summary['studies']} studies, {len(files)} DICOM files)")
    print(f"read + decode only : {t_read:7.2f} s  ({len(files) / t_read:7.0f} files/s)  workers={args.workers}")
    print(f"crop extraction    : {t_crop:7.2f} s  workers={args.workers}")
    print(f"throughput         : {discs / t_crop:7.1f} discs/s, {crops / t_crop:7.1f} crops/s ({crops} crops)")
    print(f"ratio extraction / read-only: {t_crop / t_read:.2f}x")
    print(f"read + decode, this library's reader: {t_here:7.2f} s; ratio extraction / it: {t_crop / t_here:.2f}x")
    if args.by_step:
        total, steps = by_step(root, scratch / "crops-by-step", cfg)
        print(f"by step (one process, {total:.2f} s; ratio to the bare read in parentheses):")
        for name, seconds in sorted(steps.items(), key=lambda item: -item[1]):
            print(f"  {name:<18} {seconds:7.2f} s  ({seconds / t_read:.2f})")
        rest = total - sum(steps.values())
        print(f"  {'planning, store':<18} {rest:7.2f} s  ({rest / t_read:.2f})")


if __name__ == "__main__":
    main()
