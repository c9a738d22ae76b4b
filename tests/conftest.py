"""Shared test fixtures: tiny RSNA-layout CSV sets and small DICOM series built in tmp_path.

Also the run's temporary folder: the tiny stores, runs and reports that tests
and notebooks (run by nbval in their own kernels) make with ``tempfile`` go
under one folder, removed when the run passes and kept, with its path
printed, when it fails.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import tempfile
from pathlib import Path
from types import ModuleType, SimpleNamespace

import numpy as np
import pandas as pd
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

from spinelib.constants import CONDITIONS, LEVELS, label_column

SAGITTAL_IOP = (0.0, 1.0, 0.0, 0.0, 0.0, -1.0)  # rows run anterior->posterior, columns head->foot
AXIAL_IOP = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
RUN_TMP = pytest.StashKey[tuple[Path, str | None]]()
RUN_FAILED = pytest.StashKey[bool]()


def pytest_configure(config: pytest.Config) -> None:
    root = Path(tempfile.mkdtemp(prefix="spinelib-tests-"))
    config.stash[RUN_TMP] = (root, os.environ.get("TMPDIR"))
    os.environ["TMPDIR"] = str(root)  # inherited by the kernels nbval starts
    tempfile.tempdir = None           # this process re-reads TMPDIR


def pytest_unconfigure(config: pytest.Config) -> None:
    root, before = config.stash.get(RUN_TMP, (None, None))
    if root is None:
        return
    if before is None:
        os.environ.pop("TMPDIR", None)
    else:
        os.environ["TMPDIR"] = before
    tempfile.tempdir = None
    if config.stash.get(RUN_FAILED, False):
        print(f"\ntemporary files of this run kept in {root}")
    else:
        shutil.rmtree(root, ignore_errors=True)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    session.config.stash[RUN_FAILED] = exitstatus != 0


@pytest.fixture(scope="session")
def load_script():
    """``load_script(path)``: a script of benchmarks/ or tools/ (folders of scripts, not packages) as a module.

    The module is registered in ``sys.modules`` under its file's stem while the tests run (dataclasses look their
    module up there while a class is created) and removed at the end of the session.
    """
    loaded: list[str] = []

    def load(path: Path) -> ModuleType:
        spec = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
        loaded.append(spec.name)
        return module

    yield load
    for name in loaded:
        sys.modules.pop(name, None)


def _write_dicom(
    path: Path,
    pixels: np.ndarray,
    *,
    instance_number: int,
    position: tuple[float, float, float],
    orientation: tuple[float, ...] = SAGITTAL_IOP,
    pixel_spacing: tuple[float, float] = (0.5, 0.75),
    slice_thickness: float = 3.0,
    series_description: str = "Sagittal T2/STIR",
    transfer_syntax: str = ExplicitVRLittleEndian,
    rescale: tuple[float, float] | None = None,
) -> Path:
    """Write one uint16 MR slice; ``transfer_syntax`` other than explicit VR LE is encoded."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = MRImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = MRImageStorage
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.Modality = "MR"
    ds.SeriesDescription = series_description
    ds.InstanceNumber = instance_number
    ds.ImagePositionPatient = [float(v) for v in position]
    ds.ImageOrientationPatient = [float(v) for v in orientation]
    ds.PixelSpacing = [float(v) for v in pixel_spacing]
    ds.SliceThickness = slice_thickness
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    if rescale is not None:
        ds.RescaleSlope, ds.RescaleIntercept = rescale
    ds.PixelData = np.ascontiguousarray(pixels, dtype=np.uint16).tobytes()
    if transfer_syntax == pydicom.uid.DeflatedExplicitVRLittleEndian:
        ds.file_meta.TransferSyntaxUID = transfer_syntax
    elif transfer_syntax != ExplicitVRLittleEndian:
        ds.compress(transfer_syntax)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


@pytest.fixture
def write_dicom():
    """``write_dicom(path, pixels, *, instance_number, position, ...)`` writes one slice."""
    return _write_dicom


def slice_pixels(k: int, shape: tuple[int, int] = (32, 32)) -> np.ndarray:
    """Distinct, hand-checkable values for the k-th slice in geometric order."""
    return (1000 * (k + 1) + np.arange(shape[0] * shape[1]).reshape(shape)).astype(np.uint16)


@pytest.fixture
def sagittal_series(tmp_path):
    """Six 32x32 sagittal slices 3.5 mm apart; instance numbers run against position.

    Returns (folder, expected instance numbers in geometric order, positions in
    that order). Slice k in geometric order holds ``slice_pixels(k)``.
    """
    folder = tmp_path / "series"
    normal = np.cross(SAGITTAL_IOP[:3], SAGITTAL_IOP[3:])  # (-1, 0, 0)
    origin = np.array([10.0, -20.0, 40.0])
    instances = [12, 10, 8, 6, 4, 2]  # names sort as 10, 12, 2, 4, 6, 8: no order at all
    positions = [origin + 3.5 * k * normal for k in range(6)]
    for k, (instance, position) in enumerate(zip(instances, positions)):
        _write_dicom(folder / f"{instance}.dcm", slice_pixels(k),
                     instance_number=instance, position=tuple(position))
    return folder, np.array(instances), np.array(positions)


def _grades_csv(root: Path, rows: dict[int, dict[str, str]]) -> None:
    columns = [label_column(c, lv) for c in CONDITIONS for lv in LEVELS]
    lines = [",".join(["study_id", *columns])]
    for study, overrides in rows.items():
        lines.append(",".join([str(study), *(overrides.get(c, "Normal/Mild") for c in columns)]))
    (root / "train.csv").write_text("\n".join(lines) + "\n")


# (study, series, instance, condition words, level words, x, y)
COORDINATES = [
    (1001, 11, 2, "Spinal Canal Stenosis", "L1/L2", 10.0, 5.0),
    (1001, 11, 2, "Spinal Canal Stenosis", "L4/L5", 12.5, 20.0),
    (1001, 12, 1, "Left Neural Foraminal Narrowing", "L4/L5", 8.0, 21.0),
    (1001, 13, 2, "Left Subarticular Stenosis", "L4/L5", 16.0, 16.0),
    (1002, 21, 1, "Spinal Canal Stenosis", "L3/L4", 15.0, 18.0),
    (1002, 22, 2, "Right Neural Foraminal Narrowing", "L5/S1", 9.0, 25.0),
]
SERIES = [
    (1001, 11, "Sagittal T2/STIR"),
    (1001, 12, "Sagittal T1"),
    (1001, 13, "Axial T2"),
    (1002, 21, "Sagittal T2/STIR"),
    (1002, 22, "Sagittal T1"),
]


def write_csvs(root: Path, coordinates=COORDINATES, series=SERIES, grades=None) -> Path:
    """Write the three CSVs of a two-study training set under ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    if grades is None:
        grades = {
            1001: {"spinal_canal_stenosis_l4_l5": "Severe",
                   "left_neural_foraminal_narrowing_l4_l5": "Moderate",
                   "left_subarticular_stenosis_l1_l2": ""},
            1002: {"spinal_canal_stenosis_l3_l4": "Moderate"},
        }
    _grades_csv(root, grades)
    lines = ["study_id,series_id,instance_number,condition,level,x,y"]
    lines += [",".join(str(v) for v in row) for row in coordinates]
    (root / "train_label_coordinates.csv").write_text("\n".join(lines) + "\n")
    lines = ["study_id,series_id,series_description"]
    lines += [",".join(str(v) for v in row) for row in series]
    (root / "train_series_descriptions.csv").write_text("\n".join(lines) + "\n")
    return root


@pytest.fixture
def rsna_csvs(tmp_path):
    """Root folder holding only the CSVs of a two-study training set."""
    return write_csvs(tmp_path / "rsna")


def write_images(root: Path, series=SERIES, slices: int = 3) -> None:
    """Three 32x32 slices per listed series under ``train_images``."""
    for study, series_id, description in series:
        iop = AXIAL_IOP if description.startswith("Axial") else SAGITTAL_IOP
        normal = np.cross(iop[:3], iop[3:])
        for k in range(slices):
            _write_dicom(root / "train_images" / str(study) / str(series_id) / f"{k + 1}.dcm",
                         slice_pixels(k), instance_number=k + 1, position=tuple(4.0 * k * normal),
                         orientation=iop, series_description=description)


@pytest.fixture
def rsna():
    """The builders and default rows above, for tests that vary them."""
    return SimpleNamespace(write_csvs=write_csvs, write_images=write_images, write_dicom=_write_dicom,
                           slice_pixels=slice_pixels, COORDINATES=list(COORDINATES), SERIES=list(SERIES),
                           SAGITTAL_IOP=SAGITTAL_IOP, AXIAL_IOP=AXIAL_IOP)


# ---------------------------------------------------------------------------------------------------------------------
# The multi-stage pipeline in miniature (tests/studies/multistage, tests/grading): a tiny phantom with unlabelled
# test studies, and Stage 1 + Stage 2 trained on it for one epoch (built once per session).
# ---------------------------------------------------------------------------------------------------------------------
from spinelib.params.multistage import MilParams  # noqa: E402  (the section's own import: light, no torch)

# notebook 09's tiny profile with a 16-wide LSTM over the standard-width ResNet-18, on the CPU without AMP
TINY_MIL = MilParams.tiny().replace(lstm_hidden=16, encoder_width=None, device="cpu", amp=False)


@pytest.fixture(scope="session")
def tiny_phantom(tmp_path_factory) -> Path:
    from spinelib.phantom import generate_phantom

    root = tmp_path_factory.mktemp("ms-phantom")
    generate_phantom(root, studies=6, seed=3, test_studies=1, progress=False)
    return root


def _splits(root: Path) -> pd.DataFrame:
    studies = sorted(pd.read_csv(root / "train.csv")["study_id"])
    split = {s: ("train", "train", "val", "test")[i % 4] for i, s in enumerate(studies)}
    return pd.DataFrame([(s, lv, split[s]) for s in studies for lv in LEVELS],
                        columns=["study_id", "level", "split_patient"])


@pytest.fixture(scope="session")
def tiny_splits(tiny_phantom) -> pd.DataFrame:
    """The tiny phantom's patient split (train, train, val, test, ... by study id)."""
    return _splits(tiny_phantom)


@pytest.fixture(scope="session")
def trained(tiny_phantom, tmp_path_factory) -> tuple[Path, Path]:
    """(localisation dir, MIL dir) of one-epoch models on the tiny phantom."""
    from spinelib.studies.multistage import notebooks

    splits = _splits(tiny_phantom)
    loc = tmp_path_factory.mktemp("ms-localisation")
    notebooks.run_localisation(tiny_phantom, splits, loc, notebooks.TINY_LOCALISATION, progress=False)
    mil = tmp_path_factory.mktemp("ms-mil")
    notebooks.run_mil(tiny_phantom, splits, loc, mil, TINY_MIL, progress=False)
    return loc, mil
