"""The engine's small surface for the rest of the package (nn, optim, distributed, amp).

Code outside the engine (``disttorch/_tensor.py``, ``disttorch/autograd``, ``disttorch/ops``) reaches a
tensor's array, wraps arrays and records in-place writes through these names rather than through the
tensor's private slots, so the engine can change how it stores them in one place.

Example:
    >>> from disttorch import _internals as E
    >>> a = E.array(p)            # the NumPy/CuPy array behind p (no copy)
    >>> a -= lr * E.array(p.grad)
    >>> E.bump_version(p)         # autograd sees the in-place write (saved-tensor checks)
"""
from __future__ import annotations

from typing import TYPE_CHECKING

# _tensor's names are looked up at call time: modules that _tensor imports while it loads (ops, amp) import
# this one too. array_module_of and to_host live in _device, where the engine itself reaches them.
from . import _tensor as _T
from ._device import array_module_of, to_host

if TYPE_CHECKING:
    from ._tensor import Tensor

__all__ = ["array", "wrap", "view_of", "bump_version", "set_array", "array_module", "array_module_of", "to_host"]


def array(t: Tensor):
    """The array behind ``t`` (NumPy or CuPy), without a copy. Writing to it in place must be followed by
    :func:`bump_version`."""
    return t._data


def wrap(arr) -> Tensor:
    """A new Tensor over ``arr`` (no copy) that requires no grad."""
    return _T._wrap(arr)


def view_of(base: Tensor, arr) -> Tensor:
    """A Tensor over ``arr``, a view of ``base``'s memory: the two share a version counter (in-place writes
    through either are seen by autograd's checks on the other)."""
    return _T._view_of(base, arr)


def bump_version(*tensors: Tensor) -> None:
    """Record an in-place write to each tensor's memory (PyTorch's version counter, ``t._version``): a
    backward that saved the old values then raises instead of computing with the new ones."""
    for t in tensors:
        t._vc[0] += 1


def set_array(t: Tensor, arr) -> None:
    """Make ``t`` hold ``arr`` (same shape semantics as ``t.data = ...``) and record the write."""
    t._data = arr
    t._vc[0] += 1


def array_module(t: Tensor):
    """``numpy`` or ``cupy``: the module that computes on ``t``'s array."""
    return t._xp
