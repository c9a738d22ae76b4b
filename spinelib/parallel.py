"""One way to fan work out over processes: results in submission order (deterministic), with a progress bar."""

from __future__ import annotations

import sys
from concurrent.futures import ProcessPoolExecutor
from typing import Callable, Iterator, Sequence

from spinelib.progress import progress_bar


def _one_thread() -> None:
    """Each worker's torch ops on one thread: the processes are the parallelism. Left at torch's default (a thread
    per core) in every worker, two workers' resampling on two cores ran three times slower than one process.

    Only where torch is loaded already (the workers are forked from a caller that uses it, e.g. crop extraction):
    importing it here would cost a caller that never uses torch (``check-data``) half a gigabyte per worker.
    """
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)


def process_map(fn: Callable, jobs: Sequence, workers: int, *, chunksize: int = 1, progress: bool = True,
                **bar) -> Iterator:
    """``fn(job)`` for each job, in order: in ``workers`` processes, or in this process when ``workers`` <= 1.

    ``bar`` goes to tqdm (``desc``, ``unit``). The pool is shut down when the
    iteration ends, also when the caller stops early or raises.
    """
    bar = {"total": len(jobs), "show": progress, **bar}
    if workers <= 1:
        # In-process: no pickling, and exceptions keep their full traceback (easier to debug a notebook cell).
        yield from progress_bar(map(fn, jobs), **bar)
        return
    # pool.map yields results in submission order even when later jobs finish first, so the output (and any
    # file written from it) does not depend on scheduling. ``fn`` and the jobs must be picklable.
    with ProcessPoolExecutor(workers, initializer=_one_thread) as pool:
        yield from progress_bar(pool.map(fn, jobs, chunksize=chunksize), **bar)
