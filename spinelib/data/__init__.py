"""Reading the RSNA 2024 layout: CSV labels (:mod:`.rsna`), DICOM series
(:mod:`.dicom`) and whole-dataset validation (:mod:`.check`)."""

from spinelib.data.check import DataUnusable, check_dataset, format_report
from spinelib.data.dicom import (
    InstanceReadError,
    ReadFailure,
    SeriesReadError,
    Volume,
    normalise_intensity,
    read_header,
    read_instance,
    read_series,
)
from spinelib.data.rsna import (
    LABEL_COLUMNS,
    DataFormatError,
    RSNADataset,
    image_dir,
    read_dataset,
    read_labels,
    read_series_descriptions,
    series_dir,
)

__all__ = [
    "LABEL_COLUMNS",
    "DataFormatError",
    "DataUnusable",
    "InstanceReadError",
    "RSNADataset",
    "ReadFailure",
    "SeriesReadError",
    "Volume",
    "check_dataset",
    "format_report",
    "image_dir",
    "normalise_intensity",
    "read_dataset",
    "read_header",
    "read_instance",
    "read_labels",
    "read_series",
    "read_series_descriptions",
    "series_dir",
]
