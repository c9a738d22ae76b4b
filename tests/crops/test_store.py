"""The crop store's files: allocation, the row writer, and reading back."""

from __future__ import annotations

import numpy as np
import pytest

from spinelib.crops.store import RowWriter, allocate


def test_row_writer_writes_the_bytes_a_memory_map_would_and_leaves_unwritten_rows_zero(tmp_path):
    rng = np.random.default_rng(0)
    crops = rng.integers(0, 256, size=(5, 3, 4, 6), dtype=np.uint8)
    writer = RowWriter(tmp_path / "rows", "volume", crops.shape)
    for i in (3, 0, 4):                       # any order, one row left out
        writer[i] = crops[i]
    writer[1] = crops[1].astype(np.int64)     # cast as an array assignment would
    writer.close()
    mapped = allocate(tmp_path / "mapped", "volume", crops.shape)
    for i in (3, 0, 4, 1):
        mapped[i] = crops[i]
    mapped.flush()
    del mapped
    assert (tmp_path / "rows" / "volume.npy").read_bytes() == (tmp_path / "mapped" / "volume.npy").read_bytes()
    back = np.load(tmp_path / "rows" / "volume.npy")
    assert back.shape == crops.shape and writer.shape == crops.shape
    assert np.array_equal(back[[0, 1, 3, 4]], crops[[0, 1, 3, 4]]) and not back[2].any()


def test_row_writer_rejects_a_crop_of_another_shape_or_a_row_beyond_the_array(tmp_path):
    writer = RowWriter(tmp_path, "roi", (2, 4, 4))
    with pytest.raises(ValueError, match=r"roi\.npy.*shape \(4, 5\) as row 0"):
        writer[0] = np.zeros((4, 5), dtype=np.uint8)
    with pytest.raises(ValueError, match="as row 2 of an array of shape"):
        writer[2] = np.zeros((4, 4), dtype=np.uint8)
    writer.close()
