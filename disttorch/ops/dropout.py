"""Dropout with ``torch.nn.functional`` semantics: dropout, alpha_dropout, dropout1d/2d/3d (channel-wise masks)
and feature_alpha_dropout.

Masks are Bernoulli(1 - p) draws from disttorch's default generator (``disttorch.manual_seed`` makes them
reproducible), made on the host and moved to the input's device. The kept values are scaled by ``1 / (1 - p)``,
so the expectation is preserved; the scaled mask is saved once and backward is ``g * mask``. As in PyTorch,
``training=False``, ``p=0`` or an empty input return ``input`` itself.

On a CUDA device, element-wise dropout of a contiguous float32/float16 input runs ``kernels/dropout.cu``: the kernel
draws the mask from the (seed, offset) of the device generator's next draw, the same Philox words the generic device
path would take (so ``DISTTORCH_KERNELS=0`` gives the same mask), and keeps it as uint8 for its backward kernel.
"""
from __future__ import annotations

import math
import warnings

import numpy as np  # dtype constants and host-side mask sampling

from .. import _tensor as T
from ..autograd.op import Op
from ..kernels import launch as L
from . import _fused
from . import inplace as _I
from . import random as _R
from ._helpers import tensor_arg

__all__ = []

FUNCTIONAL = ("dropout", "alpha_dropout", "dropout1d", "dropout2d", "dropout3d", "feature_alpha_dropout")

_ALPHA = 1.7580993408473766  # SELU's scale * alpha: the value alpha dropout drops to (before the affine fix)
_F64 = np.dtype(np.float64)


def _check_p(p) -> None:
    if p < 0.0 or p > 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")


class NativeDropoutBackward0(Op):
    """``x * m (+ b)`` for a (scaled) mask ``m``: inputs (x, m, b); the mask is saved once, backward is ``g * m``."""

    op_name = "native_dropout"

    def forward(self, xp, x, m, b):
        if self.next_functions:
            self.save(1)
        arr = x * m
        if b is not None:
            arr += b
        return arr

    def backward(self, g):
        (m,) = self.saved_tensors
        return g * m, None, None


class FusedDropoutBackward0(Op):
    """Dropout by ``kernels/dropout.cu``: ``x * mask / (1 - p)`` with the Philox mask of ``(seed, offset)``, kept
    as uint8 on the node; backward is ``g * mask / (1 - p)`` (by the backward kernel when no graph is recorded)."""

    op_name = "native_dropout"

    def forward(self, xp, a, p=0.5, seed=0, offset=0):
        out, mask = xp.empty_like(a), xp.empty(a.shape, dtype=np.uint8)
        _fused.launcher(xp, a)(L.dropout_plan(a, out, mask, p, seed, offset))
        if self.next_functions:
            self.mask, self.p = mask, p
        return out

    def _scaled_mask(self, dtype):
        return (self.mask * (1.0 / (1.0 - self.p))).astype(dtype)

    def backward(self, g):
        return g * T._wrap(self._scaled_mask(g._data.dtype))

    def backward_arrays(self, xp, g):
        if g.shape == self.mask.shape:
            g = xp.ascontiguousarray(g)
        run = _fused.launcher(xp, g) if g.shape == self.mask.shape else None
        if run is None:
            return g * self._scaled_mask(g.dtype)
        out = xp.empty_like(g)
        run(L.dropout_backward_plan(g, self.mask, out, self.p))
        return out


def _fused_dropout(x, p: float, seed: int, offset: int):
    return FusedDropoutBackward0.apply(x, p=p, seed=seed, offset=offset)


def _masked(x, m, b):
    """``x * m (+ b)`` for Tensors ``x``, ``m`` and an array ``b`` (or None)."""
    return NativeDropoutBackward0.apply(x, m, b)


def _dropout(input, p: float, training: bool, inplace: bool, op: str, alpha: bool, feature):
    """Shared body: ``feature`` maps the input's shape to the mask's shape (None: one draw per element)."""
    x = tensor_arg(input, op)
    a = x._data
    if not training or p == 0 or a.size == 0:
        return x
    if a.dtype.kind not in "fV":
        raise RuntimeError(f"{op}: expected a floating point input, got {x.dtype}")
    shape = a.shape if feature is None else feature(a.shape)
    xp = x._xp
    b = None
    if p == 1:
        m = xp.zeros((), dtype=a.dtype)
    else:
        q = 1.0 - p
        ds = _R._sampler(None, xp)
        if ds is not None and not alpha and feature is None and _fused.launcher(xp, a) is not None:
            seed, offset = ds.gen._philox_next()  # one draw, as ds.uniform01 below would take
            if inplace:
                return _I.inplace_light(x, op + "_", _fused_dropout, p, seed, offset)
            return _fused_dropout(x, p, seed, offset)
        if ds is not None:  # drawn on the device; float32 masks compare as kernels/dropout.cu does
            u = ds.uniform01(shape, _R.D.float64 if a.dtype == _F64 else _R.D.float32)
            keep = u < (q if a.dtype == _F64 else np.float32(q))
        else:
            rng = _R._rng(None)
            keep = (rng.random(shape) if a.dtype == _F64 else rng.random(shape, dtype=np.float32)) < q
        if alpha:
            s = 1.0 / math.sqrt((_ALPHA * _ALPHA * p + 1.0) * q)
            b = _R._on(xp, ((keep - 1.0) * (_ALPHA * s) + _ALPHA * s * p).astype(a.dtype))
            m = keep * s
        else:
            m = keep * (1.0 / q)
        m = _R._on(xp, m.astype(a.dtype))
    mt = T._wrap(m)
    if inplace:
        return _I.inplace_light(x, op + "_", _masked, mt, b)
    return _masked(x, mt, b)


def dropout(input, p: float = 0.5, training: bool = True, inplace: bool = False):
    """Zero each element with probability ``p`` and scale the rest by ``1 / (1 - p)`` (training only).

    Example:
        >>> y = dropout(disttorch.ones(1000), 0.25)   # about 250 zeros, the rest 4/3
    """
    _check_p(p)
    return _dropout(input, p, training, inplace, "dropout", False, None)


def alpha_dropout(input, p: float = 0.5, training: bool = False, inplace: bool = False):
    """Dropout for SELU networks: keeps zero mean and unit variance by an affine fix of dropped values."""
    _check_p(p)
    return _dropout(input, p, training, inplace, "alpha_dropout", True, None)


def _channels(op: str, batched: bool):
    """Mask shape for channel-wise dropout: (N, C, 1, ...) batched, (C, 1, ...) unbatched."""
    def shape(s):
        full = s if batched else (1,) + tuple(s)
        if len(full) < 2:
            raise RuntimeError(f"{op}: Feature dropout requires at least 2 dimensions in the input")
        ms = (full[0], full[1]) + (1,) * (len(full) - 2)
        return ms if batched else ms[1:]
    return shape


def dropout1d(input, p: float = 0.5, training: bool = True, inplace: bool = False):
    """Zero whole channels of a (N, C, L) or (C, L) input with probability ``p``."""
    _check_p(p)
    x = tensor_arg(input, "dropout1d")
    nd = x.ndim
    if nd not in (2, 3):
        raise RuntimeError(f"dropout1d: Expected 2D or 3D input, but received a {nd}D input. Note that dropout1d "
                           "exists to provide channel-wise dropout on inputs with 1 spatial dimension, a channel "
                           "dimension, and an optional batch dimension (i.e. 2D or 3D inputs).")
    return _dropout(x, p, training, inplace, "dropout1d", False, _channels("dropout1d", nd == 3))


def dropout2d(input, p: float = 0.5, training: bool = True, inplace: bool = False):
    """Zero whole channels of a (N, C, H, W) input with probability ``p`` (3-D inputs: (N, C, L), with a warning)."""
    _check_p(p)
    x = tensor_arg(input, "dropout2d")
    nd = x.ndim
    if nd not in (3, 4):
        warnings.warn(f"dropout2d: Received a {nd}-D input to dropout2d, which is deprecated and will result in an "
                      "error in a future release. To retain the behavior and silence this warning, please use "
                      "dropout instead. Note that dropout2d exists to provide channel-wise dropout on inputs with 2 "
                      "spatial dimensions, a channel dimension, and an optional batch dimension (i.e. 3D or 4D "
                      "inputs).", stacklevel=2)
    if nd == 3:
        warnings.warn("dropout2d: Received a 3D input to dropout2d and assuming that channel-wise 1D dropout "
                      "behavior is desired - input is interpreted as shape (N, C, L), where C is the channel dim. "
                      "This behavior will change in a future release to interpret the input as one without a batch "
                      "dimension, i.e. shape (C, H, W). To maintain the 1D channel-wise dropout behavior, please "
                      "switch to using dropout1d instead.", stacklevel=2)
    return _dropout(x, p, training, inplace, "dropout2d", False, _channels("dropout2d", True))


def dropout3d(input, p: float = 0.5, training: bool = True, inplace: bool = False):
    """Zero whole channels of a (N, C, D, H, W) or (C, D, H, W) input with probability ``p``."""
    _check_p(p)
    x = tensor_arg(input, "dropout3d")
    nd = x.ndim
    if nd not in (4, 5):
        warnings.warn(f"dropout3d: Received a {nd}-D input to dropout3d, which is deprecated and will result in an "
                      "error in a future release. To retain the behavior and silence this warning, please use "
                      "dropout instead. Note that dropout3d exists to provide channel-wise dropout on inputs with 3 "
                      "spatial dimensions, a channel dimension, and an optional batch dimension (i.e. 4D or 5D "
                      "inputs).", stacklevel=2)
    return _dropout(x, p, training, inplace, "dropout3d", False, _channels("dropout3d", nd == 5))


def feature_alpha_dropout(input, p: float = 0.5, training: bool = False, inplace: bool = False):
    """``alpha_dropout`` that drops whole channels (dim 1) of an input with at least 2 dims."""
    _check_p(p)
    return _dropout(input, p, training, inplace, "feature_alpha_dropout", True,
                    _channels("feature_alpha_dropout", True))
