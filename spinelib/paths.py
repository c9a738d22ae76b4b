"""Paths relative to the repository root, wherever a notebook or test runs from.

papermill runs notebooks in the caller's folder, nbval in the notebook's
folder; resolving relative paths from the root (the folder holding
``dvc.yaml``) makes both see the same files.
"""

from __future__ import annotations

import tempfile
from pathlib import Path


def repo_root(start: Path | None = None) -> Path:
    """The nearest folder at or above ``start`` (default: the working directory) holding ``dvc.yaml``."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "dvc.yaml").exists():
            return folder
    raise FileNotFoundError(f"no dvc.yaml at or above {here}: run from inside the spinelib-study repository")


def resolve(path: str | Path) -> Path:
    """``path`` itself if absolute, else relative to the repository root."""
    path = Path(path)
    return path if path.is_absolute() else repo_root() / path


def portable_path(path: str | Path) -> str:
    """``path`` relative to the repository root when it lies inside it (no machine paths in outputs), else absolute."""
    path = Path(path).resolve()
    try:
        return str(path.relative_to(repo_root(path)))
    except (FileNotFoundError, ValueError):
        return str(path)


def output_dir(path: str | Path | None, name: str) -> Path:
    """The folder a notebook writes to: ``path`` from params, or a fresh temporary folder when empty.

    Notebook tests (nbval) run with the parameters-cell defaults, which leave
    ``path`` empty so that a test never writes into the repository.
    """
    folder = resolve(path) if path else Path(tempfile.mkdtemp(prefix=f"spinelib-{name}-"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def data_root_or_tiny_phantom(data_root: str | Path | None, studies: int = 8, seed: int = 0) -> Path:
    """``data_root`` from params, or a tiny phantom in a temporary folder when empty (notebook tests)."""
    if data_root:
        root = resolve(data_root)
        if not (root / "train.csv").exists():
            raise FileNotFoundError(f"{root}: no train.csv; run `dvc repro phantom` or place the RSNA download there")
        return root
    from spinelib.phantom import generate_phantom

    root = Path(tempfile.mkdtemp(prefix="spinelib-phantom-"))
    generate_phantom(root, studies=studies, seed=seed, test_studies=0, progress=False)
    return root
