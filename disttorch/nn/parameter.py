"""``Parameter`` and ``Buffer``: the tensor kinds a ``Module`` registers, as ``torch.nn.parameter``."""
from __future__ import annotations

import numpy as np

from .. import _internals as E
from .._dtype import get_default_dtype
from .._tensor import Tensor

__all__ = ["Parameter", "Buffer", "is_lazy"]

_new = object.__new__


def _share(cls, data, requires_grad: bool, what: str):
    """A new ``cls`` instance that shares ``data``'s memory and version counter, outside the graph."""
    if data is None:
        data = E.wrap(_empty0())
    elif not isinstance(data, Tensor):
        raise TypeError(f"{what}(): argument 'data' (position 1) must be Tensor, not {type(data).__name__}")
    t = _new(cls)
    t._data = data._data
    t._requires_grad = False
    t._grad = None
    t.grad_fn = None  # not Op.apply: a new leaf object over data's memory (no op, no graph)
    t._output_nr = 0
    t._vc = data._vc
    t._base = None
    t._aux = None
    if requires_grad:
        t.requires_grad = True  # the setter rejects integer dtypes as PyTorch does
    return t


def _empty0():
    return np.empty((0,), dtype=get_default_dtype().np)


class Parameter(Tensor):
    """A Tensor that a ``Module`` registers as a parameter when assigned as an attribute.

    ``Parameter(data)`` shares ``data``'s memory; it is always a graph leaf. Operations on a
    Parameter return plain Tensors.

    Args:
        data: the tensor to wrap (an empty float tensor when None).
        requires_grad: whether the parameter requires gradient. Default: True.

    Example:
        >>> w = nn.Parameter(disttorch.zeros(2, 3))
        >>> w.requires_grad, isinstance(w, disttorch.Tensor)
        (True, True)
    """

    def __new__(cls, data: Tensor | None = None, requires_grad: bool = True):
        return _share(cls, data, requires_grad, "Parameter")

    def __init__(self, data: Tensor | None = None, requires_grad: bool = True) -> None:
        pass

    def __repr__(self, *, tensor_contents=None) -> str:
        return "Parameter containing:\n" + super().__repr__()

    def __deepcopy__(self, memo):
        if id(self) in memo:
            return memo[id(self)]
        result = type(self)(E.wrap(E.array(self).copy()), self._requires_grad)
        if self.__dict__:
            import copy

            result.__dict__.update(copy.deepcopy(self.__dict__, memo))
        memo[id(self)] = result
        return result

    def __reduce_ex__(self, protocol):
        arr = E.to_host(E.array(self))
        return (_rebuild_parameter, (type(self), arr, self._requires_grad, self.__dict__ or None))


def _rebuild_parameter(cls, arr, requires_grad: bool, state):
    p = cls(E.wrap(arr), requires_grad)
    if state:
        p.__dict__.update(state)
    return p


class Buffer(Tensor):
    """A Tensor that a ``Module`` registers as a buffer when assigned as an attribute.

    Assigning ``module.name = Buffer(t, persistent=False)`` is ``module.register_buffer(name, t,
    persistent=False)``; the module stores a plain Tensor sharing ``t``'s memory (PyTorch keeps
    the tensor itself, marked as a buffer).

    Args:
        data: the buffer tensor (an empty float tensor when None).
        persistent: whether the buffer is part of the module's ``state_dict``. Default: True.
    """

    def __new__(cls, data: Tensor | None = None, *, persistent: bool = True):
        t = _share(cls, data, False, "Buffer")
        if data is not None and data._requires_grad:
            t.requires_grad = True
        t.persistent = persistent
        return t

    def __init__(self, data: Tensor | None = None, *, persistent: bool = True) -> None:
        pass

    def _as_tensor(self) -> Tensor:
        """A plain Tensor sharing this buffer's memory (what a module stores)."""
        t = self.data  # same memory and version counter, no graph
        if self._requires_grad:
            t.requires_grad = True
        return t

    def __repr__(self, *, tensor_contents=None) -> str:
        return repr(self._as_tensor())

    def __reduce_ex__(self, protocol):
        return (_rebuild_buffer, (self._as_tensor(), self.persistent))


def _rebuild_buffer(t: Tensor, persistent: bool) -> Buffer:
    return Buffer(t, persistent=persistent)


def is_lazy(param) -> bool:
    """Whether ``param`` is an uninitialised (lazy) parameter: never, in disttorch."""
    return False
