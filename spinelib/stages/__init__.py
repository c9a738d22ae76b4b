"""Stage entry points: the functions the notebooks call, also runnable as ``python -m`` (and under torchrun)."""
