"""Comparisons, logical and bitwise ops (eq, lt, logical_and, isnan, isclose, allclose, ...)."""
from __future__ import annotations

__all__ = []


class CompareMethods:
    __slots__ = ()
