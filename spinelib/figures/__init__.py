"""Figures the notebooks show and the pipeline saves as PNG.

Each figure function returns a matplotlib Figure; the notebook displays it and :func:`save` writes it, typically
under the stage's ``results/<stage>/figures/``. One module per part of the study: ``data`` (the cohort, notebook
00), ``crops`` (the crop store, 01), ``training`` (the contrastive study, 02-03), ``ranking`` (04-07),
``multistage`` and ``grading_report``; ``plot_data`` holds no figures but the CSV tables behind ``dvc plots``.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt


def save(fig: plt.Figure, folder: Path, name: str, dpi: int = 110) -> Path:
    """Save ``fig`` as ``folder/name.png`` and return the path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    # bbox_inches="tight": crop the white margin (and keep legends placed outside the axes).
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    return path
