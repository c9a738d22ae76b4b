"""The DICOM loader: geometric order, transfer syntaxes, failures, voxel mapping."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.pixels import get_encoder
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLSLossless,
    MRImageStorage,
    RLELossless,
    generate_uid,
)

from spinelib.data.dicom import (
    InstanceReadError,
    SeriesReadError,
    _integer,
    _stored_pixels,
    cross,
    intensity_window,
    normalise_intensity,
    percentiles,
    read_header,
    read_instance,
    read_series,
)
from spinelib.data.elements import read_elements


def test_slices_sorted_by_position_not_name_or_instance(sagittal_series, rsna):
    folder, instances, positions = sagittal_series
    volume = read_series(folder, normalise=None)
    assert volume.pixels.shape == (6, 32, 32) and volume.pixels.dtype == np.float32
    np.testing.assert_array_equal(volume.instance_numbers, instances)
    np.testing.assert_allclose(volume.positions, positions)
    for k in range(6):
        np.testing.assert_array_equal(volume.pixels[k], rsna.slice_pixels(k))
    np.testing.assert_allclose(volume.orientation, rsna.SAGITTAL_IOP)
    np.testing.assert_allclose(volume.pixel_spacing, [0.5, 0.75])
    np.testing.assert_allclose(volume.normal, [-1.0, 0.0, 0.0])
    assert volume.slice_spacing == pytest.approx(3.5)
    assert volume.failures == []
    assert volume.instance_numbers.dtype == np.int64


def test_stored_integers_are_the_rescaled_intensities_and_give_the_same_window(sagittal_series):
    """Crop extraction keeps the files' integers (no float copy of every voxel): the same values, window too."""
    folder, _, _ = sagittal_series
    floats, ints = read_series(folder, normalise=None), read_series(folder, normalise=None, stored_integers=True)
    assert floats.pixels.dtype == np.float32 and ints.pixels.dtype == np.uint16
    np.testing.assert_array_equal(ints.pixels, floats.pixels)
    assert intensity_window(ints.pixels) == intensity_window(floats.pixels)
    # a normalised read ignores the flag: windowed floats as always
    assert read_series(folder, stored_integers=True).pixels.dtype == np.float32


def test_stored_integers_fall_back_to_floats_when_a_slice_is_rescaled(sagittal_series, rsna):
    folder, _, _ = sagittal_series
    rescaled = sorted(folder.glob("*.dcm"))[0]
    header = read_header(rescaled)
    rsna.write_dicom(rescaled, pydicom.dcmread(rescaled).pixel_array, instance_number=header["instance_number"],
                     position=tuple(header["position"]), rescale=(2.0, -5.0))
    volume = read_series(folder, normalise=None, stored_integers=True)
    assert volume.pixels.dtype == np.float32
    np.testing.assert_array_equal(volume.pixels, read_series(folder, normalise=None).pixels)


def test_series_is_normalised_to_unit_range(sagittal_series):
    folder, _, _ = sagittal_series
    volume = read_series(folder)
    assert volume.pixels.dtype == np.float32
    assert volume.pixels.min() == 0.0 and volume.pixels.max() == 1.0
    # order is kept: later slices hold larger raw values
    means = volume.pixels.mean(axis=(1, 2))
    assert np.all(np.diff(means) > 0)


def _encoder_or_skip(uid):
    if uid in (ExplicitVRLittleEndian, DeflatedExplicitVRLittleEndian):
        return
    encoder = get_encoder(uid)
    if not encoder.is_available:
        pytest.skip(f"no {uid.name} encoder: {encoder.missing_dependencies}")


@pytest.mark.parametrize(
    "syntax",
    [ExplicitVRLittleEndian, RLELossless, JPEGLSLossless, JPEG2000Lossless, DeflatedExplicitVRLittleEndian],
    ids=["explicit-le", "rle", "jpeg-ls", "jpeg2000", "deflated"],
)
def test_transfer_syntaxes_decode_to_the_same_pixels(tmp_path, rsna, syntax):
    _encoder_or_skip(syntax)
    pixels = rsna.slice_pixels(3, shape=(32, 40))  # J2K needs >= 32 px for its 6 resolutions
    path = rsna.write_dicom(tmp_path / "1.dcm", pixels, instance_number=1, position=(0, 0, 0),
                            transfer_syntax=syntax)
    header, decoded = read_instance(path)
    assert header["transfer_syntax"] == syntax
    assert (header["rows"], header["columns"]) == (32, 40)
    np.testing.assert_array_equal(decoded, pixels.astype(np.float32))


def test_compressed_series_reads_like_uncompressed(tmp_path, rsna):
    _encoder_or_skip(JPEG2000Lossless)
    for k, syntax in enumerate([JPEG2000Lossless, RLELossless, ExplicitVRLittleEndian]):
        rsna.write_dicom(tmp_path / f"{k + 1}.dcm", rsna.slice_pixels(k), instance_number=k + 1,
                         position=(-2.0 * k, 0, 0), transfer_syntax=syntax)
    volume = read_series(tmp_path, normalise=None)
    for k in range(3):
        np.testing.assert_array_equal(volume.pixels[k], rsna.slice_pixels(k))


def test_rescale_slope_and_intercept_are_applied(tmp_path, rsna):
    pixels = rsna.slice_pixels(0, shape=(4, 4))
    path = rsna.write_dicom(tmp_path / "1.dcm", pixels, instance_number=1, position=(0, 0, 0), rescale=(2.0, -5.0))
    _, decoded = read_instance(path)
    np.testing.assert_allclose(decoded, 2.0 * pixels - 5.0)


def test_truncated_and_garbage_files_are_reported_and_skipped(sagittal_series):
    folder, instances, _ = sagittal_series
    truncated = folder / "8.dcm"
    data = truncated.read_bytes()
    truncated.write_bytes(data[: len(data) - 300])
    garbage = folder / "99.dcm"
    garbage.write_bytes(b"not a dicom file at all")
    volume = read_series(folder, normalise=None)
    assert {f.path for f in volume.failures} == {str(truncated), str(garbage)}
    reasons = {f.path: f.reason for f in volume.failures}
    assert "pixel data" in reasons[str(truncated)]
    assert "unreadable" in reasons[str(garbage)]
    np.testing.assert_array_equal(volume.instance_numbers, [i for i in instances if i != 8])
    with pytest.raises(InstanceReadError, match="8.dcm"):
        read_instance(truncated)
    assert read_header(truncated)["instance_number"] == 8  # the header alone is intact


def test_slice_with_other_matrix_is_skipped(sagittal_series, rsna):
    folder, _, _ = sagittal_series
    odd = rsna.write_dicom(folder / "50.dcm", rsna.slice_pixels(0, shape=(16, 32)), instance_number=50,
                           position=(100.0, 0, 0))
    volume = read_series(folder)
    assert volume.pixels.shape == (6, 32, 32)
    assert [f.path for f in volume.failures] == [str(odd)]
    assert "16x32" in volume.failures[0].reason and "32x32" in volume.failures[0].reason


def test_no_readable_slice_raises_with_folder_and_reasons(tmp_path):
    (tmp_path / "1.dcm").write_bytes(b"junk")
    with pytest.raises(SeriesReadError, match=r"no readable slice.*1\.dcm: unreadable"):
        read_series(tmp_path)
    with pytest.raises(SeriesReadError, match="not found"):
        read_series(tmp_path / "absent")


def test_voxel_maps_instance_and_pixel_coordinate(sagittal_series):
    folder, _, _ = sagittal_series
    volume = read_series(folder)
    assert volume.voxel(8, x=3.0, y=7.5) == (2, 7.5, 3.0)
    with pytest.raises(ValueError, match="outside"):
        volume.voxel(8, x=32.0, y=1.0)
    with pytest.raises(KeyError, match=r"instance 7 .*series"):
        volume.index_of(7)


def test_patient_space_round_trip(sagittal_series):
    folder, _, positions = sagittal_series
    volume = read_series(folder)
    # slice 2, row 4, col 2: p + 2 * 0.75 * (0, 1, 0) + 4 * 0.5 * (0, 0, -1)
    point = volume.to_patient(2, row=4.0, col=2.0)
    np.testing.assert_allclose(point, positions[2] + [0.0, 1.5, -2.0])
    assert volume.from_patient(point) == pytest.approx((2.0, 4.0, 2.0))
    index, row, col = volume.from_patient(volume.to_patient(4, row=10.25, col=27.5))
    assert (index, row, col) == pytest.approx((4.0, 10.25, 27.5))
    halfway = (volume.to_patient(2, 5.0, 6.0) + volume.to_patient(3, 5.0, 6.0)) / 2
    assert volume.from_patient(halfway) == pytest.approx((2.5, 5.0, 6.0))


def test_normalise_intensity_windows_percentiles():
    ramp = np.arange(101, dtype=np.float32)
    np.testing.assert_allclose(normalise_intensity(ramp, 0.0, 100.0), ramp / 100.0, atol=1e-6)
    clipped = normalise_intensity(ramp, 10.0, 90.0)
    assert clipped[:11].max() == 0.0 and clipped[90:].min() == 1.0
    assert normalise_intensity(np.full((4, 4), 7.0)).max() == 0.0
    rng = np.random.default_rng(0)
    big = rng.normal(size=(8, 256, 256)).astype(np.float32)
    out = normalise_intensity(big)
    exact = np.percentile(big, [1.0, 99.0])
    assert out.dtype == np.float32 and out.shape == big.shape
    assert np.mean(big <= exact[0]) == pytest.approx(np.mean(out == 0.0), abs=2e-3)


def test_volume_records_who_wrote_the_files(sagittal_series, tiny_phantom):
    folder, _, _ = sagittal_series
    assert read_series(folder).implementation_version_name.startswith("PYDICOM")   # pydicom's own stamp
    phantom_series = sorted((tiny_phantom / "train_images").glob("*/*"))[0]
    assert read_series(phantom_series).implementation_version_name == "SPINELIB_PHANTOM"


def _pixel_file(path, pixels: np.ndarray, *, bits_stored: int, syntax) -> Path:
    """One single-frame greyscale file of ``pixels`` (uint8, uint16 or int16) in transfer syntax ``syntax``."""
    ds = pydicom.Dataset()
    ds.file_meta = pydicom.dataset.FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = MRImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID, ds.SOPInstanceUID = MRImageStorage, ds.file_meta.MediaStorageSOPInstanceUID
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = pixels.itemsize * 8, bits_stored, bits_stored - 1
    ds.PixelRepresentation = int(pixels.dtype.kind == "i")
    ds.PixelData = np.ascontiguousarray(pixels).tobytes()
    if syntax == RLELossless:
        ds.compress(RLELossless)
    elif syntax == ImplicitVRLittleEndian:
        ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    ds.save_as(path, enforce_file_format=True)
    return path


@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian, RLELossless],
                         ids=["explicit-le", "implicit-le", "rle"])
@pytest.mark.parametrize("dtype, bits_stored, high, decoded_here", [
    (np.uint16, 12, 4095, True),     # RSNA's 12-bit MR
    (np.uint16, 16, 65535, True),
    (np.uint8, 8, 255, True),
    (np.int16, 16, 30000, True),      # signed, every bit stored: nothing to extend
    (np.int16, 12, 2047, False),      # signed in 12 of 16 bits: pydicom sign-extends
    (np.uint16, 12, 8191, False),     # a bit above BitsStored set: pydicom decides what it means
], ids=["u16-12", "u16-16", "u8", "i16-16", "i16-12", "u16-12-high-bits"])
def test_pixels_decoded_without_pydicoms_pipeline_are_its_pixel_array(tmp_path, monkeypatch, syntax, dtype,
                                                                      bits_stored, high, decoded_here):
    rng = np.random.default_rng(3)
    low = -high - 1 if np.dtype(dtype).kind == "i" else 0
    pixels = rng.integers(low, high + 1, size=(24, 40)).astype(dtype)
    if bits_stored < np.dtype(dtype).itemsize * 8 and np.dtype(dtype).kind == "i":
        pixels = pixels.astype(np.uint16).astype(dtype) & 0x0FFF    # 12-bit two's complement as stored
    path = _pixel_file(tmp_path / "1.dcm", pixels, bits_stored=bits_stored, syntax=syntax)
    expected = pydicom.dcmread(path).pixel_array
    calls = []
    original = pydicom.Dataset.pixel_array
    monkeypatch.setattr(pydicom.Dataset, "pixel_array",
                        property(lambda ds: calls.append(1) or original.fget(ds)))
    decoded = _stored_pixels(pydicom.dcmread(path))
    assert decoded.dtype == expected.dtype and decoded.shape == (24, 40)
    np.testing.assert_array_equal(decoded, expected)
    assert (not calls) == decoded_here
    # the lean reader's dataset (every file but the implicit-VR one) decodes to the same array, by either route
    lean = read_elements(path)
    assert (lean is None) == (syntax == ImplicitVRLittleEndian)
    if lean is not None:
        np.testing.assert_array_equal(_stored_pixels(lean), expected)


def test_geometry_read_from_the_raw_tags_is_pydicoms(tmp_path, rsna):
    path = rsna.write_dicom(tmp_path / "1.dcm", rsna.slice_pixels(0), instance_number=7, position=(1.5, -2.25, 3e-3),
                            rescale=(2.5, -10.0))
    ds = pydicom.dcmread(path)
    header = read_header(path)
    assert header["instance_number"] == 7
    np.testing.assert_array_equal(header["position"], [float(v) for v in ds.ImagePositionPatient])
    np.testing.assert_array_equal(header["orientation"], [float(v) for v in ds.ImageOrientationPatient])
    np.testing.assert_array_equal(header["pixel_spacing"], [float(v) for v in ds.PixelSpacing])
    assert (header["rescale_slope"], header["rescale_intercept"]) == (2.5, -10.0)
    assert header["slice_thickness"] == float(ds.SliceThickness)
    # implicit VR files carry no VR on their raw elements: read through pydicom's dictionary
    ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    ds.save_as(tmp_path / "implicit.dcm", enforce_file_format=True)
    implicit = read_header(tmp_path / "implicit.dcm")
    np.testing.assert_array_equal(implicit["position"], header["position"])
    assert implicit["instance_number"] == 7


@pytest.mark.parametrize("text, number", [("12", 12), (" 12 ", 12), ("12.0", 12)])
def test_instance_number_text_is_an_integer(text, number):
    assert _integer(text) == number


def test_a_fractional_instance_number_is_malformed():
    with pytest.raises(ValueError, match="not an integer"):
        _integer("12.5")


def test_cross_is_numpys_cross_to_the_bit():
    rng = np.random.default_rng(0)
    for a, b in rng.standard_normal((200, 2, 3)) * 10.0 ** rng.uniform(-6, 6, (200, 2, 1)):
        assert np.array_equal(cross(a, b), np.cross(a, b))


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.uint16, np.int16])
def test_percentiles_by_counting_are_numpys_to_the_bit(dtype):
    """Integer-valued samples take the counting path; every result equals np.percentile's, dtype included."""
    rng = np.random.default_rng(7)
    for trial in range(300):
        n = int(rng.integers(1, 5000)) if trial % 2 else int(rng.integers(1, 12))
        values = rng.integers(0, int(rng.choice([2, 50, 4096, 65535])), size=n).astype(dtype)
        for qs in [(1.0, 99.0), (0.0, 100.0), (0.5, 99.5), (37.3, 50.0)]:
            expected = np.percentile(values, qs)
            got = percentiles(values, qs)
            assert got.dtype == expected.dtype and np.array_equal(got, expected), (n, qs)


@pytest.mark.parametrize("values", [np.array([1.5, 2.0, 7.25], dtype=np.float32), np.array([-3.0, 2.0, 9.0]),
                                    np.array([1.0, np.nan, 4.0]), np.array([0.0, 70000.0, 3.0])])
def test_percentiles_of_other_values_are_numpys(values):
    """Fractional, negative, NaN and large samples go to np.percentile itself."""
    expected, got = np.percentile(values, (1.0, 99.0)), percentiles(values, (1.0, 99.0))
    assert np.array_equal(got, expected, equal_nan=True)
