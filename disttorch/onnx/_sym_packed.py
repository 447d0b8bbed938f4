"""ONNX nodes of ``pack_padded_sequence`` and ``pad_packed_sequence`` (recorded whole by the tracer).

The graph keeps disttorch's packed layout: the rows of step ``t`` are the sequences (sorted by decreasing length)
still running at ``t``. Packing computes it from the lengths, which the graph takes as a value: a stable sort by
decreasing length (``TopK`` on ``length * B + B - 1 - index``, distinct keys) when ``enforce_sorted=False``, the
mask ``t < length`` over the sorted (T, B) grid, its ``NonZero`` rows (row-major: the packed order) and a
``GatherND``. A recurrent layer on packed rows scatters them back onto the grid and runs with ``sequence_lens``
(``_sym_rnn.py``); unpacking scatters them onto a grid filled with ``padding_value``, at each sequence's own
batch position, so no unsort is needed. The sorted and unsorted indices are graph values, so that the layers'
permutations of ``h_0`` and ``h_n`` (``index_select``) follow the lengths too.
"""
from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper

from .errors import OnnxExporterError, UnsupportedOperatorError
from ._registry import register


def packing_of(e, bsz, alt_bsz):
    """The packing (recorded by ``pack_padded_sequence``) whose batch sizes are ``bsz`` in the first trace and
    ``alt_bsz`` in the second, the latest one first; None when there is none."""
    for ctx in reversed(e.g.packs):
        if ctx["bsz"] == tuple(bsz) and ctx["alt_bsz"] == tuple(alt_bsz):
            return ctx
    return None


def _scalar(e, one_elem: str) -> str:
    return e.node("Squeeze", [one_elem, e.g.ints([0])])


@register("pack_padded_sequence")
def _pack(e):
    shape = e.shape(0)
    if len(shape) < 2:
        raise UnsupportedOperatorError(f"ONNX export: pack_padded_sequence of a {len(shape)}-D input (in module "
                                       f"'{e.ev.where}')")
    batch_first = e.attr("batch_first", False)
    x = e.x(0)
    if batch_first:
        x = e.node("Transpose", [x], perm=[1, 0] + list(range(2, len(shape))))
    lens = e.node("Cast", [e.x(1)], to=TensorProto.INT64)
    dims = e.node("Shape", [x])
    steps = e.node("Gather", [dims, e.g.ints([0])], axis=0)
    batch = e.node("Gather", [dims, e.g.ints([1])], axis=0)
    zero, one = e.g.const(np.int64(0)), e.g.const(np.int64(1))
    order = None
    if not e.attr("enforce_sorted", True):
        pos = e.node("Range", [zero, _scalar(e, batch), one])
        key = e.node("Add", [e.node("Mul", [lens, batch]), e.node("Sub", [e.node("Sub", [batch, one]), pos])])
        _, order = e.node("TopK", [key, batch], 2, axis=0, largest=1, sorted=1)
        inverse = e.node("ScatterElements", [pos, order, pos], axis=0)  # inverse[order[i]] = i
        e.node("Identity", [order], [e.out(1)])
        e.node("Identity", [inverse], [e.out(2)])
        lens_sorted = e.node("Gather", [lens, order], axis=0)
        x = e.node("Gather", [x, order], axis=1)
    else:
        lens_sorted = lens
    time = e.node("Range", [zero, _scalar(e, steps), one])
    mask = e.node("Less", [e.node("Unsqueeze", [time, e.g.ints([1])]), e.node("Unsqueeze", [lens_sorted,
                                                                                             e.g.ints([0])])])
    rows = e.node("Transpose", [e.node("NonZero", [mask])], perm=[1, 0])  # (N, 2): (step, sorted batch position)
    e.node("GatherND", [x, rows], [e.out(0)])
    tdim = 1 if batch_first else 0
    e.g.packs.append({"bsz": tuple(e.attr("bsz")), "alt_bsz": tuple(e.alt_attr("bsz")), "rows": rows,
                      "mask": mask, "lens": lens, "lens_sorted": lens_sorted, "order": order, "steps": steps,
                      "batch": batch, "tsize": (shape[tdim], e.alt_shape(0)[tdim])})


@register("pad_packed_sequence")
def _pad(e):
    ctx = packing_of(e, e.attr("bsz"), e.alt_attr("bsz"))
    if ctx is None:
        _pad_equal_lengths(e)
        return
    total, alt_total = e.attr("total_length"), e.alt_attr("total_length")
    if total is None:
        steps = e.node("ReduceMax", [ctx["lens"]], keepdims=1)
    elif total == alt_total:
        steps = e.g.ints([int(total)])
    elif (total, alt_total) == ctx["tsize"]:
        steps = ctx["steps"]  # total_length=x.size(1): the padded input's time dim
    else:
        raise OnnxExporterError(f"ONNX export: total_length={total} of pad_packed_sequence (in module "
                                f"'{e.ev.where}') changes with the inputs but is not the padded input's time dim")
    trail = list(e.shape(0)[1:])
    dt = e.odtype()
    grid = e.node("Concat", [steps, ctx["batch"], e.g.ints(trail)], axis=0) if trail else \
        e.node("Concat", [steps, ctx["batch"]], axis=0)
    fill = helper.make_tensor("fill", helper.np_dtype_to_tensor_dtype(dt), [1],
                              [np.asarray(e.attr("padding_value", 0.0), dt).item()])
    base = e.node("ConstantOfShape", [grid], value=fill)
    rows = ctx["rows"]
    if ctx["order"] is not None:  # scatter each row at its sequence's own batch position (no unsort after)
        step_col = e.node("Slice", [rows, e.g.ints([0]), e.g.ints([1]), e.g.ints([1])])
        sorted_col = e.node("Slice", [rows, e.g.ints([1]), e.g.ints([2]), e.g.ints([1])])
        rows = e.node("Concat", [step_col, e.node("Gather", [ctx["order"], sorted_col], axis=0)], axis=1)
    padded = e.node("ScatterND", [base, rows, e.x(0)])
    if e.attr("batch_first", False):
        padded = e.node("Transpose", [padded], perm=[1, 0] + list(range(2, len(trail) + 2)))
    e.node("Identity", [padded], [e.out(0)])
    e.node("Identity", [ctx["lens"]], [e.out(1)])


def _pad_equal_lengths(e):
    """Unpacking a pack of equal lengths made without ``pack_padded_sequence`` in the trace (``pack_sequence``):
    the packed rows are the (T, B) grid in order; only the batch order is restored."""
    bsz, alt_bsz = tuple(e.attr("bsz")), tuple(e.alt_attr("bsz"))
    if len(set(bsz)) > 1 or len(set(alt_bsz)) > 1:
        raise UnsupportedOperatorError(
            f"ONNX export: pad_packed_sequence (in module '{e.ev.where}') of sequences of unequal lengths that were "
            "not packed by nn.utils.rnn.pack_padded_sequence inside the exported forward (pack_sequence, or a "
            "PackedSequence passed in) has no ONNX mapping: pass the padded batch and the lengths and pack inside "
            "forward")
    steps, batch = len(bsz), bsz[0]
    total, alt_total = e.attr("total_length"), e.alt_attr("total_length")
    if (total is not None and total != steps) or (alt_total is not None and alt_total != len(alt_bsz)) or \
            (len(alt_bsz) != steps and alt_bsz[0] != batch):
        raise UnsupportedOperatorError(
            f"ONNX export: pad_packed_sequence (in module '{e.ev.where}') of a PackedSequence not made by "
            f"nn.utils.rnn.pack_padded_sequence inside the exported forward, with total_length={total} or with both "
            "the sequence length and the batch dynamic: pack inside forward with pack_padded_sequence")
    trail = list(e.shape(0)[1:])
    shape = [-1 if len(alt_bsz) != steps else steps, -1 if alt_bsz[0] != batch else batch] + trail
    padded = e.node("Reshape", [e.x(0), e.g.ints(shape)])
    if len(e.ev.inputs) > 1:
        padded = e.node("Gather", [padded, e.x(1)], axis=1)
    if len(alt_bsz) == steps and alt_bsz[0] == batch:
        lengths = e.g.ints([steps] * batch)
    else:  # every length is the time dim, B of them
        dims = e.node("Shape", [padded])
        lengths = e.node("Expand", [e.node("Slice", [dims, e.g.ints([0]), e.g.ints([1])]),
                                    e.node("Slice", [dims, e.g.ints([1]), e.g.ints([2])])])
    if e.attr("batch_first", False):
        padded = e.node("Transpose", [padded], perm=[1, 0] + list(range(2, len(trail) + 2)))
    e.node("Identity", [padded], [e.out(0)])
    e.node("Identity", [lengths], [e.out(1)])
