"""The one entry point of built-in differentiable ops: ``Op.apply`` (as Chainer's ``FunctionNode.apply``).

An op is a subclass of :class:`Op` that declares

- ``op_name``: PyTorch's name of the op (errors, profiler events, tracers);
- ``forward(self, xp, *args, **attrs)``: the computation over arrays. ``xp`` is the array module of the
  tensor inputs (NumPy or CuPy); each Tensor argument arrives as its array, anything else (numbers, None) as
  it is. It returns an array or a tuple of arrays, and may keep what backward needs on ``self`` (shapes,
  dtypes, small arrays) and name tensors to save with ``self.save(...)``;
- ``backward(self, *grads)``: the gradients of the inputs, written with Tensor ops so that
  ``create_graph=True`` works (None for an input that needs none; ``self.needs_input_grad`` says which);
- optionally ``backward_arrays(self, xp, *grads)``: the same over arrays, used when no higher-order graph is
  being built. An op with both forms has a test that holds them equal (gradcheck on both paths).

``apply`` alone decides whether a graph node is needed (grad mode on and a Tensor input requires grad),
checks that the tensor inputs share a device, builds the edges, saves tensors with their versions (so an
in-place change before backward raises), attaches the outputs (floating/complex ones only), records the
anomaly-mode trace, honours ``out=``, and calls the observers (profilers, tracers) with each op's name, inputs,
attributes, outputs and times. In-place forms go through :func:`apply_` (leaf and view checks, version bump,
rebasing onto the new node).

Example (a complete op; see CONTRIBUTING.md, "Adding an op"):

    class Cube(Op):
        op_name = "cube"

        def forward(self, xp, x):
            self.save(0)            # input 0, for backward
            return x * x * x

        def backward(self, g):
            (x,) = self.saved_tensors
            return 3 * g * x * x

    y = Cube.apply(t)
"""
from __future__ import annotations

import collections
import time

import numpy as np

from .._device import array_module_of
from ..utils.hooks import RemovableHandle
from . import anomaly as _anomaly
from .function import Node, _Saved, _seq, edge
from .grad_mode import STATE as _GRAD

__all__ = ["Op", "RESULT", "apply_", "apply_view", "write_out", "add_observer", "observing", "notify", "notify_untimed",
           "array_backward"]

RESULT = "result"  # in ``self.save(...)``: the op's (first) output

_Tensor = None  # disttorch._tensor.Tensor, bound on first use (the tensor module imports autograd)
_wrap = None
_I = None  # disttorch.ops.inplace: the in-place write machinery

# Profiler and tracer hooks (handle id -> fn): each is called as fn(name, inputs, attrs, outputs, start_ns, end_ns) after
# an op ran. Kept as a plain dict so the hot path pays one truth test when none is installed.
OBSERVERS: collections.OrderedDict = collections.OrderedDict()
# While a profiler records: a callable (name, category, start_ns, end_ns, args) for the ranges the engine
# (backward nodes) and the distributed layer (collectives, DDP buckets, parameter-server calls) report.
SPANS: list = [None]
_new = object.__new__
_ARRAY_BACKWARD = [True]  # False: every op uses its Tensor backward (tests hold the two forms together)


class array_backward:
    """Context manager: ``array_backward(False)`` makes ops with a ``backward_arrays`` fast path use their Tensor
    ``backward`` instead, so a test can gradcheck both forms of a fused op.

    Example:
        >>> with array_backward(False):
        ...     assert gradcheck(fused_op, (x,))
    """

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def __enter__(self):
        self.prev = _ARRAY_BACKWARD[0]
        _ARRAY_BACKWARD[0] = self.enabled
        return self

    def __exit__(self, *exc) -> None:
        _ARRAY_BACKWARD[0] = self.prev
_NO_EDGE = (None, 0)
_TRUE1 = (True,)
_TRUE_FALSE = (True, False)


def _bind() -> None:
    global _Tensor, _wrap, _I
    from .. import _tensor as T
    from ..ops import inplace

    _Tensor, _wrap, _I = T.Tensor, T._wrap, inplace


def add_observer(fn) -> RemovableHandle:
    """Call ``fn(name, inputs, attrs, outputs, start_ns, end_ns)`` after every op (profilers, ONNX tracing).

    ``inputs`` are the op's arguments as given (Tensors, numbers), ``outputs`` a tuple of Tensors, times from
    ``time.perf_counter_ns``. Ops run by ``fn`` itself are not observed. Returns a handle with ``remove()``.
    """
    handle = RemovableHandle(OBSERVERS)
    OBSERVERS[handle.id] = fn
    return handle


def observing() -> bool:
    """True when an observer is installed (ops outside ``Op`` call :func:`notify` only then)."""
    return bool(OBSERVERS)


_busy = [False]


def notify(name: str, inputs: tuple, attrs: dict, outputs: tuple, start_ns: int, end_ns: int) -> None:
    """Report one op to the observers (for the few fast paths that do not run through ``Op.apply``)."""
    if _busy[0]:
        return
    _busy[0] = True
    try:
        for fn in list(OBSERVERS.values()):
            fn(name, inputs, attrs, outputs, start_ns, end_ns)
    finally:
        _busy[0] = False


def notify_untimed(name: str, inputs: tuple, attrs: dict, outputs: tuple) -> None:
    """:func:`notify` for ops that report for tracing and counting only (no timing: start = end = now)."""
    now = time.perf_counter_ns()
    notify(name, inputs, attrs, outputs, now, now)


def _device_error(name: str, a, b) -> RuntimeError:
    return RuntimeError(f"{name}: Expected all tensors to be on the same device, but found at least two devices, "
                        f"{a.device} and {b.device}!")


def write_out(r, out, name: str):
    """Honour an ``out=`` argument: copy result ``r`` into ``out`` (resized as PyTorch does) and return ``out``."""
    if _Tensor is None:
        _bind()
    if not isinstance(out, _Tensor):
        raise TypeError(f"{name}(): argument 'out' must be Tensor, not {type(out).__name__}")
    if r._requires_grad or (out._requires_grad and _GRAD.enabled):
        raise RuntimeError("functions with out=... arguments don't support automatic differentiation, but one "
                           "of the arguments requires grad.")
    if r._data.dtype != out._data.dtype:
        _I.check_cast(r.dtype, out.dtype, "out=")
    if out._data.shape != r._data.shape:
        out._data = out._xp.empty(r._data.shape, dtype=out._data.dtype)
    out._xp.copyto(out._data, r._data, casting="unsafe")
    out._vc[0] += 1
    return out


class Op(Node):
    """Base class of built-in differentiable ops (see the module docstring for what a subclass declares)."""

    op_name = "op"
    backward_arrays = None  # optional array-level backward (see the module docstring)
    _saved = ()
    _released = False
    _save = ()
    next_functions = ()
    _nig = (False,) * 16  # needs_input_grad while no graph is recorded (apply sets it otherwise)
    tensor_args = None  # 1: only the first argument can be a Tensor (apply then skips checking the others)
    view = False  # True: the output is a view of input 0's memory (it shares its version counter and base)

    _fwd0 = None  # views: a shared instance's bound forward, for calls that record no graph

    def __init__(self) -> None:  # nodes are made by apply (object.__new__); nothing to initialise
        pass

    def __init_subclass__(cls, **kw) -> None:
        super().__init_subclass__(**kw)
        # A view's forward writes to ``self`` only while a graph is recorded (tests/autograd/test_op.py checks
        # this), so calls without one can share an instance instead of making a node each (~0.15 us a view).
        cls._fwd0 = _new(cls).forward if cls.__dict__.get("view", cls.view) else None

    def save(self, *which) -> None:
        """Save tensors for backward: input positions (ints), ``RESULT`` for the output, or None (a gap)."""
        self._save = which

    @property
    def needs_input_grad(self) -> tuple:
        return self._nig

    def forward(self, xp, *args, **attrs):
        raise NotImplementedError(f"{type(self).__name__} does not implement forward")

    def run_backward(self, grads: list) -> tuple:
        """(Engine) run backward; ``backward_arrays`` when grad mode is off (no higher-order graph)."""
        if self._multi:
            return Node.run_backward(self, grads)
        g = grads[0]
        if self.backward_arrays is not None and not _GRAD.enabled and _ARRAY_BACKWARD[0]:
            res = self.backward_arrays(g._xp, g._data)
            if res.__class__ is not tuple:
                return (None if res is None else _wrap(res),)
            return tuple(None if a is None else _wrap(a) for a in res)
        out = self.backward(g)
        return out if out.__class__ is tuple else (out,)

    @classmethod
    def apply(cls, *inputs, out=None, **attrs):
        """Run the op on ``inputs`` (Tensors, numbers, None) with keyword attributes; ``out=`` as in PyTorch."""
        T = _Tensor
        if T is None:
            _bind()
            T = _Tensor
        n = len(inputs)
        if out is None and not OBSERVERS:
            # The commonest calls: one or two plain tensors (or a tensor and a non-tensor), no out=, nobody
            # observing. This is the per-op overhead every such call pays, so it is written out.
            if n == 2 and cls.tensor_args != 1:
                a, b = inputs
                if a.__class__ is T:
                    da = a._data
                    xp = np if da.__class__ is np.ndarray else array_module_of(da)
                    if b.__class__ is T:
                        db = b._data
                        if da.__class__ is not db.__class__ and _check_devices(cls, inputs):
                            da, db = _host_scalar(da), _host_scalar(db)
                            if isinstance(da, np.generic):  # a was the CPU scalar: b's array module runs the op
                                xp = array_module_of(db)
                        ra, rb = a._requires_grad, b._requires_grad
                        if (ra or rb) and _GRAD.enabled:
                            if ra:
                                fn = a.grad_fn
                                ea = (fn, a._output_nr) if fn is not None else (a._grad_accumulator(), 0)
                            else:
                                ea = _NO_EDGE
                            if rb:
                                fn = b.grad_fn
                                eb = (fn, b._output_nr) if fn is not None else (b._grad_accumulator(), 0)
                            else:
                                eb = _NO_EDGE
                            node = _new(cls)
                            node.next_functions = (ea, eb)
                            node._nig = (ra, rb)
                            res = node.forward(xp, da, db, **attrs) if attrs else node.forward(xp, da, db)
                            if res.__class__ is tuple:
                                return _attach(node, res, inputs, True)
                            return _output(node, res, inputs)
                        fwd = _new(cls).forward
                        res = fwd(xp, da, db, **attrs) if attrs else fwd(xp, da, db)
                        return _wrap(res) if res.__class__ is not tuple else _attach(None, res, inputs, False)
                    if not isinstance(b, T):  # a number, dims, None ...
                        if a._requires_grad and _GRAD.enabled:
                            fn = a.grad_fn
                            node = _new(cls)
                            node.next_functions = ((fn, a._output_nr) if fn is not None else
                                                   (a._grad_accumulator(), 0), _NO_EDGE)
                            node._nig = _TRUE_FALSE
                            res = node.forward(xp, da, b, **attrs) if attrs else node.forward(xp, da, b)
                            if res.__class__ is tuple:
                                return _attach(node, res, inputs, True)
                            return _output(node, res, inputs)
                        fwd = _new(cls).forward
                        res = fwd(xp, da, b, **attrs) if attrs else fwd(xp, da, b)
                        return _wrap(res) if res.__class__ is not tuple else _attach(None, res, inputs, False)
            elif n == 1 or (n and cls.tensor_args == 1):  # one tensor, maybe followed by other arguments
                a = inputs[0]
                if a.__class__ is T:
                    da = a._data
                    xp = np if da.__class__ is np.ndarray else array_module_of(da)
                    if a._requires_grad and _GRAD.enabled:
                        fn = a.grad_fn
                        node = _new(cls)
                        node.next_functions = ((fn, a._output_nr) if fn is not None else
                                               (a._grad_accumulator(), 0),)
                        node._nig = _TRUE1
                        fwd = node.forward
                    else:
                        node = None
                        fwd = cls._fwd0 or _new(cls).forward
                    # unrolled: slicing the inputs and a star call cost more than the rest of a view
                    if attrs:
                        res = fwd(xp, da, **attrs) if n == 1 else fwd(xp, da, *inputs[1:], **attrs)
                    elif n == 1:
                        res = fwd(xp, da)
                    elif n == 2:
                        res = fwd(xp, da, inputs[1])
                    elif n == 3:
                        res = fwd(xp, da, inputs[1], inputs[2])
                    else:
                        res = fwd(xp, da, *inputs[1:])
                    if res.__class__ is tuple:
                        return _attach(node, res, inputs, node is not None)
                    if node is not None:
                        r = _output(node, res, inputs)
                        if cls.view:  # shares a's memory: and so its version counter and base
                            r._vc = a._vc
                            r._base = a if a._base is None else a._base
                        return r
                    if res.__class__ is not np.ndarray and isinstance(res, np.generic):
                        res = np.asarray(res)
                    r = _new(T)  # _wrap(res), written out (and a view's version counter set once)
                    r._data = res
                    r._requires_grad = False
                    r._grad = None
                    r.grad_fn = None
                    r._output_nr = 0
                    r._aux = None
                    if cls.view:  # shares a's memory: and so its version counter and base
                        r._vc = a._vc
                        r._base = a if a._base is None else a._base
                    else:
                        r._vc = [0]
                        r._base = None
                    return r
        # Unwrap the inputs, check their devices and see whether any requires grad. Ops of one or two tensors
        # (and ops whose only tensor is the first argument: ``tensor_args = 1``) are unrolled, edges inline.
        nf = nig = None
        if n == 2 and cls.tensor_args != 1:
            a, b = inputs
            if a.__class__ is T or isinstance(a, T):
                src = da = a._data
                if b.__class__ is T or isinstance(b, T):
                    db = b._data
                    if da.__class__ is not db.__class__ and _check_devices(cls, (a, b)):
                        da, db = _host_scalar(da), _host_scalar(db)
                        src = db if isinstance(da, np.generic) else da
                    if (a._requires_grad or b._requires_grad) and _GRAD.enabled:
                        if a._requires_grad:
                            fn = a.grad_fn
                            ea = (fn, a._output_nr) if fn is not None else (a._grad_accumulator(), 0)
                        else:
                            ea = _NO_EDGE
                        if b._requires_grad:
                            fn = b.grad_fn
                            eb = (fn, b._output_nr) if fn is not None else (b._grad_accumulator(), 0)
                        else:
                            eb = _NO_EDGE
                        nf = (ea, eb)
                        nig = (ea is not _NO_EDGE, eb is not _NO_EDGE)
                else:
                    db = b
                    if a._requires_grad and _GRAD.enabled:
                        nf, nig = (edge(a), _NO_EDGE), (True, False)
            elif b.__class__ is T or isinstance(b, T):
                da, src = a, b._data
                db = src
                if b._requires_grad and _GRAD.enabled:
                    nf, nig = (_NO_EDGE, edge(b)), (False, True)
            else:
                da, db, src = a, b, None
            args = (da, db)
        elif n == 1 or (n and cls.tensor_args == 1):
            a = inputs[0]
            if a.__class__ is T or isinstance(a, T):
                src = a._data
                if a._requires_grad and _GRAD.enabled:
                    fn = a.grad_fn
                    nf = ((fn, a._output_nr) if fn is not None else (a._grad_accumulator(), 0),)
                    nig = _TRUE1
                args = (src,) + inputs[1:] if n > 1 else (src,)
            else:
                src, args = None, inputs
        else:
            args, src, need = _unwrap(cls, inputs, T)
            if need and _GRAD.enabled:
                nf = tuple(edge(x) if isinstance(x, T) else _NO_EDGE for x in inputs)
                nig = tuple([e[0] is not None for e in nf])
        node = _new(cls)
        if nf is not None:
            node.next_functions = nf
            node._nig = nig
        xp = None if src is None else (np if src.__class__ is np.ndarray else array_module_of(src))
        t0 = time.perf_counter_ns() if OBSERVERS and not _busy[0] else None
        res = node.forward(xp, *args, **attrs) if attrs else node.forward(xp, *args)
        if res.__class__ is tuple:
            outs = _attach(node, res, inputs, nf is not None)
        elif nf is None:
            outs = _wrap(res)
        else:
            outs = _output(node, res, inputs)
        if cls.view and outs.__class__ is not tuple:
            as_view(inputs[0], outs)
        if t0 is not None:
            notify(cls.op_name, inputs, attrs, outs if outs.__class__ is tuple else (outs,), t0, time.perf_counter_ns())
        if out is not None:
            if outs.__class__ is tuple:
                return _write_outs(outs, out, cls.op_name)
            return write_out(outs, out, cls.op_name)
        return outs


def apply_view(cls, a, arg):
    """``cls.apply(a, arg)`` for a view op of one tensor and one other argument (indexing keys, dims, shapes):
    without a graph, an observer or a subclass of Tensor it runs the shared forward and wraps the view here,
    with no argument packing (the hot path of ``x[i]``, ``x.t()``, ``x.view(...)``); otherwise ``apply``."""
    if OBSERVERS or a.__class__ is not _Tensor or (a._requires_grad and _GRAD.enabled) or cls._fwd0 is None:
        return cls.apply(a, arg)
    da = a._data
    res = cls._fwd0(np if da.__class__ is np.ndarray else array_module_of(da), da, arg)
    if res.__class__ is not np.ndarray and isinstance(res, np.generic):
        res = np.asarray(res)
    r = _new(_Tensor)  # _wrap(res) as a view of a, written out
    r._data = res
    r._requires_grad = False
    r._grad = None
    r.grad_fn = None
    r._output_nr = 0
    r._aux = None
    r._vc = a._vc
    r._base = a if a._base is None else a._base
    return r


def _unwrap(cls, inputs: tuple, T):
    """The general case of ``_run``'s unwrapping: (arrays and other arguments, the first array, need)."""
    need = False
    first = None
    args = []
    for x in inputs:
        if x.__class__ is T or isinstance(x, T):
            d = x._data
            if first is None:
                first = x
            elif d.__class__ is not first._data.__class__ and _check_devices(cls, (first, x)):
                if d.__class__ is np.ndarray:  # x is the CPU scalar
                    d = _host_scalar(d)
                else:  # the first tensor was the CPU scalar: it becomes a number, x leads
                    i = next(j for j, v in enumerate(args) if v is first._data)
                    args[i] = _host_scalar(first._data)
                    first = x
            if x._requires_grad:
                need = True
            args.append(d)
        else:
            args.append(x)
    return tuple(args), (None if first is None else first._data), need


def _check_devices(cls, tensors) -> bool:
    """Raise PyTorch's error when the tensors' arrays live on different devices (a sparse operand has an array
    class of its own: its ops decide). True when one is a 0-d CPU tensor that needs no grad beside a device
    tensor: PyTorch allows that (the CPU value is a scalar argument), and the caller passes it as a number."""
    a, b = tensors
    if getattr(a._data, "sparse_dim", None) is not None or getattr(b._data, "sparse_dim", None) is not None:
        return False
    if a.device != b.device:
        for s in (a, b):
            if s._data.__class__ is np.ndarray and s._data.ndim == 0 and not (s._requires_grad and _GRAD.enabled):
                return True
        raise _device_error(cls.op_name, a, b)
    return False


def _host_scalar(arr):
    """A 0-d NumPy array as a NumPy scalar (which array modules take as a number); other arrays as they are."""
    return arr[()] if arr.__class__ is np.ndarray and arr.ndim == 0 else arr


def _write_outs(outs: tuple, out, name: str):
    if not isinstance(out, (tuple, list)) or len(out) != len(outs):
        raise TypeError(f"{name}(): argument 'out' must be a tuple of {len(outs)} Tensors")
    return tuple(write_out(r, o, name) for r, o in zip(outs, out))


def _differentiable(arr) -> bool:
    return arr.dtype.kind in "fcV"  # V: bfloat16 (ml_dtypes)


def _output(node, res, inputs: tuple):
    """The Tensor of a single-output forward's array ``res`` while recording: attached to ``node`` (a float or
    complex result) with the tensors ``node`` asked to save (``_wrap``'s work, written out: hot path)."""
    if res.__class__ is not np.ndarray and isinstance(res, np.generic):
        res = np.asarray(res)
    r = _new(_Tensor)
    r._data = res
    r._grad = None
    r._output_nr = 0
    r._vc = [0]
    r._base = None
    r._aux = None
    if res.dtype.kind in "fcV":  # V: bfloat16 (ml_dtypes)
        node._seq = next(_seq)
        if _anomaly.STATE.enabled:
            node._trace = _anomaly.capture_trace()
        r._requires_grad = True
        r.grad_fn = node
        if node._save:
            _save(node, inputs, r)
    else:
        r._requires_grad = False
        r.grad_fn = None
    return r


def _attach(node, res: tuple, inputs: tuple, need: bool) -> tuple:
    """Wrap a multi-output forward's arrays; when a graph is needed, attach the differentiable outputs to
    ``node`` (integer outputs, such as indices, stay outside the graph) and save tensors."""
    outs = tuple(_wrap(a) for a in res)
    if need:
        node._seq = next(_seq)
        if _anomaly.STATE.enabled:
            node._trace = _anomaly.capture_trace()
        if any(_differentiable(o._data) for o in outs):
            node._multi = True
            node._out_meta = []
            for i, o in enumerate(outs):
                node._out_meta.append((o._data.shape, o._data.dtype, o._xp))
                if _differentiable(o._data):
                    o._requires_grad = True
                    o.grad_fn = node
                    o._output_nr = i
        _save(node, inputs, outs[0])
    return outs


def _save(node, inputs: tuple, result) -> None:
    which = node._save
    if which:
        node._saved = tuple(None if w is None else _Saved(result if w == RESULT else inputs[w], node) for w in which)


def apply_(cls_or_fn, self, *others, light: bool = False, name: str | None = None, **attrs):
    """The in-place form of an op: ``self`` overwritten with the op's result, through the entry point.

    ``cls_or_fn`` is an ``Op`` subclass or an out-of-place function built on ops. ``light`` says the op's
    backward never reads the old ``self`` (no snapshot of it is taken when a graph is recorded). Leaf and
    view checks, the version bump and rebasing ``self`` onto the new node happen here (disttorch/ops/inplace.py
    holds the write rules).
    """
    if _Tensor is None:
        _bind()
    fn = cls_or_fn.apply if isinstance(cls_or_fn, type) else cls_or_fn
    op = name or (cls_or_fn.op_name + "_" if isinstance(cls_or_fn, type) else cls_or_fn.__name__ + "_")
    return (_I.inplace_light if light else _I.inplace)(self, op, fn, *others, **attrs)


# ---- in-place writes: how the graph follows a tensor overwritten in place ----------------------------------
class ZeroGradBackward0(Node):
    """Gradient of an in-place op whose result does not depend differentiably on the old value."""

    def backward(self, g):
        return _wrap(g._xp.zeros_like(g._data))


def snapshot(self):
    """A copy of ``self``'s values standing in for it in the graph: what an in-place op whose backward reads the
    old values computes from, before ``self`` is overwritten."""
    if _Tensor is None:
        _bind()
    old = _wrap(self._data.copy())
    old._requires_grad = self._requires_grad
    old.grad_fn = self.grad_fn
    old._output_nr = self._output_nr
    return old


def set_history(self, node, output_nr: int = 0) -> None:
    """Make ``node`` the producer of ``self`` (which requires grad from now on)."""
    self._requires_grad = True
    self.grad_fn = node
    self._output_nr = output_nr


def as_view(x, r):
    """Make ``r``, an op's result over a view of ``x``'s memory, a view of ``x``: the two share the version
    counter (an in-place write through either is seen by backward's checks on the other) and the base."""
    r._vc = x._vc
    r._base = x if x._base is None else x._base
    return r


def rebase(self, res) -> None:
    """Make ``self`` (just overwritten with ``res``'s values) take ``res``'s place in the graph."""
    if res._requires_grad:
        set_history(self, res.grad_fn, res._output_nr)
    elif self._requires_grad:
        # e.g. ``y.floor_()``-like ops returning a non-differentiable value: the old graph gets zeros.
        self.grad_fn = ZeroGradBackward0(self)
        self._output_nr = 0


def inplace_node(cls, self, *inputs):
    """A node of ``cls`` over ``self`` (its value before the write) and ``inputs``, for in-place ops that write
    into ``self``'s memory directly (fill_, copy_, index_put_); attach it with :func:`set_history` afterwards."""
    return cls(self, *inputs)

