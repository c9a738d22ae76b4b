"""Networks: the ResNet-18 encoder and the heads built on it."""

from spinelib.models.encoders import load_encoder_weights, resnet18_encoder
from spinelib.models.heads import (ContrastiveModel, DiscClassifier, Localiser, ProjectionHead,
                                   finetune_param_groups, freeze_encoder_layers)

__all__ = ["resnet18_encoder", "load_encoder_weights", "ProjectionHead", "ContrastiveModel", "DiscClassifier",
           "freeze_encoder_layers", "finetune_param_groups", "Localiser"]
