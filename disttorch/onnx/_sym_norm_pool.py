"""ONNX nodes of normalisation ops and of the pooling layers (exported whole, see _tracer.ABSORBED_LAYERS)."""
from __future__ import annotations

import math

import numpy as np

from .errors import UnsupportedOperatorError
from ._registry import register


def _tup(v, n: int) -> list:
    return [int(a) for a in v] if isinstance(v, (tuple, list)) else [int(v)] * n


def _affine(e, y: str, c_shape: tuple, dt, out_name: str, w_k: int = 1, b_k: int = 2) -> None:
    """``y * weight + bias`` with weight/bias reshaped to broadcast over ``c_shape``."""
    if e.arg(w_k) is not None:
        y = e.node("Mul", [y, e.node("Reshape", [e.x(w_k), e.g.ints(c_shape)])])
    if e.arg(b_k) is not None:
        y = e.node("Add", [y, e.node("Reshape", [e.x(b_k), e.g.ints(c_shape)])])
    e.node("Identity", [y], [out_name])


@register("native_batch_norm")
def _batch_norm(e):
    spec, fixed = e.attr("spec"), e.attr("fixed")
    if fixed is None:
        raise UnsupportedOperatorError(f"ONNX export: batch_norm with batch statistics (in module '{e.ev.where}') "
                                       "is training-mode behaviour; export runs the model in eval mode")
    dt = e.odtype()
    c = e.shape(0)[1]
    w = e.x(1) if e.arg(1) is not None else e.g.const(np.ones(c, dt))
    b = e.x(2) if e.arg(2) is not None else e.g.const(np.zeros(c, dt))
    mean = e.g.const(np.asarray(fixed[0], dt).reshape(-1))
    var = e.g.const(np.asarray(fixed[1], dt).reshape(-1))
    e.node("BatchNormalization", [e.x(0), w, b, mean, var], [e.out()], epsilon=float(spec.eps))


@register("native_layer_norm")
def _layer_norm(e):
    spec = e.attr("spec")
    xshape, dt = e.shape(0), e.odtype()
    cols = spec.sshape[-1]
    axis = next(k for k in range(len(xshape) + 1) if math.prod(xshape[k:]) == cols)
    norm_shape = xshape[axis:]
    w = e.node("Reshape", [e.x(1), e.g.ints(norm_shape)]) if e.arg(1) is not None else e.g.const(
        np.ones(norm_shape, dt))
    ins = [e.x(0), w] + ([e.node("Reshape", [e.x(2), e.g.ints(norm_shape)])] if e.arg(2) is not None else [])
    e.node("LayerNormalization", ins, [e.out()], axis=axis, epsilon=float(spec.eps))


@register("native_group_norm")
def _group_norm(e):
    spec, dt = e.attr("spec"), e.odtype()
    xshape = e.shape(0)
    groups = spec.sshape[0] // xshape[0]
    x = e.x(0)
    xg = e.node("Reshape", [x, e.g.ints([0, groups, -1])])
    mean = e.node("ReduceMean", [xg], axes=[2], keepdims=1)
    d = e.node("Sub", [xg, mean])
    var = e.node("ReduceMean", [e.node("Mul", [d, d])], axes=[2], keepdims=1)
    y = e.node("Div", [d, e.node("Sqrt", [e.node("Add", [var, e.scalar(spec.eps, dt)])])])
    y = e.node("Reshape", [y, e.node("Shape", [x])])
    _affine(e, y, (xshape[1],) + (1,) * (len(xshape) - 2), dt, e.out())


# ---- pooling layers ------------------------------------------------------------------------------------------
def _pool_geometry(m, n: int):
    k = _tup(m.kernel_size, n)
    s = _tup(m.stride if m.stride is not None else m.kernel_size, n)
    p = _tup(m.padding, n)
    return k, s, p + p


@register("module:MaxPool1d", "module:MaxPool2d")
def _max_pool(e):
    m = e.attr("module")
    n = len(e.shape(0)) - 2
    if getattr(m, "return_indices", False):
        raise UnsupportedOperatorError(f"ONNX export: {type(m).__name__}(return_indices=True) in module "
                                       f"'{e.ev.where}' is not supported")
    k, s, p = _pool_geometry(m, n)
    e.node("MaxPool", [e.x(0)], [e.out()], kernel_shape=k, strides=s, pads=p, dilations=_tup(m.dilation, n),
           ceil_mode=int(bool(m.ceil_mode)))


@register("module:LPPool1d", "module:LPPool2d")
def _lp_pool(e):
    """PyTorch's power-average pooling, ``(avg_pool(x ** p) * window) ** (1 / p)``, spelled out (ONNX's LpPool
    takes |x|, PyTorch does not)."""
    m = e.attr("module")
    n = len(e.shape(0)) - 2
    k = _tup(m.kernel_size, n)
    s = _tup(m.stride if m.stride is not None else m.kernel_size, n)
    dt, p = e.odtype(), float(m.norm_type)
    y = e.node("Pow", [e.x(0), e.scalar(p, dt)])
    y = e.node("AveragePool", [y], kernel_shape=k, strides=s, ceil_mode=int(bool(m.ceil_mode)))
    y = e.node("Mul", [y, e.scalar(float(np.prod(k)), dt)])
    e.node("Pow", [y, e.scalar(1.0 / p, dt)], [e.out()])


@register("module:AvgPool1d", "module:AvgPool2d")
def _avg_pool(e):
    m = e.attr("module")
    n = len(e.shape(0)) - 2
    if getattr(m, "divisor_override", None):
        raise UnsupportedOperatorError(f"ONNX export: AvgPool divisor_override (in module '{e.ev.where}') has no "
                                       "ONNX mapping")
    k, s, p = _pool_geometry(m, n)
    e.node("AveragePool", [e.x(0)], [e.out()], kernel_shape=k, strides=s, pads=p,
           ceil_mode=int(bool(m.ceil_mode)), count_include_pad=int(bool(m.count_include_pad)))


@register("module:AdaptiveAvgPool1d", "module:AdaptiveAvgPool2d")
def _adaptive_avg_pool(e):
    ishape, oshape = e.shape(0)[2:], e.oshape(0)[2:]
    if all(o == 1 for o in oshape):
        e.node("GlobalAveragePool", [e.x(0)], [e.out()])
        return
    if any(i % o for i, o in zip(ishape, oshape)):
        raise UnsupportedOperatorError(
            f"ONNX export: adaptive_avg_pool from {tuple(ishape)} to {tuple(oshape)} (in module '{e.ev.where}'): "
            "ONNX has no adaptive pooling; only sizes that divide evenly are exported")
    k = [i // o for i, o in zip(ishape, oshape)]
    e.node("AveragePool", [e.x(0)], [e.out()], kernel_shape=k, strides=k)
