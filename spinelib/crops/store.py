"""The crop store: one uint8 ``.npy`` array per crop kind plus an index table.

``<root>/<kind>.npy`` holds every planned crop of that kind (N, ...), and
``<root>/<kind>.csv`` one row per crop: study, condition, level, split, grade,
the crop geometry, and ``status`` ("ok" or why the crop could not be made;
such rows keep an all-zero array so row ``i`` of the index is always row ``i``
of the array). Arrays are read memory-mapped, so a training loop touches only
the crops it uses.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

# The order a store lists its kinds in (CropStore.kinds). Every kind of spinelib.crops.extract.CROP_KINDS must be
# here (a test checks); the extraction order there differs (bags sorted by name) and is kept for the store's bytes.
KINDS: tuple[str, ...] = ("roi", "volume", "loc", "bag_scs", "bag_nfn", "bag_ss")


def allocate(root: Path, kind: str, shape: tuple[int, ...]) -> np.memmap:
    """Create ``<root>/<kind>.npy`` as a zero-filled uint8 array of ``shape`` (N, ...), memory-mapped.

    Written row by row as crops arrive; rows of crops that could not be made stay all zero.
    """
    root.mkdir(parents=True, exist_ok=True)
    return np.lib.format.open_memmap(root / f"{kind}.npy", mode="w+", dtype=np.uint8, shape=shape)


class RowWriter:
    """``<root>/<kind>.npy`` created as by :func:`allocate` and written one row at a time: ``writer[i] = crop``
    (crop extraction and the Genodisc and SPIDER converters).

    Rows go in by positioned writes (``os.pwrite``), not through a memory map: a map faults in every fresh page of
    the file on its own, which for the hundreds of MB of a crop store takes more than twice as long
    (``benchmarks/crops.py``). The bytes are the same. Rows never written stay zero. ``close()`` when done.

    A writer can be sent to worker processes (it pickles as its path and layout; each process opens the file on
    its first write): rows are disjoint byte ranges, so processes write their crops side by side, and the crops
    need not travel back to the parent.
    """

    def __init__(self, root: Path, kind: str, shape: tuple[int, ...]):
        array = allocate(root, kind, shape)   # the .npy header and a zero-filled body
        self.shape: tuple[int, ...] = tuple(array.shape)
        self.path = root / f"{kind}.npy"
        self._offset = int(array.offset)      # bytes of the header: row i starts at offset + i * row bytes
        del array
        self._row_bytes = int(np.prod(self.shape[1:], dtype=np.int64))
        self._file = open(self.path, "r+b")

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_file": None}   # an open file does not pickle; the receiver opens its own

    def __setitem__(self, row: int, crop: np.ndarray) -> None:
        data = np.ascontiguousarray(crop, dtype=np.uint8)
        if data.shape != self.shape[1:] or not 0 <= row < self.shape[0]:
            raise ValueError(f"{self.path}: cannot write a crop of shape {data.shape} as row {row} of "
                             f"an array of shape {self.shape}")
        if self._file is None:
            self._file = open(self.path, "r+b")
        written = os.pwrite(self._file.fileno(), memoryview(data).cast("B"), self._offset + row * self._row_bytes)
        if written != data.nbytes:
            raise OSError(f"{self.path}: wrote {written} of {data.nbytes} bytes of row {row}")

    def close(self) -> None:
        """Close this process's file; every row written is in it."""
        if self._file is not None:
            self._file.close()
            self._file = None


@dataclass(frozen=True)
class CropStore:
    """Read access to a crop store written by :func:`spinelib.crops.extract.extract_crops`."""

    root: Path

    def config(self) -> dict:
        """How the store was made: data root, split settings and the crop configuration."""
        return json.loads((self.root / "config.json").read_text())

    def kinds(self) -> list[str]:
        """The crop kinds this store holds (a store cut with ``kinds=`` holds only those), in :data:`KINDS` order."""
        return [k for k in KINDS if (self.root / f"{k}.csv").exists()]

    def index(self, kind: str) -> pd.DataFrame:
        """The index table of ``kind``: one row per planned crop, row i describing ``array(kind)[i]``."""
        path = self.root / f"{kind}.csv"
        if not path.exists():
            raise FileNotFoundError(f"no crop index {path}; run the crop stage (notebook 01) first")
        # grades are labels ("Normal/Mild", ...) or empty: read as strings so an all-empty column stays text
        return pd.read_csv(path, dtype={"grade": "string"}, keep_default_na=True)

    def array(self, kind: str) -> np.ndarray:
        """Every crop of ``kind``, (N, ...) uint8, memory-mapped read-only (failed rows are all zero)."""
        return np.load(self.root / f"{kind}.npy", mmap_mode="r")

    def load(self, kind: str, *, split: str | None = None, condition: str | None = None,
             split_column: str = "split") -> tuple[np.ndarray, pd.DataFrame]:
        """Crops of ``kind`` with status ok, optionally of one split and condition.

        Returns the crops (n, ...) uint8, copied into memory, and their index rows (renumbered 0..n-1).
        """
        index = self.index(kind)
        keep = index["status"] == "ok"
        if split is not None:
            keep &= index[split_column] == split
        if condition is not None:
            keep &= index["condition"] == condition
        rows = np.flatnonzero(keep.to_numpy())
        return np.asarray(self.array(kind)[rows]), index.iloc[rows].reset_index(drop=True)


def open_store(root: Path | str) -> CropStore:
    """Open the crop store at ``root``."""
    return CropStore(Path(root))
