"""DICOM Part-10 writing (pydicom, explicit VR little endian) and CSV writing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

from spinelib.phantom.series import Slice

UID_PREFIX = "1.2.826.0.1.3680043.8.498."  # pydicom's root; the suffix is a hash of the sources
STUDY_DATE, STUDY_TIME = "20240101", "120000"


def make_uid(*sources: object) -> str:
    """Deterministic UID from its sources (seed, study id, role...)."""
    return generate_uid(prefix=UID_PREFIX, entropy_srcs=[str(s) for s in sources])


def _ds(values: np.ndarray, fmt: str) -> list[str]:
    return [fmt.format(float(v) + 0.0) for v in values]


def write_dicom(path: Path, pixels: np.ndarray, sl: Slice, meta: dict) -> None:
    """Write one MR image as a Part-10 file.

    ``meta`` keys: sop_uid, study_uid, series_uid, for_uid, study_id, series_number,
    instance_number, description, institution, field, manufacturer, thickness, spacing,
    bits_stored, rescale ((slope, intercept) or None), echo_time, repetition_time.
    """
    fm = FileMetaDataset()
    fm.MediaStorageSOPClassUID = MRImageStorage
    fm.MediaStorageSOPInstanceUID = meta["sop_uid"]
    fm.TransferSyntaxUID = ExplicitVRLittleEndian
    fm.ImplementationVersionName = "SPINELIB_PHANTOM"
    ds = Dataset()
    ds.file_meta = fm
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "NONE"]
    ds.SOPClassUID = MRImageStorage
    ds.SOPInstanceUID = meta["sop_uid"]
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = STUDY_DATE
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = STUDY_TIME
    ds.Modality = "MR"
    ds.Manufacturer = meta["manufacturer"]
    ds.InstitutionName = meta["institution"]
    ds.SeriesDescription = meta["description"]
    ds.PatientName = "Phantom^" + meta["study_id"]
    ds.PatientID = meta["study_id"]
    ds.PatientPosition = "HFS"
    ds.BodyPartExamined = "LSPINE"
    ds.ScanningSequence = "SE"
    ds.MagneticFieldStrength = f"{meta['field']:.1f}"
    ds.SliceThickness = f"{meta['thickness']:.3f}"
    ds.SpacingBetweenSlices = f"{meta['spacing']:.3f}"
    ds.RepetitionTime = f"{meta['repetition_time']:.1f}"
    ds.EchoTime = f"{meta['echo_time']:.1f}"
    ds.StudyInstanceUID = meta["study_uid"]
    ds.SeriesInstanceUID = meta["series_uid"]
    ds.StudyID = meta["study_id"][-8:]
    ds.SeriesNumber = int(meta["series_number"])
    ds.InstanceNumber = int(meta["instance_number"])
    ds.ImagePositionPatient = _ds(sl.ipp, "{:.4f}")
    ds.ImageOrientationPatient = _ds(np.concatenate([sl.row_dir, sl.col_dir]), "{:.6f}")
    ds.FrameOfReferenceUID = meta["for_uid"]
    ds.SliceLocation = f"{float(sl.ipp @ sl.normal):.4f}"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = int(pixels.shape[0]), int(pixels.shape[1])
    ds.PixelSpacing = _ds(np.asarray(sl.ps), "{:.6f}")
    ds.BitsAllocated = 16
    ds.BitsStored = int(meta["bits_stored"])
    ds.HighBit = int(meta["bits_stored"]) - 1
    ds.PixelRepresentation = 0
    if meta.get("rescale") is not None:
        ds.RescaleIntercept = f"{meta['rescale'][1]:.1f}"
        ds.RescaleSlope = f"{meta['rescale'][0]:.1f}"
        ds.RescaleType = "US"
    ds.PixelData = np.ascontiguousarray(pixels, dtype="<u2").tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)


def write_csv(df: pd.DataFrame, path: Path) -> None:
    """Write a CSV with a fixed float format and Unix line endings (deterministic)."""
    df.to_csv(path, index=False, float_format="%.6f", lineterminator="\n")
