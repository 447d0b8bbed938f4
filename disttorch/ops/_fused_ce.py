"""The fused softmax-cross-entropy kernels (``kernels/cross_entropy.cu``) as used by ``ops/loss.py``.

``cross_entropy`` with class-index targets runs them on a CUDA device when the logits are a contiguous
float32/float16 (N, C) array (or (C,), or (N, C, 1, ...): any layout whose class dim is the last one with more
than one element) and the class weights, if any, a contiguous float32 vector. The kernel writes the per-row loss
and log-sum-exp; the reduction stays in ``loss.py`` (the same code as the generic path). The backward kernel
recomputes the softmax from the logits and the saved log-sum-exp, so the forward keeps a copy of the logits
(PyTorch does not fail when the input is changed in place after the loss; the generic path keeps its
softmax numerators instead, an array of the same size).
"""
from __future__ import annotations

import numpy as np

from ..kernels import launch as L
from . import _fused

__all__ = ["forward", "backward"]

_F32 = np.dtype(np.float32)


class State:
    """What the fused backward needs: a copy of the (rows, C) logits, their float32 log-sum-exp, the targets."""

    __slots__ = ("run", "x", "lse", "target", "weight", "ignore_index", "eps")

    def __init__(self, run, x, lse, target, weight, ignore_index: int, eps: float) -> None:
        self.run, self.x, self.lse, self.target, self.weight = run, x, lse, target, weight
        self.ignore_index, self.eps = ignore_index, eps


def forward(xp, xa, c, ignore_index: int, eps: float, keep: bool):
    """(float32 per-row losses, the backward's ``State`` or None) by the kernel, or None when it does not apply.

    ``xa`` is the logits array already in ``c.lay``; ``c`` the validated problem (``loss._Classes``); ``keep``:
    a graph is recorded (save what the backward needs).
    """
    if c.S != 1 or xa.ndim != 2 or not c.N or not c.C:
        return None  # (N, C, d1, ...) has its classes strided: the kernel wants them last
    w = c.w
    if w is not None and w.dtype != _F32:
        return None  # float64 weights come with float64 logits, which have no kernel anyway
    run = _fused.launcher(xp, xa, w)
    if run is None:
        return None
    # The kernel marks ignored rows by ignore_index; out-of-range targets are already masked out of c.valid
    # (and reported by the deferred device check), so they are ignored here as on the generic path.
    target = xp.where(c.valid, c.tsafe.astype(np.int64, copy=False), np.int64(ignore_index))
    loss = xp.empty(c.N, dtype=_F32)
    lse = xp.empty(c.N, dtype=_F32)
    run(L.cross_entropy_plan(xa, target, w, loss, lse, None, ignore_index=ignore_index, label_smoothing=eps))
    state = State(run, xa.copy(), lse, target, w, ignore_index, eps) if keep else None
    return loss, state


def backward(xp, state: State, s, dtype):
    """The logits' gradient (rows, C) in ``dtype`` from the per-row (or shared) float32 gradient ``s``.

    Runs by the launcher the forward used: what it kept is the kernel's (no softmax numerators for the generic
    formula), even if ``DISTTORCH_KERNELS`` changed since.
    """
    g = xp.ascontiguousarray(s.astype(_F32, copy=False).reshape(-1))
    gx = xp.empty_like(state.x)
    state.run(L.cross_entropy_backward_plan(state.x, state.target, state.weight, state.lse, g, gx,
                                      ignore_index=state.ignore_index, label_smoothing=state.eps))
    return gx.astype(dtype, copy=False)
