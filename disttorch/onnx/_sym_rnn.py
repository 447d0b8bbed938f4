"""ONNX nodes of the fused recurrent layer op ``rnn_layer`` (one per layer and direction).

disttorch computes ``x @ W_ih.T + b_ih`` for all steps with ``linear`` (traced) and passes the result to
``rnn_layer``; the ONNX node takes that result as its input with a permutation matrix as ``W`` (reordering
PyTorch's gates i,f,g,o / r,z,n into ONNX's i,o,f,c / z,r,h) and the reordered ``W_hh``, ``b_hh`` as ``R`` and
the recurrent half of ``B``. GRU uses ``linear_before_reset=1``, PyTorch's formulation.

ONNX's LSTM has no projection: an LSTM with ``proj_size`` is written as a ``Scan`` over time whose body is the
cell (MatMul, Sigmoid, Tanh, the projection MatMul), in PyTorch's gate order, so the sequence length stays
dynamic. On packed rows (``_sym_packed.py``) the rows are scattered onto the (T, B) grid of their packing and the
node gets ``sequence_lens`` (the Scan a step mask: a finished or not yet started sequence keeps its state and
outputs zeros), then the valid rows are gathered back into the packed layout.
"""
from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper

from .errors import UnsupportedOperatorError
from ._graph import to_numpy
from ._registry import register
from ._sym_packed import packing_of

_GATES = {"LSTM": (4, [0, 3, 1, 2]), "GRU": (3, [1, 0, 2]), "RNN_TANH": (1, [0]), "RNN_RELU": (1, [0])}


@register("rnn_layer")
def _rnn_layer(e):
    mode = e.attr("mode", "LSTM")
    if mode not in _GATES:
        raise UnsupportedOperatorError(f"ONNX export: rnn_layer mode '{mode}' (in module '{e.ev.where}')")
    gi, h0, c0, w_hh, b_hh, w_hr = (list(e.ev.inputs) + [None] * 6)[:6]
    bsz, alt_bsz = tuple(e.attr("bsz")), tuple(e.alt_attr("bsz"))
    ctx = packing_of(e, bsz, alt_bsz)
    if ctx is None and (len(set(bsz)) > 1 or len(set(alt_bsz)) > 1):
        raise UnsupportedOperatorError(
            f"ONNX export: packed sequences of unequal lengths (in module '{e.ev.where}') that were not packed by "
            "nn.utils.rnn.pack_padded_sequence inside the exported forward (pack_sequence, or a PackedSequence "
            "passed in) have no ONNX mapping: pass the padded batch and the lengths and pack inside forward")
    n_gates, order = _GATES[mode]
    hidden = int(w_hh.shape[0]) // n_gates
    gh = n_gates * hidden
    dt = e.odtype()
    if ctx is not None:
        grid = e.node("Concat", [ctx["steps"], ctx["batch"], e.g.ints([gh])], axis=0)
        zero = helper.make_tensor("zero", helper.np_dtype_to_tensor_dtype(dt), [1], [0])
        x = e.node("ScatterND", [e.node("ConstantOfShape", [grid], value=zero), ctx["rows"], e.x(0)])
    else:
        steps, batch = len(bsz), bsz[0]
        if len(alt_bsz) != steps and alt_bsz[0] != batch:  # both dynamic: the batch is h_0's first dim
            b = e.node("Slice", [e.node("Shape", [e.x(1)]), e.g.ints([0]), e.g.ints([1])])
            x_shape = e.node("Concat", [e.g.ints([-1]), b, e.g.ints([gh])], axis=0)
        else:
            x_shape = e.g.ints([-1 if len(alt_bsz) != steps else steps, -1 if alt_bsz[0] != batch else batch, gh])
        x = e.node("Reshape", [e.x(0), x_shape])
    reverse = bool(e.attr("reverse", False))
    if w_hr is not None:
        y, hn, cn = _scan_lstm(e, x, w_hh, b_hh, w_hr, reverse, ctx["mask"] if ctx is not None else None)
    else:
        y, hn, cn = _onnx_rnn(e, mode, x, order, hidden, w_hh, b_hh, h0, c0, reverse, ctx)
    if ctx is not None:
        e.node("GatherND", [y, ctx["rows"]], [e.out(0)])
    else:
        e.node("Reshape", [y, e.g.ints([-1, int(e.oshape(0)[1])])], [e.out(0)])
    e.node("Identity", [hn], [e.out(1)])
    if mode == "LSTM" and len(e.ev.outputs) > 2:
        e.node("Identity", [cn], [e.out(2)])


def _onnx_rnn(e, mode, x, order, hidden, w_hh, b_hh, h0, c0, reverse, ctx):
    """ONNX's LSTM/GRU/RNN node on ``x`` (T, B, gates * H); returns (Y (T, B, H), h_n, c_n or None)."""
    gh = len(order) * hidden
    dt = e.odtype()
    perm = np.concatenate([np.arange(g * hidden, (g + 1) * hidden) for g in order])
    w = np.zeros((1, gh, gh), dt)
    w[0, np.arange(gh), perm] = 1  # (X W^T)[:, j] = X[:, perm[j]]: a gate reordering, exact in floating point
    r = to_numpy(w_hh)[perm][None].astype(dt)
    b_rec = to_numpy(b_hh)[perm].astype(dt) if b_hh is not None else np.zeros(gh, dt)
    b = np.concatenate([np.zeros(gh, dt), b_rec])[None]
    axis0 = e.g.ints([0])
    lens = e.node("Cast", [ctx["lens_sorted"]], to=TensorProto.INT32) if ctx is not None else ""
    ins = [x, e.g.const(w), e.g.const(r), e.g.const(b), lens,
           e.node("Unsqueeze", [e.x(1), axis0]) if h0 is not None else ""]
    attrs = {"hidden_size": hidden, "direction": "reverse" if reverse else "forward"}
    if mode == "LSTM":
        ins.append(e.node("Unsqueeze", [e.x(2), axis0]) if c0 is not None else "")
        outs = e.node("LSTM", ins, 3, **attrs)
    elif mode == "GRU":
        outs = e.node("GRU", ins, 2, linear_before_reset=1, **attrs)
    else:
        outs = e.node("RNN", ins, 2, activations=["Tanh" if mode == "RNN_TANH" else "Relu"], **attrs)
    y = e.node("Squeeze", [outs[0], e.g.ints([1])])
    hn = e.node("Squeeze", [outs[1], axis0])
    cn = e.node("Squeeze", [outs[2], axis0]) if mode == "LSTM" else None
    return y, hn, cn


def _scan_lstm(e, x, w_hh, b_hh, w_hr, reverse, mask):
    """An LSTM with projection as a Scan over ``x`` (T, B, 4H, PyTorch's gate order i, f, g, o); with ``mask``
    (T, B) a masked step keeps the state and outputs zeros. Returns (Y (T, B, Hr), h_n, c_n)."""
    g = e.g
    dt = e.odtype()
    elem = helper.np_dtype_to_tensor_dtype(dt)
    p = g.fresh("lstmp")  # body value names, unique in the model
    rt = g.const(to_numpy(w_hh).T.astype(dt), hint="lstmp_w_hh_t")
    prt = g.const(to_numpy(w_hr).T.astype(dt), hint="lstmp_w_hr_t")

    def n(op, ins, out: str, **attrs):
        body.append(helper.make_node(op, ins, [p + o for o in out.split(",")], name=p + out + "_node", **attrs))
        return p + out

    body: list = []
    gates = n("Add", [n("MatMul", [p + "h", rt], "hw"), p + "x"], "pre")
    if b_hh is not None:
        gates = n("Add", [gates, g.const(to_numpy(b_hh).astype(dt), hint="lstmp_b_hh")], "gates")
    n("Split", [gates], "i,f,g,o", axis=1)
    c_new = n("Add", [n("Mul", [n("Sigmoid", [p + "f"], "sf"), p + "c"], "fc"),
                      n("Mul", [n("Sigmoid", [p + "i"], "si"), n("Tanh", [p + "g"], "tg")], "ig")], "c_new")
    h_full = n("Mul", [n("Sigmoid", [p + "o"], "so"), n("Tanh", [c_new], "tc")], "h_full")
    h_new = n("MatMul", [h_full, prt], "h_new")
    ins = [helper.make_tensor_value_info(p + k, elem, None) for k in ("h", "c", "x")]
    if mask is None:
        outs = [n("Identity", [h_new], "h_out"), n("Identity", [c_new], "c_out"), n("Identity", [h_new], "y")]
    else:
        ins.append(helper.make_tensor_value_info(p + "m", TensorProto.BOOL, None))
        m = n("Unsqueeze", [p + "m", g.ints([1])], "m2")
        outs = [n("Where", [m, h_new, p + "h"], "h_out"), n("Where", [m, c_new, p + "c"], "c_out"),
                n("Where", [m, h_new, g.const(np.zeros((), dt))], "y")]
    types = [elem, elem, elem]
    graph = helper.make_graph(body, p + "_body", ins,
                              [helper.make_tensor_value_info(o, t, None) for o, t in zip(outs, types)])
    scan_ins = [e.x(1), e.x(2), x] + ([mask] if mask is not None else [])
    k = len(scan_ins) - 2
    hn, cn, y = e.node("Scan", scan_ins, 3, body=graph, num_scan_inputs=k,
                       scan_input_directions=[1] * k if reverse else None,
                       scan_output_directions=[1] if reverse else None)
    return y, hn, cn
