"""Which crops to make: one table per crop kind, from the long-form label table.

Planning is pure table work (no pixels), so what will be skipped and why is
known before any DICOM is read.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from spinelib.constants import CONDITION_SERIES, CONDITIONS, LEVELS, SAGITTAL_T1, SAGITTAL_T2
from spinelib.crops.geometry import Box

# Multi-stage paper, Table 1: reach (left, right, up, down) in pixels from the coordinate.
TABLE1_RANGES: dict[str, tuple[int, int, int, int]] = {
    "spinal_canal_stenosis": (96, 32, 40, 40),             # Sagittal T2
    "left_neural_foraminal_narrowing": (96, 64, 32, 32),   # Sagittal T1
    "right_neural_foraminal_narrowing": (96, 64, 32, 32),  # Sagittal T1
    "left_subarticular_stenosis": (48, 144, 96, 96),       # Axial T2 (left)
    "right_subarticular_stenosis": (144, 48, 96, 96),      # Axial T2 (right)
}
# Condition -> the MIL bag kind (one array per kind): left and right share a kind, their boxes having the
# same size (the subarticular ones mirrored).
BAG_KIND: dict[str, str] = {
    "spinal_canal_stenosis": "bag_scs",
    "left_neural_foraminal_narrowing": "bag_nfn",
    "right_neural_foraminal_narrowing": "bag_nfn",
    "left_subarticular_stenosis": "bag_ss",
    "right_subarticular_stenosis": "bag_ss",
}
# the columns of a point plan (ROIs, bags, localiser inputs): the label and where it was annotated
POINT_COLUMNS = ["study_id", "condition", "level", "series_id", "series_description", "instance_number",
                 "x", "y", "grade", "grade_index"]


@dataclass(frozen=True)
class CropConfig:
    """Crop sizes; defaults are the papers' values (the CPU profile shrinks some in params/)."""

    roi_size: tuple[int, int] = (96, 96)                      # contrastive paper: 96 x 96 px
    roi_conditions: tuple[str, ...] = CONDITIONS
    volume_series: tuple[str, ...] = (SAGITTAL_T2, SAGITTAL_T1)
    volume_slices: int = 12                                   # ranking paper: 12 slices
    volume_crop: tuple[int, int] = (128, 256)                 # ranking paper: 128 x 256 px
    volume_size: tuple[int, int] = (128, 256)                 # stored size (resized from volume_crop)
    bag_slices: int = 5                                       # multi-stage paper: 5 slices
    bag_scale: float = 1.0                                    # stored scale of the Table 1 boxes
    bag_ranges: dict[str, tuple[int, int, int, int]] = field(default_factory=lambda: dict(TABLE1_RANGES))
    normalise: tuple[float, float] = (1.0, 99.0)              # per-series percentile window
    loc_size: tuple[int, int] = (256, 256)                    # contrastive paper §4.5: 2.5D localiser input 256 x 256
    loc_slices: int = 3                                       # three consecutive slices
    volume_plane: str = "disc"                                # "disc": rotated to the disc plane; "image": axes

    def __post_init__(self):
        if self.volume_plane not in ("disc", "image"):
            raise ValueError(f"volume_plane must be 'disc' or 'image', got {self.volume_plane!r}")

    def bag_box(self, condition: str) -> Box:
        """Table 1's reach around the coordinate for ``condition``, in source pixels (before ``bag_scale``)."""
        left, right, up, down = self.bag_ranges[condition]
        return Box(left=left, right=right, up=up, down=down)

    def bag_size(self, kind: str) -> tuple[int, int]:
        """Stored (H, W) of a bag kind: its box's height and width times ``bag_scale``, rounded.

        Both conditions of a kind have the same box size, so the first one found decides.
        """
        condition = next(c for c, k in BAG_KIND.items() if k == kind)
        box = self.bag_box(condition)
        return round(box.height * self.bag_scale), round(box.width * self.bag_scale)


def skipped_labels(labels: pd.DataFrame, series: pd.DataFrame) -> pd.DataFrame:
    """Label rows without a coordinate, with the reason: no series of the needed type, or no annotation."""
    no_coord = labels[labels["series_id"].isna()][["study_id", "condition", "level"]].copy()
    # why it has none: the study lacks the condition's series type, or the annotator simply gave no point
    have = set(zip(series["study_id"], series["series_description"]))
    needed = no_coord["condition"].map(CONDITION_SERIES)
    lacks = [(s, d) not in have for s, d in zip(no_coord["study_id"], needed)]
    no_coord["reason"] = ["study has no " + d + " series" if lack else "no coordinate annotated"
                          for d, lack in zip(needed, lacks)]
    return no_coord.reset_index(drop=True)


def plan_points(labels: pd.DataFrame, conditions: tuple[str, ...]) -> pd.DataFrame:
    """One row per annotated (study, condition, level) of ``conditions``: ROIs and bags."""
    points = labels[labels["series_id"].notna() & labels["condition"].isin(conditions)]
    return points[POINT_COLUMNS].sort_values(["study_id", "condition", "level"]).reset_index(drop=True)


def plan_volumes(labels: pd.DataFrame, series: pd.DataFrame, series_types: tuple[str, ...]) -> pd.DataFrame:
    """One row per disc (study, level) and series type, centred on the spinal canal coordinate.

    The series of a type is the one annotated at that level if any, else the
    study's first series of that type; a study lacking the type gets a row
    with ``series_id`` missing (reported as skipped by the extractor).
    """
    # the disc centre: the spinal canal point (on Sagittal T2), which every disc has and lies mid-disc
    scs = labels[(labels["condition"] == "spinal_canal_stenosis") & labels["series_id"].notna()]
    # every condition's grade of the disc as columns, so one volume carries all its labels
    grades = labels.pivot_table(index=["study_id", "level"], columns="condition", values="grade_index",
                                aggfunc="first", dropna=False)
    annotated = labels[labels["series_id"].notna()][["study_id", "level", "series_id", "series_description"]]
    first_of_type = series.sort_values("series_id").drop_duplicates(["study_id", "series_description"])
    rows = []
    # one block of rows per series type: the centre on the anchor, the series of that type to cut from
    for stype in series_types:
        at_level = annotated[annotated["series_description"] == stype].drop_duplicates(["study_id", "level"])
        part = scs[["study_id", "level", "series_id", "instance_number", "x", "y"]].rename(
            columns={"series_id": "anchor_series_id", "instance_number": "anchor_instance",
                     "x": "anchor_x", "y": "anchor_y"})
        part = with_neighbours(part)
        part = part.merge(at_level[["study_id", "level", "series_id"]], on=["study_id", "level"], how="left")
        fallback = first_of_type[first_of_type["series_description"] == stype].set_index("study_id")["series_id"]
        part["series_id"] = part["series_id"].fillna(part["study_id"].map(fallback)).astype("Int64")
        part["series_description"] = stype
        part["condition"] = "all"  # one volume serves every task of the disc
        rows.append(part)
    plan = pd.concat(rows, ignore_index=True)
    plan = plan.merge(grades.reset_index(), on=["study_id", "level"], how="left")
    for condition in CONDITIONS:
        if condition in plan:
            plan[condition] = plan[condition].astype("Int64")
    return plan.sort_values(["study_id", "level", "series_description"]).reset_index(drop=True)


# the neighbouring levels a disc's plane is estimated from: prefix -> level offset (negative = towards the head)
NEIGHBOURS: dict[str, int] = {"above": -1, "below": 1, "above2": -2, "below2": 2}


def with_neighbours(anchors: pd.DataFrame) -> pd.DataFrame:
    """``anchors`` (study_id, level, anchor_series_id, anchor_instance, anchor_x, anchor_y: one canal point per
    disc) with the canal points of the neighbouring levels on the same series as columns ``<prefix>_instance``,
    ``<prefix>_x``, ``<prefix>_y`` for the prefixes of :data:`NEIGHBOURS` (the level above and below, and the
    second ones; missing when that level has no point there): the disc plane of a volume is estimated from them
    (:mod:`spinelib.crops.disc_plane`)."""
    order = {level: i for i, level in enumerate(LEVELS)}
    points = anchors[["study_id", "level", "anchor_series_id", "anchor_instance", "anchor_x", "anchor_y"]].copy()
    points["_rank"] = points["level"].map(order)
    out = anchors.assign(_rank=anchors["level"].map(order))
    for side, step in NEIGHBOURS.items():
        # the neighbour of rank r on this side is the point of rank r + step, matched on the same series
        shifted = points.assign(_rank=points["_rank"] - step).rename(columns={
            "anchor_instance": f"{side}_instance", "anchor_x": f"{side}_x", "anchor_y": f"{side}_y"})
        shifted = shifted.drop(columns="level").drop_duplicates(["study_id", "anchor_series_id", "_rank"])
        out = out.merge(shifted, on=["study_id", "anchor_series_id", "_rank"], how="left")
    return out.drop(columns="_rank")


def with_coordinates(labels: pd.DataFrame, coordinates: pd.DataFrame) -> pd.DataFrame:
    """``labels`` with x and y replaced by ``coordinates`` (study_id, condition, level, x, y) where given.

    This is how crops are cut at *predicted* coordinates (a localisation
    model's output) instead of the annotated ones; the annotated instance and
    series are kept. Label rows without a prediction keep their annotation.
    """
    keys = ["study_id", "condition", "level"]
    predicted = coordinates[keys + ["x", "y"]].drop_duplicates(keys)
    merged = labels.merge(predicted, on=keys, how="left", suffixes=("", "_predicted"))
    # only labels that were annotated (a series and instance to cut from) take the predicted point
    has = merged["x_predicted"].notna() & merged["series_id"].notna()
    merged.loc[has, "x"] = merged.loc[has, "x_predicted"]
    merged.loc[has, "y"] = merged.loc[has, "y_predicted"]
    return merged.drop(columns=["x_predicted", "y_predicted"])
