"""disttorch.onnx.export of recurrent layers beyond ONNX's LSTM/GRU/RNN nodes: LSTM with proj_size (a Scan over
time) and packed sequences of unequal lengths (pack_padded_sequence -> layer -> pad_packed_sequence, the lengths
a graph input). Each exported model runs in onnxruntime on several inputs, compared with disttorch's eager
output (float32, atol 1e-5) and, for packing, with the layer run on each sequence alone, unpadded."""
from __future__ import annotations

import io

import numpy as np
import pytest

import disttorch as torch
import disttorch.nn as nn
from disttorch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence  # imported by name, as models do
from helpers import flat_args

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

ATOL = 1e-5




def _export(model, args, **kw):
    buf = io.BytesIO()
    torch.onnx.export(model, args, buf, **kw)
    onnx.checker.check_model(onnx.load_from_string(buf.getvalue()))
    return buf.getvalue(), ort.InferenceSession(buf.getvalue(), providers=["CPUExecutionProvider"])


def _run(sess, args):
    return sess.run(None, {i.name: t.numpy() for i, t in zip(sess.get_inputs(), flat_args(args, []))})


def _compare(sess, model, args):
    got = _run(sess, args)
    with torch.no_grad():
        ref = [t.numpy() for t in flat_args(model(*args), [])]
    assert len(got) == len(ref)
    for g, r in zip(got, ref):
        assert g.shape == r.shape, (g.shape, r.shape)
        np.testing.assert_allclose(g, r, rtol=0, atol=ATOL)
    return got


@pytest.mark.parametrize("batch_first,bidirectional,with_state", [(True, True, True), (False, False, False)])
def test_lstm_with_projection_dynamic_sequence_length_and_batch(batch_first, bidirectional, with_state):
    torch.manual_seed(1)
    lstm = nn.LSTM(3, 6, num_layers=2, proj_size=4, bidirectional=bidirectional, batch_first=batch_first).eval()
    dirs = 2 if bidirectional else 1
    seq_dim, batch_dim = (1, 0) if batch_first else (0, 1)

    def inputs(steps, batch):
        x = torch.randn(*((batch, steps, 3) if batch_first else (steps, batch, 3)))
        return (x, (torch.randn(2 * dirs, batch, 4), torch.randn(2 * dirs, batch, 6))) if with_state else (x,)

    names = ["x", "h0", "c0"] if with_state else ["x"]
    axes = {"x": {seq_dim: "seq", batch_dim: "batch"}, "h0": {1: "batch"}, "c0": {1: "batch"}}
    data, sess = _export(lstm, inputs(5, 2), input_names=names, output_names=["y", "hn", "cn"],
                         dynamic_axes={k: v for k, v in axes.items() if k in names})
    assert "Scan" in {n.op_type for n in onnx.load_from_string(data).graph.node}
    for steps, batch in ((5, 2), (1, 3), (8, 1)):
        y = _compare(sess, lstm, inputs(steps, batch))[0]
        assert y.shape[seq_dim] == steps and y.shape[batch_dim] == batch and y.shape[-1] == 4 * dirs


def test_gru_with_dynamic_sequence_length_and_batch():
    torch.manual_seed(6)
    gru = nn.GRU(3, 4, num_layers=2).eval()
    _, sess = _export(gru, (torch.randn(5, 2, 3),), input_names=["x"], dynamic_axes={"x": {0: "seq", 1: "batch"}})
    for steps, batch in ((5, 2), (2, 4), (7, 1)):
        _compare(sess, gru, (torch.randn(steps, batch, 3),))


def test_lstm_with_projection_matches_the_recurrence_written_out():
    """The exported cell against the LSTM-with-projection equations in NumPy (independent of disttorch's
    recurrence): one layer, one direction, zero initial state."""
    torch.manual_seed(2)
    lstm = nn.LSTM(3, 5, proj_size=2).eval()
    x = torch.randn(4, 2, 3)
    _, sess = _export(lstm, (x,))
    y, hn, cn = _run(sess, (x,))
    w_ih, w_hh, b_ih, b_hh, w_hr = (p.detach().numpy() for p in lstm.parameters())
    sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    h, c = np.zeros((2, 2), np.float32), np.zeros((2, 5), np.float32)
    for t in range(4):
        i, f, g, o = np.split(x.numpy()[t] @ w_ih.T + b_ih + h @ w_hh.T + b_hh, 4, axis=1)
        c = sig(f) * c + sig(i) * np.tanh(g)
        h = (sig(o) * np.tanh(c)) @ w_hr.T
        np.testing.assert_allclose(y[t], h, atol=ATOL)
    np.testing.assert_allclose(hn[0], h, atol=ATOL)
    np.testing.assert_allclose(cn[0], c, atol=ATOL)


class Packed(nn.Module):
    """pack -> recurrent layer -> pad, with the lengths an input, as sequence models are written."""

    def __init__(self, rnn, enforce_sorted, total_length=False, padding_value=0.0):
        super().__init__()
        self.rnn, self.enforce_sorted = rnn, enforce_sorted
        self.total_length, self.padding_value = total_length, padding_value

    def forward(self, x, lengths, *state):
        bf = self.rnn.batch_first
        packed = pack_padded_sequence(x, lengths, batch_first=bf, enforce_sorted=self.enforce_sorted)
        out, hn = self.rnn(packed, *state)
        total = x.shape[1 if bf else 0] if self.total_length else None
        padded, lens = nn.utils.rnn.pad_packed_sequence(out, batch_first=bf, total_length=total,
                                                        padding_value=self.padding_value)
        return padded, hn, lens


def _check_per_sequence(rnn, x, lengths, padded, hn, padding_value=0.0):
    """Each sequence run alone and unpadded gives the rows of the padded output up to its length, and the final
    state; the rows after it hold ``padding_value``."""
    bf = rnn.batch_first
    for b, n in enumerate(lengths.tolist()):
        seq = x[b:b + 1, :n] if bf else x[:n, b:b + 1]
        with torch.no_grad():
            out, h = rnn(seq)
        out = out.numpy()[0] if bf else out.numpy()[:, 0]
        got = padded[b] if bf else padded[:, b]
        np.testing.assert_allclose(got[:n], out, atol=ATOL)
        assert np.all(got[n:] == padding_value)
        for mine, alone in zip(hn if isinstance(h, tuple) else hn[:1], h if isinstance(h, tuple) else (h,)):
            np.testing.assert_allclose(mine[:, b], alone.numpy()[:, 0], atol=ATOL)


@pytest.mark.parametrize("kind,enforce_sorted", [("lstm", False), ("lstm", True), ("gru", False),
                                                 ("rnn", True), ("lstm_proj", False)])
def test_packed_sequences_of_unequal_lengths(kind, enforce_sorted):
    torch.manual_seed(3)
    make = {"lstm": lambda: nn.LSTM(3, 4, num_layers=2, bidirectional=True, batch_first=True),
            "gru": lambda: nn.GRU(3, 4, bidirectional=True),
            "rnn": lambda: nn.RNN(3, 4, nonlinearity="relu", batch_first=True),
            "lstm_proj": lambda: nn.LSTM(3, 5, proj_size=2, num_layers=2, bidirectional=True, batch_first=True)}
    rnn = make[kind]().eval()
    model = Packed(rnn, enforce_sorted).eval()
    bf = rnn.batch_first

    def x_of(batch, steps=6):
        return torch.randn(*((batch, steps, 3) if bf else (steps, batch, 3)))

    first = torch.tensor([6, 4, 1] if enforce_sorted else [4, 6, 1])
    data, sess = _export(model, (x_of(3), first), input_names=["x", "lengths"],
                         dynamic_axes={"x": {0 if bf else 1: "batch", 1 if bf else 0: "seq"},
                                       "lengths": {0: "batch"}})
    ops = {n.op_type for n in onnx.load_from_string(data).graph.node}
    assert ("Scan" if kind == "lstm_proj" else kind.upper()) in ops
    runs = [[6, 4, 1], [3, 3, 2, 1], [5, 1]] if enforce_sorted else [[2, 6, 1], [1, 3, 5, 3], [1, 1]]
    for lens, steps in zip(runs, (6, 5, 7)):
        x, lengths = x_of(len(lens), steps), torch.tensor(lens)
        padded, *hn, got_lens = _compare(sess, model, (x, lengths))
        assert padded.shape[1 if bf else 0] == max(lens)
        np.testing.assert_array_equal(got_lens, lens)
        _check_per_sequence(rnn, x, lengths, padded, hn)


def test_packed_lstm_with_initial_state_total_length_and_padding_value():
    torch.manual_seed(4)
    rnn = nn.LSTM(3, 4, bidirectional=True).eval()
    model = Packed(rnn, enforce_sorted=False, total_length=True, padding_value=-7.0).eval()

    def args(lens, steps=5):
        b = len(lens)
        return torch.randn(steps, b, 3), torch.tensor(lens), (torch.randn(2, b, 4), torch.randn(2, b, 4))

    _, sess = _export(model, args([3, 5, 1]), input_names=["x", "lengths", "h0", "c0"])
    for lens in ([3, 5, 1], [1, 2, 2], [5, 5, 5]):
        a = args(lens, 5)
        padded, hn, cn, got_lens = _compare(sess, model, a)
        assert padded.shape[0] == 5  # total_length: the padded input's time dim
        for b, n in enumerate(lens):
            assert np.all(padded[n:, b] == -7.0)


def test_packed_with_lengths_as_a_python_list():
    torch.manual_seed(5)
    rnn = nn.GRU(2, 3, batch_first=True).eval()

    class FixedLengths(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = rnn

        def forward(self, x):
            out, h = self.rnn(pack_padded_sequence(x, [1, 4, 2], batch_first=True, enforce_sorted=False))
            return pad_packed_sequence(out, batch_first=True)[0], h

    model = FixedLengths().eval()
    original = pack_padded_sequence
    data, sess = _export(model, (torch.randn(3, 4, 2),))
    assert len(onnx.load_from_string(data).graph.input) == 1
    assert globals()["pack_padded_sequence"] is original is nn.utils.rnn.pack_padded_sequence  # put back
    x = torch.randn(3, 4, 2)
    padded, hn = _compare(sess, model, (x,))
    _check_per_sequence(rnn, x, torch.tensor([1, 4, 2]), padded, [hn])


class PackSequence(nn.Module):
    """``pack_sequence`` (it calls ``pack_padded_sequence``: the lengths are constants of the graph)."""

    def __init__(self, rnn):
        super().__init__()
        self.rnn = rnn

    def forward(self, a, b, c):
        out, h = self.rnn(nn.utils.rnn.pack_sequence([a, b, c], enforce_sorted=False))
        return pad_packed_sequence(out, batch_first=True)[0], h


def test_pack_sequence_of_unequal_lengths():
    torch.manual_seed(7)
    rnn = nn.GRU(2, 3, bidirectional=True).eval()
    shapes = [(2, 2), (4, 2), (1, 2)]
    _, sess = _export(PackSequence(rnn).eval(), tuple(torch.randn(*s) for s in shapes))
    seqs = tuple(torch.randn(*s) for s in shapes)
    padded, h = _compare(sess, PackSequence(rnn).eval(), seqs)
    for k, s in enumerate(seqs):
        with torch.no_grad():
            out, hk = rnn(s)
        np.testing.assert_allclose(padded[k, :len(s)], out.numpy(), atol=ATOL)
        np.testing.assert_allclose(h[:, k], hk.numpy(), atol=ATOL)


def test_pad_packed_sequence_of_a_pack_made_by_hand_with_equal_lengths():
    torch.manual_seed(8)
    rnn = nn.LSTM(2, 3).eval()
    batch_sizes = nn.utils.rnn.pack_sequence([torch.randn(3, 2), torch.randn(3, 2)]).batch_sizes

    class ByHand(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = rnn

        def forward(self, x):  # x: (T, B, 2), rows already in packed (step-major) order
            packed = nn.utils.rnn.PackedSequence(x.reshape(6, 2), batch_sizes)
            padded, lens = pad_packed_sequence(self.rnn(packed)[0], batch_first=True)
            return padded, lens

    model = ByHand().eval()
    _, sess = _export(model, (torch.randn(3, 2, 2),))
    x = torch.randn(3, 2, 2)
    padded, lens = _compare(sess, model, (x,))
    with torch.no_grad():
        np.testing.assert_allclose(padded, rnn(x)[0].numpy().transpose(1, 0, 2), atol=ATOL)
    np.testing.assert_array_equal(lens, [3, 3])
