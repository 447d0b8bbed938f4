"""Functional interface (`disttorch.nn.functional`), as `torch.nn.functional`.

Every function is defined in the op family that owns it (disttorch/ops/<family>.py) and re-exported
here by name, so ``import disttorch.nn.functional as F`` gives PyTorch's functional API.

Example:
    >>> import disttorch.nn.functional as F
    >>> F.relu(disttorch.tensor([-1.0, 2.0]))
    tensor([0., 2.])
"""
from __future__ import annotations

from ..ops.linear import linear, bilinear  # noqa: F401
from ..ops.conv import conv1d, conv2d, conv3d, conv_transpose1d, conv_transpose2d, conv_transpose3d, unfold, fold  # noqa: F401
from ..ops.pool import (  # noqa: F401
    max_pool1d, max_pool2d, max_pool1d_with_indices, max_pool2d_with_indices, avg_pool1d, avg_pool2d,
    adaptive_avg_pool1d, adaptive_avg_pool2d, adaptive_avg_pool3d, adaptive_max_pool1d, adaptive_max_pool2d,
    adaptive_max_pool1d_with_indices, adaptive_max_pool2d_with_indices, max_unpool1d, max_unpool2d, lp_pool1d,
    lp_pool2d
)
from ..ops.upsample import interpolate, upsample, upsample_nearest, upsample_bilinear, pixel_shuffle, pixel_unshuffle  # noqa: F401
from ..ops.pad import pad  # noqa: F401
from ..ops.activation import (  # noqa: F401
    relu, relu_, relu6, leaky_relu, leaky_relu_, prelu, rrelu, rrelu_, elu, elu_, selu, selu_, celu, celu_, gelu,
    silu, mish, softplus, hardtanh, hardtanh_, hardsigmoid, hardswish, logsigmoid, softsign, softshrink,
    hardshrink, tanhshrink, threshold, threshold_, glu, softmin, softmax, log_softmax, gumbel_softmax, sigmoid,
    tanh
)
from ..ops.dropout import dropout, alpha_dropout, dropout1d, dropout2d, dropout3d, feature_alpha_dropout  # noqa: F401
from ..ops.embedding import embedding, embedding_bag, one_hot  # noqa: F401
from ..ops.norm import batch_norm, layer_norm, group_norm, instance_norm, rms_norm, local_response_norm  # noqa: F401
from ..ops.distance import normalize, cosine_similarity, pairwise_distance, pdist  # noqa: F401
from ..ops.attention import scaled_dot_product_attention, multi_head_attention_forward  # noqa: F401
from ..ops.attention import _canonical_mask, _none_or_dtype  # noqa: F401 - private in PyTorch's F too
from ..ops.loss import (  # noqa: F401
    mse_loss, l1_loss, smooth_l1_loss, huber_loss, nll_loss, cross_entropy, binary_cross_entropy,
    binary_cross_entropy_with_logits, kl_div, cosine_embedding_loss, margin_ranking_loss, triplet_margin_loss,
    hinge_embedding_loss, soft_margin_loss, multilabel_soft_margin_loss, poisson_nll_loss, gaussian_nll_loss,
    multi_margin_loss
)

__all__ = [
    "linear", "bilinear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
    "conv_transpose3d", "unfold", "fold", "max_pool1d", "max_pool2d", "max_pool1d_with_indices",
    "max_pool2d_with_indices", "avg_pool1d", "avg_pool2d", "adaptive_avg_pool1d", "adaptive_avg_pool2d",
    "adaptive_avg_pool3d", "adaptive_max_pool1d", "adaptive_max_pool2d", "adaptive_max_pool1d_with_indices",
    "adaptive_max_pool2d_with_indices", "max_unpool1d", "max_unpool2d", "lp_pool1d", "lp_pool2d", "interpolate",
    "upsample", "upsample_nearest", "upsample_bilinear", "pixel_shuffle", "pixel_unshuffle", "pad", "relu",
    "relu_", "relu6", "leaky_relu", "leaky_relu_", "prelu", "rrelu", "rrelu_", "elu", "elu_", "selu", "selu_",
    "celu", "celu_", "gelu", "silu", "mish", "softplus", "hardtanh", "hardtanh_", "hardsigmoid", "hardswish",
    "logsigmoid", "softsign", "softshrink", "hardshrink", "tanhshrink", "threshold", "threshold_", "glu",
    "softmin", "softmax", "log_softmax", "gumbel_softmax", "sigmoid", "tanh", "dropout", "alpha_dropout",
    "dropout1d", "dropout2d", "dropout3d", "feature_alpha_dropout", "embedding", "embedding_bag", "one_hot",
    "batch_norm", "layer_norm", "group_norm", "instance_norm", "rms_norm", "local_response_norm", "normalize",
    "cosine_similarity", "pairwise_distance", "pdist", "scaled_dot_product_attention",
    "multi_head_attention_forward", "mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss", "nll_loss",
    "cross_entropy", "binary_cross_entropy", "binary_cross_entropy_with_logits", "kl_div",
    "cosine_embedding_loss", "margin_ranking_loss", "triplet_margin_loss", "hinge_embedding_loss",
    "soft_margin_loss", "multilabel_soft_margin_loss", "poisson_nll_loss", "gaussian_nll_loss",
    "multi_margin_loss"
]
