"""``PairwiseDistance`` and ``CosineSimilarity`` (``torch.nn.modules.distance``)."""
from __future__ import annotations

from ..._tensor import Tensor
from .. import functional as F
from .module import Module

__all__ = ["CosineSimilarity", "PairwiseDistance"]


class PairwiseDistance(Module):
    """``||x1 - x2 + eps||_p`` over the last dimension.

    Args:
        p: the norm degree (may be negative). Default: 2.
        eps: added to the difference to avoid division by zero. Default: 1e-6.
        keepdim: keep the reduced dimension. Default: False.

    Example:
        >>> nn.PairwiseDistance(p=2)(disttorch.randn(100, 128), disttorch.randn(100, 128)).shape
        disttorch.Size([100])
    """

    __constants__ = ["norm", "eps", "keepdim"]

    def __init__(self, p: float = 2.0, eps: float = 1e-6, keepdim: bool = False) -> None:
        super().__init__()
        self.norm = p
        self.eps = eps
        self.keepdim = keepdim

    def forward(self, x1: Tensor, x2: Tensor) -> Tensor:
        return F.pairwise_distance(x1, x2, self.norm, self.eps, self.keepdim)


class CosineSimilarity(Module):
    """``x1 . x2 / max(||x1|| * ||x2||, eps)`` along ``dim``.

    Example:
        >>> nn.CosineSimilarity(dim=1)(disttorch.randn(100, 128), disttorch.randn(100, 128)).shape
        disttorch.Size([100])
    """

    __constants__ = ["dim", "eps"]

    def __init__(self, dim: int = 1, eps: float = 1e-8) -> None:
        super().__init__()
        self.dim = dim
        self.eps = eps

    def forward(self, x1: Tensor, x2: Tensor) -> Tensor:
        return F.cosine_similarity(x1, x2, self.dim, self.eps)
