"""Turn traced events into ONNX nodes: value names, initializers, constants and their provenance checks.

A traced tensor is *live* when it is a graph input, a parameter or buffer, or an output of an op with a live
input; ops without live inputs are folded (their outputs become initializers). A tensor an op uses that no
traced op produced and that is not an input or a parameter is a constant; the export traces the model a second
time on other input values (and other sizes on dynamic axes) and raises when such a constant differs between
the two runs, since it was then computed from the inputs by an op the tracer does not see.
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from .errors import OnnxExporterError, UnsupportedOperatorError
from ._registry import SYMBOLICS


def to_numpy(t) -> np.ndarray:
    """The values of a Tensor (or array, or number) as a NumPy array."""
    data = getattr(t, "_data", t)
    if hasattr(data, "get") and not isinstance(data, np.ndarray):  # CuPy
        data = data.get()
    return np.asarray(data)


def is_tensor(x) -> bool:
    return hasattr(x, "_data") and hasattr(x, "grad_fn")


def _same(a, b) -> bool:
    if a is None or b is None:
        return a is b
    a, b = to_numpy(a), to_numpy(b)
    return a.shape == b.shape and a.dtype == b.dtype and np.array_equal(a, b, equal_nan=a.dtype.kind in "fc")


def _array_name(g, a):
    """The value name of a traced tensor whose array is ``a``, or of which ``a`` is a whole view (the
    ``reshape(-1)`` that ``index_select`` makes of its index); None when there is none."""
    name = g.by_array.get(id(a))
    if name is not None or not isinstance(a, np.ndarray) or a.base is None:
        return name
    base = a.base
    if isinstance(base, np.ndarray) and base.shape == a.shape and base.strides == a.strides and \
            base.__array_interface__["data"][0] == a.__array_interface__["data"][0]:
        return g.by_array.get(id(base))
    return None


class Graph:
    """The ONNX nodes and initializers being built, and the name of every traced tensor."""

    def __init__(self, params: dict) -> None:
        self.nodes: list = []
        self.inits: dict = {}  # name -> array
        self.names: dict = {}  # id(tensor) -> value name
        self.live: set = set()  # ids of live tensors
        self.params = params  # id(tensor) -> state_dict name
        self.dyn_dims: list = []  # (graph input name, dim, size, size in the second trace) of dynamic axes
        self.by_array: dict = {}  # id(array of a traced tensor) -> value name: ops that take a mask's array
        self.packs: list = []  # packings written by pack_padded_sequence (_sym_packed.py), in trace order
        self._n = 0

    def fresh(self, hint: str) -> str:
        self._n += 1
        return f"{hint}__{self._n}"

    def node(self, op_type: str, inputs: list, outputs=1, **attrs):
        """Add a node; ``outputs`` a count (fresh names) or a list of names. Returns the output name(s)."""
        if isinstance(outputs, int):
            outs = [self.fresh(op_type) for _ in range(outputs)]
        else:
            outs = list(outputs)
        attrs = {k: v for k, v in attrs.items() if v is not None}
        self.nodes.append(helper.make_node(op_type, list(inputs), outs, name=self.fresh(op_type + "_node"), **attrs))
        return outs[0] if len(outs) == 1 else outs

    def const(self, value, dtype=None, hint: str = "const") -> str:
        arr = np.asarray(value, dtype=dtype)
        name = self.fresh(hint)
        self.inits[name] = arr
        return name

    def ints(self, values) -> str:
        return self.const(np.asarray(list(values), dtype=np.int64), hint="ints")


class Emit:
    """What a symbolic function sees for one traced op ``ev`` (``alt``: the same op in the second trace)."""

    def __init__(self, g: Graph, ev, alt) -> None:
        self.g, self.ev, self.alt = g, ev, alt
        self.name = ev.name

    # -- inputs ---------------------------------------------------------------------------------------------
    def arg(self, k: int, default=None):
        return self.ev.inputs[k] if k < len(self.ev.inputs) else default

    def alt_arg(self, k: int, default=None):
        return self.alt.inputs[k] if k < len(self.alt.inputs) else default

    def attr(self, key: str, default=None):
        return self.ev.attrs.get(key, default)

    def alt_attr(self, key: str, default=None):
        return self.alt.attrs.get(key, default)

    def x(self, k: int) -> str:
        """The value name of tensor input ``k`` (a constant initializer when nothing traced produced it)."""
        return self.value(self.ev.inputs[k], self.alt.inputs[k], f"input {k}")

    def xa(self, key: str) -> str:
        """The value name of tensor/array attribute ``key``."""
        return self.value(self.ev.attrs[key], self.alt.attrs.get(key), f"argument '{key}'")

    def value(self, t, alt_t, what: str) -> str:
        g = self.g
        if is_tensor(t) and id(t) in self.ev.stale:
            raise OnnxExporterError(
                f"ONNX export: {what} of op '{self.name}' (in module '{self.ev.where}') was overwritten in place by "
                "an op the tracer does not see (x += y, x.mul_(...), a fast in-place path): use the out-of-place "
                "form (x = x + y) in forward")
        if not is_tensor(t):
            known = _array_name(g, t)
            if known is not None:
                return known
        if is_tensor(t):
            name = g.names.get(id(t))
            if name is not None:
                return name
            pname = g.params.get(id(t))
            if pname is not None:
                g.inits.setdefault(pname, to_numpy(t))
                g.names[id(t)] = pname
                return pname
        if not _same(t, alt_t):
            a = to_numpy(t)
            where = what if self.name == "<output>" else f"{what} of op '{self.name}' (in module '{self.ev.where}'"
            raise OnnxExporterError(
                f"ONNX export: {where}; shape {tuple(a.shape)}, dtype {a.dtype}) depends on the model's inputs "
                "but was computed by an op the tracer does not see "
                "(argmax, item(), a tensor created from input sizes, masked_fill_ on a fresh tensor...). "
                "Compute it with differentiable ops, pass it as an input, or make it independent of the inputs.")
        name = g.const(to_numpy(t), hint="const")
        if is_tensor(t):
            g.names[id(t)] = name
        return name

    def scalar(self, value, dtype) -> str:
        """A constant of the given NumPy dtype (a Python number or a constant tensor input)."""
        return self.g.const(np.asarray(to_numpy(value), dtype=dtype))

    def shape(self, k: int = 0) -> tuple:
        return tuple(self.ev.inputs[k].shape)

    def dtype(self, k: int = 0):
        return to_numpy(self.ev.inputs[k]).dtype

    def oshape(self, k: int = 0) -> tuple:
        return tuple(self.ev.outputs[k].shape)

    def odtype(self, k: int = 0):
        return to_numpy(self.ev.outputs[k]).dtype

    def alt_oshape(self, k: int = 0) -> tuple:
        return tuple(self.alt.outputs[k].shape)

    def alt_shape(self, k: int = 0) -> tuple:
        return tuple(self.alt.inputs[k].shape)

    # -- outputs ----------------------------------------------------------------------------------------------
    def out(self, k: int = 0) -> str:
        """The value name of output ``k`` (give it as a node's output)."""
        t = self.ev.outputs[k]
        name = self.g.names.get(id(t))
        if name is None:
            name = self.g.names[id(t)] = self.g.fresh(self.name)
        self.g.live.add(id(t))
        self.g.by_array[id(t._data)] = name
        return name

    def node(self, op_type: str, inputs: list, outputs=1, **attrs):
        return self.g.node(op_type, inputs, outputs, **attrs)

    def cast_to(self, name: str, src_dtype, dst_dtype) -> str:
        if np.dtype(src_dtype) == np.dtype(dst_dtype):
            return name
        return self.node("Cast", [name], to=helper.np_dtype_to_tensor_dtype(np.dtype(dst_dtype)))

    def operand(self, k: int, dtype) -> str:
        """Input ``k`` (a tensor or a number) as a value of ``dtype`` (the op's result dtype)."""
        a = self.ev.inputs[k]
        if is_tensor(a):
            return self.cast_to(self.x(k), self.dtype(k), dtype)
        if not _same(a, self.alt.inputs[k]):
            raise OnnxExporterError(f"ONNX export: argument {k} of op '{self.name}' (in module '{self.ev.where}') "
                                    "is a Python number computed from the inputs (item()?): it would be frozen")
        return self.scalar(a, dtype)

    def reshape_target(self, target, alt_target) -> str:
        """The value name of a Reshape shape for input 0, from the traced target. A dim that changes with the
        dynamic axes is written as 0 (the input's dim at that position), read with Shape from the input or from
        a graph input (a dim whose sizes in both traces match it, or the product of two such dims), or as -1
        (at most one dim left)."""
        target, alt_target = list(target), list(alt_target)
        if len(target) != len(alt_target):
            raise OnnxExporterError(f"ONNX export: op '{self.name}' (in module '{self.ev.where}') reshapes to a rank "
                                    "that changes with the dynamic axes")
        ishape, alt_ishape = self.shape(0), self.alt_shape(0)
        sources = [("in", j, a, b) for j, (a, b) in enumerate(zip(ishape, alt_ishape)) if a != b]
        sources += [("graph", (n, d), a, b) for n, d, a, b in self.g.dyn_dims]
        pieces: list = []  # ints, or tuples of sources whose dims multiply to the entry
        unresolved = []
        for i, (a, b) in enumerate(zip(target, alt_target)):
            if a == b:
                pieces.append(a)
            elif i < len(ishape) and ishape[i] == a and alt_ishape[i] == b:
                pieces.append(0)
            else:
                src = next(((s,) for s in sources if s[2] == a and s[3] == b), None)
                if src is None:
                    src = next(((s, t) for k, s in enumerate(sources) for t in sources[k:]
                                if s[2] * t[2] == a and s[3] * t[3] == b), None)
                if src is None:
                    unresolved.append(i)
                    pieces.append(-1)
                else:
                    pieces.append(src)
        if len(unresolved) > 1:
            raise OnnxExporterError(
                f"ONNX export: op '{self.name}' (in module '{self.ev.where}') reshapes to {tuple(target)}, where "
                f"{len(unresolved)} dims change with the dynamic axes and follow no input dim; at most one such "
                "dim per reshape is supported")
        if all(isinstance(p, int) for p in pieces):
            return self.g.ints(pieces)
        parts, run = [], []
        for p in pieces:
            if isinstance(p, int):
                run.append(p)
                continue
            if run:
                parts.append(self.g.ints(run))
                run = []
            dims = [self._dim(s) for s in p]
            parts.append(dims[0] if len(dims) == 1 else self.node("Mul", dims))
        if run:
            parts.append(self.g.ints(run))
        return self.node("Concat", parts, axis=0)

    def size_value(self, sizes, alt_sizes) -> str:
        """A 1-D int64 value of ``sizes`` (a creation op's shape): sizes equal in both traces are constants, one
        that changes must be a graph input's dynamic dim (or the product of two) with the same sizes."""
        sources = [("graph", (n, d), a, b) for n, d, a, b in self.g.dyn_dims]
        parts = []
        for a, b in zip(sizes, alt_sizes):
            if a == b:
                parts.append(self.g.ints([a]))
                continue
            src = next(((s,) for s in sources if s[2] == a and s[3] == b), None)
            if src is None:
                src = next(((s, t) for k, s in enumerate(sources) for t in sources[k:]
                            if s[2] * t[2] == a and s[3] * t[3] == b), None)
            if src is None:
                raise OnnxExporterError(
                    f"ONNX export: op '{self.name}' (in module '{self.ev.where}') creates a tensor of size {a} (then "
                    f"{b}) that follows no dynamic input dim")
            dims = [self._dim(s) for s in src]
            parts.append(dims[0] if len(dims) == 1 else self.node("Mul", dims))
        return parts[0] if len(parts) == 1 else self.node("Concat", parts, axis=0)

    def _dim(self, source) -> str:
        """A 1-element int64 value: a dim of input 0 (``("in", j, ...)``) or of a graph input."""
        kind, where = source[0], source[1]
        if kind == "in":
            shape, j = self.node("Shape", [self.x(0)]), where
        else:
            shape, j = self.node("Shape", [where[0]]), where[1]
        return self.node("Gather", [shape, self.g.ints([j])], axis=0)


SIZED = ("full", "arange")  # creation ops that run as graph nodes when their sizes follow the dynamic axes


def emit_event(g: Graph, ev, alt) -> None:
    """Write one traced op: fold it when no input is live, else call its symbolic function."""
    live = False
    for x in list(ev.inputs) + list(ev.attrs.values()):
        if is_tensor(x) and (id(x) in g.live or id(x) in g.params):
            live = True
            break
    if not live and ev.name in SIZED and tuple(ev.outputs[0].shape) != tuple(alt.outputs[0].shape):
        live = True  # a tensor created with sizes that follow the dynamic axes (a causal mask, positions)
        g.live.add(id(ev.outputs[0]))
    if not live:
        return  # folded: its outputs are constants, checked against the second trace where they are used
    fn = SYMBOLICS.get(ev.name)
    if fn is None:
        raise UnsupportedOperatorError(
            f"ONNX export: op '{ev.name}' (in module '{ev.where}') has no ONNX mapping in disttorch.onnx "
            "(see docs/onnx.md for the ops covered)")
    fn(Emit(g, ev, alt))


def value_info(name: str, t, dyn: dict) -> onnx.ValueInfoProto:
    arr = to_numpy(t)
    dims = [dyn.get(d, s) for d, s in enumerate(arr.shape)]
    return helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(arr.dtype), dims)


def initializers(g: Graph) -> list:
    return [numpy_helper.from_array(np.array(a, order="C"), name) for name, a in g.inits.items()]
