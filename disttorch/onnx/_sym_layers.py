"""ONNX nodes of layers exported whole from their attributes (see _tracer.ABSORBED_LAYERS): resizing, padding
modes, instance/RMS norms, PReLU and shrinkage, whose ops carry their geometry in closures or compute masks
outside the traced ops."""
from __future__ import annotations

import numpy as np

from .errors import UnsupportedOperatorError
from ._registry import register


def _unsupported(e, what: str):
    return UnsupportedOperatorError(f"ONNX export: {what} (in module '{e.ev.where}') has no ONNX mapping in "
                                    "disttorch.onnx")


@register("module:Upsample", "module:UpsamplingNearest2d", "module:UpsamplingBilinear2d")
def _upsample(e):
    m = e.attr("module")
    mode = m.mode
    align = bool(m.align_corners)
    if mode == "nearest":
        attrs = {"mode": "nearest", "coordinate_transformation_mode": "asymmetric", "nearest_mode": "floor"}
    elif mode in ("linear", "bilinear", "trilinear"):
        attrs = {"mode": "linear", "coordinate_transformation_mode": "align_corners" if align else
                 "pytorch_half_pixel"}
    else:
        raise _unsupported(e, f"Upsample(mode='{mode}')")
    x = e.x(0)
    rank = len(e.shape(0))
    if m.scale_factor is not None and not m.recompute_scale_factor:
        # PyTorch maps coordinates with the given scale (not out/in), as ONNX does with scales
        sf = m.scale_factor if isinstance(m.scale_factor, tuple) else (m.scale_factor,) * (rank - 2)
        scales = e.g.const(np.asarray([1.0, 1.0] + [float(f) for f in sf], np.float32))
        e.node("Resize", [x, "", scales], [e.out()], **attrs)
        return
    lead = e.node("Slice", [e.node("Shape", [x]), e.g.ints([0]), e.g.ints([2]), e.g.ints([0])])
    sizes = e.node("Concat", [lead, e.g.ints(e.oshape(0)[2:])], axis=0)
    e.node("Resize", [x, "", "", sizes], [e.out()], **attrs)


@register("module:ReflectionPad1d", "module:ReflectionPad2d", "module:ReplicationPad1d", "module:ReplicationPad2d")
def _pad_mode(e):
    m = e.attr("module")
    rank = len(e.shape(0))
    pad = [int(p) for p in m.padding]
    begins, ends = [0] * rank, [0] * rank
    for i in range(len(pad) // 2):  # PyTorch pads the last dim first
        begins[rank - 1 - i], ends[rank - 1 - i] = pad[2 * i], pad[2 * i + 1]
    mode = "reflect" if type(m).__name__.startswith("Reflection") else "edge"
    e.node("Pad", [e.x(0), e.g.ints(begins + ends)], [e.out()], mode=mode)


@register("module:InstanceNorm1d", "module:InstanceNorm2d", "module:InstanceNorm3d")
def _instance_norm(e):
    m = e.attr("module")
    dt = e.odtype()
    c = e.shape(0)[1]
    w = e.value(m.weight, m.weight, "weight") if m.affine else e.g.const(np.ones(c, dt))
    b = e.value(m.bias, m.bias, "bias") if m.affine else e.g.const(np.zeros(c, dt))
    e.node("InstanceNormalization", [e.x(0), w, b], [e.out()], epsilon=float(m.eps))


@register("module:RMSNorm")
def _rms_norm(e):
    m = e.attr("module")
    dt = e.odtype()
    k = len(m.normalized_shape)
    rank = len(e.shape(0))
    eps = m.eps if m.eps is not None else float(np.finfo(dt).eps)
    x = e.x(0)
    ms = e.node("ReduceMean", [e.node("Mul", [x, x])], axes=list(range(rank - k, rank)), keepdims=1)
    y = e.node("Div", [x, e.node("Sqrt", [e.node("Add", [ms, e.scalar(eps, dt)])])])
    if m.weight is not None:
        y = e.node("Mul", [y, e.value(m.weight, m.weight, "weight")])
    e.node("Identity", [y], [e.out()])


@register("module:PReLU")
def _prelu(e):
    m = e.attr("module")
    shape = e.shape(0)
    slope = e.value(m.weight, m.weight, "weight")
    n = int(m.weight.numel())
    if n != 1 and len(shape) > 2:
        slope = e.node("Reshape", [slope, e.g.ints([n] + [1] * (len(shape) - 2))])
    e.node("PRelu", [e.x(0), slope], [e.out()])


@register("module:Hardshrink", "module:Softshrink")
def _shrink(e):
    m = e.attr("module")
    lambd = float(m.lambd)
    bias = lambd if type(m).__name__ == "Softshrink" else 0.0
    e.node("Shrink", [e.x(0)], [e.out()], lambd=lambd, bias=bias)


@register("module:AdaptiveMaxPool1d", "module:AdaptiveMaxPool2d")
def _adaptive_max_pool(e):
    m = e.attr("module")
    if m.return_indices:
        raise _unsupported(e, f"{type(m).__name__}(return_indices=True)")
    ishape, oshape = e.shape(0)[2:], e.oshape(0)[2:]
    if all(o == 1 for o in oshape):
        e.node("GlobalMaxPool", [e.x(0)], [e.out()])
        return
    if any(i % o for i, o in zip(ishape, oshape)):
        raise _unsupported(e, f"adaptive_max_pool from {tuple(ishape)} to {tuple(oshape)} (sizes that do not "
                              "divide evenly)")
    k = [i // o for i, o in zip(ishape, oshape)]
    e.node("MaxPool", [e.x(0)], [e.out()], kernel_shape=k, strides=k)
