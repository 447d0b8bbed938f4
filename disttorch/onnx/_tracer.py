"""Record one forward pass: every op reported through the entry point's observer hook, plus the pooling layers
that are exported whole (their inner ops carry their geometry in closures, so the layer is the cleaner unit)."""
from __future__ import annotations

from ..autograd import op as _op

# Layers exported as one ONNX node from their attributes; the ops inside their forward are absorbed.
ABSORBED_LAYERS = ("MaxPool1d", "MaxPool2d", "AvgPool1d", "AvgPool2d", "LPPool1d", "LPPool2d",
                   "AdaptiveAvgPool1d", "AdaptiveAvgPool2d",
                   "AdaptiveMaxPool1d", "AdaptiveMaxPool2d", "Upsample", "UpsamplingNearest2d",
                   "UpsamplingBilinear2d", "ReflectionPad1d", "ReflectionPad2d", "ReplicationPad1d",
                   "ReplicationPad2d", "RMSNorm", "PReLU", "Hardshrink", "Softshrink")
# Functional calls exported as the layer of the same geometry (their inner ops carry it in closures too): the
# tracer wraps these names of ``disttorch.nn.functional`` while it records and builds the layer from the call's
# arguments (the layers take the same argument names).
FUNCTIONAL_LAYERS = {
    "max_pool1d": "MaxPool1d", "max_pool2d": "MaxPool2d", "avg_pool1d": "AvgPool1d", "avg_pool2d": "AvgPool2d",
    "adaptive_avg_pool1d": "AdaptiveAvgPool1d", "adaptive_avg_pool2d": "AdaptiveAvgPool2d",
    "adaptive_max_pool1d": "AdaptiveMaxPool1d", "adaptive_max_pool2d": "AdaptiveMaxPool2d",
    "lp_pool1d": "LPPool1d", "lp_pool2d": "LPPool2d", "interpolate": "Upsample",
}
# ``nn.utils.rnn`` functions recorded as one event each (their index tables are computed on the host from the
# lengths, which the graph must take as a value): see _sym_packed.py.
PACKING = ("pack_padded_sequence", "pad_packed_sequence")
# Instance norms with running statistics in eval mode are batch norms: their ops export as such.
_INSTANCE_NORMS = ("InstanceNorm1d", "InstanceNorm2d", "InstanceNorm3d")


def absorbs(module) -> bool:
    """Whether ``module`` is exported whole (its inner ops are not traced)."""
    name = type(module).__name__
    if name in _INSTANCE_NORMS:
        return not getattr(module, "track_running_stats", False)
    return name in ABSORBED_LAYERS



def _bound(sig, args, kwargs) -> dict | None:
    """The call's arguments by name, defaults filled in; None when they do not fit ``sig`` (the function then
    runs untraced and raises its own error)."""
    try:
        bound = sig.bind(*args, **kwargs)
    except TypeError:
        return None
    bound.apply_defaults()
    return dict(bound.arguments)

class Event:
    """One traced op: ``name`` (the op's PyTorch name, or ``module:<Layer>``), inputs and attrs as given,
    output Tensors, the qualified name of the module it ran in (for error messages), and the ids of inputs
    that were overwritten in place by something the tracer did not see (``stale``)."""

    __slots__ = ("name", "inputs", "attrs", "outputs", "where", "stale", "orig_ids")

    def __init__(self, name, inputs, attrs, outputs, where, stale=frozenset()):
        self.name, self.inputs, self.attrs, self.outputs, self.where = name, inputs, attrs, outputs, where
        self.stale = stale
        self.orig_ids = ()


class Tracer:
    """Install with ``with Tracer(model) as t: model(*args)``; ``t.events`` lists what ran, in order."""

    def __init__(self, model, inputs=()) -> None:
        self.model = model
        self.events: list = []
        # In-place writes bump a tensor's version counter: the version each known tensor had when it was
        # produced, and what an overwritten tensor now stands for (see _resolve).
        self._version = {id(t): (t._vc, t._vc[0]) for t in inputs}
        self._born = {id(t): 0 for t in inputs}
        self._alias: dict = {}
        self._stack: list = []  # qualified names of the modules being run
        self._absorb = 0
        self._handles: list = []

    def __enter__(self):
        for qual, m in (self.model.named_modules() if hasattr(self.model, "named_modules") else ()):
            absorb = absorbs(m)
            self._handles.append(m.register_forward_pre_hook(self._pre(qual or type(m).__name__, absorb)))
            self._handles.append(m.register_forward_hook(self._post(absorb)))
        self._handles.append(_op.add_observer(self._on_op))
        from ..nn import functional as F

        self._patched = [(F, name, getattr(F, name)) for name in FUNCTIONAL_LAYERS]
        for mod, name, fn in self._patched:
            setattr(mod, name, self._functional(fn, FUNCTIONAL_LAYERS[name]))
        self._patch_packing()
        return self

    def _patch_packing(self) -> None:
        """Wrap the packing functions in ``nn.utils.rnn`` and wherever the model's modules imported them by name
        (``from torch.nn.utils.rnn import pack_padded_sequence``): the globals of each module class's file."""
        import sys

        from ..nn.utils import rnn as R

        originals = {name: getattr(R, name) for name in PACKING}
        wrapped = {name: self._packing(fn, name) for name, fn in originals.items()}
        spaces = {id(R.__dict__): R.__dict__}
        for _, m in (self.model.named_modules() if hasattr(self.model, "named_modules") else ()):
            mod = sys.modules.get(type(m).__module__)
            if mod is not None and not mod.__name__.startswith("disttorch."):
                spaces.setdefault(id(mod.__dict__), mod.__dict__)
        for space in spaces.values():
            for key, value in list(space.items()):
                for name, fn in originals.items():
                    if value is fn:
                        self._patched.append((space, key, fn))
                        space[key] = wrapped[name]

    def _packing(self, fn, name: str):
        """``pack_padded_sequence(x, lengths, ...)`` recorded as one event with inputs ``(x, lengths)`` and
        outputs ``(data[, sorted_indices, unsorted_indices])``; ``pad_packed_sequence(seq, ...)`` as one with
        inputs ``(data[, unsorted_indices])`` and outputs ``(padded, lengths)``. ``bsz`` (the batch sizes) pairs
        the two with the recurrent layers in between."""
        import inspect

        import numpy as np

        sig = inspect.signature(fn)

        def wrapped(*args, **kwargs):
            given = None if self._absorb else _bound(sig, args, kwargs)
            if given is None:
                return fn(*args, **kwargs)
            self._absorb += 1
            try:
                out = fn(*args, **kwargs)
            finally:
                self._absorb -= 1
            self._settle()
            where = self._stack[-1] if self._stack else ""
            if name == "pack_padded_sequence":
                lengths = given["lengths"]
                if not hasattr(lengths, "_vc"):
                    lengths = np.asarray(lengths, dtype=np.int64).reshape(-1)
                outs = tuple(t for t in (out.data, out.sorted_indices, out.unsorted_indices) if t is not None)
                attrs = {"batch_first": bool(given["batch_first"]), "enforce_sorted": bool(given["enforce_sorted"]),
                         "bsz": tuple(int(b) for b in np.asarray(out.batch_sizes._data))}
                ins = (given["input"], lengths)
            else:
                seq = given["sequence"]
                attrs = {"batch_first": bool(given["batch_first"]), "padding_value": given["padding_value"],
                         "total_length": given["total_length"],
                         "bsz": tuple(int(b) for b in np.asarray(seq.batch_sizes._data))}
                ins = (seq.data,) if seq.unsorted_indices is None else (seq.data, seq.unsorted_indices)
                outs = tuple(out)
            stale: set = set()
            ev = Event(name, tuple(self._resolve(t, stale) for t in ins), attrs, outs, where, frozenset(stale))
            self._record(ev)
            return out
        wrapped.__name__, wrapped.__doc__ = fn.__name__, fn.__doc__
        return wrapped

    def __exit__(self, *exc) -> bool:
        for h in self._handles:
            h.remove()
        self._handles.clear()
        for mod, name, fn in reversed(getattr(self, "_patched", ())):
            if isinstance(mod, dict):
                mod[name] = fn
            else:
                setattr(mod, name, fn)
        self._patched = []
        return False

    def _functional(self, fn, layer: str):
        """``fn`` (``F.max_pool2d`` ...) recorded as one ``module:<layer>`` event built from its arguments, as the
        layer's own hooks record it; arguments the layer has no place for (``antialias=True``) leave the call to
        the op-level trace, which names what cannot be exported."""
        import inspect

        from .. import nn

        sig = inspect.signature(fn)
        cls = getattr(nn, layer)
        takes = set(inspect.signature(cls.__init__).parameters) - {"self"}

        def wrapped(*args, **kwargs):
            given = None if self._absorb else _bound(sig, args, kwargs)
            if given is None:
                return fn(*args, **kwargs)
            x = given.pop("input")
            if any(v not in (None, False) for k, v in given.items() if k not in takes):
                return fn(*args, **kwargs)
            module = cls(**{k: v for k, v in given.items() if k in takes})
            where = self._stack[-1] if self._stack else ""
            self._absorb += 1
            try:
                out = fn(*args, **kwargs)
            finally:
                self._absorb -= 1
            self.events.append(Event("module:" + layer, (x,), {"module": module},
                                     out if isinstance(out, tuple) else (out,), where))
            return out
        return wrapped

    def _pre(self, qual: str, absorb: bool):
        def hook(module, args):
            self._stack.append(qual)
            if absorb:
                self._absorb += 1
        return hook

    def _post(self, absorb: bool):
        def hook(module, args, output):
            where = self._stack.pop() if self._stack else ""
            if absorb:
                self._absorb -= 1
                if self._absorb == 0:
                    outs = output if isinstance(output, tuple) else (output,)
                    self.events.append(Event("module:" + type(module).__name__, (args[0],), {"module": module},
                                             outs, where))
        return hook

    def _on_op(self, name, inputs, attrs, outputs, start_ns, end_ns) -> None:
        if self._absorb:
            return
        self._settle()
        stale: set = set()
        ins = tuple(self._resolve(x, stale) for x in inputs)
        attrs = {k: self._resolve(v, stale) for k, v in attrs.items()}
        ev = Event(name, ins, attrs, tuple(outputs), self._stack[-1] if self._stack else "", frozenset(stale))
        ev.orig_ids = tuple(id(x) for x in inputs if hasattr(x, "_vc"))
        self._record(ev, inputs[0] if inputs else None)

    def _settle(self) -> None:
        """A view op's result is tied to its base's version counter after the op reports it: take that counter
        as the result's (before anything else runs, so that a later write through the base is seen)."""
        if self.events:
            for o in self.events[-1].outputs:
                known = self._version.get(id(o))
                if known is not None and hasattr(o, "_vc") and o._vc is not known[0]:
                    self._version[id(o)] = (o._vc, o._vc[0])

    def _record(self, ev, first=None) -> None:
        n = len(self.events)
        self.events.append(ev)
        for o in ev.outputs:
            if hasattr(o, "_vc"):
                rec = (o._vc, o._vc[0])
                if hasattr(first, "_vc") and o._vc is not first._vc and _is_view_of(o, first):
                    rec = (first._vc, first._vc[0])  # it will share its base's counter once the op returns
                self._version[id(o)] = rec
                self._born[id(o)] = n + 1
                self._alias.pop(id(o), None)

    def _resolve(self, x, stale: set):
        """``x``, or the traced result an op wrote into it in place (``relu(x, out=x)``, ``F.relu(x,
        inplace=True)``: the op reports its result, then the result is copied into ``x``). An overwrite no
        traced op explains (``x += 1`` on a fast path) puts ``id(x)`` in ``stale``: using it raises."""
        if not hasattr(x, "_vc"):
            return x
        i = id(x)
        known = self._version.get(i)
        if known is None or x._vc[0] == known[1]:
            return self._alias.get(i, x)
        if x._vc is not known[0]:  # made a view after the op reported it: it shares its base's counter now
            self._version[i] = (x._vc, x._vc[0])
            return self._alias.get(i, x)
        for ev in reversed(self.events[self._born.get(i, 0):]):
            if i in ev.orig_ids and len(ev.outputs) == 1 and _same_values(ev.outputs[0], x):
                self._alias[i] = ev.outputs[0]
                self._version[i] = (x._vc, x._vc[0])
                return ev.outputs[0]
        stale.add(i)
        return x


def _is_view_of(out, base) -> bool:
    import numpy as np

    a, b = out._data, base._data
    return isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.base is not None and \
        bool(np.may_share_memory(a, b))


def _same_values(a, b) -> bool:
    import numpy as np

    from ._graph import to_numpy

    da, db = a._data, b._data
    return da.shape == db.shape and da.dtype == db.dtype and bool(np.array_equal(to_numpy(a), to_numpy(b)))
