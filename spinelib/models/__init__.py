"""Networks: the 2D and 3D ResNet-18 encoders and the heads built on them.

Where each piece belongs:

* ``encoders``: torchvision's 2D ResNet-18 as the contrastive study's disc encoder E(.) (512-d), and strict
  loading of local weights;
* ``heads``: contrastive projection head, Deep-Sets disc classifier (+ layer freezing, differential learning
  rates), the 2.5D disc-centre localiser;
* ``resnet``: our own ResNet-18 at any width, 3D (slice axis never strided) or 2D;
* ``ranking``: the ranking study's multi-task ordinal model (classification heads, CORN heads or scored
  ranking heads with the soft clamp);
* ``localisers``: the multi-stage study's Stage 1 networks (slice-axis instance net, in-plane coordinate net);
* ``mil``: the multi-stage study's Bi-LSTM attention MIL grader over bags of slice crops.
"""

from spinelib.models.encoders import load_encoder_weights, resnet18_encoder
from spinelib.models.heads import (ContrastiveModel, DiscClassifier, Localiser, ProjectionHead,
                                   finetune_param_groups, freeze_encoder_layers)
from spinelib.models.localisers import CoordNet, InstanceNet
from spinelib.models.mil import BiLSTMAttentionMIL, MILGrader, slice_encoder
from spinelib.models.ranking import OBJECTIVES, OrdinalModel, ranking_head, soft_clamp
from spinelib.models.resnet import ResNet, ResNet3d, resnet2d18, resnet3d18

__all__ = ["resnet18_encoder", "load_encoder_weights", "ProjectionHead", "ContrastiveModel", "DiscClassifier",
           "freeze_encoder_layers", "finetune_param_groups", "Localiser", "ResNet", "ResNet3d", "resnet2d18",
           "resnet3d18", "OrdinalModel",
           "OBJECTIVES", "ranking_head", "soft_clamp", "BiLSTMAttentionMIL", "MILGrader", "slice_encoder",
           "InstanceNet", "CoordNet"]
