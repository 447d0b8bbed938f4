"""Graph nodes (grad_fn), saved tensors and the user-facing ``autograd.Function``.

A ``Node`` is what ``tensor.grad_fn`` holds. Built-in ops subclass it and implement
``backward(*grads)`` with Tensor ops, so higher-order gradients come for free: the engine runs
backward with grad mode on only when ``create_graph=True``.
"""
from __future__ import annotations

import itertools

from . import anomaly as _anomaly
from . import graph as _graph
from ..utils.hooks import RemovableHandle
from .grad_mode import STATE as _GRAD

__all__ = ["Node", "Function", "FunctionCtx", "once_differentiable", "AccumulateGrad", "edge"]

_seq = itertools.count()


def edge(t):
    """The (node, output_nr) edge that gradient for tensor ``t`` flows into."""
    if t is None or not t._requires_grad:
        return (None, 0)
    fn = t.grad_fn
    if fn is not None:
        return (fn, t._output_nr)
    return (t._grad_accumulator(), 0)


class _Saved:
    """One saved tensor plus the version it had when saved (PyTorch's SavedVariable)."""

    __slots__ = ("tensor", "data", "vc", "version", "is_output", "output_nr", "rg", "hooks")

    def __init__(self, t, node) -> None:
        self.hooks = None
        if not hasattr(t, "_vc"):  # a Python number saved by an op with a scalar operand
            self.tensor, self.vc, self.version, self.is_output = t, None, 0, False
            return
        if _graph.HOOKS.stack:
            # saved_tensors_hooks: keep what pack() returns; unpack() rebuilds the tensor in backward.
            pack, unpack = _graph.HOOKS.stack[-1]
            self.hooks = unpack
            self.tensor, self.vc, self.version, self.is_output = pack(t.detach()), None, 0, False
            return
        self.vc = t._vc
        self.version = t._vc[0]
        self.is_output = t.grad_fn is node and node is not None
        if self.is_output:
            # Keep the array, not the tensor: tensor -> grad_fn -> tensor would be a cycle.
            self.tensor = None
            self.data = t._data
            self.output_nr = t._output_nr
            self.rg = t._requires_grad
        else:
            self.tensor = t

    def unpack(self, node):
        if self.hooks is not None:
            return self.hooks(self.tensor)
        if self.vc is not None and self.vc[0] != self.version:
            t = self.tensor
            shape = tuple((t._data if t is not None else self.data).shape)
            dt = (t._data if t is not None else self.data).dtype
            raise RuntimeError(
                "one of the variables needed for gradient computation has been modified by an inplace "
                f"operation: [{dt} {list(shape)}], which is used by {node.name()}, is at version "
                f"{self.vc[0]}; expected version {self.version} instead. Hint: the operation that "
                "failed to compute its gradient is " + node.name() + "; clone() the tensor before the "
                "in-place operation.")
        if not self.is_output:
            return self.tensor
        from .._tensor import _wrap

        out = _wrap(self.data)
        out._vc = self.vc
        if self.rg:
            out._requires_grad = True
            out.grad_fn = node
            out._output_nr = self.output_nr
        return out


class Node:
    """A node of the backward graph (the object ``tensor.grad_fn`` returns).

    Subclasses implement ``backward(self, *grad_outputs)`` returning one gradient per input
    (a Tensor, a tuple, or None for inputs that need none).
    """

    _multi = False  # True for nodes with several differentiable outputs

    def __init__(self, *inputs) -> None:
        self.next_functions = tuple(edge(t) for t in inputs)
        self._seq = next(_seq)
        self._saved = ()
        self._released = False
        if _anomaly.STATE.enabled:
            self._trace = _anomaly.capture_trace()

    # -- introspection -------------------------------------------------------------------
    def name(self) -> str:
        return type(self).__name__

    def __repr__(self) -> str:
        return f"<{self.name()} object at {hex(id(self))}>"

    @property
    def needs_input_grad(self) -> tuple:
        return tuple(fn is not None for fn, _ in self.next_functions)

    @property
    def metadata(self) -> dict:
        md = self.__dict__.get("_metadata")
        if md is None:
            md = self._metadata = {}
        return md

    # -- saved tensors ---------------------------------------------------------------------
    def save_for_backward(self, *tensors) -> None:
        self._saved = tuple(None if t is None else _Saved(t, self) for t in tensors)

    @property
    def saved_tensors(self) -> tuple:
        if self._released:
            raise RuntimeError(
                "Trying to backward through the graph a second time (or directly access saved tensors "
                "after they have already been freed). Saved intermediate values of the graph are freed "
                "when you call .backward() or autograd.grad(). Specify retain_graph=True if you need to "
                "backward through the graph a second time or if you need to access saved tensors after "
                "calling backward.")
        return tuple(None if s is None else s.unpack(self) for s in self._saved)

    def release(self) -> None:
        """Free saved tensors (the engine does this unless retain_graph)."""
        self._saved = ()
        self._released = True

    # -- outputs -------------------------------------------------------------------------
    def set_outputs(self, *outs) -> None:
        """Attach several differentiable outputs (output_nr 0, 1, ...) to this node."""
        self._multi = True
        self._out_meta = []
        for i, o in enumerate(outs):
            o._requires_grad = True
            o.grad_fn = self
            o._output_nr = i
            self._out_meta.append((o._data.shape, o._data.dtype, o._xp))

    # -- hooks -----------------------------------------------------------------------------
    def register_hook(self, fn):
        """``fn(grad_inputs, grad_outputs)`` runs after this node's backward."""
        return _add_node_hook(self.__dict__.setdefault("_post_hooks", _HookDict()), fn)

    def register_prehook(self, fn):
        """``fn(grad_outputs)`` runs before this node's backward and may return replacements."""
        return _add_node_hook(self.__dict__.setdefault("_node_pre_hooks", _HookDict()), fn)

    def _tensor_pre_hooks(self):
        return self.__dict__.get("_tpre")

    def _add_tensor_pre_hook(self, output_nr: int, fn):
        d = self.__dict__.setdefault("_tpre", {})
        return _add_node_hook(d.setdefault(output_nr, _HookDict()), fn)

    # -- execution -------------------------------------------------------------------------
    def backward(self, *grads):
        raise NotImplementedError(f"{self.name()} does not implement backward")

    def run_backward(self, grads: list) -> tuple:
        """(Engine) run backward on the gradients of this node's outputs; returns one entry per input."""
        if self._multi:
            grads = [g if g is not None else _zeros(meta) for g, meta in zip(grads, self._out_meta)]
            out = self.backward(*grads)
        else:
            out = self.backward(grads[0])
        if not isinstance(out, tuple):
            out = (out,)
        return out


def _zeros(meta):
    from .._tensor import _wrap

    shape, dtype, xp = meta
    return _wrap(xp.zeros(shape, dtype=dtype))


class _HookDict(dict):
    """A node's hooks keyed by their handle's id. Iterating gives the hooks themselves, in registration order:
    the engine runs them as a sequence (``for h in hooks``)."""

    def __iter__(self):
        return iter(self.values())


def _add_node_hook(hooks: _HookDict, fn) -> RemovableHandle:
    handle = RemovableHandle(hooks)
    hooks[handle.id] = fn
    return handle


class AccumulateGrad(Node):
    """Sink node of a leaf tensor: adds incoming gradient into ``leaf.grad``."""

    # Class-level defaults: a leaf's accumulator is made again in every step whose graph reaches the leaf, so
    # making one sets a single attribute (``Tensor._grad_accumulator``).
    next_functions = ()
    _seq = 1 << 62  # runs as soon as it is ready, so post-accumulate hooks fire early
    _saved = ()
    _released = False

    def __init__(self, variable) -> None:
        self.variable = variable

    def backward(self, grad):  # pragma: no cover - the engine accumulates directly
        raise RuntimeError("AccumulateGrad is applied by the engine")


# ------------------------------------------------------------------------------------------
# autograd.Function
# ------------------------------------------------------------------------------------------
class FunctionCtx:
    """Methods available on ``ctx`` inside a custom Function's forward/backward."""

    def save_for_backward(self, *tensors) -> None:
        self._to_save = tensors

    def mark_dirty(self, *tensors) -> None:
        self._dirty = tensors

    def mark_non_differentiable(self, *tensors) -> None:
        self._non_diff = tensors

    def set_materialize_grads(self, value: bool) -> None:
        self.materialize_grads = value


class BackwardCFunction(Node, FunctionCtx):
    """The node (and ctx) type behind every custom Function; one subclass per Function."""

    _forward_cls = None
    materialize_grads = True

    def __init__(self) -> None:
        self.next_functions = ()
        self._seq = next(_seq)
        self._saved = ()
        self._released = False
        self._to_save = None
        self._dirty = ()
        self._non_diff = ()
        self._nout = 0
        self._input_meta = ()
        if _anomaly.STATE.enabled:
            self._trace = _anomaly.capture_trace()

    @property
    def needs_input_grad(self) -> tuple:
        return self._needs_input_grad

    def save_for_backward(self, *tensors) -> None:
        # Deferred until apply() has attached the outputs, so saved outputs are stored cycle-free.
        self._to_save = tensors

    def run_backward(self, grads: list) -> tuple:
        if self.materialize_grads:
            grads = [g if g is not None or m[1] is None else _zeros(m) for g, m in zip(grads, self._out_meta)]
        out = self._forward_cls.backward(self, *grads)
        if not isinstance(out, tuple):
            out = (out,)
        n = len(self.next_functions)
        if len(out) < n:
            raise RuntimeError(f"function {self.name()} returned an incorrect number of gradients "
                               f"(expected {n}, got {len(out)})")
        if len(out) > n:
            if any(g is not None for g in out[n:]):
                raise RuntimeError(f"function {self.name()} returned an incorrect number of gradients "
                                   f"(expected {n}, got {len(out)})")
            out = out[:n]
        from .._tensor import Tensor

        checked = []
        for i, (g, meta) in enumerate(zip(out, self._input_meta)):
            if g is None or meta is None:
                if g is not None and meta is None and not isinstance(g, Tensor):
                    raise RuntimeError(f"function {self.name()} returned a gradient different than None at "
                                       f"position {i + 1}, but the corresponding forward input was not a Tensor")
                checked.append(None if meta is None else g)
                continue
            if not isinstance(g, Tensor):
                raise TypeError(f"function {self.name()} returned a {type(g).__name__} as gradient {i}, "
                                "expected a Tensor or None")
            shape = meta
            if tuple(g.shape) != shape:
                try:
                    g = g.sum_to_size(shape)
                except RuntimeError:
                    raise RuntimeError(f"Function {self.name()} returned an invalid gradient at index {i} - "
                                       f"got {list(g.shape)} but expected shape compatible with "
                                       f"{list(shape)}") from None
            checked.append(g)
        return tuple(checked)


class _FunctionMeta(type):
    def __init__(cls, name, bases, attrs) -> None:
        super().__init__(name, bases, attrs)
        # Each Function gets its own node class, named like PyTorch's ("MyFnBackward").
        cls._backward_cls = type(BackwardCFunction)(name + "Backward", (BackwardCFunction,),
                                                     {"_forward_cls": cls, "__module__": cls.__module__})


class Function(metaclass=_FunctionMeta):
    """Base class for custom differentiable operations, used exactly as in PyTorch.

    Example:
        >>> class Exp(disttorch.autograd.Function):
        ...     @staticmethod
        ...     def forward(ctx, x):
        ...         y = x.exp()
        ...         ctx.save_for_backward(y)
        ...         return y
        ...     @staticmethod
        ...     def backward(ctx, g):
        ...         (y,) = ctx.saved_tensors
        ...         return g * y
        >>> Exp.apply(disttorch.randn(3, requires_grad=True)).sum().backward()
    """

    def __init__(self, *args, **kwargs) -> None:
        pass

    @staticmethod
    def forward(ctx, *args, **kwargs):
        raise NotImplementedError("You must implement the forward function for custom autograd.Function.")

    @staticmethod
    def setup_context(ctx, inputs, output):
        raise NotImplementedError

    @staticmethod
    def backward(ctx, *grad_outputs):
        raise NotImplementedError("You must implement either the backward or vjp method for your custom "
                                  "autograd.Function to use it with backward mode AD.")

    vjp = backward

    @classmethod
    def apply(cls, *args, **kwargs):
        from .._tensor import Tensor, _wrap

        ctx = cls._backward_cls()
        is_t = [isinstance(a, Tensor) for a in args]
        ctx._needs_input_grad = tuple(t and a._requires_grad for a, t in zip(args, is_t))
        record = _GRAD.enabled and any(ctx._needs_input_grad)
        separate_setup = cls.setup_context is not Function.setup_context
        prev = _GRAD.enabled
        _GRAD.enabled = False
        try:
            if separate_setup:
                outputs = cls.forward(*args, **kwargs)
            else:
                outputs = cls.forward(ctx, *args, **kwargs)
        finally:
            _GRAD.enabled = prev
        if separate_setup:
            cls.setup_context(ctx, args, outputs)
        single = not isinstance(outputs, tuple)
        outs = (outputs,) if single else outputs
        if not record:
            return outputs
        ctx.next_functions = tuple(edge(a) if t else (None, 0) for a, t in zip(args, is_t))
        ctx._input_meta = tuple(tuple(a.shape) if t else None for a, t in zip(args, is_t))
        dirty = {id(t) for t in ctx._dirty}
        non_diff = {id(t) for t in ctx._non_diff}
        inputs = {id(a) for a, t in zip(args, is_t) if t}
        new_outs, meta = [], []
        for i, o in enumerate(outs):
            if not isinstance(o, Tensor):
                new_outs.append(o)
                meta.append(None)
                continue
            if id(o) in dirty:
                if o._requires_grad and o.grad_fn is None and o.is_leaf:
                    raise RuntimeError("a leaf Variable that requires grad is being used in an in-place operation.")
                o._vc[0] += 1
            elif id(o) in inputs:
                # Returning an input unchanged: the output is a new tensor sharing its memory.
                alias = _wrap(o._data)
                alias._vc = o._vc
                o = alias
            meta.append((o._data.shape, o._data.dtype, o._xp))
            if id(outs[i]) in non_diff or not (o.dtype.is_floating_point or o.dtype.is_complex):
                o._requires_grad = False
            else:
                o._requires_grad = True
                o.grad_fn = ctx
                o._output_nr = i
            new_outs.append(o)
        ctx._out_meta = [m if m is not None else ((), None, None) for m in meta]
        ctx._multi = True
        if ctx._to_save is not None:
            Node.save_for_backward(ctx, *ctx._to_save)
        return new_outs[0] if single else tuple(new_outs)


def once_differentiable(fn):
    """Mark a custom backward as not differentiable: it runs under no_grad."""
    import functools

    @functools.wraps(fn)
    def wrapper(ctx, *args):
        prev = _GRAD.enabled
        _GRAD.enabled = False
        try:
            return fn(ctx, *args)
        finally:
            _GRAD.enabled = prev
    return wrapper
