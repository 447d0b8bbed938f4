"""In-place ops (``add_``, ``mul_``, ...) built from their out-of-place forms.

An in-place op writes the result into ``self``'s memory and bumps its version counter, so a
backward that saved the old value raises instead of using corrupted data. With autograd on,
``self`` takes the new node as its grad_fn; the node's input is a snapshot of the old ``self``
so the op's own backward never sees the overwritten values.
"""
from __future__ import annotations

from .. import _dtype as D
from .. import _tensor as T
from ..autograd.grad_mode import STATE as _GRAD


def check_inplace(self, op: str) -> bool:
    """Validate an in-place op on ``self``; returns True when it must be recorded for autograd."""
    if not _GRAD.enabled:
        return False
    if self._requires_grad and self.grad_fn is None:
        raise RuntimeError(f"{op}: a leaf Variable that requires grad is being used in an in-place operation.")
    base = self._base
    if base is not None and base._requires_grad and base.grad_fn is None and self.grad_fn is None:
        raise RuntimeError(f"{op}: a view of a leaf Variable that requires grad is being used in an in-place "
                           "operation.")
    return True


def inplace(self, op: str, fn, *args, **kwargs):
    """Run out-of-place ``fn(self, *args)`` and store its result into ``self``.

    Example: ``inplace(x, "add_", add, y, alpha=2)`` is ``x.add_(y, alpha=2)``.
    """
    record = check_inplace(self, op)
    others_need = record and any(isinstance(a, T.Tensor) and a._requires_grad for a in args)
    if record and (self._requires_grad or others_need):
        snap = T._wrap(self._data.copy())
        snap._requires_grad = self._requires_grad
        snap.grad_fn = self.grad_fn
        snap._output_nr = self._output_nr
        res = fn(snap, *args, **kwargs)
    else:
        prev = _GRAD.enabled
        _GRAD.enabled = False
        try:
            res = fn(self, *args, **kwargs)
        finally:
            _GRAD.enabled = prev
        record = False
    write_result(self, res, op)
    if record and res._requires_grad:
        if self._base is not None and self._base._requires_grad:
            raise RuntimeError(f"{op}: in-place operations on a view of a tensor that is part of the autograd "
                               "graph are not supported yet; apply the op to the base tensor or clone() the view")
        self._requires_grad = True
        self.grad_fn = res.grad_fn
        self._output_nr = res._output_nr
    return self


def write_result(self, res, op: str) -> None:
    """Copy ``res`` into ``self`` in place, with PyTorch's rules on shape and dtype."""
    sd, rd = self._data, res._data
    if rd.shape != sd.shape:
        try:
            bshape = self._xp.broadcast_shapes(sd.shape, rd.shape) if hasattr(self._xp, "broadcast_shapes") \
                else None
        except ValueError:
            bshape = None
        if bshape != sd.shape:
            raise RuntimeError(f"{op}: output with shape {list(sd.shape)} doesn't match the broadcast shape "
                               f"{list(rd.shape) if bshape is None else list(bshape)}")
    if rd.dtype != sd.dtype:
        rdt, sdt = D._FROM_NP[rd.dtype], D._FROM_NP[sd.dtype]
        if not D.can_cast(rdt, sdt):
            raise RuntimeError(f"{op}: result type {rdt.name.capitalize()} can't be cast to the desired output "
                               f"type {sdt.name.capitalize()}")
    self._xp.copyto(sd, rd, casting="unsafe")
    self._vc[0] += 1
