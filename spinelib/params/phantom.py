"""Parameters of the ``phantom`` stage: the synthetic cohort every study runs on (../shared/spec/phantom.md).

``params/phantom.yaml`` nests its settings under one top-level ``phantom:`` key, because dvc.yaml reads them
as ``${phantom.studies}`` and so on to build the stage's command line. :class:`PhantomParams` mirrors that
shape: one field, ``phantom``, holding the :class:`PhantomSection` of named settings.

The stage runs the ``spinelib phantom`` command rather than a notebook, and no paper profile exists for it
(the papers used real data): there is no ``params/paper/phantom.yaml``, so no field declares ``paper=``.
``TINY`` is a cohort of a dozen studies, enough for every split to hold a few discs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from spinelib.params.base import Params, param


@dataclass(frozen=True)
class PhantomSection(Params):
    """The ``phantom:`` section: how many studies, which seed, how many processes, and whether the files show the
    real RSNA files' quirks."""

    studies: int = param(300, why="labelled studies: 1,500 discs, several hundred per split at 70/15/15")
    test_studies: int = param(2, why="unlabelled studies under test_images/ (for `spinelib grade`)")
    seed: int = param(0)
    workers: int = param(2, why="processes; the output is byte-identical for any value")
    # on by default, as the real download: the stages must read RSNA files as they are (spinelib.phantom.quirks)
    # (the images, grades and genuine coordinates are the same with quirks on or off)
    quirks: bool = param(True, why='RSNA file quirks: RLE 12-bit, "T1"/"T2" descriptions, instance gaps, '
                                   'extra annotations')


@dataclass(frozen=True)
class PhantomParams(Params):
    """``params/phantom.yaml``: the cohort the ``phantom`` stage writes to data/phantom."""

    # a dozen labelled studies and one unlabelled: seconds to generate, every split still non-empty
    TINY: ClassVar[dict[str, Any]] = {"phantom": {"studies": 12, "test_studies": 1}}

    phantom: PhantomSection = param(PhantomSection, why="the synthetic cohort of ../shared/spec/phantom.md")
