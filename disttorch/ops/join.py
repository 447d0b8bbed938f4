"""Joining and splitting: cat, stack, split, chunk, unbind, hstack/vstack, ..."""
from __future__ import annotations

__all__ = []


class JoinMethods:
    __slots__ = ()
