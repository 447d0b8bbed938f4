"""Fused recurrent layers for ``nn.RNN``/``nn.LSTM``/``nn.GRU`` (used by ``nn/modules/rnn.py``).

``rnn_layer`` runs one layer in one direction on the packed layout: rows of step ``t`` are the
``batch_sizes[t]`` sequences still running (a padded batch is the case of a constant batch size). The
caller projects the input for all steps at once (``gi = x @ W_ih^T + b_ih``); here only the recurrent part
loops over time, on raw arrays, inside one graph node (``RnnLayerBackward0``) whose backward is
backpropagation through time over raw arrays too. For a double backward (``create_graph=True``) the node
recomputes the layer from differentiable Tensor ops (``compose_layer``, also the reference the tests hold
the fused path to) and differentiates that.
"""
from __future__ import annotations

import numpy as np

from .. import _tensor as T
from .._device import array_module_of
from ..autograd.engine import grad as _autograd_grad
from ..autograd.op import Op
from ..autograd.grad_mode import STATE as _GRAD
from ..autograd.grad_mode import enable_grad
from ._helpers import quiet
from ._kept import attach_kept
from .join import cat
from .linear import linear
from .pointwise import sigmoid, tanh
from .pointwise_sign import relu

__all__ = []

_GATES = {"LSTM": 4, "GRU": 3, "RNN_TANH": 1, "RNN_RELU": 1}
_LOW = ("float16", "bfloat16")
_FUSED = True  # the raw-array layer node; False composes Tensor ops (the tests compare the two)


def _sigmoid_(xp, a):
    """In-place logistic sigmoid (callers silence the overflow of exp for very negative inputs)."""
    xp.negative(a, out=a)
    xp.exp(a, out=a)
    a += 1
    xp.reciprocal(a, out=a)
    return a


def _forward_raw(mode, gi, h0, c0, w_hh, b_hh, w_hr, bsz, offs, reverse, save):
    """Run the recurrence; returns ``(out, h_n, c_n, saved)`` (``saved`` is None unless ``save``)."""
    xp = array_module_of(gi)
    n, steps = gi.shape[0], len(bsz)
    batch, hr = h0.shape
    hid = w_hh.shape[0] // _GATES[mode]
    lstm, gru = mode == "LSTM", mode == "GRU"
    out = xp.empty((n, hr), dtype=gi.dtype)
    hn = xp.empty((batch, hr), dtype=gi.dtype)
    cn = xp.empty((batch, hid), dtype=gi.dtype) if lstm else None
    whT = w_hh.T
    sv = {}
    if save:
        sv["hp"] = xp.empty((n, hr), dtype=gi.dtype)
        if lstm:
            for k, w in (("act", 4 * hid), ("cp", hid), ("tc", hid)):
                sv[k] = xp.empty((n, w), dtype=gi.dtype)
            if w_hr is not None:
                sv["hh"] = xp.empty((n, hid), dtype=gi.dtype)
        elif gru:
            sv["act"] = xp.empty((n, 3 * hid), dtype=gi.dtype)
            sv["ghn"] = xp.empty((n, hid), dtype=gi.dtype)
    order = range(steps - 1, -1, -1) if reverse else range(steps)
    first = bsz[order[0]] if steps else batch
    h = h0[:first]
    c = c0[:first] if lstm else None
    h2, h3 = 2 * hid, 3 * hid
    with quiet(xp):
        for t in order:
            bs, o = bsz[t], offs[t]
            cur = h.shape[0]
            if bs < cur:  # sequences that ended: their state is final
                hn[bs:cur] = h[bs:]
                h = h[:bs]
                if lstm:
                    cn[bs:cur] = c[bs:]
                    c = c[:bs]
            elif bs > cur:  # reverse direction: sequences that start here begin from h0
                h = xp.concatenate([h, h0[cur:bs]])
                if lstm:
                    c = xp.concatenate([c, c0[cur:bs]])
            x = gi[o:o + bs]
            if save:
                sv["hp"][o:o + bs] = h
            g = h @ whT
            if b_hh is not None:
                g += b_hh
            if lstm:
                g += x
                g[:, h2:h3] *= 2  # tanh(x) = 2 sigmoid(2x) - 1: one sigmoid pass over all four gates
                _sigmoid_(xp, g)
                gg = g[:, h2:h3]
                gg *= 2
                gg -= 1
                cnew = g[:, hid:h2] * c
                cnew += g[:, :hid] * gg
                tc = xp.tanh(cnew)
                hh = g[:, h3:] * tc
                hnew = hh @ w_hr.T if w_hr is not None else hh
                if save:
                    sv["act"][o:o + bs] = g
                    sv["cp"][o:o + bs] = c
                    sv["tc"][o:o + bs] = tc
                    if w_hr is not None:
                        sv["hh"][o:o + bs] = hh
                c = cnew
            elif gru:
                rz = _sigmoid_(xp, x[:, :h2] + g[:, :h2])
                nn_ = x[:, h2:] + rz[:, :hid] * g[:, h2:]
                xp.tanh(nn_, out=nn_)
                hnew = h - nn_
                hnew *= rz[:, hid:]
                hnew += nn_
                if save:
                    sv["act"][o:o + bs, :h2] = rz
                    sv["act"][o:o + bs, h2:] = nn_
                    sv["ghn"][o:o + bs] = g[:, h2:]
            else:
                g += x
                hnew = xp.tanh(g, out=g) if mode == "RNN_TANH" else xp.maximum(g, 0, out=g)
            out[o:o + bs] = hnew
            h = hnew
    hn[:h.shape[0]] = h
    if lstm:
        cn[:c.shape[0]] = c
    return out, hn, cn, (sv if save else None)


def _backward_raw(mode, arrs, sv, out, gout, ghn, gcn, bsz, offs, reverse):
    """Backpropagation through time; returns raw grads for (gi, h0, c0, w_hh, b_hh, w_hr)."""
    gi, h0, c0, w_hh, b_hh, w_hr = arrs
    xp = array_module_of(gi)
    n, steps = gi.shape[0], len(bsz)
    batch, hr = h0.shape
    hid = w_hh.shape[0] // _GATES[mode]
    h2, h3 = 2 * hid, 3 * hid
    lstm, gru = mode == "LSTM", mode == "GRU"
    dgi = xp.empty_like(gi)
    dgh = xp.empty_like(gi) if gru else dgi
    dh0 = xp.empty_like(h0)
    dc0 = xp.empty((batch, hid), dtype=gi.dtype) if lstm else None
    ddh = xp.empty((n, hr), dtype=gi.dtype) if (lstm and w_hr is not None) else None
    order = range(steps) if reverse else range(steps - 1, -1, -1)
    dh_c = ghn if reverse else ghn[:0]
    dc_c = (gcn if reverse else gcn[:0]) if lstm else None
    for t in order:
        bs, o = bsz[t], offs[t]
        sl = slice(o, o + bs)
        dh = gout[sl].copy()
        if reverse:
            dh += dh_c
            dc = dc_c.copy() if lstm else None
        else:  # rows whose sequence ends at this step take the final-state gradient
            k = dh_c.shape[0]
            dh[:k] += dh_c
            dh[k:] += ghn[k:bs]
            if lstm:
                dc = xp.empty((bs, hid), dtype=gi.dtype)
                dc[:k] = dc_c
                dc[k:] = gcn[k:bs]
        if lstm:
            a = sv["act"][sl]
            i, f, gg, og = a[:, :hid], a[:, hid:h2], a[:, h2:h3], a[:, h3:]
            tc = sv["tc"][sl]
            if w_hr is not None:
                ddh[sl] = dh
                dh = dh @ w_hr
            d = dgi[sl]
            xp.multiply(dh, tc, out=d[:, h3:])
            d[:, h3:] *= og * (1 - og)
            dh *= og
            dh *= 1 - tc * tc
            dc += dh
            xp.multiply(dc, gg, out=d[:, :hid])
            d[:, :hid] *= i * (1 - i)
            xp.multiply(dc, sv["cp"][sl], out=d[:, hid:h2])
            d[:, hid:h2] *= f * (1 - f)
            xp.multiply(dc, i, out=d[:, h2:h3])
            d[:, h2:h3] *= 1 - gg * gg
            dc *= f
            dprev = d @ w_hh
        elif gru:
            a = sv["act"][sl]
            r, z, nn_ = a[:, :hid], a[:, hid:h2], a[:, h2:]
            d, e = dgi[sl], dgh[sl]
            dn = dh * (1 - z)
            dn *= 1 - nn_ * nn_
            d[:, h2:] = dn
            xp.multiply(dn, r, out=e[:, h2:])
            xp.multiply(dn, sv["ghn"][sl], out=d[:, :hid])
            d[:, :hid] *= r * (1 - r)
            xp.multiply(dh, sv["hp"][sl] - nn_, out=d[:, hid:h2])
            d[:, hid:h2] *= z * (1 - z)
            e[:, :h2] = d[:, :h2]
            dprev = e @ w_hh
            dprev += dh * z
        else:
            y = out[sl]
            d = dgi[sl]
            if mode == "RNN_TANH":
                xp.multiply(dh, 1 - y * y, out=d)
            else:
                xp.multiply(dh, y > 0, out=d)
            dprev = d @ w_hh
        # Route d(h_prev): into the neighbouring step, or into h0 for rows that started from it.
        if reverse:
            k = bsz[t + 1] if t + 1 < steps else 0
            dh0[k:bs] = dprev[k:]
            dh_c = dprev[:k]
            if lstm:
                dc0[k:bs] = dc[k:]
                dc_c = dc[:k]
        else:
            dh_c = dprev
            dc_c = dc if lstm else None
    if not reverse:
        dh0[:dh_c.shape[0]] = dh_c
        if lstm:
            dc0[:dc_c.shape[0]] = dc_c
    dw_hh = dgh.T @ sv["hp"]
    db_hh = dgh.sum(0) if b_hh is not None else None
    dw_hr = ddh.T @ sv["hh"] if ddh is not None else None
    return dgi, dh0, dc0, dw_hh, db_hh, dw_hr


class RnnLayerBackward0(Op):
    """One layer/direction of RNN, LSTM or GRU: inputs (gi, h0, c0, w_hh, b_hh, w_hr), outputs (out, h_n[, c_n]).

    Backward is backpropagation through time over arrays; under ``create_graph`` the layer is recomputed
    from differentiable Tensor ops (``compose_layer``) and that graph is differentiated.
    """

    op_name = "rnn_layer"

    def forward(self, xp, gi, h0, c0, w_hh, b_hh, w_hr, mode="LSTM", bsz=(), offs=(), reverse=False):
        dt = gi.dtype
        cd = np.dtype(np.float32) if dt.name in _LOW else dt  # half types: compute in float32
        need = bool(self.next_functions)
        arrs = [None if a is None else _cast(a, cd) for a in (gi, h0, c0, w_hh, b_hh, w_hr)]
        out, hn, cn, sv = _forward_raw(mode, *arrs, bsz, offs, reverse, need)
        if need:
            self.mode, self.bsz, self.offs, self.reverse = mode, bsz, offs, reverse
            sv["out"], sv["cd"] = out, cd
            self.save(0, 1, 2, 3, 4, 5)
            self.kept = sv
        res = (_cast(out, dt), _cast(hn, dt))
        return res if cn is None else res + (_cast(cn, dt),)

    def backward(self, gout, ghn, gcn=None):
        # Multi-output ops take no ``backward_arrays`` from the entry point: this node picks its path itself.
        if _GRAD.enabled:
            return self._double_backward(gout, ghn, gcn)
        *ins, sv = self.saved_tensors
        cd = sv["cd"]
        arrs = [None if t is None else _cast(t._data, cd) for t in ins]
        grads = _backward_raw(self.mode, arrs, sv, sv["out"], _cast(gout._data, cd), _cast(ghn._data, cd),
                              None if gcn is None else _cast(gcn._data, cd), self.bsz, self.offs, self.reverse)
        return tuple(None if not need or gr is None else T._wrap(_cast(gr, t._data.dtype))
                     for gr, t, need in zip(grads, ins, self._nig))

    def _double_backward(self, gout, ghn, gcn):
        # create_graph: recompute the layer from differentiable ops and differentiate that graph.
        ins = self.saved_tensors[:-1]
        want = [i for i in range(6) if self._nig[i]]
        outs = compose_layer(self.mode, *ins, self.bsz, self.offs, self.reverse)
        pairs = [(o, g) for o, g in zip(outs, (gout, ghn, gcn)) if o is not None and g is not None]
        res = _autograd_grad([o for o, _ in pairs], [ins[i] for i in want], [g for _, g in pairs],
                             create_graph=True, allow_unused=True)
        grads = [None] * 6
        for i, gr in zip(want, res):
            grads[i] = gr
        return tuple(grads)


def _cast(arr, dtype):
    return arr if arr.dtype == dtype else arr.astype(dtype)


def rnn_layer(mode, gi, h0, c0, w_hh, b_hh, w_hr, bsz, offs, reverse):
    """One layer in one direction: returns ``[out (N, Hr), h_n (B, Hr), c_n (B, H) or None]``.

    Args:
        mode: "LSTM", "GRU", "RNN_TANH" or "RNN_RELU".
        gi: the input projection ``x @ W_ih^T + b_ih`` of all N packed rows, (N, gates * H).
        h0, c0: initial states (B, Hr) and (B, H) (c0 only for LSTM).
        w_hh, b_hh, w_hr: recurrent weight (gates * H, Hr), its bias or None, LSTM projection or None.
        bsz, offs: per step, the number of running sequences and the first row of the step in ``gi``.
        reverse: run from the last step to the first.
    """
    if not _FUSED and _GRAD.enabled:  # the composed reference (tests); it records a graph only in grad mode
        return list(compose_layer(mode, gi, h0, c0, w_hh, b_hh, w_hr, bsz, offs, reverse))
    res = RnnLayerBackward0.apply(gi, h0, c0, w_hh, b_hh, w_hr, mode=mode, bsz=bsz, offs=offs, reverse=reverse)
    if res[0]._requires_grad:
        attach_kept(res, RnnLayerBackward0)
    return [res[0], res[1], res[2] if len(res) == 3 else None]


def compose_layer(mode, gi, h0, c0, w_hh, b_hh, w_hr, bsz, offs, reverse):
    """The same recurrence as ``_forward_raw`` from differentiable Tensor ops (the double-backward path)."""
    steps = len(bsz)
    order = range(steps - 1, -1, -1) if reverse else range(steps)
    first = bsz[order[0]] if steps else h0.shape[0]
    lstm = mode == "LSTM"
    h = h0[:first]
    c = c0[:first] if lstm else None
    outs, fin_h, fin_c = [None] * steps, [], []
    with enable_grad():
        for t in order:
            bs, o = bsz[t], offs[t]
            cur = h.shape[0]
            if bs < cur:
                fin_h.append(h[bs:])
                h = h[:bs]
                if lstm:
                    fin_c.append(c[bs:])
                    c = c[:bs]
            elif bs > cur:
                h = cat([h, h0[cur:bs]], 0)
                if lstm:
                    c = cat([c, c0[cur:bs]], 0)
            x = gi[o:o + bs]
            gh = linear(h, w_hh, b_hh)
            if lstm:
                i, f, g, og = (x + gh).chunk(4, 1)
                c = sigmoid(f) * c + sigmoid(i) * tanh(g)
                h = sigmoid(og) * tanh(c)
                if w_hr is not None:
                    h = linear(h, w_hr)
            elif mode == "GRU":
                xr, xz, xn = x.chunk(3, 1)
                hr_, hz, hn_ = gh.chunk(3, 1)
                r, z = sigmoid(xr + hr_), sigmoid(xz + hz)
                n = tanh(xn + r * hn_)
                h = n + z * (h - n)
            else:
                h = tanh(x + gh) if mode == "RNN_TANH" else relu(x + gh)
            outs[t] = h
        out = cat(outs, 0)
        hn = cat([h] + fin_h[::-1], 0) if fin_h else h
        cn = (cat([c] + fin_c[::-1], 0) if fin_c else c) if lstm else None
    return out, hn, cn
