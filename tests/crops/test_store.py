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


def _write_rows(args) -> int:
    writer, rows = args
    for i, crop in rows:
        writer[i] = crop
    return len(rows)


def test_row_writers_sent_to_worker_processes_write_their_rows_side_by_side(tmp_path):
    """Each worker opens the file itself (the writer pickles without its handle); rows are disjoint, so the
    file is the same as one process writing every row."""
    from concurrent.futures import ProcessPoolExecutor

    rng = np.random.default_rng(1)
    crops = rng.integers(0, 256, size=(6, 5, 7), dtype=np.uint8)
    writer = RowWriter(tmp_path, "roi", crops.shape)
    jobs = [(writer, [(i, crops[i]) for i in rows]) for rows in ([5, 0], [2], [3, 1])]   # row 4 left out
    with ProcessPoolExecutor(2) as pool:
        assert sum(pool.map(_write_rows, jobs)) == 5
    writer.close()
    writer.close()                                  # closing twice is harmless
    back = np.load(tmp_path / "roi.npy")
    assert np.array_equal(back[[0, 1, 2, 3, 5]], crops[[0, 1, 2, 3, 5]]) and not back[4].any()
