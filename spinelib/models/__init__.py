"""Networks: the 2D and 3D ResNet-18 encoders and the heads built on them."""

from spinelib.models.encoders import load_encoder_weights, resnet18_encoder
from spinelib.models.heads import (ContrastiveModel, DiscClassifier, Localiser, ProjectionHead,
                                   finetune_param_groups, freeze_encoder_layers)
from spinelib.models.mil import BiLSTMAttentionMIL, MILGrader, mil_loss, slice_encoder
from spinelib.models.ranking import OBJECTIVES, OrdinalModel, ranking_head, soft_clamp
from spinelib.models.resnet import ResNet, ResNet3d, resnet2d18, resnet3d18

__all__ = ["resnet18_encoder", "load_encoder_weights", "ProjectionHead", "ContrastiveModel", "DiscClassifier",
           "freeze_encoder_layers", "finetune_param_groups", "Localiser", "ResNet", "ResNet3d", "resnet2d18",
           "resnet3d18", "OrdinalModel",
           "OBJECTIVES", "ranking_head", "soft_clamp", "BiLSTMAttentionMIL", "MILGrader", "mil_loss", "slice_encoder"]
