"""Convolutions (conv1d/2d/3d, conv_transpose1d/2d/3d) and unfold/fold, as torch.nn.functional.

One differentiable primitive, ``_convolution`` (PyTorch's ``ConvolutionBackward0``), does both the
convolution (im2col as a strided view + one matmul over the batch, see ops/im2col.py) and the transposed
convolution (one matmul + col2im). Their backward formulas are each other plus ``_weight_grad``
(a second primitive, ``ConvolutionBackwardBackward0``), all Tensor-level, so double backward works:

- conv:           grad_input = conv_transpose(g, w),  grad_weight = weight_grad(x, g)
- conv_transpose: grad_input = conv(g, w),            grad_weight = weight_grad(g, x)

Padding is carried internally as ``(lo, hi)`` per spatial dim (``'same'`` may be asymmetric and a
negative ``hi`` stands for output_padding), which makes each op the exact adjoint of the other.
"""
from __future__ import annotations

import math
import warnings

import numpy as np

from .. import _dtype as D
from .. import _tensor as T
from ..amp._state import STATE as _AC
from ..amp._state import cast_lower as _autocast
from ..autograd.op import Op
from . import conv2d_compiled as CC
from . import im2col as K
from ._helpers import tensor_arg
from ._kept import attach_kept

__all__ = ["conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d"]
FUNCTIONAL = ("conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d", "unfold",
              "fold")

_F32 = np.dtype(np.float32)
_LOW = (np.dtype(np.float16), D.bfloat16.np)
_TYPE = {"float32": "Float", "float64": "Double", "float16": "Half", "bfloat16": "BFloat16", "int64": "Long",
         "int32": "Int", "int16": "Short", "int8": "Char", "uint8": "Byte", "bool": "Bool",
         "complex64": "ComplexFloat", "complex128": "ComplexDouble"}
_LOWER = {"float32": "float", "float64": "double", "float16": "c10::Half", "bfloat16": "c10::BFloat16"}


# ---- the differentiable primitives ------------------------------------------------------------------
def _adjoint_pads(pads, in_sp, out_sp, ksize, stride, dil):
    """Pads for the transposed conv that maps a conv's output size ``out_sp`` back onto ``in_sp``."""
    return tuple((lo, (o - 1) * s + d * (k - 1) + 1 - lo - i)
                 for (lo, _), i, o, k, s, d in zip(pads, in_sp, out_sp, ksize, stride, dil))


def _work(arr):
    """``arr`` in the dtype the kernels compute in: float32 for the half types (NumPy's are slow and inexact)."""
    return arr.astype(_F32) if arr.dtype in _LOW else arr


def _conv_arrays(xp, xa, wa, ba, stride, pads, dil, groups: int, transposed: bool, osize):
    """(y, cols) of the convolution (or its transpose) over arrays, in ``xa``'s dtype; cols is the input's
    im2col (None for the transpose)."""
    dt = xa.dtype
    xa, wa = _work(xa), _work(wa)
    cols = None
    if transposed:
        y = None
        if xp is not np:  # col2im(w^T x): the input gradient of the conv whose transpose this is
            dest = (xa.shape[0], wa.shape[1] * groups) + tuple(osize)
            y = K.conv2d_input_grad_fused(xp, xa, wa, dest, pads, stride, dil, groups)
        if y is None:
            y = K.conv_transpose(xp, xa, wa, pads, stride, dil, groups, osize)
        if ba is not None:
            y += _work(ba).reshape((-1,) + (1,) * (y.ndim - 2))
    else:
        bw = None if ba is None else _work(ba)
        if xp is np:  # the compiled per-sample kernels keep no columns: the weight gradient redoes them per sample
            y = CC.forward(xa, wa, bw, pads, stride, dil, groups)
            r = None if y is None else (y, None)
        else:
            r = K.conv2d_fused(xp, xa, wa, pads, stride, dil, groups, bw)
        y, cols = r if r is not None else K.conv(xp, xa, wa, pads, stride, dil, groups, bw)
    if y.dtype != dt:
        y = y.astype(dt)
    return y, cols


def _weight_grad_arrays(xp, inp, gout, wshape, stride, pads, dil, groups: int):
    if xp is np:
        gw = CC.weight_grad(_work(inp), _work(gout), wshape, pads, stride, dil, groups)
        if gw is not None:
            return gw.astype(inp.dtype, copy=False)
    cols, _ = K.conv_cols(xp, _work(inp), wshape[2:], pads, stride, dil, groups)
    return K.weight_grad(xp, cols, _work(gout), wshape, groups).astype(inp.dtype, copy=False)


class ConvolutionBackward0(Op):
    """Convolution or transposed convolution: inputs (x, w, b); the fast backward reuses the im2col columns."""

    op_name = "convolution"

    def forward(self, xp, x, w, b, stride=None, pads=None, dil=None, groups=1, transposed=False, osize=None):
        y, cols = _conv_arrays(xp, x, w, b, stride, pads, dil, groups, transposed, osize)
        if self.next_functions:
            self.stride, self.pads, self.dilation, self.groups, self.transposed = stride, pads, dil, groups, transposed
            self.save(0, 1)
            # The columns are the input's im2col: keeping them saves redoing it for the weight gradient.
            if cols is not None and self._nig[1]:
                self.kept = cols
        return y

    def backward_arrays(self, xp, g):
        x, w, *kept = self.saved_tensors
        x, w = x._data, w._data
        need_x, need_w, need_b = self._nig[:3]
        s, pads, d, groups = self.stride, self.pads, self.dilation, self.groups
        gx = gw = gb = None
        wshape = w.shape
        if not self.transposed:
            if need_x:
                if xp is np:
                    gx = CC.input_grad(_work(g), _work(w), x.shape, pads, s, d, groups)
                else:
                    gx = K.conv2d_input_grad_fused(xp, _work(g), _work(w), x.shape, pads, s, d, groups)
                if gx is not None:
                    gx = gx.astype(x.dtype, copy=False)
                else:
                    ap = _adjoint_pads(pads, x.shape[2:], g.shape[2:], wshape[2:], s, d)
                    gx = _conv_arrays(xp, g, w, None, s, ap, d, groups, True, x.shape[2:])[0]
            if need_w:
                if kept:
                    gw = K.weight_grad(xp, kept[0], _work(g), wshape, groups).astype(w.dtype, copy=False)
                else:
                    gw = _weight_grad_arrays(xp, x, g, wshape, s, pads, d, groups)
        elif need_x and need_w:
            # Both gradients of a transposed conv read the columns of g: build them once.
            y, gcols = K.conv(xp, _work(g), _work(w), pads, s, d, groups)
            gx = y.astype(g.dtype, copy=False)
            gw = K.weight_grad(xp, gcols, _work(x), wshape, groups).astype(w.dtype, copy=False)
        else:
            if need_x:
                gx = _conv_arrays(xp, g, w, None, s, pads, d, groups, False, None)[0]
            if need_w:
                gw = _weight_grad_arrays(xp, g, x, wshape, s, pads, d, groups)
        if need_b:
            gb = T._wrap(g).sum((0,) + tuple(range(2, g.ndim)))._data
        return gx, gw, gb

    def backward(self, g):
        """The same gradients with Tensor ops (create_graph): each is a convolution, so double backward works."""
        x, w = self.saved_tensors[:2]
        need_x, need_w, need_b = self._nig[:3]
        s, pads, d, groups = self.stride, self.pads, self.dilation, self.groups
        gx = gw = gb = None
        wshape = w._data.shape
        if not self.transposed:
            if need_x:
                ap = _adjoint_pads(pads, x._data.shape[2:], g._data.shape[2:], wshape[2:], s, d)
                gx = _convolution(g, w, None, s, ap, d, groups, True, x._data.shape[2:])
            if need_w:
                gw = _weight_grad(x, g, wshape, s, pads, d, groups)
        else:
            if need_x:
                gx = _convolution(g, w, None, s, pads, d, groups, False)
            if need_w:
                gw = _weight_grad(g, x, wshape, s, pads, d, groups)
        if need_b:
            gb = g.sum((0,) + tuple(range(2, g._data.ndim)))
        return gx, gw, gb


def _convolution(x, w, b, stride, pads, dil, groups: int, transposed: bool, osize=None):
    """Convolution (or its transpose, with output spatial size ``osize``) of checked, batched arguments."""
    r = ConvolutionBackward0.apply(x, w, b, stride=stride, pads=pads, dil=dil, groups=groups, transposed=transposed,
                                   osize=osize)
    return attach_kept(r, ConvolutionBackward0) if r._requires_grad else r


class ConvolutionBackwardBackward0(Op):
    """The weight gradient of a convolution as a function of (input, output gradient): bilinear."""

    op_name = "convolution_backward"

    def forward(self, xp, inp, gout, wshape=None, stride=None, pads=None, dil=None, groups=1):
        if self.next_functions:
            self.stride, self.pads, self.dilation, self.groups = stride, pads, dil, groups
            self.save(0, 1)
        return _weight_grad_arrays(xp, inp, gout, wshape, stride, pads, dil, groups)

    def backward(self, ggw):
        inp, gout = self.saved_tensors
        s, pads, d, groups = self.stride, self.pads, self.dilation, self.groups
        need_inp, need_gout = self._nig[:2]
        g_inp = g_gout = None
        if need_inp:
            ap = _adjoint_pads(pads, inp._data.shape[2:], gout._data.shape[2:], ggw._data.shape[2:], s, d)
            g_inp = _convolution(gout, ggw, None, s, ap, d, groups, True, inp._data.shape[2:])
        if need_gout:
            g_gout = _convolution(inp, ggw, None, s, pads, d, groups, False)
        return g_inp, g_gout


def _weight_grad(inp, gout, wshape, stride, pads, dil, groups: int):
    """The weight gradient of ``conv(inp, w)`` for output gradient ``gout`` (bilinear, differentiable)."""
    return ConvolutionBackwardBackward0.apply(inp, gout, wshape=wshape, stride=stride, pads=pads, dil=dil,
                                              groups=groups)


# ---- argument parsing and checks --------------------------------------------------------------------
def _expand(v, n: int, name: str, op: str) -> tuple:
    if isinstance(v, (bool, float)) or not isinstance(v, (int, tuple, list)) and not hasattr(v, "__index__"):
        raise TypeError(f"{op}(): argument '{name}' must be tuple of ints, not {type(v).__name__}")
    if isinstance(v, (tuple, list)):
        for e in v:
            if isinstance(e, (bool, float)) or not hasattr(e, "__index__"):
                raise TypeError(f"{op}(): argument '{name}' must be tuple of ints, but found element of type "
                                f"{type(e).__name__}")
        if len(v) == 1:
            return (int(v[0]),) * n
        if len(v) != n:
            raise RuntimeError(f"expected {name} to be a single integer value or a list of {n} values to match the "
                               f"convolution dimensions, but got {name}={list(v)}")
        return tuple(int(e) for e in v)
    return (int(v),) * n


def _x(vals) -> str:
    return " x ".join(str(v) for v in vals)


def _check_common(op: str, x, w, b, nsp: int, stride, pads, dil, groups: int, transposed: bool) -> None:
    if x._data.__class__ is not w._data.__class__:
        raise RuntimeError(f"{op}: Expected all tensors to be on the same device, but found at least two devices, "
                           f"{x.device} and {w.device}!")
    if w._data.ndim != nsp + 2:
        raise RuntimeError(f"{op}: expected a {nsp + 2}-dimensional weight for {nsp + 2}-dimensional input "
                           f"{list(x.shape)}, but got weight of size {list(w.shape)}")
    if x._data.dtype != w._data.dtype:
        raise RuntimeError(f"expected scalar type {_TYPE.get(x.dtype.name, x.dtype.name)} but found "
                           f"{_TYPE.get(w.dtype.name, w.dtype.name)}")
    if x._data.dtype.kind == "b":
        raise NotImplementedError(f"\"slow_conv{nsp}d_cpu\" not implemented for 'Bool'")
    if any(lo < 0 for lo, _ in pads):
        raise RuntimeError("negative padding is not supported")
    if any(s <= 0 for s in stride):
        raise RuntimeError("non-positive stride is not supported")
    if any(d <= 0 for d in dil):
        raise RuntimeError(f"dilation should be greater than zero, but got {list(dil)}")
    if groups <= 0:
        raise RuntimeError("non-positive groups is not supported")
    ws, xs = list(w.shape), list(x.shape)
    if ws[0] % groups:
        raise RuntimeError(f"Given groups={groups}, expected weight to be divisible by {groups} at dimension 0, but "
                           f"got weight of size [{ws}] instead")
    if transposed:
        if xs[1] != ws[0]:
            raise RuntimeError(f"Given transposed=1, weight of size {ws}, expected input{xs} to have {ws[0]} channels, "
                               f"but got {xs[1]} channels instead")
        nout = ws[1] * groups
    else:
        if xs[1] != ws[1] * groups:
            raise RuntimeError(f"Given groups={groups}, weight of size {ws}, expected input{xs} to have "
                               f"{ws[1] * groups} channels, but got {xs[1]} channels instead")
        padded = [s + lo + hi for s, (lo, hi) in zip(xs[2:], pads)]
        kern = [d * (k - 1) + 1 for k, d in zip(ws[2:], dil)]
        if any(p < k for p, k in zip(padded, kern)):
            raise RuntimeError(f"Calculated padded input size per channel: ({_x(padded)}). Kernel size: ({_x(kern)})."
                               f" Kernel size can't be greater than actual input size")
        nout = ws[0]
    if b is not None:
        b = tensor_arg(b, op, "bias")
        if b._data.ndim != 1 or b._data.shape[0] != nout:
            raise RuntimeError(f"Given {'transposed=1, ' if transposed else ''}weight of size {ws}, expected bias "
                               f"to be 1-dimensional with {nout} elements, but got bias of size {list(b.shape)} "
                               "instead")
        if b._data.dtype != x._data.dtype:
            raise RuntimeError(f"Input type ({_LOWER.get(x.dtype.name, x.dtype.name)}) and bias type "
                               f"({_LOWER.get(b.dtype.name, b.dtype.name)}) should be the same")


def _batched(x, nsp: int, op: str):
    if x._data.ndim not in (nsp + 1, nsp + 2):
        raise RuntimeError(f"Expected {nsp + 1}D (unbatched) or {nsp + 2}D (batched) input to {op}, but got input "
                           f"of size: {list(x.shape)}")
    return (x.unsqueeze(0), True) if x._data.ndim == nsp + 1 else (x, False)


def _conv_nd(op: str, nsp: int, input, weight, bias, stride, padding, dilation, groups):
    x = tensor_arg(input, op)
    w = tensor_arg(weight, op, "weight")
    if _AC.active:
        x, w, bias = _autocast(x, w, bias)
    x, unbatched = _batched(x, nsp, op)
    stride = _expand(stride, nsp, "stride", op)
    dilation = _expand(dilation, nsp, "dilation", op)
    ksize = w._data.shape[2:] if w._data.ndim == nsp + 2 else (1,) * nsp
    if isinstance(padding, str):
        if padding == "valid":
            pads = ((0, 0),) * nsp
        elif padding == "same":
            if any(s != 1 for s in stride):
                raise RuntimeError("padding='same' is not supported for strided convolutions")
            totals = [d * (k - 1) for k, d in zip(ksize, dilation)]
            if any(t % 2 for t in totals):
                warnings.warn("Using padding='same' with even kernel lengths and odd dilation may require a "
                              "zero-padded copy of the input be created", UserWarning, stacklevel=3)
            pads = tuple((t // 2, t - t // 2) for t in totals)
        else:
            raise RuntimeError(f"Invalid padding string: '{padding}'")
    else:
        pads = tuple((p, p) for p in _expand(padding, nsp, "padding", op))
    _check_common(op, x, w, bias, nsp, stride, pads, dilation, int(groups), False)
    r = _convolution(x, w, bias, stride, pads, dilation, int(groups), False)
    return r.squeeze(0) if unbatched else r


def _conv_transpose_nd(op: str, nsp: int, input, weight, bias, stride, padding, output_padding, groups, dilation):
    x = tensor_arg(input, op)
    w = tensor_arg(weight, op, "weight")
    if _AC.active:
        x, w, bias = _autocast(x, w, bias)
    x, unbatched = _batched(x, nsp, op)
    stride = _expand(stride, nsp, "stride", op)
    dilation = _expand(dilation, nsp, "dilation", op)
    padding = _expand(padding, nsp, "padding", op)
    opad = _expand(output_padding, nsp, "output_padding", op)
    pads = tuple((p, p - q) for p, q in zip(padding, opad))
    _check_common(op, x, w, bias, nsp, stride, pads, dilation, int(groups), True)
    if any(q >= s and q >= d for q, s, d in zip(opad, stride, dilation)) or any(q < 0 for q in opad):
        names = ("depth", "height", "width")[3 - nsp:] if nsp <= 3 else [str(i) for i in range(nsp)]
        parts = [f"output_padding_{n}: {q}" for n, q in zip(names, opad)] + \
                [f"stride_{n}: {s}" for n, s in zip(names, stride)] + \
                [f"dilation_{n}: {d}" for n, d in zip(names, dilation)]
        raise RuntimeError("output padding must be smaller than either stride or dilation, but got " + " ".join(parts))
    isize = x._data.shape[2:]
    osize = tuple((i - 1) * s + d * (k - 1) + 1 - lo - hi
                  for i, s, d, k, (lo, hi) in zip(isize, stride, dilation, w._data.shape[2:], pads))
    if any(o <= 0 for o in osize):
        raise RuntimeError(f"Given input size per channel: ({_x(isize)}). Calculated output size per channel: "
                           f"({_x(osize)}). Output size is too small")
    r = _convolution(x, w, bias, stride, pads, dilation, int(groups), True, osize)
    return r.squeeze(0) if unbatched else r


# ---- public convolutions --------------------------------------------------------------------------
def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups: int = 1):
    """1-d cross-correlation of ``input`` (N, C, L) or (C, L) with ``weight`` (O, C/groups, k).

    ``padding`` is an int, a 1-tuple, ``'valid'`` or ``'same'``.
    """
    return _conv_nd("conv1d", 1, input, weight, bias, stride, padding, dilation, groups)


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups: int = 1):
    """2-d cross-correlation of ``input`` (N, C, H, W) or (C, H, W) with ``weight`` (O, C/groups, kH, kW).

    Example:
        >>> conv2d(disttorch.ones(1, 1, 3, 3), disttorch.ones(1, 1, 2, 2)).shape
        disttorch.Size([1, 1, 2, 2])
    """
    return _conv_nd("conv2d", 2, input, weight, bias, stride, padding, dilation, groups)


def conv3d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups: int = 1):
    """3-d cross-correlation of ``input`` (N, C, D, H, W) or (C, D, H, W) with ``weight`` (O, C/groups, kD, kH, kW)."""
    return _conv_nd("conv3d", 3, input, weight, bias, stride, padding, dilation, groups)


def conv_transpose1d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups: int = 1, dilation=1):
    """1-d transposed convolution (the gradient of conv1d in its input); ``weight`` is (C, O/groups, k)."""
    return _conv_transpose_nd("conv_transpose1d", 1, input, weight, bias, stride, padding, output_padding, groups,
                              dilation)


def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups: int = 1, dilation=1):
    """2-d transposed convolution (the gradient of conv2d in its input); ``weight`` is (C, O/groups, kH, kW).

    The output size is ``(in - 1) * stride - 2 * padding + dilation * (k - 1) + output_padding + 1``.
    """
    return _conv_transpose_nd("conv_transpose2d", 2, input, weight, bias, stride, padding, output_padding, groups,
                              dilation)


def conv_transpose3d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups: int = 1, dilation=1):
    """3-d transposed convolution; ``weight`` is (C, O/groups, kD, kH, kW)."""
    return _conv_transpose_nd("conv_transpose3d", 3, input, weight, bias, stride, padding, output_padding, groups,
                              dilation)


# ---- unfold / fold (im2col / col2im) -----------------------------------------------------------------
class Im2ColBackward0(Op):
    """unfold (im2col) of a batched (N, C, H, W) array; its adjoint is fold."""

    op_name = "im2col"

    def forward(self, xp, a, ks=None, dil=None, pad=None, st=None, osize=None, batched=True):
        if self.next_functions:
            self.size, self.kernel_size, self.dilation, self.padding, self.stride = a.shape[-2:], ks, dil, pad, st
        arr = a if batched else a[None]
        pads = tuple((p, p) for p in pad)
        r = K.im2col_2d(xp, arr, ks, pads, st, dil) if xp is not np else None
        cols = r[0] if r is not None else K.im2col(xp, arr, ks, pads, st, dil)[0]
        cols = cols.reshape(arr.shape[0], -1, math.prod(osize))
        return cols if batched else cols[0]

    def backward(self, g):
        return fold(g, self.size, self.kernel_size, self.dilation, self.padding, self.stride)


class Col2ImBackward0(Op):
    """fold (col2im): columns summed back into an image; its adjoint is unfold."""

    op_name = "col2im"

    def forward(self, xp, a, size=None, ks=None, dil=None, pad=None, st=None, osize=None, batched=True):
        if self.next_functions:
            self.kernel_size, self.dilation, self.padding, self.stride = ks, dil, pad, st
        arr = a if batched else a[None]
        kvol = ks[0] * ks[1]
        n, c = arr.shape[0], arr.shape[1] // kvol
        pads = tuple((p, p) for p in pad)
        out = K.col2im_2d(xp, arr, ks, (n, c) + size, pads, st, dil) if xp is not np else None
        if out is None:
            cols = arr.reshape((n, c, kvol) + osize).transpose(0, 2, 1, 3, 4)
            out = K.col2im(xp, cols, ks, (n, c) + size, pads, st, dil)
        return out if batched else out[0]

    def backward(self, g):
        return unfold(g, self.kernel_size, self.dilation, self.padding, self.stride)


def _pair_args(op: str, kernel_size, dilation, padding, stride):
    ks = _expand_exact(kernel_size, "kernel_size")
    dil = _expand_exact(dilation, "dilation")
    pad = _expand_exact(padding, "padding")
    st = _expand_exact(stride, "stride")
    if any(k <= 0 for k in ks):
        raise RuntimeError(f"kernel size should be greater than zero, but got kernel_height: {ks[0]} "
                           f"kernel_width: {ks[1]}")
    if any(s <= 0 for s in st):
        raise RuntimeError(f"stride should be greater than zero, but got stride_height: {st[0]} stride_width: {st[1]}")
    if any(d <= 0 for d in dil):
        raise RuntimeError(f"dilation should be greater than zero, but got dilation_height: {dil[0]} "
                           f"dilation_width: {dil[1]}")
    if any(p < 0 for p in pad):
        raise RuntimeError(f"padding should be non-negative, but got pad_height: {pad[0]} pad_width: {pad[1]}")
    return ks, dil, pad, st


def _expand_exact(v, name: str) -> tuple:
    if isinstance(v, (tuple, list)):
        if len(v) != 2:
            raise RuntimeError(f"It is expected {name} equals to 2, but got size {len(v)}")
        return (int(v[0]), int(v[1]))
    if isinstance(v, (bool, float)) or not hasattr(v, "__index__"):
        raise TypeError(f"argument '{name}' must be an int or a tuple of two ints, not {type(v).__name__}")
    return (int(v),) * 2


def unfold(input, kernel_size, dilation=1, padding=0, stride=1):
    """Sliding local blocks of ``input`` (N, C, H, W) or (C, H, W) as columns (N, C*kH*kW, L) (im2col).

    Example:
        >>> unfold(disttorch.ones(1, 2, 3, 3), 2).shape
        disttorch.Size([1, 8, 4])
    """
    x = tensor_arg(input, "unfold")
    ks, dil, pad, st = _pair_args("unfold", kernel_size, dilation, padding, stride)
    nd = x._data.ndim
    if nd not in (3, 4) or any(s == 0 for s in x._data.shape[1 if nd == 4 else 0:]):
        raise RuntimeError(f"Expected 3D or 4D (batch mode) tensor with possibly 0 batch size and other non-zero "
                           f"dimensions for input, but got: {list(x.shape)}")
    arr = x._data if nd == 4 else x._data[None]
    osize = tuple(K.out_size(s, p, p, k, t, d) for s, p, k, t, d in zip(arr.shape[2:], pad, ks, st, dil))
    if any(o < 1 for o in osize):
        raise RuntimeError(f"Given input with spatial size ({arr.shape[2]}, {arr.shape[3]}), kernel_size={ks}, "
                           f"dilation={dil}, padding={pad}, calculated shape of the array of sliding blocks as "
                           f"({osize[0]}, {osize[1]}), but its components must be at least one.")
    return Im2ColBackward0.apply(x, ks=ks, dil=dil, pad=pad, st=st, osize=osize, batched=nd == 4)


def fold(input, output_size, kernel_size, dilation=1, padding=0, stride=1):
    """Sum columns (N, C*kH*kW, L) or (C*kH*kW, L) back into an image (N, C, *output_size) (col2im).

    The adjoint of ``unfold``: overlapping blocks add up.
    """
    x = tensor_arg(input, "fold")
    size = _expand_exact(output_size, "output_size")
    ks, dil, pad, st = _pair_args("fold", kernel_size, dilation, padding, stride)
    nd = x._data.ndim
    if nd not in (2, 3) or any(s == 0 for s in x._data.shape[1 if nd == 3 else 0:]):
        raise RuntimeError(f"Expected 2D or 3D (batch mode) tensor for input with possibly 0 batch size and non-zero "
                           f"dimensions for input, but got: {list(x.shape)}")
    arr = x._data if nd == 3 else x._data[None]
    kvol = ks[0] * ks[1]
    if arr.shape[1] % kvol:
        raise RuntimeError(f"Expected size of input's dimension 1 to be divisible by the product of kernel_size, but "
                           f"got input.size(1)={arr.shape[1]} and kernel_size={ks}.")
    osize = tuple(K.out_size(s, p, p, k, t, d) for s, p, k, t, d in zip(size, pad, ks, st, dil))
    if osize[0] * osize[1] != arr.shape[2]:
        raise RuntimeError(f"Given output_size={size}, kernel_size={ks}, dilation={dil}, padding={pad}, "
                           f"stride={st}, expected size of input's dimension 2 to match the calculated number of "
                           f"sliding blocks {osize[0]} * {osize[1]} = {osize[0] * osize[1]}, but got "
                           f"input.size(2)={arr.shape[2]}.")
    return Col2ImBackward0.apply(x, size=size, ks=ks, dil=dil, pad=pad, st=st, osize=osize, batched=nd == 3)
