"""Coordinate-guided crops: 2D disc ROIs, disc volumes and multi-slice MIL bags."""

from spinelib.crops.geometry import Box, crop_plane, crop_stack, resize_stack
from spinelib.crops.store import CropStore, open_store

__all__ = ["Box", "crop_plane", "crop_stack", "resize_stack", "CropStore", "open_store"]
