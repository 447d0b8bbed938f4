"""ONNX nodes of reductions, softmax and log-softmax (opset 17: ReduceSum takes axes as an input, the other
reductions as an attribute)."""
from __future__ import annotations

from onnx import helper

from ._registry import register


def _dims(e, k: int = 1, key: str = "dims"):
    dims = e.arg(k) if len(e.ev.inputs) > k else e.attr(key)
    rank = len(e.shape(0))
    if dims is None:
        return list(range(rank))
    if isinstance(dims, int):
        dims = (dims,)
    return [int(d) % rank for d in dims] if rank else []


def _keep(e, k: int = 2) -> int:
    v = e.arg(k) if len(e.ev.inputs) > k else e.attr("keepdim", False)
    return int(bool(v))


def _finish(e, y: str) -> None:
    """Cast to the traced result dtype (sum(dtype=...), integer sums) and name the output."""
    dt = e.odtype()
    e.node("Cast", [y], [e.out()], to=helper.np_dtype_to_tensor_dtype(dt))


@register("sum", "nansum")
def _sum(e):
    axes = _dims(e)
    x = e.x(0)
    if len(e.ev.inputs) > 3 and e.arg(3) is not None:
        x = e.cast_to(x, e.dtype(0), e.odtype())
    y = e.node("ReduceSum", [x, e.g.ints(axes)], keepdims=_keep(e)) if axes else x
    _finish(e, y)


_ATTR_REDUCE = {"mean": "ReduceMean", "amax": "ReduceMax", "amin": "ReduceMin", "prod": "ReduceProd",
                "logsumexp": "ReduceLogSumExp"}


@register("mean", "amax", "amin", "logsumexp", "prod")
def _reduce(e):
    axes = _dims(e)
    if not axes:
        return _finish(e, e.x(0))
    _finish(e, e.node(_ATTR_REDUCE[e.name], [e.x(0)], axes=axes, keepdims=_keep(e)))


@register("max", "min")
def _max_min(e):
    op = "ReduceMax" if e.name == "max" else "ReduceMin"
    if "idx" in e.ev.attrs:  # max(dim=...): the values (the indices come from outside the traced ops)
        rank = len(e.shape(0))
        axes = [int(e.attr("dim", 0)) % rank] if rank else []
        keep = 0 if e.attr("squeeze", True) else 1
    else:
        axes, keep = _dims(e), _keep(e)
    y = e.node(op, [e.x(0)], axes=axes, keepdims=keep) if axes else e.x(0)
    _finish(e, y)


@register("var", "std")
def _var_std(e):
    axes = _dims(e)
    keep = _keep(e)
    correction = e.arg(3, e.attr("correction", 1))
    x = e.x(0)
    n = 1
    for a in axes:
        n *= e.shape(0)[a]
    dt = e.odtype()
    d = e.node("Sub", [x, e.node("ReduceMean", [x], axes=axes, keepdims=1)])
    s = e.node("ReduceSum", [e.node("Mul", [d, d]), e.g.ints(axes)], keepdims=keep)
    v = e.node("Div", [s, e.scalar(max(n - (correction or 0), 0), dt)])
    _finish(e, e.node("Sqrt", [v]) if e.name == "std" else v)


@register("softmax", "log_softmax")
def _softmax(e):
    axis = int(e.attr("axis", e.attr("d", -1)))
    e.node("Softmax" if e.name == "softmax" else "LogSoftmax", [e.x(0)], [e.out()], axis=axis)


@register("linalg_vector_norm")
def _vector_norm(e):
    p = e.arg(3, e.attr("p", 2))
    axes, keep = _dims(e), _keep(e)
    x = e.x(0)
    if p == 2:
        y = e.node("ReduceL2", [x], axes=axes, keepdims=keep)
    elif p == 1:
        y = e.node("ReduceL1", [x], axes=axes, keepdims=keep)
    elif p == float("inf"):
        y = e.node("ReduceMax", [e.node("Abs", [x])], axes=axes, keepdims=keep)
    else:
        dt = e.odtype()
        s = e.node("ReduceSum", [e.node("Pow", [e.node("Abs", [x]), e.scalar(p, dt)]), e.g.ints(axes)], keepdims=keep)
        y = e.node("Pow", [s, e.scalar(1.0 / p, dt)])
    _finish(e, y)
