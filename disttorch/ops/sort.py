"""sort, argsort, topk, kthvalue, unique and friends."""
from __future__ import annotations

__all__ = []


class SortMethods:
    __slots__ = ()
