"""Pure crop geometry: boxes around a point, constant padding at borders, resizing.

Convention: a box is given by how far it reaches from the point in pixels,
``left``/``right`` along columns (x) and ``up``/``down`` along rows (y). The
point ``(x, y)`` is rounded to the nearest pixel and lands at patch index
``(up, left)``, so for a centred box of even size ``2r`` it sits at ``(r, r)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

# to_uint8 lives in the data layer (data/study_images.py needs it too); crop code imports it from here with the
# other crop steps
from spinelib.data.dicom import to_uint8  # noqa: F401


@dataclass(frozen=True)
class Box:
    """Extent of a crop around a point, in pixels (multi-stage paper, Table 1)."""

    left: int
    right: int
    up: int
    down: int

    @classmethod
    def centred(cls, height: int, width: int) -> "Box":
        """A box of ``height`` x ``width`` with the point at its centre."""
        return cls(left=width // 2, right=width - width // 2, up=height // 2, down=height - height // 2)

    @property
    def height(self) -> int:
        """Rows of the crop: up + down."""
        return self.up + self.down

    @property
    def width(self) -> int:
        """Columns of the crop: left + right."""
        return self.left + self.right


def crop_origin(x: float, y: float, box: Box) -> tuple[int, int]:
    """Top-left (row0, col0) of the crop in image pixels (may be negative)."""
    return int(round(y)) - box.up, int(round(x)) - box.left


def crop_plane(image: np.ndarray, x: float, y: float, box: Box, fill: float = 0.0,
               dtype: np.dtype | type | None = None) -> np.ndarray:
    """Crop ``image[..., H, W]`` around ``(x, y)``; outside the image is ``fill``.

    Works on a single plane (H, W) or a stack (S, H, W): the same box on every slice. The crop has ``dtype``
    (default the image's): float32 for stored integers cut with a fractional ``fill``, which the image's own
    integer type would truncate.
    """
    row0, col0 = crop_origin(x, y, box)
    height, width = image.shape[-2:]
    # overlap in image coordinates; the same range shifted by (row0, col0) in crop coordinates
    r_lo, r_hi = max(row0, 0), min(row0 + box.height, height)
    c_lo, c_hi = max(col0, 0), min(col0 + box.width, width)
    shape, dtype = image.shape[:-2] + (box.height, box.width), dtype or image.dtype
    if (r_hi - r_lo, c_hi - c_lo) == (box.height, box.width):   # wholly inside: a copy, nothing to pad
        return image[..., r_lo:r_hi, c_lo:c_hi].astype(dtype)
    # start from the fill value and copy in only the part of the box that overlaps the image
    out = np.full(shape, fill, dtype=dtype)
    if r_lo < r_hi and c_lo < c_hi:
        out[..., r_lo - row0 : r_hi - row0, c_lo - col0 : c_hi - col0] = image[..., r_lo:r_hi, c_lo:c_hi]
    return out


def slice_window(centre: int, n_slices: int, n_total: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of ``n_slices`` slices centred on ``centre`` and a mask of those inside ``[0, n_total)``.

    For even ``n_slices`` the extra slice is taken after the centre.
    """
    first = centre - (n_slices - 1) // 2   # n = 4 around 5: 4, 5, 6, 7 (the centre is the second slice)
    index = np.arange(first, first + n_slices)
    return index, (index >= 0) & (index < n_total)


def crop_stack(volume: np.ndarray, centre: int, n_slices: int, x: float, y: float, box: Box,
               fill: float = 0.0, dtype: np.dtype | type | None = None) -> tuple[np.ndarray, int]:
    """Crop ``n_slices`` slices around slice ``centre`` of ``volume (S, H, W)``, as ``dtype`` (default the
    volume's; see :func:`crop_plane`).

    Slices beyond the volume are filled with ``fill``. Returns the stack and the
    number of padded slices.
    """
    index, inside = slice_window(centre, n_slices, volume.shape[0])
    if inside.all():   # no slice to pad: the crop of the slices is the stack
        return crop_plane(volume[index[0] : index[-1] + 1], x, y, box, fill, dtype), 0
    out = np.full((n_slices, box.height, box.width), fill, dtype=dtype or volume.dtype)
    if inside.any():
        first, last = index[inside][0], index[inside][-1]
        out[inside] = crop_plane(volume[first : last + 1], x, y, box, fill, dtype)  # a view: no copy of whole slices
    return out, int((~inside).sum())


def _cast_back(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Float ``values`` in ``dtype``: rounded to the nearest and clipped to its range for an integer dtype (a bare
    cast would truncate, taking every mean a level down); float dtypes are cast as they are."""
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return np.clip(np.rint(values), info.min, info.max).astype(dtype)
    return values.astype(dtype, copy=False)


def resize_stack(stack: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize the last two axes to ``size`` (H, W) with bilinear interpolation; the result has ``stack``'s dtype
    (integers rounded to the nearest).

    Exact integer down-sampling uses a block mean (area average), which is what
    a radiologist's viewer shows and is faster than interpolation.
    """
    height, width = stack.shape[-2:]
    if (height, width) == tuple(size):
        return stack   # the same array, not a copy: callers window it afterwards into a new one
    if height % size[0] == 0 and width % size[1] == 0:
        fh, fw = height // size[0], width // size[1]
        total = np.zeros(stack.shape[:-2] + tuple(size), dtype=np.float32)
        for i in range(fh):  # fh * fw strided adds beat a reduction over two non-adjacent axes
            for j in range(fw):
                total += stack[..., i::fh, j::fw]
        total *= np.float32(1.0 / (fh * fw))
        return _cast_back(total, stack.dtype)
    # other ratios: bilinear on the last two axes only, output pixel i taken at source (i + 0.5) H / H' − 0.5
    # (pixel edges aligned, not centres, like a resize; beyond the edge the edge pixel): torch's interpolate,
    # all slices in one call (six times scipy's zoom, which computes the same)
    flat = torch.from_numpy(np.ascontiguousarray(stack, dtype=np.float32)).reshape(1, -1, height, width)
    resized = F.interpolate(flat, size=tuple(size), mode="bilinear", align_corners=False, antialias=False)
    return _cast_back(resized.reshape(*stack.shape[:-2], *size).numpy(), stack.dtype)


