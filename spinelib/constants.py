"""Names shared by every stage: conditions, levels, grades and series types.

The snake-case names are those of ``train.csv`` (RSNA 2024); the word forms are
those of ``train_label_coordinates.csv``.
"""

from __future__ import annotations

# The five graded conditions, in train.csv's column order (also the order of the 25 submission rows per study).
CONDITIONS: tuple[str, ...] = (
    "spinal_canal_stenosis",
    "left_neural_foraminal_narrowing",
    "right_neural_foraminal_narrowing",
    "left_subarticular_stenosis",
    "right_subarticular_stenosis",
)
CONDITION_WORDS: dict[str, str] = {
    "spinal_canal_stenosis": "Spinal Canal Stenosis",
    "left_neural_foraminal_narrowing": "Left Neural Foraminal Narrowing",
    "right_neural_foraminal_narrowing": "Right Neural Foraminal Narrowing",
    "left_subarticular_stenosis": "Left Subarticular Stenosis",
    "right_subarticular_stenosis": "Right Subarticular Stenosis",
}
# The five intervertebral disc levels, top (L1/L2) to bottom (L5/S1).
LEVELS: tuple[str, ...] = ("l1_l2", "l2_l3", "l3_l4", "l4_l5", "l5_s1")
LEVEL_WORDS: dict[str, str] = {
    "l1_l2": "L1/L2",
    "l2_l3": "L2/L3",
    "l3_l4": "L3/L4",
    "l4_l5": "L4/L5",
    "l5_s1": "L5/S1",
}
# Severity grades as train.csv spells them; a grade's position is its index (0, 1, 2) everywhere in the library.
GRADES: tuple[str, ...] = ("Normal/Mild", "Moderate", "Severe")

# Series descriptions as train_series_descriptions.csv spells them.
SAGITTAL_T1 = "Sagittal T1"
SAGITTAL_T2 = "Sagittal T2/STIR"
AXIAL_T2 = "Axial T2"
SERIES_TYPES: tuple[str, ...] = (SAGITTAL_T1, SAGITTAL_T2, AXIAL_T2)

# The series type each condition is annotated on (rsna-format.md).
CONDITION_SERIES: dict[str, str] = {
    "spinal_canal_stenosis": SAGITTAL_T2,
    "left_neural_foraminal_narrowing": SAGITTAL_T1,
    "right_neural_foraminal_narrowing": SAGITTAL_T1,
    "left_subarticular_stenosis": AXIAL_T2,
    "right_subarticular_stenosis": AXIAL_T2,
}

# Reverse look-ups: word form (coordinates file) -> snake case, grade name -> index.
CONDITION_FROM_WORDS: dict[str, str] = {v: k for k, v in CONDITION_WORDS.items()}
LEVEL_FROM_WORDS: dict[str, str] = {v: k for k, v in LEVEL_WORDS.items()}
GRADE_INDEX: dict[str, int] = {g: i for i, g in enumerate(GRADES)}


def label_column(condition: str, level: str) -> str:
    """The ``train.csv`` column of one condition at one level."""
    return f"{condition}_{level}"
