"""A lean reader for the commonest DICOM encoding: Explicit VR Little Endian, native or RLE Lossless pixel data.

Every RSNA file and every phantom file is encoded so. pydicom's ``dcmread`` parses such a file element by element
in Python, with checks and hooks at each one; for a small MR slice that costs about as much as decoding its
pixels (``benchmarks/crops.py``). :func:`read_elements` walks the same bytes with one ``struct`` call per element
and records where each element's value lies (:class:`RawElements`), converting nothing: the few tags a caller
reads are taken as raw bytes (``get_item`` gives pydicom's ``RawDataElement``: tag, VR, value bytes), and
:meth:`RawElements.dataset` hands pydicom a :class:`pydicom.Dataset` of the same raw elements for everything else
(value conversion, ``pixel_array``), so that anything beyond the raw bytes is pydicom's own.

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

from pydicom.charset import convert_encodings
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
TRANSFER_SYNTAX, SPECIFIC_CHARACTER_SET = 0x00020010, 0x00080005
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
    when ``out`` is given, as tag -> (VR, length as stored, start and end of its value in ``data``). Returns the
    position where the walk stopped.

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
            out[tag] = (name, length, start, value_end)
    return pos


class RawElements:
    """The top-level elements of one file as walked (sequences left out), none converted: the hot path reads a few
    tags straight from their bytes, the rest goes through :meth:`dataset`.

    Answers the part of pydicom's ``Dataset`` interface that :mod:`spinelib.data.dicom` uses on raw elements:
    ``get_item(tag)`` (a ``RawDataElement``, or None), ``tag in elements`` and ``file_meta`` (the group 0002
    elements, alike).
    """

    def __init__(self, data: bytes, spans: dict[int, tuple[str, int, int, int]],
                 file_meta: RawElements | None = None, pixel_data: bytes | None = None):
        self._data = data      # the file's bytes (up to its pixel data, when that is given apart)
        self._spans = spans    # tag -> (VR, length as stored, value start, value end)
        self._pixel_data = pixel_data
        self.file_meta = file_meta
        self._dataset: Dataset | None = None

    def __contains__(self, tag: int) -> bool:
        return tag in self._spans

    def get_item(self, tag: int) -> RawDataElement | None:
        """The element as pydicom's reader would hold it before converting its value, or None when absent."""
        span = self._spans.get(tag)
        if span is None:
            return None
        vr, length, start, end = span
        value = self._pixel_data if tag == PIXEL_DATA and self._pixel_data is not None else self._data[start:end]
        return RawDataElement(BaseTag(tag), vr, length, value, start, False, True)

    def elements(self) -> dict[BaseTag, RawDataElement]:
        """Every element, keyed by tag."""
        return {BaseTag(tag): self.get_item(tag) for tag in self._spans}

    def dataset(self) -> Dataset:
        """The pydicom Dataset of these elements, with its ``file_meta`` and encoding, as ``dcmread`` gives it
        (built once, on the first call)."""
        if self._dataset is None:
            ds = Dataset(self.elements())
            if self.file_meta is not None:
                ds.file_meta = FileMetaDataset(self.file_meta.elements())
            # the encoding pydicom's reader records: the file's SpecificCharacterSet when it has one, else the default
            charset = self.get_item(SPECIFIC_CHARACTER_SET)
            ds.set_original_encoding(False, True, ds._parent_encoding if charset is None else _encodings(charset.value))
            self._dataset = ds
        return self._dataset


def read_elements(path: Path) -> RawElements | None:
    """The file's top-level elements (sequences left out) and file meta, walked as pydicom would read them; None
    when the file is not an Explicit VR Little Endian file with a preamble (module docstring), so the caller reads
    it with pydicom."""
    data = Path(path).read_bytes()
    if data[128:132] != b"DICM":
        return None
    try:
        meta: dict = {}
        pos = _walk(data, 132, len(data), meta, group_only=0x0002)
        syntax = meta.get(TRANSFER_SYNTAX)
        # the UID's raw bytes (UI values are padded with a NUL to an even length): no pydicom conversion needed
        if syntax is None or data[syntax[2]:syntax[3]].decode("ascii").rstrip("\0 ") not in SYNTAXES:
            return None
        spans: dict = {}
        _walk(data, pos, len(data), spans)
    except (_Refused, struct.error, UnicodeDecodeError, ValueError):
        return None
    pixel = spans.get(PIXEL_DATA)
    if pixel is not None and all(end <= pixel[2] for tag, (*_, end) in spans.items() if tag != PIXEL_DATA):
        # The pixel data (the bulk of the file) as its own bytes and the header bytes before it: the file's buffer is
        # freed here, as pydicom frees it. Kept whole, it would live until the caller drops the elements, and the
        # allocator then serves every decoded frame from fresh pages (check-data read twice as slowly).
        pixel_data, data = data[pixel[2]:pixel[3]], data[:pixel[2]]
    else:
        pixel_data = None   # elements after the pixel data (a signature, padding): the file is kept whole
    return RawElements(data, spans, RawElements(data, meta), pixel_data)


def _encodings(raw: bytes) -> list[str]:
    """Python codecs of a raw SpecificCharacterSet (CS, values split at backslashes), as pydicom's reader derives
    them (``convert_encodings``), without its conversion of the element (which costs more than walking the file)."""
    names = [name.strip(" \0") for name in raw.decode("ascii").split("\\")]
    return convert_encodings(names[0] if len(names) == 1 else names)
