"""Training losses, one module per loss family."""

from spinelib.losses.contrastive import multi_positive_nt_xent
from spinelib.losses.focal import focal_loss

__all__ = ["multi_positive_nt_xent", "focal_loss"]
