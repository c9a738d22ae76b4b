"""Training losses, one module per loss family.

* ``contrastive``: multi-positive NT-Xent (contrastive study, pretraining);
* ``focal``: weighted focal loss (contrastive study, fine-tuning);
* ``ordinal``: weighted cross-entropy, CORN and MAE (the ranking study's baselines);
* ``ranking``: pairwise ranking losses on scores (SpineRankNet, Deep-RankSVM, RankNet) and their pair mining;
* ``localisation``: the multi-stage study's Stage 1 losses (instance classification + regression, masked L1);
* ``mil``: its Stage 2 loss (weighted cross-entropy + the auxiliary attention loss).

Grades are integer tensors with −1 for "missing" everywhere; every loss skips those entries.
"""

from spinelib.losses.contrastive import multi_positive_nt_xent
from spinelib.losses.focal import focal_loss
from spinelib.losses.localisation import instance_loss, masked_l1
from spinelib.losses.mil import mil_loss
from spinelib.losses.ordinal import (corn_loss, corn_probabilities, inverse_frequency_weights, mae_loss,
                                     weighted_cross_entropy)
from spinelib.losses.ranking import (deep_rank_svm_loss, pairwise_hinge_loss, ranknet_loss, select_pairs,
                                     spineranknet_loss)

__all__ = ["multi_positive_nt_xent", "focal_loss", "spineranknet_loss", "deep_rank_svm_loss", "ranknet_loss",
           "pairwise_hinge_loss", "select_pairs", "weighted_cross_entropy", "corn_loss", "corn_probabilities",
           "mae_loss", "inverse_frequency_weights", "instance_loss", "masked_l1", "mil_loss"]
