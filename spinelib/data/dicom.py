"""DICOM series loader: one pass over the files, slices in patient-geometry order.

Geometry follows DICOM (PS3.3 C.7.6.2): ``ImageOrientationPatient`` holds the
row direction cosines ``r`` (the direction of increasing column index) and then
the column direction cosines ``c`` (increasing row index); ``PixelSpacing`` is
(row spacing, column spacing). A pixel (row, col) of a slice with position
``p`` lies at

    P = p + col * spacing[1] * r + row * spacing[0] * c

and slices are ordered by ``dot(p, n)`` with ``n = r x c`` (never by file name
or InstanceNumber, which do not always follow position).

Compressed transfer syntaxes decode through pydicom's pixel-data plugins
(pylibjpeg, pylibjpeg-openjpeg, pylibjpeg-libjpeg, pylibjpeg-rle, pyjpegls); the
common single-frame native and RLE Lossless files (every RSNA file) are decoded
here with pylibjpeg-rle's frame decoder, to the same array (:func:`_stored_pixels`).
A file that cannot be read is reported as a :class:`ReadFailure` and skipped.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
from pydicom.encaps import generate_frames
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, RLELossless
from rle.utils import decode_frame

from spinelib.data.elements import RawElements, read_elements
from spinelib.progress import progress_bar

# Target sample size for percentile estimates in ``normalise_intensity``.
_PERCENTILE_SAMPLES = 1 << 16


@dataclass(frozen=True)
class ReadFailure:
    """One file that was skipped, and why."""

    path: str
    reason: str


class InstanceReadError(ValueError):
    """One DICOM file could not be read or decoded; ``reason`` says why."""

    def __init__(self, path: Path | str, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


class SeriesReadError(RuntimeError):
    """No slice of a series could be read."""


# --------------------------------------------------------------------------
# One file.
# --------------------------------------------------------------------------

# Tags of the hot path, by number (skips pydicom's keyword lookup).
_GEOMETRY_TAGS: dict[str, int] = {
    "instance_number": 0x00200013,
    "position": 0x00200032,
    "orientation": 0x00200037,
    "pixel_spacing": 0x00280030,
    "slice_thickness": 0x00180050,
    "spacing_between_slices": 0x00180088,
    "rescale_slope": 0x00281053,
    "rescale_intercept": 0x00281052,
}


# A file as read: pydicom's Dataset, or the lean reader's raw elements (Explicit VR Little Endian files), which
# answer get_item, `in` and file_meta like a Dataset and give one (`_full`) for anything else.
Read = pydicom.Dataset | RawElements


def _full(ds: Read) -> pydicom.Dataset:
    """pydicom's Dataset of a file as read (the lean reader's elements made into one on demand)."""
    return ds.dataset() if isinstance(ds, RawElements) else ds


def _value(ds: Read, tag: int):
    """The tag's value, None when the tag is absent or empty (both mean "not given" to the callers).

    A decimal or integer string (every geometry tag is DS or IS) is returned as its text, split at the backslashes
    when it holds several values, straight from the file's bytes: pydicom's conversion of a raw element into
    DSfloat objects costs more than the rest of the header (``_floats`` and ``_integer`` parse the text as it does).
    """
    element = ds.get_item(tag)   # the raw element as read, when nothing has converted it yet
    if element is None:
        return None
    if isinstance(element.value, bytes) and element.VR in ("DS", "IS"):
        text = element.value.decode("ascii").strip(" \0")
        value = text.split("\\") if "\\" in text else text
    else:
        value = _full(ds)[tag].value   # other VRs, implicit VR files (no VR on the raw element), converted ones
    return None if value in (None, "") else value


def _integer(value) -> int:
    """An IS value (text or number) as an int; "12.0" is 12, "12.5" is malformed (ValueError), as for pydicom."""
    number = float(value)
    if not number.is_integer():
        raise ValueError(f"InstanceNumber {value!r} is not an integer")
    return int(number)


def _floats(value, size: int) -> np.ndarray:
    """A multi-valued tag as (size,) float64; all NaN when absent or of the wrong length (checked later)."""
    if value is None:
        return np.full(size, np.nan)
    items = value if isinstance(value, (list, tuple, pydicom.multival.MultiValue)) else [value]
    values = np.asarray([float(v) for v in items], dtype=np.float64)
    return values if values.size == size else np.full(size, np.nan)


def _optional_float(value, default: float = np.nan) -> float:
    """``value`` as a float, ``default`` when the tag is absent (a present but malformed value raises)."""
    return default if value is None else float(value)


def _lenient_float(value) -> float:
    """A float, or NaN when the tag is absent or not a number (optional fields never fail a header)."""
    try:
        return np.nan if value is None else float(value)
    except (TypeError, ValueError):
        return np.nan


def _geometry(ds: Read) -> dict:
    """The fields a volume needs: instance number, geometry, spacing, rescale."""
    v = {name: _value(ds, tag) for name, tag in _GEOMETRY_TAGS.items()}
    return {
        "instance_number": None if v["instance_number"] is None else _integer(v["instance_number"]),
        "position": _floats(v["position"], 3),
        "orientation": _floats(v["orientation"], 6),
        "pixel_spacing": _floats(v["pixel_spacing"], 2),
        "slice_thickness": _optional_float(v["slice_thickness"]),
        "spacing_between_slices": _optional_float(v["spacing_between_slices"]),
        "rescale_slope": _optional_float(v["rescale_slope"], 1.0),
        "rescale_intercept": _optional_float(v["rescale_intercept"], 0.0),
    }


def _header(ds: Read) -> dict:
    """:func:`_geometry` plus the descriptive fields."""
    ds = _full(ds)   # the text fields are decoded by pydicom, in the file's character set
    return {
        **_geometry(ds),
        "rows": int(ds.get("Rows", 0) or 0),
        "columns": int(ds.get("Columns", 0) or 0),
        "series_description": str(ds.get("SeriesDescription", "")),
        "series_instance_uid": str(ds.get("SeriesInstanceUID", "")),
        "photometric_interpretation": str(ds.get("PhotometricInterpretation", "")),
        "transfer_syntax": _transfer_syntax(ds),
        # timing (ms) for telling T1 from T2/STIR when no descriptions CSV exists
        "echo_time": _lenient_float(_value(ds, 0x00180081)),
        "repetition_time": _lenient_float(_value(ds, 0x00180080)),
        "inversion_time": _lenient_float(_value(ds, 0x00180082)),
    }


def _raw_text(ds: Read | None, tag: int) -> str:
    """A text tag's value as read ("" when absent), without pydicom's conversion of the element (which costs more
    than reading the file, for the few tags the hot path needs): a raw element's bytes, padding stripped."""
    element = None if ds is None else ds.get_item(tag)
    if element is None or element.value is None:
        return ""
    value = element.value
    return value.decode("ascii", "replace").strip(" \0") if isinstance(value, bytes) else str(value)


def _transfer_syntax(ds: Read) -> str:
    """The file's transfer syntax UID ("" without file meta): named in decode errors, where it is the usual cause."""
    return _raw_text(getattr(ds, "file_meta", None), 0x00020010)


def _dcmread(path: Path, *, stop_before_pixels: bool) -> Read:
    """pydicom's read, its many error types turned into :class:`InstanceReadError` (a missing file stays one).

    With the pixels, Explicit VR Little Endian files (native or RLE: every RSNA file) are walked by
    :mod:`spinelib.data.elements` to the same raw elements in a fraction of pydicom's time, their values converted
    only when asked (:func:`_full`); any other file, or one that reader refuses, is read by pydicom.
    """
    try:
        lean = None if stop_before_pixels else read_elements(path)
        return lean if lean is not None else pydicom.dcmread(path, stop_before_pixels=stop_before_pixels)
    except FileNotFoundError:
        raise
    except Exception as exc:  # pydicom raises many types; re-raised with the reason
        raise InstanceReadError(path, f"unreadable DICOM ({type(exc).__name__}: {exc})") from exc


def read_header(path: Path) -> dict:
    """The header fields of :func:`read_instance` without touching pixel data."""
    path = Path(path)
    ds = _dcmread(path, stop_before_pixels=True)
    try:
        return _header(ds)
    except (TypeError, ValueError) as exc:
        raise InstanceReadError(path, f"malformed header ({exc})") from exc


# Syntaxes whose single greyscale frame :func:`_stored_pixels` decodes itself: pydicom's pixel pipeline checks
# its options and some twenty tags at every call, which on a small MR slice costs as much as the decode
# (benchmarks/crops.py). Other syntaxes go through ``ds.pixel_array``.
_NATIVE_LITTLE_ENDIAN = (ExplicitVRLittleEndian, ImplicitVRLittleEndian)


# SamplesPerPixel, Rows, Columns, BitsAllocated, BitsStored, PixelRepresentation (all US)
_IMAGE_PIXEL_TAGS = (0x00280002, 0x00280010, 0x00280011, 0x00280100, 0x00280101, 0x00280103)


def _little_endian_us(ds: Read, tag: int) -> int | None:
    """A US tag of a little-endian file straight from its two bytes (None when absent or empty)."""
    element = ds.get_item(tag)
    if element is None or element.value in (None, b"", ""):
        return None
    return int.from_bytes(element.value[:2], "little") if isinstance(element.value, bytes) else int(element.value)


def _stored_pixels(ds: Read) -> np.ndarray:
    """The stored pixels (rows, columns) of one file, the array ``ds.pixel_array`` gives.

    Native little-endian and RLE Lossless files of one frame and one sample, 8 or 16 bits allocated, are decoded
    here (bytes -> uint8, uint16 or int16); pydicom decodes everything else, and every file whose values could
    need its sign extension (signed, fewer bits stored than allocated) or its handling of set bits above
    BitsStored, or whose pixel data is short (its error then names the problem). The tests compare both.
    """
    syntax = _transfer_syntax(ds)
    if syntax not in (*_NATIVE_LITTLE_ENDIAN, RLELossless):
        return _full(ds).pixel_array
    samples, rows, columns, bits, bits_stored, signed = (_little_endian_us(ds, tag) for tag in _IMAGE_PIXEL_TAGS)
    simple = (samples in (None, 1) and _integer(_value(ds, 0x00280008) or 1) == 1 and bits in (8, 16)   # NumberOfFrames
              and signed in (0, 1) and bool(rows) and bool(columns) and bool(bits_stored)
              and (signed == 0 or bits_stored == bits))
    if not simple:
        return _full(ds).pixel_array
    dtype = np.dtype(f"<{'i' if signed else 'u'}{bits // 8}")
    size = rows * columns
    pixel_data = ds.get_item(0x7FE00010).value   # the raw bytes: pydicom's conversion would only copy them
    if syntax == RLELossless:
        # RLE keeps each byte plane of a 16-bit sample as its own segment; decode_frame interleaves them again
        data = decode_frame(next(generate_frames(pixel_data, number_of_frames=1)), size, bits, "<")
    else:
        data = pixel_data
    if len(data) < size * dtype.itemsize:
        return _full(ds).pixel_array
    pixels = np.frombuffer(data, dtype=dtype, count=size).reshape(rows, columns)
    if not signed and bits_stored < bits and int(pixels.max()) >> bits_stored:
        return _full(ds).pixel_array
    return pixels


def _read_stored(path: Path, describe) -> tuple[dict, np.ndarray]:
    """Header (from ``describe``) and the stored 2-D pixel array, as decoded, of one file."""
    ds = _dcmread(path, stop_before_pixels=False)
    try:
        header = describe(ds)
    except (TypeError, ValueError) as exc:
        raise InstanceReadError(path, f"malformed header ({exc})") from exc
    # pydicom reads a file cut before its pixel data without complaint: check explicitly
    if 0x7FE00010 not in ds:   # PixelData
        raise InstanceReadError(path, "no pixel data (file truncated before PixelData?)")
    try:
        stored = _stored_pixels(ds)
    except Exception as exc:  # decoder plugins raise many types; re-raised with the reason
        raise InstanceReadError(
            path, f"pixel data not decodable ({type(exc).__name__}: {exc}; "
                  f"transfer syntax {_transfer_syntax(ds) or 'unknown'})") from exc
    if stored.ndim != 2:
        raise InstanceReadError(path, f"expected one greyscale frame, got pixel array of shape {stored.shape}")
    return header, stored


def _rescale_into(out: np.ndarray, stored: np.ndarray, header: dict) -> np.ndarray:
    """``out = stored * RescaleSlope + RescaleIntercept`` in float32, in place."""
    out[...] = stored
    # skipped when they are the identity: most MR files have slope 1 and intercept 0, and these are full passes
    if header["rescale_slope"] != 1.0:
        out *= np.float32(header["rescale_slope"])
    if header["rescale_intercept"] != 0.0:
        out += np.float32(header["rescale_intercept"])
    return out


def read_instance(path: Path) -> tuple[dict, np.ndarray]:
    """Header dict and the decoded 2-D pixels (float32, rescale slope/intercept applied).

    Raises :class:`InstanceReadError` (a ``ValueError``) with the reason for a
    truncated, unreadable or undecodable file.
    """
    header, stored = _read_stored(Path(path), _header)
    return header, _rescale_into(np.empty(stored.shape, dtype=np.float32), stored, header)


# --------------------------------------------------------------------------
# Intensities.
# --------------------------------------------------------------------------

def to_uint8(pixels: np.ndarray) -> np.ndarray:
    """Map normalised intensities in [0, 1] to 0..255, rounded (crops and study images are stored as 8 bits)."""
    return np.clip(np.rint(pixels * 255.0), 0, 255).astype(np.uint8)


def intensity_window(pixels: np.ndarray, lower: float = 1.0, upper: float = 99.0) -> tuple[float, float]:
    """The ``lower`` and ``upper`` percentiles of ``pixels``, from an odd-strided subsample of ~2**16 values.

    One pass whatever the array size; this runs once per series.
    """
    flat = pixels.reshape(-1)
    stride = max(1, flat.size // _PERCENTILE_SAMPLES) | 1  # odd: does not alias with even widths
    sample = flat[::stride]
    if sample.dtype.kind in "iu":   # stored integers (read_series' stored_integers): the same float32 arithmetic
        sample = sample.astype(np.float32)   # as for the rescaled pixels, so the same window
    low, high = percentiles(sample, (lower, upper))
    return float(low), float(high)


def percentiles(values: np.ndarray, qs: tuple[float, ...]) -> np.ndarray:
    """``np.percentile(values, qs)`` (its default, linear method) of a 1-D array, the same float64 numbers.

    Stored MR intensities are small non-negative integers (in float32 once rescaled): for those the order
    statistics come from a count of each value (``bincount``, then a cumulative sum) instead of numpy's partition,
    a fifth of the time. Percentile q sits at virtual index v = (n − 1) q / 100 of the sorted values a; with
    i = ⌊v⌋ and γ = v − i it is a[i] + (a[i+1] − a[i]) γ, or for γ ≥ 0.5 a[i+1] − (a[i+1] − a[i]) (1 − γ), numpy's
    two forms (its ``_lerp``), kept so the rounding is numpy's too (tested against ``np.percentile``). Other
    values (negative, fractional, large, NaN) go to ``np.percentile``.
    """
    if values.size == 0:
        return np.percentile(values, qs)             # numpy's own error
    lowest, highest = values.min(), values.max()
    if not (lowest >= 0 and highest < 1 << 16):      # also False for NaN
        return np.percentile(values, qs)
    ints = values.astype(np.intp)
    if not np.array_equal(ints, values):             # fractional values
        return np.percentile(values, qs)
    cumulative = np.cumsum(np.bincount(ints))        # cumulative[x] = number of values <= x
    n = values.size
    virtual = (n - 1) * (np.asarray(qs, dtype=np.float64) / 100)
    below = np.floor(virtual)
    gamma = virtual - below
    index = below.astype(np.intp)
    # a[k] is the smallest x with more than k values <= x; cast back so the differences round as numpy's do
    a = np.searchsorted(cumulative, index, side="right").astype(values.dtype)
    b = np.searchsorted(cumulative, np.minimum(index + 1, n - 1), side="right").astype(values.dtype)
    step = b - a
    return np.where(gamma >= 0.5, b - step * (1 - gamma), a + step * gamma)


def apply_window(out: np.ndarray, window: tuple[float, float]) -> np.ndarray:
    """``out = clip((out - low) / (high - low), 0, 1)`` in place (float32); a flat window gives zeros."""
    low, high = window
    if not high > low:
        out.fill(0.0)
        return out
    out -= np.float32(low)
    out *= np.float32(1.0 / (high - low))
    np.clip(out, 0.0, 1.0, out=out)
    return out


def normalise_intensity(pixels: np.ndarray, lower: float = 1.0, upper: float = 99.0) -> np.ndarray:
    """Window ``pixels`` to [0, 1] between its ``lower`` and ``upper`` percentiles (a new float32 array).

    ``out = clip((pixels - q_lower) / (q_upper - q_lower), 0, 1)`` with the
    percentiles of :func:`intensity_window`. A constant image maps to zeros.
    """
    out = np.array(pixels, dtype=np.float32)
    return apply_window(out, intensity_window(out, lower, upper))


# --------------------------------------------------------------------------
# A series.
# --------------------------------------------------------------------------

def cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The cross product a × b (3,) of two 3-vectors: ``np.cross``'s formula and values, at a tenth of its cost
    (it is called a few times per crop, and ``np.cross`` spends its time on shape handling)."""
    return np.array([a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]])


@dataclass
class Volume:
    """A series as a volume in patient-geometry order (see the module docstring)."""

    # (S, H, W): float32 intensities (rescaled, or windowed to [0, 1]), or the files' own integers where
    # read_series was asked for them (stored_integers)
    pixels: np.ndarray
    instance_numbers: np.ndarray
    positions: np.ndarray
    orientation: np.ndarray
    pixel_spacing: np.ndarray
    slice_spacing: float
    series_dir: Path
    failures: list[ReadFailure] = field(default_factory=list)
    # (S, 6) orientation of every slice: axial series may hold blocks of slices
    # with different orientations. None means every slice has ``orientation``.
    orientations: np.ndarray | None = None
    # the file meta ImplementationVersionName of the first usable file (name order): who wrote the series, e.g.
    # the phantom's stamp; "" when the file names none
    implementation_version_name: str = ""

    @property
    def normal(self) -> np.ndarray:
        """Slice normal ``n = r x c`` of the first slice."""
        return cross(self.orientation[:3], self.orientation[3:])

    def _orientation(self, index: int) -> np.ndarray:
        """Orientation (6,) = (row direction r, column direction c) of slice ``index``."""
        return self.orientation if self.orientations is None else self.orientations[index]

    def index_of(self, instance_number: int) -> int:
        """Position in the sorted volume of the slice with this InstanceNumber."""
        hits = np.flatnonzero(self.instance_numbers == int(instance_number))
        if hits.size == 0:
            raise KeyError(f"instance {instance_number} is not in series {self.series_dir}")
        return int(hits[0])

    def voxel(self, instance_number: int, x: float, y: float) -> tuple[int, float, float]:
        """(slice index, row, col) of pixel coordinate (x=col, y=row) on an instance."""
        index = self.index_of(instance_number)
        height, width = self.pixels.shape[1:]
        if not (0.0 <= x < width and 0.0 <= y < height):
            raise ValueError(f"(x={x}, y={y}) is outside the {height}x{width} image of instance "
                             f"{instance_number} in {self.series_dir}")
        return index, float(y), float(x)

    def to_patient(self, index: int, row: float, col: float) -> np.ndarray:
        """Patient-space position (mm) of (row, col) on slice ``index``.

        ``p = position_k + col * dc * r + row * dr * c``, with ``(dr, dc)`` the pixel spacing and ``r``, ``c``
        the slice's row and column direction cosines (DICOM C.7.6.2.1.1).
        """
        orientation = self._orientation(index)
        row_spacing, col_spacing = self.pixel_spacing
        return (self.positions[index]
                + col * col_spacing * orientation[:3]
                + row * row_spacing * orientation[3:])

    def from_patient(self, point: np.ndarray) -> tuple[float, float, float]:
        """Continuous (slice index, row, col) of a patient-space point.

        The slice index interpolates the slices' positions along the normal
        (extrapolating by ``slice_spacing`` beyond the ends); row and col are
        the projection on the nearest slice's plane.
        """
        point = np.asarray(point, dtype=np.float64)
        normal = self.normal
        along = self.positions @ normal            # (S,) each slice's distance along the normal (mm), increasing
        target = float(point @ normal)
        last = len(along) - 1
        spacing = self.slice_spacing if np.isfinite(self.slice_spacing) and self.slice_spacing > 0 else 1.0
        if target <= along[0]:
            index = (target - along[0]) / spacing
        elif target >= along[last]:
            index = last + (target - along[last]) / spacing
        else:
            index = float(np.interp(target, along, np.arange(len(along), dtype=np.float64)))
        # in-plane: project the offset from the nearest slice's origin on its row and column directions
        nearest = int(np.argmin(np.abs(along - target)))
        orientation = self._orientation(nearest)
        delta = point - self.positions[nearest]
        row_spacing, col_spacing = self.pixel_spacing
        col = float(delta @ orientation[:3]) / col_spacing
        row = float(delta @ orientation[3:]) / row_spacing
        return index, row, col


def _geometry_failure(header: dict) -> str | None:
    """Why a slice cannot be placed in the volume (a geometry tag missing), or None."""
    if np.isnan(header["position"]).any():
        return "no usable ImagePositionPatient"
    if np.isnan(header["orientation"]).any():
        return "no usable ImageOrientationPatient"
    if np.isnan(header["pixel_spacing"]).any():
        return "no usable PixelSpacing"
    if header["instance_number"] is None:
        return "no InstanceNumber"
    return None


def _sort_order(positions: np.ndarray, orientations: np.ndarray, instances: np.ndarray) -> np.ndarray:
    """Order slices by position along the mean (sign-aligned) slice normal."""
    normals = np.cross(orientations[:, :3], orientations[:, 3:])   # (S, 3) n = r x c per slice
    # blocks of axial slices may be tilted differently or flipped: align every normal with the first before averaging
    signs = np.where(normals @ normals[0] < 0, -1.0, 1.0)
    normal = (normals * signs[:, None]).mean(axis=0)
    along = positions @ normal
    return np.lexsort((instances, along))   # by position; equal positions by instance number (deterministic)


def _implementation_name(ds: Read) -> str:
    """The file meta ``ImplementationVersionName`` (the writing software's name), "" without one.

    Recorded so that callers can tell who wrote a series (e.g. the phantom's stamp) without reading a file again.
    """
    return _raw_text(getattr(ds, "file_meta", None), 0x00020013)


def _series_header(ds: Read) -> dict:
    """:func:`_geometry` plus the writer's implementation name: what :func:`read_series` keeps of each header."""
    return {**_geometry(ds), "implementation_version_name": _implementation_name(ds)}


def _series_paths(series_dir: Path) -> list[Path]:
    """The series' ``*.dcm`` files in name order.

    A missing or empty folder raises :class:`SeriesReadError` (an error for the caller, not a failure entry). The
    order only makes failures and the progress bar stable: slices are ordered later by geometry, since file names
    need not follow the anatomy.
    """
    if not series_dir.is_dir():
        raise SeriesReadError(f"{series_dir}: series folder not found")
    paths = sorted(series_dir.glob("*.dcm"))
    if not paths:
        raise SeriesReadError(f"{series_dir}: no .dcm files")
    return paths


def _read_slice(path: Path) -> tuple[dict, np.ndarray] | ReadFailure:
    """One file's header (with its ``path``) and stored pixels, or the :class:`ReadFailure` saying why it is unusable.

    The pixels are stored values, not rescaled yet: rescaling happens once, straight into the stacked array, so a
    slice is never held twice in float32. A slice missing a geometry tag (position, orientation, pixel spacing,
    instance number) cannot be placed in the stack, so it is as good as unreadable.
    """
    try:
        header, image = _read_stored(path, _series_header)
    except (InstanceReadError, OSError) as exc:
        return ReadFailure(str(path), getattr(exc, "reason", str(exc)))
    reason = _geometry_failure(header)
    if reason is not None:
        return ReadFailure(str(path), reason)
    header["path"] = str(path)   # remembered for the matrix check, which reports failures by file
    return header, image


def _read_slices(paths: list[Path], *, progress: bool, desc: str
                 ) -> tuple[list[dict], list[np.ndarray], list[ReadFailure]]:
    """(headers, stored images, failures) of the usable files, each file read once, in ``paths`` order."""
    headers: list[dict] = []
    images: list[np.ndarray] = []
    failures: list[ReadFailure] = []
    for path in progress_bar(paths, show=progress, desc=desc, leave=False):
        result = _read_slice(path)
        if isinstance(result, ReadFailure):
            failures.append(result)
            continue
        headers.append(result[0])
        images.append(result[1])
    return headers, images, failures


def _keep_majority_matrix(headers: list[dict], images: list[np.ndarray]
                          ) -> tuple[list[dict], list[np.ndarray], list[ReadFailure]]:
    """(headers, images) of the slices with the series' most common matrix, and a failure for each other slice.

    A stray localiser or resized slice cannot be stacked. Ties go to the matrix seen first; with no images,
    nothing changes.
    """
    if not images:
        return headers, images, []
    majority, _ = Counter(image.shape for image in images).most_common(1)[0]
    keep = [image.shape == majority for image in images]
    dropped = [ReadFailure(header["path"], f"matrix {image.shape[0]}x{image.shape[1]} "
                                           f"differs from the series' {majority[0]}x{majority[1]}")
               for header, image, kept in zip(headers, images, keep) if not kept]
    return ([h for h, k in zip(headers, keep) if k], [i for i, k in zip(images, keep) if k], dropped)


def _no_slice_error(series_dir: Path, failures: list[ReadFailure]) -> SeriesReadError:
    """The error when nothing usable is left: every file's reason, since one cause usually explains all."""
    reasons = "; ".join(f"{Path(f.path).name}: {f.reason}" for f in failures)
    return SeriesReadError(f"{series_dir}: no readable slice ({reasons})")


def _geometric_order(headers: list[dict]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(order, positions, orientations, instance numbers), the last three already in that order.

    ``order`` (S,) indexes ``headers``: position along the mean slice normal, ties broken by instance number
    (see :func:`_sort_order`).
    """
    positions = np.stack([h["position"] for h in headers])
    orientations = np.stack([h["orientation"] for h in headers])
    instances = np.asarray([h["instance_number"] for h in headers], dtype=np.int64)
    order = _sort_order(positions, orientations, instances)
    return order, positions[order], orientations[order], instances[order]


def _identity_rescale(headers: list[dict], images: list[np.ndarray]) -> bool:
    """True when every slice is stored as integers whose rescale is the identity (slope 1, intercept 0): then the
    stored values are the intensities, and each one is exact in float32 (16-bit integers, below 2**24)."""
    return all(h["rescale_slope"] == 1.0 and h["rescale_intercept"] == 0.0 for h in headers) and all(
        image.dtype.kind in "iu" and image.dtype.itemsize <= 2 for image in images)


def _stack_pixels(headers: list[dict], images: list[np.ndarray], order: np.ndarray,
                  normalise: tuple[float, float] | None, stored_integers: bool = False) -> np.ndarray:
    """(S, H, W) float32 of the slices in ``order``, rescaled, and windowed over the whole series if ``normalise``.

    Filled slice by slice: one float32 array for the series, no per-slice temporaries. One window for the whole
    series (not per slice) keeps slices comparable in brightness. With ``stored_integers`` (and no ``normalise``)
    a series whose rescale is the identity keeps the files' integers instead (see :func:`read_series`).
    """
    if stored_integers and normalise is None and _identity_rescale(headers, images):
        return np.stack([images[i] for i in order])   # one common integer type (numpy promotes mixed ones)
    pixels = np.empty((len(order), *images[0].shape), dtype=np.float32)
    for k, i in enumerate(order):
        _rescale_into(pixels[k], images[i], headers[i])
    if normalise is not None:
        apply_window(pixels, intensity_window(pixels, *normalise))  # ``pixels`` is ours: in place
    return pixels


def _slice_spacing(positions: np.ndarray, orientations: np.ndarray, first: dict) -> float:
    """The median gap between sorted slice positions along the first slice's normal.

    ``n = r x c`` of the first slice; the gaps are ``|Δ(position · n)|`` between neighbours. A single slice has no
    gap to measure: then the header's SpacingBetweenSlices (optional in DICOM), else its SliceThickness, of
    ``first`` (the first slice in sorted order; a series shares them).
    """
    normal = np.cross(orientations[0, :3], orientations[0, 3:])
    gaps = np.abs(np.diff(positions @ normal))
    if gaps.size:
        return float(np.median(gaps))
    fallback = first["spacing_between_slices"]
    return float(fallback if np.isfinite(fallback) else first["slice_thickness"])


def read_series(
    series_dir: Path,
    *,
    normalise: tuple[float, float] | None = (1.0, 99.0),
    progress: bool = False,
    stored_integers: bool = False,
) -> Volume:
    """Read every ``*.dcm`` of a series folder once into a :class:`Volume`.

    Slices are sorted by ``ImagePositionPatient`` projected on the slice
    normal. Unreadable files, files without geometry, and slices whose matrix
    differs from the series' most common one are skipped and listed in
    ``Volume.failures``. ``normalise=(lower, upper)`` windows the whole series
    with :func:`normalise_intensity`; ``None`` keeps rescaled intensities
    (float32). With ``normalise=None`` and ``stored_integers``, a series
    whose every slice has the identity rescale (most MR) keeps the files'
    integer type: the same intensities, exact in float32, in half the
    memory and without a float copy of every voxel (crop extraction casts
    only the pixels it cuts).
    Raises :class:`SeriesReadError` when no slice is usable.
    """
    series_dir = Path(series_dir)
    paths = _series_paths(series_dir)
    headers, images, failures = _read_slices(paths, progress=progress, desc=series_dir.name)
    headers, images, odd = _keep_majority_matrix(headers, images)
    failures += odd
    if not images:
        raise _no_slice_error(series_dir, failures)
    order, positions, orientations, instances = _geometric_order(headers)
    first = headers[order[0]]   # spacing is taken from the first slice in sorted order
    return Volume(
        pixels=_stack_pixels(headers, images, order, normalise, stored_integers),
        instance_numbers=instances,
        positions=positions,
        # copies of the first slice's orientation and spacing, so that the Volume owns its arrays
        orientation=orientations[0].copy(),
        pixel_spacing=first["pixel_spacing"].copy(),
        slice_spacing=_slice_spacing(positions, orientations, first),
        series_dir=series_dir,
        failures=failures,
        # per-slice orientations are kept only when they differ (axial blocks); sagittal series share one
        orientations=None if np.allclose(orientations, orientations[0], atol=1e-4) else orientations,
        # the first usable file in name order, as a study's origin check looked at its first file
        implementation_version_name=headers[0]["implementation_version_name"],
    )
