"""ONNX nodes of elementwise math and activations."""
from __future__ import annotations

import math

import numpy as np

from .errors import UnsupportedOperatorError
from ._registry import register

_UNARY = {"neg": "Neg", "exp": "Exp", "log": "Log", "sqrt": "Sqrt", "abs": "Abs", "relu": "Relu",
          "sigmoid": "Sigmoid", "tanh": "Tanh", "sin": "Sin", "cos": "Cos", "tan": "Tan", "erf": "Erf",
          "reciprocal": "Reciprocal", "floor": "Floor", "ceil": "Ceil", "sign": "Sign", "asin": "Asin",
          "acos": "Acos", "atan": "Atan", "sinh": "Sinh", "cosh": "Cosh", "asinh": "Asinh", "acosh": "Acosh",
          "atanh": "Atanh", "clone": "Identity", "alias": "Identity", "detach": "Identity"}
_BINARY = {"mul": "Mul", "maximum": "Max", "minimum": "Min", "fmax": "Max", "fmin": "Min"}


@register(*_UNARY)
def _unary(e):
    e.node(_UNARY[e.name], [e.x(0)], [e.out()])


@register("rsqrt")
def _rsqrt(e):
    e.node("Reciprocal", [e.node("Sqrt", [e.x(0)])], [e.out()])


@register("log1p", "expm1", "log2", "log10", "exp2")
def _log_family(e):
    dt = e.odtype()
    x = e.x(0)
    if e.name == "log1p":
        e.node("Log", [e.node("Add", [x, e.scalar(1, dt)])], [e.out()])
    elif e.name == "expm1":
        e.node("Sub", [e.node("Exp", [x]), e.scalar(1, dt)], [e.out()])
    elif e.name == "exp2":
        e.node("Pow", [e.scalar(2, dt), x], [e.out()])
    else:
        base = 2.0 if e.name == "log2" else 10.0
        e.node("Div", [e.node("Log", [x]), e.scalar(math.log(base), dt)], [e.out()])


@register(*_BINARY)
def _binary(e):
    dt = e.odtype()
    e.node(_BINARY[e.name], [e.operand(0, dt), e.operand(1, dt)], [e.out()])


@register("add", "sub")
def _add_sub(e):
    dt = e.odtype()
    b = e.operand(1, dt)
    alpha = e.attr("alpha", e.arg(2, 1))
    if alpha != 1:
        b = e.node("Mul", [b, e.scalar(alpha, dt)])
    e.node("Add" if e.name == "add" else "Sub", [e.operand(0, dt), b], [e.out()])


@register("div")
def _div(e):
    dt = e.odtype()
    mode = e.attr("rounding_mode")
    if e.attr("op", "div") != "div":
        raise UnsupportedOperatorError(f"ONNX export: op 'div' variant '{e.attr('op')}' (in module "
                                       f"'{e.ev.where}') has no ONNX mapping")
    q = e.node("Div", [e.operand(0, dt), e.operand(1, dt)], 1 if mode else [e.out()])
    if mode is None:
        return
    if dt.kind != "f":
        raise UnsupportedOperatorError(f"ONNX export: integer div with rounding_mode='{mode}' (in module "
                                       f"'{e.ev.where}') has no ONNX mapping")
    if mode == "floor":
        e.node("Floor", [q], [e.out()])
    else:  # trunc
        e.node("Mul", [e.node("Sign", [q]), e.node("Floor", [e.node("Abs", [q])])], [e.out()])


@register("pow")
def _pow(e):
    dt = e.odtype()
    e.node("Pow", [e.operand(0, dt), e.operand(1, dt)], [e.out()])


@register("clamp")
def _clamp(e):
    dt = e.odtype()
    x = e.x(0)
    if len(e.ev.inputs) >= 3:  # clamp(a, lo, hi) with tensor bounds
        if e.arg(1) is not None:
            x = e.node("Max", [x, e.operand(1, dt)])
        if e.arg(2) is not None:
            x = e.node("Min", [x, e.operand(2, dt)])
        e.node("Identity", [x], [e.out()])
        return
    lo, hi = e.attr("min"), e.attr("max")
    e.node("Clip", [x, "" if lo is None else e.scalar(lo, dt), "" if hi is None else e.scalar(hi, dt)], [e.out()])


@register("where")
def _where(e):
    dt = e.odtype()
    cond = e.xa("cond") if "cond" in e.ev.attrs else e.x(2)
    e.node("Where", [cond, e.operand(0, dt), e.operand(1, dt)], [e.out()])


@register("masked_fill")
def _masked_fill(e):
    dt = e.odtype()
    value = e.operand(1, dt) if e.arg(1) is not None else e.cast_to(e.xa("varr"), np.asarray(e.attr("varr")).dtype,
                                                                     dt)
    e.node("Where", [e.xa("mask"), value, e.x(0)], [e.out()])


@register("round")
def _round(e):
    dec = e.attr("decimals", 0)
    if dec:
        dt = e.odtype()
        s = e.scalar(10.0 ** dec, dt)
        e.node("Div", [e.node("Round", [e.node("Mul", [e.x(0), s])]), s], [e.out()])
    else:
        e.node("Round", [e.x(0)], [e.out()])


# ---- activations (params as the op reports them) -----------------------------------------------------------
@register("gelu")
def _gelu(e):
    dt, x = e.odtype(), e.x(0)
    approx = (e.attr("params") or ("none",))[0]
    half = e.scalar(0.5, dt)
    if approx == "tanh":
        inner = e.node("Mul", [e.scalar(math.sqrt(2 / math.pi), dt),
                               e.node("Add", [x, e.node("Mul", [e.scalar(0.044715, dt),
                                                                e.node("Pow", [x, e.scalar(3, dt)])])])])
        t = e.node("Tanh", [inner])
    else:
        t = e.node("Erf", [e.node("Div", [x, e.scalar(math.sqrt(2.0), dt)])])
    # PyTorch's exporter's form, which onnxruntime's Gelu fusions expect
    e.node("Mul", [e.node("Mul", [x, e.node("Add", [t, e.scalar(1, dt)])]), half], [e.out()])


@register("silu")
def _silu(e):
    x = e.x(0)
    e.node("Mul", [x, e.node("Sigmoid", [x])], [e.out()])


@register("mish")
def _mish(e):
    x = e.x(0)
    e.node("Mul", [x, e.node("Tanh", [e.node("Softplus", [x])])], [e.out()])


@register("leaky_relu")
def _leaky_relu(e):
    e.node("LeakyRelu", [e.x(0)], [e.out()], alpha=float(e.attr("params")[0]))


@register("elu")
def _elu(e):
    alpha, scale, in_scale = (tuple(e.attr("params")) + (1.0, 1.0))[:3]
    dt, x = e.odtype(), e.x(0)
    if in_scale != 1:
        x = e.node("Mul", [x, e.scalar(in_scale, dt)])
    y = e.node("Elu", [x], 1 if scale != 1 else [e.out()], alpha=float(alpha))
    if scale != 1:
        e.node("Mul", [y, e.scalar(scale, dt)], [e.out()])


@register("softplus")
def _softplus(e):
    beta, threshold = tuple(e.attr("params"))[:2]
    dt, x = e.odtype(), e.x(0)
    bx = x if beta == 1 else e.node("Mul", [x, e.scalar(beta, dt)])
    sp = e.node("Softplus", [bx])
    if beta != 1:
        sp = e.node("Div", [sp, e.scalar(beta, dt)])
    # PyTorch returns x itself above the threshold (Softplus there equals x to float precision, kept exact here)
    e.node("Where", [e.node("Greater", [bx, e.scalar(threshold, dt)]), x, sp], [e.out()])


@register("hardswish")
def _hardswish(e):
    e.node("HardSwish", [e.x(0)], [e.out()])


@register("hardsigmoid")
def _hardsigmoid(e):
    e.node("HardSigmoid", [e.x(0)], [e.out()], alpha=1.0 / 6, beta=0.5)


@register("hardtanh")
def _hardtanh(e):
    lo, hi = tuple(e.attr("params"))[:2]
    dt = e.odtype()
    e.node("Clip", [e.x(0), e.scalar(lo, dt), e.scalar(hi, dt)], [e.out()])


@register("log_sigmoid")
def _log_sigmoid(e):
    e.node("Neg", [e.node("Softplus", [e.node("Neg", [e.x(0)])])], [e.out()])


@register("threshold")
def _threshold(e):
    dt = e.odtype()
    x = e.x(0)
    th = e.operand(1, dt) if len(e.ev.inputs) > 1 else e.scalar(e.attr("th"), dt)
    value = e.operand(2, dt) if len(e.ev.inputs) > 2 else e.scalar(e.attr("value"), dt)
    e.node("Where", [e.node("Greater", [x, th]), x, value], [e.out()])


# ---- comparisons and logic (reported by disttorch/ops/compare.py) -------------------------------------------
_COMPARE = {"eq": ("Equal", False), "ne": ("Equal", True), "lt": ("Less", False), "le": ("LessOrEqual", False),
            "gt": ("Greater", False), "ge": ("GreaterOrEqual", False)}


def _common_dtype(e):
    """The dtype both operands compare in (PyTorch promotes: ``int_tensor < 2.5`` compares as floats)."""
    dts = [e.dtype(k) for k in range(2) if hasattr(e.arg(k), "_data")]
    scalars = [e.arg(k) for k in range(2) if not hasattr(e.arg(k), "_data")]
    dt = np.result_type(*dts)
    if any(isinstance(v, float) for v in scalars) and dt.kind in "biu":
        dt = np.dtype(np.float32)
    return dt


@register(*_COMPARE)
def _compare(e):
    op, negate = _COMPARE[e.name]
    dt = _common_dtype(e)
    y = e.node(op, [e.operand(0, dt), e.operand(1, dt)], 1 if negate else [e.out()])
    if negate:
        e.node("Not", [y], [e.out()])


@register("logical_and", "logical_or", "logical_xor")
def _logical(e):
    op = {"logical_and": "And", "logical_or": "Or", "logical_xor": "Xor"}[e.name]
    ins = []
    for k in range(2):
        a = e.arg(k)
        if hasattr(a, "_data") and e.dtype(k) == np.bool_:
            ins.append(e.x(k))
        elif hasattr(a, "_data"):
            ins.append(e.node("Not", [e.node("Equal", [e.x(k), e.scalar(0, e.dtype(k))])]))
        else:
            ins.append(e.scalar(bool(a), np.bool_))
    e.node(op, ins, [e.out()])


@register("bitwise_and", "bitwise_or", "bitwise_xor", "bitwise_not")
def _bitwise_bool(e):
    if any(hasattr(a, "_data") and e.dtype(k) != np.bool_ for k, a in enumerate(e.ev.inputs)):
        raise UnsupportedOperatorError(f"ONNX export: op '{e.name}' on integers (in module '{e.ev.where}') needs "
                                       "opset 18; only bool operands are mapped")
    if e.name == "bitwise_not":
        e.node("Not", [e.x(0)], [e.out()])
        return
    op = {"bitwise_and": "And", "bitwise_or": "Or", "bitwise_xor": "Xor"}[e.name]
    e.node(op, [e.operand(0, np.bool_), e.operand(1, np.bool_)], [e.out()])


@register("logical_not")
def _logical_not(e):
    if e.dtype(0) == np.bool_:
        e.node("Not", [e.x(0)], [e.out()])
    else:
        e.node("Equal", [e.x(0), e.scalar(0, e.dtype(0))], [e.out()])
