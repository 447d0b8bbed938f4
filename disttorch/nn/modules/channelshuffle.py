"""``ChannelShuffle`` (``torch.nn.modules.channelshuffle``)."""
from __future__ import annotations

from ..._tensor import Tensor
from .module import Module

__all__ = ["ChannelShuffle"]


class ChannelShuffle(Module):
    """Split the channels of (N, C, *) input into ``groups`` groups and interleave them.

    Channel ``g * (C // groups) + i`` moves to ``i * groups + g``.

    Example:
        >>> nn.ChannelShuffle(2)(disttorch.arange(4.).reshape(1, 4, 1, 1)).flatten()
        tensor([0., 2., 1., 3.])
    """

    __constants__ = ["groups"]

    def __init__(self, groups: int) -> None:
        super().__init__()
        self.groups = groups

    def forward(self, input: Tensor) -> Tensor:
        g = self.groups
        if input.dim() < 3:
            raise RuntimeError(f"channel_shuffle expects input to have at least 3 dimensions, but got input with "
                               f"sizes {list(input.shape)}")
        if g <= 0:
            raise RuntimeError(f"Number of groups to divide channels in must be positive. Value of groups:{g}")
        c = input.shape[1]
        if c % g:
            raise RuntimeError(f"Number of channels must be divisible by groups. Got {c} channels and {g} groups.")
        shape = tuple(input.shape)
        return input.reshape(shape[0], g, c // g, *shape[2:]).transpose(1, 2).reshape(shape)

    def extra_repr(self) -> str:
        return f"groups={self.groups}"
