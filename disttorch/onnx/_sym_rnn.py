"""ONNX nodes of the fused recurrent layer op ``rnn_layer`` (one per layer and direction).

disttorch computes ``x @ W_ih.T + b_ih`` for all steps with ``linear`` (traced) and passes the result to
``rnn_layer``; the ONNX node takes that result as its input with a permutation matrix as ``W`` (reordering
PyTorch's gates i,f,g,o / r,z,n into ONNX's i,o,f,c / z,r,h) and the reordered ``W_hh``, ``b_hh`` as ``R`` and
the recurrent half of ``B``. GRU uses ``linear_before_reset=1``, PyTorch's formulation.
"""
from __future__ import annotations

import numpy as np

from .errors import OnnxExporterError, UnsupportedOperatorError
from ._graph import to_numpy
from ._registry import register

_GATES = {"LSTM": (4, [0, 3, 1, 2]), "GRU": (3, [1, 0, 2]), "RNN_TANH": (1, [0]), "RNN_RELU": (1, [0])}


@register("rnn_layer")
def _rnn_layer(e):
    mode = e.attr("mode", "LSTM")
    if mode not in _GATES:
        raise UnsupportedOperatorError(f"ONNX export: rnn_layer mode '{mode}' (in module '{e.ev.where}')")
    gi, h0, c0, w_hh, b_hh, w_hr = (list(e.ev.inputs) + [None] * 6)[:6]
    if w_hr is not None:
        raise UnsupportedOperatorError(f"ONNX export: LSTM with proj_size (in module '{e.ev.where}') has no ONNX "
                                       "mapping in disttorch.onnx")
    bsz, alt_bsz = tuple(e.attr("bsz")), tuple(e.alt_attr("bsz"))
    if len(set(bsz)) > 1:
        raise UnsupportedOperatorError(f"ONNX export: packed sequences of unequal lengths (in module "
                                       f"'{e.ev.where}') are not supported")
    n_gates, order = _GATES[mode]
    hidden = int(w_hh.shape[1])
    gh = n_gates * hidden
    dt = e.odtype()
    steps, batch = len(bsz), bsz[0]
    if len(alt_bsz) != steps and alt_bsz[0] != batch:
        raise OnnxExporterError(f"ONNX export: '{mode}' (in module '{e.ev.where}') with both the sequence length "
                                "and the batch size dynamic is not supported")
    x_shape = [-1 if len(alt_bsz) != steps else steps, -1 if alt_bsz[0] != batch else batch, gh]
    perm = np.concatenate([np.arange(g * hidden, (g + 1) * hidden) for g in order])
    w = np.zeros((1, gh, gh), dt)
    w[0, np.arange(gh), perm] = 1  # (X W^T)[:, j] = X[:, perm[j]]: a gate reordering, exact in floating point
    r = to_numpy(w_hh)[perm][None].astype(dt)
    b_rec = to_numpy(b_hh)[perm].astype(dt) if b_hh is not None else np.zeros(gh, dt)
    b = np.concatenate([np.zeros(gh, dt), b_rec])[None]
    x = e.node("Reshape", [e.x(0), e.g.ints(x_shape)])
    axis0 = e.g.ints([0])
    ins = [x, e.g.const(w), e.g.const(r), e.g.const(b), "",
           e.node("Unsqueeze", [e.x(1), axis0]) if h0 is not None else ""]
    attrs = {"hidden_size": hidden, "direction": "reverse" if e.attr("reverse", False) else "forward"}
    if mode == "LSTM":
        ins.append(e.node("Unsqueeze", [e.x(2), axis0]) if c0 is not None else "")
        outs = e.node("LSTM", ins, 3, **attrs)
    elif mode == "GRU":
        outs = e.node("GRU", ins, 2, linear_before_reset=1, **attrs)
    else:
        outs = e.node("RNN", ins, 2, activations=["Tanh" if mode == "RNN_TANH" else "Relu"], **attrs)
    y = e.node("Squeeze", [outs[0], e.g.ints([1])])
    e.node("Reshape", [y, e.g.ints([-1, hidden])], [e.out(0)])
    e.node("Squeeze", [outs[1], axis0], [e.out(1)])
    if mode == "LSTM" and len(e.ev.outputs) > 2:
        e.node("Squeeze", [outs[2], axis0], [e.out(2)])
