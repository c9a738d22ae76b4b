"""A small synthetic ROI store (18 spinal-canal discs of 9 patients) for the fine-tuning and pretraining tests."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from spinelib.crops.store import CropStore, allocate, open_store


@pytest.fixture
def roi_store(tmp_path) -> CropStore:
    """16 x 16 px random ROIs: 10 train, 4 val, 4 test discs (patient-level column ``split_patient``)."""
    root, n = tmp_path / "crops", 18
    rois = allocate(root, "roi", (n, 16, 16))
    rois[:] = np.random.default_rng(0).integers(0, 255, (n, 16, 16), dtype=np.uint8)
    rois.flush()
    pd.DataFrame({"study_id": np.arange(n) // 2, "condition": "spinal_canal_stenosis",
                  "level": ["l4_l5", "l5_s1"] * (n // 2), "grade_index": np.tile([0, 1, 2], n // 3),
                  "split_patient": ["train"] * 10 + ["val"] * 4 + ["test"] * 4, "status": "ok"}).to_csv(
        root / "roi.csv", index=False)
    return open_store(root)
