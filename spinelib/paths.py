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
    # resolve(): follow symlinks and make absolute, so ``parents`` walks the real folder tree up to /.
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
        # The root is searched from the path itself, not from the working directory: a file of another checkout
        # is made relative to that checkout.
        return str(path.relative_to(repo_root(path)))
    except (FileNotFoundError, ValueError):    # no dvc.yaml above it, or not below the root found
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
    """``data_root`` from params, or a tiny phantom in a temporary folder when empty (notebook tests).

    The tiny phantom has the default RSNA file quirks (RLE 12-bit, "T1"/"T2" headers, instance gaps, extra
    annotation rows), so that the notebook tests read files as the real download has them.
    """
    if data_root:
        root = resolve(data_root)
        if not (root / "train.csv").exists():
            raise FileNotFoundError(f"{root}: no train.csv; run `dvc repro phantom` or place the RSNA download there")
        return root
    # Imported only when needed: the phantom generator brings in its DICOM writer (pydicom), which a run on
    # real data never uses, and importing spinelib.paths stays cheap.
    from spinelib.phantom import generate_phantom

    root = Path(tempfile.mkdtemp(prefix="spinelib-phantom-"))
    generate_phantom(root, studies=studies, seed=seed, test_studies=0, progress=False)
    return root
