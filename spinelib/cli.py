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


# Each sub-command imports its library lazily: ``spinelib check-data`` must not pay for torch. The ``phantom``
# sub-command lives in spinelib.phantom_cli (``python -m spinelib.phantom_cli`` runs it too, without this module).


def _phantom(args: argparse.Namespace) -> int:
    """``spinelib phantom OUT_DIR``: write the synthetic cohort with the PhantomParams settings; prints its summary."""
    from spinelib.phantom_cli import run

    return run(args)


def _check_data(args: argparse.Namespace) -> int:
    """``spinelib check-data ROOT``: exit 0 with the report (problems are warnings), 2 when the data is unusable."""
    from spinelib.data.check import DataUnusable, check_dataset, format_report

    try:
        report = check_dataset(Path(args.root), progress=not args.json, workers=args.workers)
    except DataUnusable as err:
        print(f"unusable: {err}", file=sys.stderr)
        return 2
    # --json: the report's plain form (DatasetReport.to_dict), one object a script can read
    print(json.dumps(report.to_dict(), indent=2, default=str) if args.json else format_report(report))
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
    """``spinelib grade``: the multi-stage pipeline on unannotated studies, to a submission CSV (2: no models)."""
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
    # what the models were trained on, and the loud warning, on the terminal and in the submission's companion file
    from spinelib.provenance import describe

    for name, record in result.provenance.items():
        print(f"{name} models {describe(record)}", file=sys.stderr)
    companion = out.with_name(out.stem + ".provenance.json")
    companion.write_text(json.dumps({"models": result.provenance, "warning": result.warning}, indent=1) + "\n")
    if result.warning:
        print(f"\n{'!' * 100}\n{result.warning}\n{'!' * 100}\n", file=sys.stderr)
    print(f"wrote what the models were trained on to {companion}", file=sys.stderr)
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
    """The argument parser of every sub-command (each sets ``func``, the function :func:`main` calls)."""
    parser = argparse.ArgumentParser(prog="spinelib", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    from spinelib import phantom_cli   # its options and help: one definition (light: the phantom loads in run)

    p = sub.add_parser("phantom", help=phantom_cli.HELP)
    phantom_cli.add_arguments(p)
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
    """Run the command line ``argv`` (default: ``sys.argv[1:]``); returns the exit status."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
