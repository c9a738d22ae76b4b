"""Training losses, one module per loss family."""

from spinelib.losses.contrastive import multi_positive_nt_xent
from spinelib.losses.focal import focal_loss
from spinelib.losses.ordinal import (corn_loss, corn_probabilities, inverse_frequency_weights, mae_loss,
                                     weighted_cross_entropy)
from spinelib.losses.ranking import (deep_rank_svm_loss, pairwise_hinge_loss, ranknet_loss, select_pairs,
                                     spineranknet_loss)

__all__ = ["multi_positive_nt_xent", "focal_loss", "spineranknet_loss", "deep_rank_svm_loss", "ranknet_loss",
           "pairwise_hinge_loss", "select_pairs", "weighted_cross_entropy", "corn_loss", "corn_probabilities",
           "mae_loss", "inverse_frequency_weights"]
