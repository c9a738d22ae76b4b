"""Coordinate-guided crops: 2D disc ROIs, disc volumes, localiser inputs and multi-slice MIL bags.

* :mod:`spinelib.crops.plan`: which crops to make (table work) and their sizes (:class:`~spinelib.crops.plan.CropConfig`);
* :mod:`spinelib.crops.geometry`: the pixel work (boxes, padding, resizing);
* :mod:`spinelib.crops.extract`: the cohort pass, every crop kind in one table (``CROP_KINDS``);
* :mod:`spinelib.crops.store`: the store it writes and every later stage reads.
"""

from spinelib.crops.geometry import Box, crop_plane, crop_stack, resize_stack
from spinelib.crops.store import CropStore, open_store

__all__ = ["Box", "crop_plane", "crop_stack", "resize_stack", "CropStore", "open_store"]
