"""spinelib: the library behind the lumbar spine MRI grading study.

Data reading (RSNA layout, DICOM), the synthetic phantom cohort, crops and
splits, and (in later stages) models, losses, training, thresholds and metrics.
"""

__version__ = "0.1.0"
