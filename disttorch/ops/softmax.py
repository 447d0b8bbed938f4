"""softmax, log_softmax and logsumexp."""
from __future__ import annotations

__all__ = []


class SoftmaxMethods:
    __slots__ = ()
