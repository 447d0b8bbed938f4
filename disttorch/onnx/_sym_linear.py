"""ONNX nodes of linear layers, matrix products and convolutions."""
from __future__ import annotations

from ._registry import register


@register("linear")
def _linear(e):
    x, w = e.x(0), e.x(1)
    has_b = e.arg(2) is not None
    if len(e.shape(0)) == 2 and has_b:
        e.node("Gemm", [x, w, e.x(2)], [e.out()], transB=1)
        return
    y = e.node("MatMul", [x, e.node("Transpose", [w], perm=[1, 0])], 1 if has_b else [e.out()])
    if has_b:
        e.node("Add", [y, e.x(2)], [e.out()])


@register("matmul", "mm", "bmm")
def _matmul(e):
    e.node("MatMul", [e.x(0), e.x(1)], [e.out()])


@register("addmm")
def _addmm(e):
    beta, alpha = e.attr("beta", 1), e.attr("alpha", 1)
    e.node("Gemm", [e.x(1), e.x(2), e.x(0)], [e.out()], alpha=float(alpha), beta=float(beta))


@register("convolution")
def _convolution(e):
    stride, pads, dil = e.attr("stride"), e.attr("pads"), e.attr("dil")
    groups, transposed = int(e.attr("groups", 1)), bool(e.attr("transposed", False))
    ins = [e.x(0), e.x(1)] + ([e.x(2)] if e.arg(2) is not None else [])
    onnx_pads = [int(p[0]) for p in pads] + [int(p[1]) for p in pads]
    kernel = list(e.shape(1)[2:])
    e.node("ConvTranspose" if transposed else "Conv", ins, [e.out()], strides=[int(s) for s in stride],
           pads=onnx_pads, dilations=[int(d) for d in dil], group=groups, kernel_shape=kernel)


@register("einsum")
def _einsum(e):
    terms, out_term = e.attr("terms"), e.attr("out_term")
    dt = e.odtype()
    ins = [e.cast_to(e.x(k), e.dtype(k), dt) for k in range(len(e.ev.inputs))]
    e.node("Einsum", ins, [e.out()], equation=",".join(terms) + "->" + out_term)
