"""The ``phantom`` command: write the synthetic cohort, print its summary as JSON.

Two entry points run this code: ``spinelib phantom OUT_DIR`` (:mod:`spinelib.cli` delegates here) and
``python -m spinelib.phantom_cli OUT_DIR``, which the DVC ``phantom`` stage runs so that a change to the other
sub-commands in spinelib/cli.py does not make the stage stale. It stands beside the CLI (not inside
spinelib/phantom/) because it reads the parameters, a layer above the phantom.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from spinelib.params.phantom import PhantomParams, PhantomSection

HELP = "write the synthetic lumbar MRI cohort in the RSNA 2024 layout"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The command's arguments, on ``parser`` (``spinelib phantom``'s sub-parser or this module's own)."""
    parser.add_argument("out_dir")
    # the settings' defaults come from PhantomParams (or --params FILE); a flag given explicitly overrides them
    parser.add_argument("--params", metavar="FILE", help="a PhantomParams YAML (params/phantom.yaml), loaded strictly")
    parser.add_argument("--studies", type=int, default=None, help="number of labelled studies (default 300)")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default 0)")
    parser.add_argument("--test-studies", type=int, default=None,
                        help="unlabelled studies under test_images/ (default 2)")
    parser.add_argument("--workers", type=int, default=None,
                        help="processes (default 1 without --params; output is identical for any value)")
    parser.add_argument("--no-quirks", action="store_true",
                        help="write clean files, without the real RSNA files' quirks (same content)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def settings(args: argparse.Namespace) -> PhantomSection:
    """The cohort's settings: the defaults, then ``--params FILE`` (loaded strictly), then the flags given
    explicitly (``None`` = not given) and ``--no-quirks``.

    Without ``--params`` the command keeps its own default of one process (PhantomParams says 2, the pipeline's).
    """
    section = PhantomParams.load(args.params).phantom if args.params else PhantomParams().phantom.replace(workers=1)
    flags = {name: getattr(args, name) for name in ("studies", "seed", "test_studies", "workers")}
    section = section.replace(**{name: value for name, value in flags.items() if value is not None})
    return section.replace(quirks=False) if args.no_quirks else section


def run(args: argparse.Namespace) -> int:
    """Write the cohort to ``args.out_dir`` and print its summary as JSON; returns the exit status (0)."""
    from spinelib.phantom import generate_phantom   # here: `spinelib --help` need not load the phantom

    chosen = settings(args)
    summary = generate_phantom(Path(args.out_dir), studies=chosen.studies, seed=chosen.seed,
                               test_studies=chosen.test_studies, workers=chosen.workers,
                               progress=not args.quiet, quirks=chosen.quirks)
    print(json.dumps(summary, indent=2, default=str))
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m spinelib.phantom_cli OUT_DIR [...]`` (``argv`` None: ``sys.argv[1:]``)."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")   # as spinelib.cli
    parser = argparse.ArgumentParser(prog="python -m spinelib.phantom_cli", description=HELP)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
