"""Stage 1 training does not depend on what ran before it in the process."""

from __future__ import annotations

import torch

from spinelib.multistage.cohort import load_cohort
from spinelib.multistage.localisation import train_localisers
from spinelib.multistage.stages import TINY_LOCALISATION


def _weights(models) -> list[torch.Tensor]:
    return [t for m in models for t in m.state_dict().values()]


def test_training_is_independent_of_the_global_rng_state(tiny_phantom, tiny_splits, tmp_path):
    hp = TINY_LOCALISATION
    cohort = load_cohort(tiny_phantom, tiny_splits, hp["split_column"], hp["stack_depth"],
                         hp["stack_size"], hp["slice_size"], progress=False)
    runs = []
    for prior in (1, 2):  # torch's default seed differs per process; emulate two processes
        torch.manual_seed(prior)
        loc, _ = train_localisers(cohort, hp, tmp_path / str(prior), progress=False)
        runs.append(loc)
    a, b = runs
    assert a.instance and a.coords
    for kind in ("instance", "coords"):
        for series_type, models in getattr(a, kind).items():
            for x, y in zip(_weights(models), _weights(getattr(b, kind)[series_type]), strict=True):
                assert torch.equal(x, y), f"{kind} {series_type} differs between runs"
