"""PyTorch datasets over the crop store and the study images, one module per input kind.

* ``discs``: disc ROIs (contrastive study), shifted ROIs, disc volumes (ranking study);
* ``stacks``: sagittal stacks (Stage 1a) and 3-channel slices (Stages 1b/1c) of the multi-stage study;
* ``bags``: MIL bags with pre-crop jitter and post-crop augmentation (Stage 2 of the multi-stage study).
"""
