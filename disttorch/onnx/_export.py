"""``disttorch.onnx.export``: trace one forward pass (twice, to check provenance and find dynamic dims) and write
the ONNX model."""
from __future__ import annotations

import os

import numpy as np
import onnx
from onnx import helper

from .errors import OnnxExporterError
from ._graph import SIZED, Emit, Graph, emit_event, initializers, is_tensor, to_numpy, value_info
from ._registry import EXPORTING as _EXPORTING
from ._tracer import Event, Tracer
from . import _sym_attention, _sym_elementwise, _sym_layers, _sym_linear, _sym_norm_pool  # noqa: F401
from . import _sym_packed, _sym_reduce, _sym_rnn, _sym_shape  # noqa: F401

SUPPORTED_OPSETS = (17,)
_IR_VERSION = 8  # the IR of opset 17: runtimes that load opset 17 load it


def _split_args(args):
    if is_tensor(args):
        return (args,), {}
    args = tuple(args) if isinstance(args, (tuple, list)) else (args,)
    if args and isinstance(args[-1], dict):
        return args[:-1], dict(args[-1])
    return args, {}


def _flatten(obj, out: list) -> None:
    if is_tensor(obj):
        out.append(obj)
    elif isinstance(obj, (tuple, list)):
        for o in obj:
            _flatten(o, out)
    elif isinstance(obj, dict):
        for o in obj.values():
            _flatten(o, out)


def _refuse_packed(obj) -> None:
    """A PackedSequence given as a model input: its batch sizes would be frozen into the graph."""
    from ..nn.utils.rnn import PackedSequence

    if isinstance(obj, PackedSequence):
        raise OnnxExporterError("ONNX export: a PackedSequence as a model input has no ONNX form (its batch sizes "
                                "would be frozen): pass the padded batch and the lengths, and call "
                                "nn.utils.rnn.pack_padded_sequence inside forward")
    if isinstance(obj, (tuple, list)):
        for o in obj:
            _refuse_packed(o)
    elif isinstance(obj, dict):
        for o in obj.values():
            _refuse_packed(o)


def _rebuild(obj, fn):
    """``obj`` with every tensor ``t`` replaced by ``fn(t)`` (tuples, lists and dicts kept)."""
    if is_tensor(obj):
        return fn(obj)
    if isinstance(obj, (tuple, list)):
        return type(obj)(_rebuild(o, fn) for o in obj)
    if isinstance(obj, dict):
        return {k: _rebuild(v, fn) for k, v in obj.items()}
    return obj


def _dyn_axes(dynamic_axes, name: str) -> dict:
    spec = (dynamic_axes or {}).get(name)
    if spec is None:
        return {}
    if isinstance(spec, dict):
        return {int(d): str(n) for d, n in spec.items()}
    return {int(d): f"{name}_dynamic_axes_{i + 1}" for i, d in enumerate(spec)}


def _axis_keys(dynamic_axes, names: list, flat_in: list, in_dyn: list) -> list:
    """Per input, ``{dim: key}``: dims with one key are one axis (they grow together in the second trace). Named
    dims (the dict form) are keyed by name; the list form's dims by size (a batch dim shared by inputs)."""
    keys = []
    for name, t, dyn in zip(names, flat_in, in_dyn):
        named = isinstance((dynamic_axes or {}).get(name), dict)
        k = {d: (n if named else ("size", t.shape[d])) for d, n in dyn.items()}
        if len(set(k.values())) < len(k):
            raise OnnxExporterError(
                f"ONNX export: dynamic_axes of '{name}' lists dims of equal size {t.shape} that the exporter cannot "
                "tell apart: name them ({dim: 'name'}) or trace with different sizes")
        keys.append(k)
    return keys


def _alt_tensor(t, keys: dict, grow: dict):
    """Other values of ``t``'s dtype, ``grow[key]`` more rows on each dynamic axis, for the second trace (each
    axis grows by its own amount, so that a size in the second trace tells which axes it follows)."""
    from .. import _tensor

    a = to_numpy(t)
    for d, key in keys.items():
        extra = np.arange(grow[key]) % max(a.shape[d], 1)
        a = np.concatenate([a, np.take(a, extra, axis=d)], axis=d)
    flat = np.roll(a.reshape(-1), 1).reshape(a.shape)
    if a.dtype.kind == "f":
        flat = flat * np.asarray(1.25, a.dtype) + np.asarray(0.125, a.dtype)
    alt = _tensor._wrap(np.ascontiguousarray(flat))
    return alt if t.device == alt.device else alt.to(t.device)


def _alt_lengths(events: list, alt_of: dict) -> None:
    """Lengths given to ``pack_padded_sequence`` as graph inputs get other *valid* values for the second trace:
    one shorter (at least 1), and still decreasing where ``enforce_sorted`` asks for it (rolled values would not
    be). The longest length, hence the padded output's time dim, changes too, as it does with real inputs."""
    from .. import _tensor

    for ev in events:
        lengths = ev.inputs[1] if ev.name == "pack_padded_sequence" else None
        if not is_tensor(lengths) or id(lengths) not in alt_of:
            continue
        alt = alt_of[id(lengths)]
        a = np.maximum(to_numpy(alt) - 1, 1).astype(to_numpy(alt).dtype)
        if ev.attrs.get("enforce_sorted", True):
            a = np.sort(a)[::-1]
        alt_of[id(lengths)] = _tensor._wrap(np.ascontiguousarray(a))


def _trace(model, args, kwargs, inputs):
    from .. import no_grad

    with no_grad(), Tracer(model, inputs) as tr:
        out = model(*args, **kwargs)
    flat: list = []
    _flatten(out, flat)
    stale: set = set()
    flat = [tr._resolve(t, stale) for t in flat]  # outputs overwritten in place stand for what was written
    if stale:
        raise OnnxExporterError("ONNX export: an output of the model was overwritten in place by an op the tracer "
                                "does not see (x += y, x.mul_(...)): use the out-of-place form in forward")
    return tr.events, flat


def _sized(events: list, alt_events: list) -> tuple:
    """The creation events whose sizes follow the dynamic axes (output shapes differ between the traces): they
    run as graph nodes (a causal mask or positions built from the input's sizes). The k-th creation event of
    one trace pairs with the k-th of the other."""
    mine = [e for e in events if e.name in SIZED]
    theirs = [e for e in alt_events if e.name in SIZED]
    if [e.name for e in mine] != [e.name for e in theirs]:
        return set(), set()
    pairs = [(a, b) for a, b in zip(mine, theirs) if tuple(a.outputs[0].shape) != tuple(b.outputs[0].shape)]
    return {id(a) for a, _ in pairs}, {id(b) for _, b in pairs}


def _live(events: list, live: set, force: set = frozenset()) -> list:
    """The events with an input computed from the graph inputs or the parameters (the others fold away)."""
    out = []
    for ev in events:
        if id(ev) in force or any(is_tensor(x) and id(x) in live for x in list(ev.inputs) + list(ev.attrs.values())):
            out.append(ev)
            live.update(id(o) for o in ev.outputs)
    return out


def export(model, args, f, export_params: bool = True, verbose: bool = False, input_names=None,
           output_names=None, opset_version: int | None = None, dynamic_axes=None,
           keep_initializers_as_inputs=None) -> None:
    """The implementation of :func:`disttorch.onnx.export` (documented there)."""
    opset = 17 if opset_version is None else int(opset_version)
    if opset not in SUPPORTED_OPSETS:
        raise OnnxExporterError(f"ONNX export: opset_version={opset} is not supported; disttorch writes opset 17")
    pos, kwargs = _split_args(args)
    _refuse_packed((pos, kwargs))
    flat_in: list = []
    _flatten((pos, kwargs), flat_in)
    in_names = list(input_names or []) + [f"input_{i}" for i in range(len(input_names or []), len(flat_in))]
    in_dyn = [_dyn_axes(dynamic_axes, n) for n in in_names]
    keys = _axis_keys(dynamic_axes, in_names, flat_in, in_dyn)
    grow: dict = {}
    for k in keys:
        for key in k.values():
            grow.setdefault(key, len(grow) + 1)
    alt_of = {id(t): _alt_tensor(t, k, grow) for t, k in zip(flat_in, keys)}

    was_training = getattr(model, "training", False)
    if hasattr(model, "eval"):
        model.eval()
    _EXPORTING[0] = True
    try:
        events, out = _trace(model, pos, kwargs, flat_in)
        _alt_lengths(events, alt_of)
        alt_pos, alt_kwargs = _rebuild((pos, kwargs), lambda t: alt_of.get(id(t), t))
        alt_events, alt_out = _trace(model, alt_pos, alt_kwargs, list(alt_of.values()))
    finally:
        _EXPORTING[0] = False
        if was_training and hasattr(model, "train"):
            model.train()
    params = {}
    if hasattr(model, "named_parameters"):
        for name, p in model.named_parameters():
            params.setdefault(id(p), name)
        for name, b in model.named_buffers():
            params.setdefault(id(b), name)
    g = Graph(params)
    for t, name, dyn in zip(flat_in, in_names, in_dyn):
        g.dyn_dims += [(name, d, t.shape[d], alt_of[id(t)].shape[d]) for d in dyn]
        if id(t) in g.names:
            continue  # the same tensor given twice (mha(q, q, q)): its first input name carries it
        g.names[id(t)] = name
        g.by_array[id(t._data)] = name  # ops that take an input's array (an index tensor in a key) find it
        g.live.add(id(t))
    param_ids = set(params)
    sized, alt_sized = _sized(events, alt_events)
    events = _live(events, {id(t) for t in flat_in} | param_ids, sized)
    alt_events = _live(alt_events, {id(t) for t in alt_of.values()} | {id(t) for t in flat_in} | param_ids,
                       alt_sized)
    if [e.name for e in events] != [e.name for e in alt_events]:
        first = next((i for i, (a, b) in enumerate(zip(events, alt_events)) if a.name != b.name),
                     min(len(events), len(alt_events)))
        ev = events[first] if first < len(events) else alt_events[first]
        raise OnnxExporterError(
            "ONNX export: the model ran different ops on other input values/sizes (data-dependent control flow at "
            f"op '{ev.name}' in module '{ev.where}'); the trace would hold for these inputs only")
    for ev, alt in zip(events, alt_events):
        emit_event(g, ev, alt)

    flat_out, alt_flat_out = out, alt_out
    out_names = list(output_names or []) + [f"output_{i}" for i in range(len(output_names or []), len(flat_out))]
    outputs = []
    for i, (t, at, name) in enumerate(zip(flat_out, alt_flat_out, out_names)):
        src = Emit(g, Event("<output>", (t,), {}, (), ""), Event("<output>", (at,), {}, (), "")).value(
            t, at, f"output {i} of the model ('{name}'")
        g.node("Identity", [src], [name])
        dyn = _dyn_axes(dynamic_axes, name)
        for d, (s, s2) in enumerate(zip(t.shape, at.shape)):
            if s != s2 and d not in dyn:
                dyn[d] = f"{name}_dim_{d}"
        outputs.append(value_info(name, t, dyn))
    inputs = [value_info(n, t, d) for t, n, d in zip(flat_in, in_names, in_dyn)]
    inits = initializers(g)
    param_names = set(params.values())
    if not export_params:
        kept = [i for i in inits if i.name not in param_names]
        inputs += [helper.make_tensor_value_info(i.name, i.data_type, list(i.dims)) for i in inits
                   if i.name in param_names]
        inits = kept
    elif keep_initializers_as_inputs:
        inputs += [helper.make_tensor_value_info(i.name, i.data_type, list(i.dims)) for i in inits
                   if i.name in param_names]
    graph = helper.make_graph(g.nodes, type(model).__name__, inputs, outputs, inits)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                              producer_name="disttorch", ir_version=_IR_VERSION)
    try:
        onnx.checker.check_model(proto)
    except onnx.checker.ValidationError as e:
        raise OnnxExporterError(f"ONNX export: the graph written for {type(model).__name__} is invalid: {e}") from e
    if verbose:
        print(helper.printable_graph(proto.graph))
    data = proto.SerializeToString()
    if isinstance(f, (str, os.PathLike)):
        with open(f, "wb") as fh:
            fh.write(data)
    else:
        f.write(data)
