"""A lean reader for the commonest DICOM encoding: Explicit VR Little Endian, native or RLE Lossless pixel data.

Every RSNA file and every phantom file is encoded so. pydicom's ``dcmread`` parses such a file element by element
in Python, with checks and hooks at each one; for a small MR slice that costs about as much as decoding its
pixels (``benchmarks/crops.py``). :func:`read_dataset` walks the same bytes with one ``struct`` call per element
and hands pydicom a :class:`pydicom.Dataset` of the same raw elements (``RawDataElement``: tag, VR, value bytes),
so that everything downstream (value conversion, ``ds.pixel_array``) is pydicom's own.

The walk is deliberately narrow. It returns ``None``, and the caller reads the file with pydicom instead,
for anything outside its lane: no ``DICM`` preamble, another transfer syntax (implicit VR, big endian, deflate,
JPEG, ...), an element running past the end of the file, an unknown VR, an undefined length on anything but a
sequence or the encapsulated pixel data. So a file it takes is read to the same elements as pydicom reads it
(tested on every kind of file the tests write), and a file it refuses is reported with pydicom's own error.

Top-level sequences (``SQ``) are skipped, nested items and all: no caller reads one, and leaving them out keeps
the walk flat. Layout (PS3.5 7.1.2): tag group and element (2 + 2 bytes), VR (2 ASCII letters), then either a
2-byte length, or for the VRs of :data:`LONG_VRS` 2 reserved bytes and a 4-byte length; the value follows.
"""

from __future__ import annotations

import struct
from pathlib import Path

import pydicom
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.tag import BaseTag
from pydicom.uid import ExplicitVRLittleEndian, RLELossless

# VRs whose length field is 4 bytes after 2 reserved ones (PS3.5 table 7.1-1); the others have a 2-byte length
LONG_VRS = frozenset({b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"})
# every VR of PS3.5 6.2: a pair of letters outside it means the bytes are not what this reader expects
SHORT_VRS = frozenset({b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FL", b"FD", b"IS", b"LO", b"LT", b"PN",
                       b"SH", b"SL", b"SS", b"ST", b"TM", b"UI", b"UL", b"US"})
VR_NAMES = {vr: vr.decode("ascii") for vr in LONG_VRS | SHORT_VRS}
# the transfer syntaxes read here: the data set is Explicit VR Little Endian in both
SYNTAXES = (ExplicitVRLittleEndian, RLELossless)

UNDEFINED = 0xFFFFFFFF
PIXEL_DATA = 0x7FE00010
ITEM, ITEM_END, SEQUENCE_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD   # the delimiter "tags" (group FFFE)

_SHORT = struct.Struct("<HH2sH")        # group, element, VR, 2-byte length
_LONG_LENGTH = struct.Struct("<I")
_ITEM = struct.Struct("<HHI")           # group, element, 4-byte length of an item or delimiter


class _Refused(Exception):
    """The file is not one this reader takes (the caller reads it with pydicom)."""


def _delimited_end(data: bytes, pos: int, nested: bool) -> tuple[int, int]:
    """(end of the value, position after its delimiter) of an undefined-length value starting at ``pos``.

    ``nested``: a sequence, whose items hold elements (themselves possibly undefined in length); otherwise
    encapsulated pixel data, whose items are byte fragments of defined length.
    """
    while True:
        if pos + 8 > len(data):
            raise _Refused("undefined-length value runs past the end of the file")
        group, element, length = _ITEM.unpack_from(data, pos)
        tag = group << 16 | element
        if tag == SEQUENCE_END:
            return pos, pos + 8
        if tag != ITEM:
            raise _Refused(f"expected an item, found ({group:04X},{element:04X})")
        pos += 8
        if length != UNDEFINED:
            pos += length
        elif nested:
            pos = _walk(data, pos, len(data), None, item=True)
        else:
            raise _Refused("pixel data fragment of undefined length")


def _walk(data: bytes, pos: int, end: int, out: dict | None, *, item: bool = False, group_only: int | None = None
          ) -> int:
    """Walk explicit VR little-endian elements from ``pos``; put each top-level non-sequence element into ``out``
    (tag -> RawDataElement) when ``out`` is given. Returns the position where the walk stopped.

    Stops at ``end``, at an item delimiter when ``item`` (an undefined-length item's end, returned past it), or,
    with ``group_only``, at the first element of another group (the file meta group 0002 ends so).
    """
    while pos < end:
        if pos + 8 > end:
            raise _Refused("element header runs past the end of the file")
        group, element, vr, length = _SHORT.unpack_from(data, pos)
        if group_only is not None and group != group_only:
            return pos
        if item and (group << 16 | element) == ITEM_END:
            return pos + 8
        name = VR_NAMES.get(vr)
        if name is None:
            raise _Refused(f"unknown VR {vr!r} at byte {pos}")
        if vr in LONG_VRS:
            if pos + 12 > end:
                raise _Refused("element header runs past the end of the file")
            (length,) = _LONG_LENGTH.unpack_from(data, pos + 8)
            start = pos + 12
        else:
            start = pos + 8
        tag = group << 16 | element
        if length == UNDEFINED:
            if vr == b"SQ":
                _, pos = _delimited_end(data, start, nested=True)
                continue
            if tag != PIXEL_DATA or out is None:
                raise _Refused(f"undefined length on ({group:04X},{element:04X})")
            value_end, pos = _delimited_end(data, start, nested=False)
        else:
            value_end = pos = start + length
            if value_end > end:
                raise _Refused(f"({group:04X},{element:04X}) runs past the end of the file")
            if vr == b"SQ":
                continue
        if out is not None:
            key = BaseTag(tag)
            out[key] = RawDataElement(key, name, UNDEFINED if length == UNDEFINED else length,
                                      data[start:value_end], start, False, True)
    return pos


def read_dataset(path: Path) -> pydicom.Dataset | None:
    """The file's top-level elements (sequences left out) as a pydicom Dataset with its ``file_meta``, read as
    pydicom would; None when the file is not an Explicit VR Little Endian file with a preamble (module
    docstring), so the caller reads it with pydicom."""
    data = Path(path).read_bytes()
    if data[128:132] != b"DICM":
        return None
    try:
        meta_elements: dict = {}
        pos = _walk(data, 132, len(data), meta_elements, group_only=0x0002)
        meta = FileMetaDataset(meta_elements)
        if meta.get("TransferSyntaxUID") not in SYNTAXES:
            return None
        elements: dict = {}
        _walk(data, pos, len(data), elements)
    except (_Refused, struct.error, UnicodeDecodeError, ValueError):
        return None
    ds = Dataset(elements)
    ds.file_meta = meta
    ds.set_original_encoding(False, True, ds._character_set)
    return ds
