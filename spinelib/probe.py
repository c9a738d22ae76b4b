"""A linear probe on raw ROI pixels: how learnable is a cohort before any deep model?

Logistic regression (class-balanced weights) on down-sampled, standardised
ROI pixels, fitted on the training split and scored on the validation split
by balanced accuracy. On the phantom it is the gauge phantom.md asks for: a
change that makes the phantom trivially easy (probe near 1) or hopeless
(probe at chance, 1/K) shows up here. The test split is not touched.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier

from spinelib.constants import GRADES
from spinelib.crops.geometry import resize_stack
from spinelib.crops.store import CropStore


def roi_probe(store: CropStore, condition: str, size: int = 24, split_column: str = "split",
              seed: int = 0) -> dict:
    """Balanced accuracy of a linear probe for ``condition`` (train -> val), with chance level.

    Features: each ROI resized to ``size`` x ``size``, scaled to [0, 1] and flattened to (size², ); the probe
    standardises them. NaN scores when the training split has fewer than two grades or the validation split none.
    """
    scores = {}
    data = {}
    # ---- features and labels of the graded ROIs of each split (ungraded ones cannot be scored) ----
    for split in ("train", "val"):
        rois, index = store.load("roi", split=split, condition=condition, split_column=split_column)
        graded = index["grade_index"].notna().to_numpy()
        pixels = resize_stack(rois[graded].astype(np.float32) / 255.0, (size, size))
        data[split] = (pixels.reshape(len(pixels), -1), index.loc[graded, "grade_index"].astype(int).to_numpy())
    x_train, y_train = data["train"]
    if len(np.unique(y_train)) < 2 or len(data["val"][1]) == 0:
        return {"balanced_accuracy_train": float("nan"), "balanced_accuracy_val": float("nan"), "chance": float("nan"),
                "n_train": len(y_train), "n_val": len(data["val"][1])}
    # ---- fit on train; strong L2 (C = 0.01): n_train is small against size² pixel features ----
    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.01, class_weight="balanced", max_iter=2000,
                                                                random_state=seed))
    model.fit(x_train, y_train)
    for split, (x, y) in data.items():
        scores[f"balanced_accuracy_{split}"] = round(float(balanced_accuracy_score(y, model.predict(x))), 3)
    scores["chance"] = round(1.0 / len(np.unique(y_train)), 3)   # balanced accuracy of a constant guess: 1 / K
    scores["n_train"], scores["n_val"] = len(y_train), len(data["val"][1])
    return scores


def latent_ceiling(truth: pd.DataFrame) -> pd.Series:
    """Phantom only: balanced accuracy of the best two cut points on the *true* latent, per condition.

    Grades are the latent plus rater noise cut at thresholds, so even a model
    that recovered the latent exactly would misgrade borderline discs; this is
    that ceiling (cut points chosen on the same discs, so slightly optimistic).
    """
    graded = truth.dropna(subset=["grade"])
    ceiling = {}
    for condition, discs in graded.groupby("condition"):
        y = discs["grade"].map({g: i for i, g in enumerate(GRADES)}).to_numpy()
        # a depth-free tree with K leaves on one feature = the best K - 1 cut points of the latent
        tree = DecisionTreeClassifier(max_leaf_nodes=len(GRADES), class_weight="balanced", random_state=0)
        latent = discs[["severity"]].to_numpy()
        ceiling[condition] = round(float(balanced_accuracy_score(y, tree.fit(latent, y).predict(latent))), 3)
    return pd.Series(ceiling, name="latent_ceiling")
