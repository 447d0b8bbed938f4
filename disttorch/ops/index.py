"""Indexing: __getitem__/__setitem__, gather/scatter, index_select, masked ops, nonzero, ..."""
from __future__ import annotations

__all__ = []


class IndexMethods:
    __slots__ = ()
