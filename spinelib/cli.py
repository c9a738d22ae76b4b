"""The ``spinelib`` command: ``phantom``, ``check-data``, ``grade``.

Every sub-command is a thin wrapper over a library function, so what a
notebook does and what the command line does are the same code.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path


def _phantom(args: argparse.Namespace) -> int:
    from spinelib.phantom import generate_phantom

    summary = generate_phantom(Path(args.out_dir), studies=args.studies, seed=args.seed,
                               test_studies=args.test_studies, workers=args.workers, progress=not args.quiet)
    print(json.dumps(summary, indent=2, default=str))
    return 0


def _check_data(args: argparse.Namespace) -> int:
    from spinelib.data.check import DataUnusable, check_dataset, format_report

    try:
        report = check_dataset(Path(args.root), progress=not args.json, workers=args.workers)
    except DataUnusable as err:
        print(f"unusable: {err}", file=sys.stderr)
        return 2
    print(json.dumps(report, indent=2, default=str) if args.json else format_report(report))
    return 0


def _models_dir(path: str) -> Path:
    """``path`` as given when it exists, else relative to the repository root (the pipeline's models/)."""
    from spinelib.paths import resolve

    if Path(path).exists() or Path(path).is_absolute():
        return Path(path)
    try:
        return resolve(path)
    except FileNotFoundError:  # not inside the repository: report the path as given
        return Path(path)


def _grade(args: argparse.Namespace) -> int:
    import time

    from spinelib.grading.grader import grade_cohort, is_dataset_root

    start = time.perf_counter()
    paths = [Path(d) for d in args.study_dirs]
    root_mode = len(paths) == 1 and is_dataset_root(paths[0])
    try:
        result = grade_cohort(paths, _models_dir(args.localisation_dir), _models_dir(args.mil_dir),
                              progress=not args.quiet, report_dir=Path(args.report) if args.report else None,
                              ranking_dir=_models_dir(args.ranking_dir), params_dir=_models_dir(args.params_dir))
    except FileNotFoundError as err:
        print(f"cannot grade: {err}", file=sys.stderr)
        return 2
    # a whole root: one line per study that needed the prior; study folders: every note, as before
    for message in result.summaries if root_mode else result.messages:
        print(message, file=sys.stderr)
    rows = result.rows
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    rows.to_csv(out, index=False)
    if args.coordinates:
        coordinates = Path(args.coordinates)
        coordinates.parent.mkdir(parents=True, exist_ok=True)
        result.coordinates.to_csv(coordinates, index=False)
        print(f"wrote {len(result.coordinates)} predicted coordinate(s) to {coordinates}", file=sys.stderr)
    if args.report:
        print(f"wrote the grading reports to {args.report} (<study_id>.html and .png)", file=sys.stderr)
    print(f"wrote {len(rows)} rows for {len(result.studies)} study(ies) to {out} in "
          f"{time.perf_counter() - start:.1f} s; {result.rows_from_prior} row(s) from the prior", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="spinelib", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("phantom", help="write the synthetic lumbar MRI cohort in the RSNA 2024 layout")
    p.add_argument("out_dir")
    p.add_argument("--studies", type=int, default=300, help="number of labelled studies (default 300)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--test-studies", type=int, default=2, help="unlabelled studies under test_images/")
    p.add_argument("--workers", type=int, default=1, help="processes (output is identical for any value)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_phantom)

    p = sub.add_parser("check-data", help="validate a dataset root in the RSNA 2024 layout")
    p.add_argument("root")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the summary")
    p.add_argument("--workers", type=int, default=1)
    p.set_defaults(func=_check_data)

    p = sub.add_parser("grade", help="grade unannotated studies (multi-stage pipeline) into a submission CSV")
    p.add_argument("study_dirs", nargs="+", metavar="ROOT_OR_STUDY_DIR",
                   help="a dataset root holding test_images/ (or train_images/): every study, in "
                        "sample_submission.csv order; or <images>/<study_id> folder(s). Series types from the "
                        "descriptions CSV, else inferred from the DICOM headers")
    p.add_argument("--out", default="predictions.csv", help="submission CSV (default predictions.csv)")
    p.add_argument("--coordinates", metavar="FILE",
                   help="also write the predicted series, instance and (x, y) per study, condition and level, "
                        "in the columns of train_label_coordinates.csv")
    p.add_argument("--report", metavar="DIR",
                   help="also write per study a self-contained HTML page and a PNG with the predicted points on "
                        "the slices and the 25 rows' probabilities (DIR/<study_id>.html, .png)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--localisation-dir", default="models/localisation", help="Stage 1 checkpoints (notebook 08)")
    p.add_argument("--mil-dir", default="models/mil", help="Stage 2 checkpoints (notebook 09)")
    p.add_argument("--ranking-dir", default="models/ranking",
                   help="ranking runs (notebook 04): with --report, each disc's continuous severity (if present)")
    p.add_argument("--params-dir", default="params", help="params of the ranking and crop stages (with --ranking-dir)")
    p.set_defaults(func=_grade)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
