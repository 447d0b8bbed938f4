"""Unary math and special functions (abs, log, sqrt, sin, tanh, sigmoid, erf, clamp, where, lerp, ...)."""
from __future__ import annotations

__all__ = []


class PointwiseMethods:
    __slots__ = ()
