"""The data figures of notebook 00."""

from __future__ import annotations

import io

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from spinelib.figures.data import acquisition_by_centre


def test_acquisition_figure_is_the_same_on_every_run_and_leaves_the_global_generator_alone():
    headers = pd.DataFrame({"centre": ["A", "B"] * 20, "series_description": ["Sagittal T1"] * 40,
                            "pixel_spacing": np.linspace(0.7, 0.9, 40), "rows": 256, "slice_thickness": 3.0})
    np.random.seed(123)
    before = np.random.get_state()[1].copy()
    images = []
    for _ in range(2):
        buffer = io.BytesIO()
        figure = acquisition_by_centre(headers)
        figure.savefig(buffer, format="png")
        plt.close(figure)
        images.append(buffer.getvalue())
    assert images[0] == images[1]                          # seaborn's jitter no longer changes between runs
    assert (np.random.get_state()[1] == before).all()      # and the caller's global generator is untouched
