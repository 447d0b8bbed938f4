"""``disttorch.Size``: the tuple subclass that ``tensor.shape`` returns."""
from __future__ import annotations

import math


class Size(tuple):
    """A shape, as ``torch.Size``: a tuple of ints with ``numel()``.

    Example:
        >>> disttorch.zeros(2, 3).shape
        disttorch.Size([2, 3])
    """

    __slots__ = ()

    def numel(self) -> int:
        return math.prod(self)

    def __repr__(self) -> str:
        return f"disttorch.Size({list(self)})"

    def __getitem__(self, item):
        r = tuple.__getitem__(self, item)
        return Size(r) if isinstance(item, slice) else r

    def __add__(self, other):
        return Size(tuple.__add__(self, tuple(other)))

    def __radd__(self, other):
        return Size(tuple(other) + tuple(self))

    def __mul__(self, n):
        return Size(tuple.__mul__(self, n))

    __rmul__ = __mul__

    def __reduce__(self):
        return (Size, (tuple(self),))
