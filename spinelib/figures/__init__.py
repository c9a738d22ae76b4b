"""Figures the notebooks show and the pipeline saves as PNG."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt


def save(fig: plt.Figure, folder: Path, name: str, dpi: int = 110) -> Path:
    """Save ``fig`` as ``folder/name.png`` and return the path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    return path
