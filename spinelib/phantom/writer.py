"""DICOM Part-10 writing (pydicom, explicit VR little endian) and CSV writing.

The files carry the tags real lumbar pipelines read (../shared/spec/phantom.md, item 2): UIDs, the series
description, instance number, the full patient-space geometry (ImagePositionPatient, ImageOrientationPatient,
PixelSpacing, SliceThickness, SpacingBetweenSlices) and the scanner's rescale where the centre uses one.
Every value is a deterministic function of the study, so the same seed gives byte-identical files.

With ``meta["rle"]`` the pixel data is stored as the real RSNA 2024 files store it: RLE Lossless
(:func:`pydicom.dataset.Dataset.compress`), a lossless encoding, so the decoded pixels are the very values
written; readers decode it through pydicom's pixel-data plugins without knowing.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, RLELossless, generate_uid

from spinelib.phantom.series import Slice

UID_PREFIX = "1.2.826.0.1.3680043.8.498."  # pydicom's root; the suffix is a hash of the sources
STUDY_DATE, STUDY_TIME = "20240101", "120000"   # one fixed date and time: no wall clock in the bytes


def make_uid(*sources: object) -> str:
    """Deterministic UID from its sources (seed, study id, role...)."""
    return generate_uid(prefix=UID_PREFIX, entropy_srcs=[str(s) for s in sources])


def _decimal_strings(values: np.ndarray, fmt: str) -> list[str]:
    """DICOM decimal strings (VR DS) of ``values``; ``+ 0.0`` turns a -0.0 into 0.0 so that no "-0.0000" appears."""
    return [fmt.format(float(v) + 0.0) for v in values]


def _file_meta(meta: dict) -> FileMetaDataset:
    """The Part-10 header: MR image storage, explicit VR little endian."""
    file_meta = FileMetaDataset()
    file_meta.MediaStorageSOPClassUID = MRImageStorage
    file_meta.MediaStorageSOPInstanceUID = meta["sop_uid"]
    file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    file_meta.ImplementationVersionName = "SPINELIB_PHANTOM"
    return file_meta


def _set_identity(ds: Dataset, meta: dict) -> None:
    """Who, when, where: SOP class, dates, scanner, patient, sequence."""
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "NONE"]
    ds.SOPClassUID = MRImageStorage
    ds.SOPInstanceUID = meta["sop_uid"]
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = STUDY_DATE
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = STUDY_TIME
    ds.Modality = "MR"
    ds.Manufacturer = meta["manufacturer"]
    ds.InstitutionName = meta["institution"]   # the simulated centre: splits can be stratified by it
    ds.SeriesDescription = meta["description"]
    ds.PatientName = "Phantom^" + meta["study_id"]
    ds.PatientID = meta["study_id"]
    ds.PatientPosition = "HFS"                 # head first, supine: the usual lumbar spine position
    ds.BodyPartExamined = "LSPINE"
    ds.ScanningSequence = "SE"
    ds.MagneticFieldStrength = f"{meta['field']:.1f}"


def _set_acquisition_and_hierarchy(ds: Dataset, meta: dict) -> None:
    """Slice thickness and spacing, TR/TE, and the study / series / instance hierarchy."""
    ds.SliceThickness = f"{meta['thickness']:.3f}"
    ds.SpacingBetweenSlices = f"{meta['spacing']:.3f}"
    ds.RepetitionTime = f"{meta['repetition_time']:.1f}"
    ds.EchoTime = f"{meta['echo_time']:.1f}"
    ds.StudyInstanceUID = meta["study_uid"]
    ds.SeriesInstanceUID = meta["series_uid"]
    ds.StudyID = meta["study_id"][-8:]          # StudyID is a short string (SH): at most 16 characters
    ds.SeriesNumber = int(meta["series_number"])
    ds.InstanceNumber = int(meta["instance_number"])


def _set_geometry(ds: Dataset, plane: Slice, meta: dict) -> None:
    """The slice's place in patient space: what lets a point on a sagittal image be found on an axial one."""
    ds.ImagePositionPatient = _decimal_strings(plane.image_position, "{:.4f}")
    ds.ImageOrientationPatient = _decimal_strings(np.concatenate([plane.row_dir, plane.col_dir]), "{:.6f}")
    ds.FrameOfReferenceUID = meta["for_uid"]   # one per study: all its series share one patient frame
    ds.SliceLocation = f"{float(plane.image_position @ plane.normal):.4f}"


def _set_pixels(ds: Dataset, pixels: np.ndarray, plane: Slice, meta: dict) -> None:
    """Pixel description and data: 16-bit unsigned words, ``bits_stored`` of them used, optional rescale."""
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = int(pixels.shape[0]), int(pixels.shape[1])
    ds.PixelSpacing = _decimal_strings(np.asarray(plane.pixel_spacing), "{:.6f}")
    ds.BitsAllocated = 16
    ds.BitsStored = int(meta["bits_stored"])
    ds.HighBit = int(meta["bits_stored"]) - 1
    ds.PixelRepresentation = 0
    if meta.get("rescale") is not None:
        ds.RescaleIntercept = f"{meta['rescale'][1]:.1f}"
        ds.RescaleSlope = f"{meta['rescale'][0]:.1f}"
        ds.RescaleType = "US"                  # unspecified units: MR intensities have none
    ds.PixelData = np.ascontiguousarray(pixels, dtype="<u2").tobytes()
    if meta.get("rle"):
        # RLE Lossless, as the real files: compress() encodes the array given and switches the transfer syntax
        # (and the encapsulated PixelData) in place; decoding gives back exactly ``pixels``. compress() would give
        # the image a fresh random SOPInstanceUID by default: keep ours (deterministic, the clean file's). The
        # encoders (pylibjpeg-rle, ~1.5 ms a slice; pydicom's own, ~20 ms) write the same bytes: RLE is one algorithm
        ds.compress(RLELossless, np.ascontiguousarray(pixels, dtype=np.uint16), generate_instance_uid=False)


def write_dicom(path: Path, pixels: np.ndarray, plane: Slice, meta: dict) -> None:
    """Write one MR image as a Part-10 file.

    ``meta`` keys: sop_uid, study_uid, series_uid, for_uid, study_id, series_number,
    instance_number, description, institution, field, manufacturer, thickness, spacing,
    bits_stored, rescale ((slope, intercept) or None), echo_time, repetition_time; optional ``rle`` (True:
    RLE Lossless pixel data, as the real RSNA files).
    """
    ds = Dataset()
    ds.file_meta = _file_meta(meta)
    _set_identity(ds, meta)
    _set_acquisition_and_hierarchy(ds, meta)
    _set_geometry(ds, plane, meta)
    _set_pixels(ds, pixels, plane, meta)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)


def write_csv(df: pd.DataFrame, path: Path) -> None:
    """Write a CSV with a fixed float format and Unix line endings (deterministic)."""
    df.to_csv(path, index=False, float_format="%.6f", lineterminator="\n")
