"""The lean Explicit VR Little Endian reader reads what pydicom reads, and refuses what it does not take."""

from __future__ import annotations

import struct

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import DeflatedExplicitVRLittleEndian, ImplicitVRLittleEndian, RLELossless

from spinelib.data import dicom
from spinelib.data.elements import read_elements


def read_dataset(path) -> pydicom.Dataset | None:
    """The lean reader's elements as pydicom's Dataset (None for a file it refuses)."""
    raw = read_elements(path)
    return None if raw is None else raw.dataset()


def _same_as_pydicom(path) -> None:
    """The lean read holds every top-level non-sequence element of pydicom's, with the same VR and value, and the
    same file meta."""
    lean, full = read_dataset(path), pydicom.dcmread(path)
    assert lean is not None
    expected = {tag for tag in full.keys() if full[tag].VR != "SQ"}
    assert set(lean.keys()) == expected
    for tag in expected:
        assert lean[tag].VR == full[tag].VR, tag
        assert lean[tag].value == full[tag].value, tag
    assert lean.file_meta == full.file_meta
    assert lean.original_character_set == full.original_character_set
    assert np.array_equal(lean.pixel_array, full.pixel_array)   # pydicom decodes the lean dataset too


@pytest.mark.parametrize("syntax", [pydicom.uid.ExplicitVRLittleEndian, RLELossless])
def test_reads_the_elements_pydicom_reads(tmp_path, rsna, syntax):
    pixels = rsna.slice_pixels(2)
    path = rsna.write_dicom(tmp_path / "a.dcm", pixels, instance_number=3, position=(1.0, 2.0, 3.0),
                            transfer_syntax=syntax, rescale=(2.0, -5.0))
    _same_as_pydicom(path)


@pytest.mark.parametrize("charset", [None, "ISO_IR 100", ["", "ISO 2022 IR 87"], ["ISO 2022 IR 6", "ISO 2022 IR 100"]])
def test_character_set_is_recorded_as_pydicom_records_it(tmp_path, rsna, charset):
    """The encoding is derived from the raw SpecificCharacterSet (absent, one value, several, an empty first)."""
    path = rsna.write_dicom(tmp_path / "a.dcm", rsna.slice_pixels(1), instance_number=1, position=(0.0, 0.0, 0.0))
    ds = pydicom.dcmread(path)
    if charset is None:
        ds.pop(0x00080005, None)
    else:
        ds.SpecificCharacterSet = charset
    ds.save_as(path, enforce_file_format=True)
    assert (read_dataset(path).get_item(0x00080005) is None) == (charset is None)
    _same_as_pydicom(path)


def test_every_phantom_file_reads_as_pydicom_reads(tiny_phantom):
    files = sorted(tiny_phantom.rglob("*.dcm"))[::7]
    assert files
    for path in files:
        _same_as_pydicom(path)


def _with_sequences(path, rsna, tmp_path, undefined: bool):
    """A file with a top-level sequence whose first item nests another sequence, and a private element after it:
    the walk must skip the sequences and find what follows. ``undefined``: the sequences and items are written
    with undefined lengths and delimiters (as many scanners do), else with their lengths."""
    source = rsna.write_dicom(tmp_path / "plain.dcm", rsna.slice_pixels(1), instance_number=1,
                              position=(0.0, 0.0, 0.0))
    ds = pydicom.dcmread(source)
    inner = Dataset()
    inner.ReferencedSOPInstanceUID = "1.2.3"
    item = Dataset()
    item.ReferencedSOPClassUID = "1.2.840.10008.5.1.4.1.1.4"
    item.ReferencedImageSequence = [inner]
    ds.ReferencedImageSequence = [item, Dataset()]
    ds.add_new(0x00291010, "LO", "private text")
    for element, items in ((ds["ReferencedImageSequence"], [item, ds.ReferencedImageSequence[1]]),
                           (item["ReferencedImageSequence"], [inner])):
        element.is_undefined_length = undefined
        for each in items:
            each.is_undefined_length_sequence_item = undefined
    ds.save_as(path, enforce_file_format=True)
    return path


@pytest.mark.parametrize("undefined", [True, False])
def test_sequences_are_skipped_nested_items_and_all(tmp_path, rsna, undefined):
    path = _with_sequences(tmp_path / "seq.dcm", rsna, tmp_path, undefined)
    header = struct.pack("<HH2s2x", 0x0008, 0x1140, b"SQ")
    length = struct.unpack_from("<I", path.read_bytes(), path.read_bytes().index(header) + 8)[0]
    assert (length == 0xFFFFFFFF) == undefined
    _same_as_pydicom(path)
    assert 0x00081140 not in read_dataset(path)
    assert read_dataset(path)[0x00291010].value == "private text"


@pytest.mark.parametrize("syntax", [ImplicitVRLittleEndian, DeflatedExplicitVRLittleEndian])
def test_other_transfer_syntaxes_are_left_to_pydicom(tmp_path, rsna, syntax):
    path = rsna.write_dicom(tmp_path / "a.dcm", rsna.slice_pixels(0), instance_number=1, position=(0.0, 0.0, 0.0))
    if syntax != DeflatedExplicitVRLittleEndian:
        ds = pydicom.dcmread(path)
        ds.file_meta.TransferSyntaxUID = syntax
        ds.save_as(path, implicit_vr=syntax.is_implicit_VR, little_endian=syntax.is_little_endian)
    else:
        path = rsna.write_dicom(tmp_path / "b.dcm", rsna.slice_pixels(0), instance_number=1,
                                position=(0.0, 0.0, 0.0), transfer_syntax=syntax)
    assert read_dataset(path) is None
    header, pixels = dicom.read_instance(path)   # pydicom reads it instead
    assert header["instance_number"] == 1 and pixels.shape == rsna.slice_pixels(0).shape


def test_files_it_does_not_take_are_refused(tmp_path, rsna):
    path = rsna.write_dicom(tmp_path / "a.dcm", rsna.slice_pixels(0), instance_number=1, position=(0.0, 0.0, 0.0))
    raw = path.read_bytes()
    assert struct.pack("<HH2s", 0x0008, 0x103E, b"LO") in raw
    cases = {
        "no preamble": raw[132:],
        "cut inside an element header": raw[:-len(rsna.slice_pixels(0).tobytes()) - 5],
        "cut inside the pixel data": raw[:-10],
        "an unknown VR": raw.replace(struct.pack("<HH2s", 0x0008, 0x103E, b"LO"),       # SeriesDescription
                                     struct.pack("<HH2s", 0x0008, 0x103E, b"ZZ")),
    }
    for name, data in cases.items():
        (tmp_path / "bad.dcm").write_bytes(data)
        assert read_dataset(tmp_path / "bad.dcm") is None, name


def test_a_truncated_file_still_gets_pydicoms_reason(tmp_path, rsna):
    """A file the lean reader refuses goes to pydicom, so its failure reads as before."""
    path = rsna.write_dicom(tmp_path / "a.dcm", rsna.slice_pixels(0), instance_number=1, position=(0.0, 0.0, 0.0))
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(dicom.InstanceReadError, match="a.dcm"):
        dicom.read_instance(path)


def test_an_element_after_the_pixel_data_is_read_as_pydicom_reads_it(tmp_path, rsna):
    """The pixel data is usually last (and then kept apart from the header bytes); trailing padding is read too."""
    path = rsna.write_dicom(tmp_path / "a.dcm", rsna.slice_pixels(1), instance_number=1, position=(0.0, 0.0, 0.0))
    assert read_elements(path)._pixel_data is not None
    ds = pydicom.dcmread(path)
    ds.add_new(0xFFFCFFFC, "OB", b"\0\0\0\0")   # Data Set Trailing Padding, after (7FE0,0010)
    ds.save_as(path, enforce_file_format=True)
    raw = read_elements(path)
    assert raw._pixel_data is None and raw.get_item(0xFFFCFFFC).value == b"\0\0\0\0"
    _same_as_pydicom(path)
