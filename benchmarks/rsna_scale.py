"""How the data stages scale with the cohort: time and peak memory per stage at growing phantom sizes.

A scaled-down run with a measured extrapolation (issue 13, "RSNA-scale measurement"): for each cohort size the
phantom is written once (not measured), then each stage runs in a process of its own, one worker, and its wall
time and peak resident memory (the largest of the process and anything it waited for) are recorded:

* ``check-data``: ``spinelib check-data ROOT --json`` (reads and decodes every DICOM file once);
* ``crops``: every crop kind of notebook 01 with ``params/crops.yaml`` (each series read once);
* ``grade``: ``spinelib grade`` of the cohort's two test studies, when the pipeline's models exist.

A straight line through (studies, seconds) extrapolates the time to the RSNA training cohort (1,975 studies); the
peak memory should not grow with the number of studies (the stages stream the cohort). The phantom's matrices
(160-304 px) are smaller than RSNA's (384-800 px); ``--upscale 2`` rewrites every file with twice the pixels per
axis over the same field of view (:func:`upscale_cohort`) to measure at RSNA-sized matrices. Run from the
repository root:

    python benchmarks/rsna_scale.py --sizes 20 40 80 --out benchmarks/rsna_scale.json
    python benchmarks/rsna_scale.py --sizes 20 40 80 --upscale 2 --out benchmarks/rsna_scale_x2.json
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

RSNA_STUDIES = 1975
# Runs a command and prints its wall time and the peak RSS (kB, Linux) of the largest process it waited for.
_MEASURE = ("import resource, subprocess, sys, time; t = time.perf_counter(); "
            "code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode; "
            "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, code)")
_CROPS = ("import sys; from spinelib.crops.extract import extract_crops; from spinelib.params.data import "
          "CropsParams; cfg = CropsParams.load('params/crops.yaml').crop_config(); "
          "extract_crops(sys.argv[1], sys.argv[2], cfg, workers=1, progress=False)")


def measure(command: list[str]) -> tuple[float, float]:
    """(seconds, peak MB) of ``command`` run in a fresh process; raises if it fails."""
    out = subprocess.run([sys.executable, "-c", _MEASURE, *command], capture_output=True, text=True, check=True)
    seconds, kb, code = out.stdout.split()
    if int(code) != 0:
        raise RuntimeError(f"{' '.join(command)} exited with {code}")
    return float(seconds), float(kb) / 1024


def upscale_cohort(root: Path, factor: int) -> None:
    """Rewrite every DICOM of the phantom at ``root`` with ``factor`` times the pixels per axis, same field of view.

    RSNA's matrices are 384-800 px, the phantom's 160-304: factor 2 gives sagittal 512-608 px and axial
    320-384 px. Each pixel is repeated ``factor`` x ``factor`` times (nearest neighbour: decoding cost is what is
    measured, not image quality), PixelSpacing divided by ``factor``, ImagePositionPatient moved to the new first
    pixel's centre, and the file re-encoded as RLE Lossless like the original; the coordinates CSV is scaled alike.
    """
    import pandas as pd
    import pydicom
    from pydicom.uid import RLELossless

    for path in sorted(root.rglob("*.dcm")):
        ds = pydicom.dcmread(path)
        pixels = ds.pixel_array
        row_spacing, col_spacing = (float(v) for v in ds.PixelSpacing)
        across_cols, down_rows = np.asarray(ds.ImageOrientationPatient[:3], float), np.asarray(
            ds.ImageOrientationPatient[3:], float)
        # the first pixel's centre moves back by (factor - 1) / (2 factor) of an old pixel along both axes
        shift = (factor - 1) / (2 * factor) * (col_spacing * across_cols + row_spacing * down_rows)
        ds.ImagePositionPatient = [round(v, 6) for v in (np.asarray(ds.ImagePositionPatient, float) - shift)]
        ds.PixelSpacing = [round(row_spacing / factor, 6), round(col_spacing / factor, 6)]
        large = np.repeat(np.repeat(pixels, factor, axis=0), factor, axis=1)
        ds.Rows, ds.Columns = large.shape
        if ds.file_meta.TransferSyntaxUID == RLELossless:
            ds.compress(RLELossless, large, generate_instance_uid=False)
        else:
            ds.PixelData = large.astype(pixels.dtype).tobytes()
        ds.save_as(path)
    coordinates = root / "train_label_coordinates.csv"
    if coordinates.is_file():
        table = pd.read_csv(coordinates)
        table[["x", "y"]] = table[["x", "y"]] * factor + (factor - 1) / 2   # pixel centres of the repeated grid
        table.to_csv(coordinates, index=False)


def run(sizes: list[int], work: Path, models: Path, upscale: int = 1) -> dict:
    """Rows (stage, studies, seconds, peak_mb) for every size, and the fitted extrapolation per stage.

    ``upscale`` > 1: the phantom's files rewritten at that many times the pixels per axis (:func:`upscale_cohort`),
    to measure at RSNA-sized matrices.
    """
    rows = []
    spinelib = [sys.executable, "-m", "spinelib.cli"]
    for n in sizes:
        root = work / f"phantom_{n}"
        subprocess.run([*spinelib, "phantom", str(root), "--studies", str(n), "--test-studies", "2", "--seed", "0",
                        "--workers", "2", "--quiet"], check=True)
        if upscale > 1:
            upscale_cohort(root, upscale)
        files = sum(1 for _ in root.rglob("*.dcm"))
        seconds, peak = measure([*spinelib, "check-data", str(root), "--json"])
        rows.append({"stage": "check-data", "studies": n, "files": files, "seconds": seconds, "peak_mb": peak})
        seconds, peak = measure([sys.executable, "-c", _CROPS, str(root), str(work / f"crops_{n}")])
        rows.append({"stage": "crops", "studies": n, "files": files, "seconds": seconds, "peak_mb": peak})
        if (models / "localisation" / "config.json").is_file() and (models / "mil" / "config.json").is_file():
            tests = sorted((root / "test_images").iterdir())
            seconds, peak = measure([*spinelib, "grade", *map(str, tests), "--out", str(work / "grade.csv"),
                                     "--localisation-dir", str(models / "localisation"),
                                     "--mil-dir", str(models / "mil"), "--quiet"])
            rows.append({"stage": "grade (2 test studies)", "studies": n, "files": files, "seconds": seconds,
                         "peak_mb": peak})
        shutil.rmtree(root)
        shutil.rmtree(work / f"crops_{n}", ignore_errors=True)
    fits = {}
    for stage in dict.fromkeys(r["stage"] for r in rows):
        part = [r for r in rows if r["stage"] == stage]
        if stage.startswith("grade") or len(part) < 2:
            continue
        n = np.array([r["studies"] for r in part], float)
        slope, intercept = np.polyfit(n, [r["seconds"] for r in part], 1)
        mem_slope = np.polyfit(n, [r["peak_mb"] for r in part], 1)[0]
        fits[stage] = {"seconds_per_study": slope, "seconds_fixed": intercept,
                       "rsna_minutes": (intercept + slope * RSNA_STUDIES) / 60, "peak_mb_per_study": mem_slope}
    return {"upscale": upscale, "rows": rows, "fits": fits}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[20, 40, 80], help="cohort sizes (studies)")
    parser.add_argument("--models", default="models", help="the pipeline's models/ (for the grade row)")
    parser.add_argument("--upscale", type=int, default=1,
                        help="rewrite the phantom's images at this many times the pixels per axis (2: RSNA-sized)")
    parser.add_argument("--out", help="also write the result as JSON")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="rsna-scale-") as work:
        result = run(args.sizes, Path(work), Path(args.models), args.upscale)
    for r in result["rows"]:
        print(f"{r['stage']:<24} {r['studies']:>5} studies {r['files']:>7} files {r['seconds']:8.1f} s "
              f"{r['peak_mb']:8.0f} MB peak")
    for stage, f in result["fits"].items():
        print(f"{stage}: {f['seconds_per_study']:.3f} s/study (+{f['seconds_fixed']:.1f} s); "
              f"{RSNA_STUDIES} studies -> {f['rsna_minutes']:.1f} min at these matrices (upscale {result['upscale']}); "
              f"peak memory {f['peak_mb_per_study']:+.2f} MB per extra study")
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
