import numpy as np
import pandas as pd
from sklearn.metrics import balanced_accuracy_score

from spinelib.competition import PROBABILITY_COLUMNS
from spinelib.multistage.severity import metrics_by


def _predictions() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    proba = rng.dirichlet(np.ones(3), size=40)
    return pd.DataFrame({"condition": ["spinal_canal_stenosis"] * 20 + ["left_subarticular_stenosis"] * 20,
                         "level": ["l1_l2", "l2_l3"] * 20, "grade_index": rng.integers(0, 3, 40).astype(float),
                         **dict(zip(PROBABILITY_COLUMNS, proba.T))}).assign(
        grade_index=lambda f: f["grade_index"].where(f.index != 0))  # one unlabelled row: left out


def test_one_key_gives_plain_labels_and_sklearn_accuracy():
    frame = _predictions()
    table = metrics_by(frame, ["condition"])
    assert list(table.index) == ["spinal_canal_stenosis", "left_subarticular_stenosis"]
    assert table.loc["spinal_canal_stenosis", "n"] == 19
    part = frame[(frame["condition"] == "left_subarticular_stenosis")]
    expected = balanced_accuracy_score(part["grade_index"].astype(int), part[list(PROBABILITY_COLUMNS)].to_numpy().argmax(1))
    assert np.isclose(table.loc["left_subarticular_stenosis", "balanced_accuracy"], expected)


def test_two_keys_give_a_two_level_index():
    table = metrics_by(_predictions(), ["condition", "level"])
    assert table.index.names == ["condition", "level"] and len(table) == 4
