import torch

from spinelib.parallel import process_map


def _torch_threads(_job: int) -> int:
    return torch.get_num_threads()


def test_results_come_in_submission_order_with_and_without_workers():
    jobs = list(range(20))
    for workers in (1, 2):
        assert list(process_map(abs, [-j for j in jobs], workers, chunksize=3, progress=False)) == jobs


def test_stopping_early_is_allowed():
    results = process_map(abs, [-1, -2, -3], 2, progress=False)
    assert next(results) == 1
    results.close()


def test_workers_run_torch_on_one_thread_each_and_leave_the_caller_alone():
    before = torch.get_num_threads()
    assert list(process_map(_torch_threads, [0, 1, 2, 3], 2, progress=False)) == [1, 1, 1, 1]
    assert torch.get_num_threads() == before
