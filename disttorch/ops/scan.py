"""Cumulative ops: cumsum, cumprod, cummax, cummin, logcumsumexp."""
from __future__ import annotations

__all__ = []


class ScanMethods:
    __slots__ = ()
