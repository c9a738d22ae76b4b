"""PyTorch datasets over the crop store and the study images, one module per input kind.

* ``discs``: disc ROIs (contrastive study), shifted ROIs, disc volumes (ranking study).
"""
