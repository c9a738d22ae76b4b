"""What the cohort converters' command lines share (``python -m spinelib.converters.genodisc`` / ``.spider``)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Callable


def run_conversion(convert: Callable[[], Path], format_error: type[Exception], summary: Callable[[Path], str]) -> int:
    """Run ``convert`` with INFO logging; a ``format_error`` is one line on stderr and exit code 2, else the summary
    of the written store is printed and the exit code is 0."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        out = convert()
    except format_error as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(summary(out))
    return 0
