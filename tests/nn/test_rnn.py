"""RNN, LSTM, GRU and their cells against a NumPy implementation of PyTorch's documented equations."""
import math
import warnings

import numpy as np
import pytest

import disttorch
from disttorch.ops import _rnn as R
from disttorch.nn.modules.rnn import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNCell
from disttorch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence


# ---- the NumPy reference ---------------------------------------------------------------------------------
def _sig(x):
    return 1.0 / (1.0 + np.exp(-x))


def _cell(mode, x, h, c, w):
    """One step of the documented equations; ``w`` holds w_ih, w_hh, b_ih, b_hh (zeros when no bias), w_hr."""
    gi = w["w_ih"] @ x + w["b_ih"]
    gh = w["w_hh"] @ h + w["b_hh"]
    if mode == "RNN_TANH":
        return np.tanh(gi + gh), None
    if mode == "RNN_RELU":
        return np.maximum(gi + gh, 0), None
    if mode == "GRU":
        H = h.shape[0]
        r = _sig(gi[:H] + gh[:H])
        z = _sig(gi[H:2 * H] + gh[H:2 * H])
        n = np.tanh(gi[2 * H:] + r * gh[2 * H:])
        return (1 - z) * n + z * h, None
    H = c.shape[0]
    i, f, g, o = (gi[k * H:(k + 1) * H] + gh[k * H:(k + 1) * H] for k in range(4))
    c = _sig(f) * c + _sig(i) * np.tanh(g)
    h = _sig(o) * np.tanh(c)
    if w.get("w_hr") is not None:
        h = w["w_hr"] @ h
    return h, c


def _weights(m, layer, suffix):
    p = {k: v.detach().numpy().astype(np.float64) for k, v in m.named_parameters()}
    g = p[f"weight_ih_l{layer}{suffix}"].shape[0]
    return {"w_ih": p[f"weight_ih_l{layer}{suffix}"], "w_hh": p[f"weight_hh_l{layer}{suffix}"],
            "b_ih": p.get(f"bias_ih_l{layer}{suffix}", np.zeros(g)), "b_hh": p.get(f"bias_hh_l{layer}{suffix}", np.zeros(g)),
            "w_hr": p.get(f"weight_hr_l{layer}{suffix}")}


def ref_rnn(m, x, lengths=None, h0=None, c0=None):
    """Sequence by sequence: x (T, B, I) time-major; returns zero-padded output, h_n, c_n."""
    steps, batch = x.shape[:2]
    lengths = [steps] * batch if lengths is None else list(lengths)
    D = 2 if m.bidirectional else 1
    hr = m.proj_size or m.hidden_size
    h0 = np.zeros((m.num_layers * D, batch, hr)) if h0 is None else h0
    c0 = np.zeros((m.num_layers * D, batch, m.hidden_size)) if c0 is None else c0
    hn, cn = np.zeros_like(h0), np.zeros_like(c0)
    inp = x
    for layer in range(m.num_layers):
        out = np.zeros((steps, batch, D * hr))
        for d in range(D):
            w = _weights(m, layer, "_reverse" if d else "")
            k = layer * D + d
            for b in range(batch):
                h, c = h0[k, b], c0[k, b]
                ts = range(lengths[b] - 1, -1, -1) if d else range(lengths[b])
                for t in ts:
                    h, c = _cell(m.mode, inp[t, b], h, c, w)
                    out[t, b, d * hr:(d + 1) * hr] = h
                hn[k, b] = h
                if c is not None:
                    cn[k, b] = c
        inp = out
    return inp, hn, cn


def _np(t):
    return t.detach().numpy()


MODES = [("RNN", {}), ("RNN", {"nonlinearity": "relu"}), ("LSTM", {}), ("LSTM", {"proj_size": 2}), ("GRU", {})]
CLS = {"RNN": RNN, "LSTM": LSTM, "GRU": GRU}


def _make(name, kw, size=(3, 4), **more):
    disttorch.manual_seed(0)
    return CLS[name](*size, **kw, **more).double()


@pytest.fixture(params=[True, False], ids=["fused", "composed"])
def fused(request, monkeypatch):
    monkeypatch.setattr(R, "_FUSED", request.param)
    return request.param


# ---- forward ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name,kw", MODES)
@pytest.mark.parametrize("layers,bidir,batch_first,given", [(1, False, False, False), (2, True, False, True),
                                                             (2, False, True, True), (1, True, True, False)])
def test_forward_matches_reference(name, kw, layers, bidir, batch_first, given, fused):
    m = _make(name, kw, num_layers=layers, bidirectional=bidir, batch_first=batch_first)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(5, 2, 3))
    D = 2 if bidir else 1
    h0 = rng.normal(size=(layers * D, 2, m.proj_size or 4)) if given else None
    c0 = rng.normal(size=(layers * D, 2, 4)) if given else None
    xin = disttorch.tensor(x.transpose(1, 0, 2) if batch_first else x, requires_grad=True)
    hx = None
    if given:
        hx = (disttorch.tensor(h0), disttorch.tensor(c0)) if name == "LSTM" else disttorch.tensor(h0)
    out, hid = m(xin, hx)
    ref_out, ref_h, ref_c = ref_rnn(m, x, None, h0, c0)
    np.testing.assert_allclose(_np(out), ref_out.transpose(1, 0, 2) if batch_first else ref_out, atol=1e-12)
    if name == "LSTM":
        np.testing.assert_allclose(_np(hid[0]), ref_h, atol=1e-12)
        np.testing.assert_allclose(_np(hid[1]), ref_c, atol=1e-12)
    else:
        np.testing.assert_allclose(_np(hid), ref_h, atol=1e-12)


@pytest.mark.parametrize("name,kw", MODES)
def test_unbatched_input(name, kw):
    m = _make(name, kw, num_layers=2)
    rng = np.random.default_rng(2)
    x = rng.normal(size=(4, 3))
    hr = m.proj_size or 4
    h0, c0 = rng.normal(size=(2, hr)), rng.normal(size=(2, 4))
    hx = (disttorch.tensor(h0), disttorch.tensor(c0)) if name == "LSTM" else disttorch.tensor(h0)
    out, hid = m(disttorch.tensor(x), hx)
    ref_out, ref_h, ref_c = ref_rnn(m, x[:, None], None, h0[:, None], c0[:, None])
    assert tuple(out.shape) == (4, hr)
    np.testing.assert_allclose(_np(out), ref_out[:, 0], atol=1e-12)
    np.testing.assert_allclose(_np(hid[0] if name == "LSTM" else hid), ref_h[:, 0], atol=1e-12)


@pytest.mark.parametrize("name,kw", MODES)
@pytest.mark.parametrize("bidir", [False, True])
def test_packed_variable_lengths(name, kw, bidir, fused):
    m = _make(name, kw, num_layers=2, bidirectional=bidir)
    rng = np.random.default_rng(3)
    lengths = [3, 5, 1, 4]
    x = rng.normal(size=(5, 4, 3))
    D = 2 if bidir else 1
    h0 = rng.normal(size=(2 * D, 4, m.proj_size or 4))
    c0 = rng.normal(size=(2 * D, 4, 4))
    packed = pack_padded_sequence(disttorch.tensor(x), lengths, enforce_sorted=False)
    hx = (disttorch.tensor(h0), disttorch.tensor(c0)) if name == "LSTM" else disttorch.tensor(h0)
    out, hid = m(packed, hx)
    assert isinstance(out, PackedSequence)
    padded, lens = pad_packed_sequence(out)
    assert lens.tolist() == lengths
    ref_out, ref_h, ref_c = ref_rnn(m, x, lengths, h0, c0)
    np.testing.assert_allclose(_np(padded), ref_out, atol=1e-12)
    np.testing.assert_allclose(_np(hid[0] if name == "LSTM" else hid), ref_h, atol=1e-12)
    if name == "LSTM":
        np.testing.assert_allclose(_np(hid[1]), ref_c, atol=1e-12)


def test_packed_default_state_and_float32():
    disttorch.manual_seed(0)
    m = LSTM(3, 4, bidirectional=True)
    x = np.random.default_rng(4).normal(size=(3, 2, 3)).astype(np.float32)
    out, (h, c) = m(pack_padded_sequence(disttorch.tensor(x), [3, 2]))
    assert out.data.dtype == disttorch.float32 and tuple(h.shape) == (2, 2, 4)
    ref_out, ref_h, _ = ref_rnn(m, x.astype(np.float64), [3, 2])
    np.testing.assert_allclose(_np(pad_packed_sequence(out)[0]), ref_out, atol=1e-5)
    np.testing.assert_allclose(_np(h), ref_h, atol=1e-5)


# ---- gradients -------------------------------------------------------------------------------------------
def _grad_inputs(m, name, x, h0, c0):
    ins = [disttorch.tensor(x, requires_grad=True), disttorch.tensor(h0, requires_grad=True)]
    if name == "LSTM":
        ins.append(disttorch.tensor(c0, requires_grad=True))
    return ins + list(m.parameters())


def _outputs(name, out, hid):
    if isinstance(out, PackedSequence):
        out = out.data
    return (out,) + (tuple(hid) if name == "LSTM" else (hid,))


@pytest.mark.parametrize("name,kw", MODES)
def test_gradcheck_bidirectional_two_layers(name, kw):
    m = _make(name, kw, size=(2, 3), num_layers=2, bidirectional=True)
    rng = np.random.default_rng(5)
    x, h0, c0 = rng.normal(size=(3, 2, 2)), rng.normal(size=(4, 2, m.proj_size or 3)), rng.normal(size=(4, 2, 3))
    ins = _grad_inputs(m, name, x, h0, c0)

    def f(x, h, *rest):
        hx = (h, rest[0]) if name == "LSTM" else h
        return _outputs(name, *m(x, hx))
    assert disttorch.autograd.gradcheck(f, ins, atol=1e-6, rtol=1e-4)


@pytest.mark.parametrize("name,kw", MODES)
@pytest.mark.parametrize("bidir", [False, True])
def test_gradcheck_packed(name, kw, bidir):
    m = _make(name, kw, size=(2, 3), bidirectional=bidir)
    rng = np.random.default_rng(6)
    D = 2 if bidir else 1
    x, h0, c0 = rng.normal(size=(3, 3, 2)), rng.normal(size=(D, 3, m.proj_size or 3)), rng.normal(size=(D, 3, 3))
    ins = _grad_inputs(m, name, x, h0, c0)

    def f(x, h, *rest):
        hx = (h, rest[0]) if name == "LSTM" else h
        return _outputs(name, *m(pack_padded_sequence(x, [2, 3, 1], enforce_sorted=False), hx))
    assert disttorch.autograd.gradcheck(f, ins, atol=1e-6, rtol=1e-4)


@pytest.mark.parametrize("name", ["LSTM", "GRU", "RNN"])
def test_gradgradcheck_falls_back_to_composition(name):
    disttorch.manual_seed(0)
    m = CLS[name](2, 2).double()
    rng = np.random.default_rng(7)
    x = disttorch.tensor(rng.normal(size=(2, 1, 2)), requires_grad=True)
    w = m.weight_hh_l0

    def f(x, w):
        return m(x)[0]
    assert disttorch.autograd.gradgradcheck(f, (x, w), atol=1e-6, rtol=1e-4)


@pytest.mark.parametrize("name,kw", MODES)
def test_fused_matches_composed_gradients(name, kw, monkeypatch):
    m = _make(name, kw, num_layers=2, bidirectional=True)
    x = np.random.default_rng(8).normal(size=(4, 3, 3))
    grads = []
    for flag in (True, False):
        monkeypatch.setattr(R, "_FUSED", flag)
        m.zero_grad()
        xt = disttorch.tensor(x, requires_grad=True)
        out, hid = m(pack_padded_sequence(xt, [4, 2, 3], enforce_sorted=False))
        h, c = hid if name == "LSTM" else (hid, hid)
        (out.data.sum() + (h * h).sum() + c.sum()).backward()
        grads.append([_np(xt.grad)] + [_np(p.grad) for p in m.parameters()])
    for a, b in zip(*grads):
        np.testing.assert_allclose(a, b, atol=1e-12)


def test_dropout_between_layers_only_in_training():
    disttorch.manual_seed(0)
    m = GRU(3, 8, num_layers=2, dropout=0.5).double()
    x = disttorch.tensor(np.random.default_rng(9).normal(size=(4, 2, 3)))
    m.eval()
    a, b = m(x)[0], m(x)[0]
    np.testing.assert_array_equal(_np(a), _np(b))
    np.testing.assert_allclose(_np(a), ref_rnn(m, _np(x))[0], atol=1e-12)
    m.train()
    assert not np.allclose(_np(m(x)[0]), _np(a))


# ---- cells -----------------------------------------------------------------------------------------------
CELLS = [(RNNCell, "RNN_TANH", {}), (RNNCell, "RNN_RELU", {"nonlinearity": "relu"}), (LSTMCell, "LSTM", {}),
         (GRUCell, "GRU", {}), (GRUCell, "GRU", {"bias": False})]


def _cell_weights(c):
    g = c.weight_ih.shape[0]

    def b(p):
        return np.zeros(g) if p is None else _np(p)
    return {"w_ih": _np(c.weight_ih), "w_hh": _np(c.weight_hh), "b_ih": b(c.bias_ih), "b_hh": b(c.bias_hh)}


@pytest.mark.parametrize("cls,mode,kw", CELLS)
@pytest.mark.parametrize("batched", [True, False])
def test_cell_forward_and_grad(cls, mode, kw, batched, fused):
    disttorch.manual_seed(0)
    cell = cls(3, 4, **kw).double()
    rng = np.random.default_rng(10)
    x, h, c = rng.normal(size=(2, 3)), rng.normal(size=(2, 4)), rng.normal(size=(2, 4))
    w = _cell_weights(cell)
    ref = [_cell(mode, x[b], h[b], c[b], w) for b in range(2)]
    sl = slice(None) if batched else 0
    xt, ht, ct = (disttorch.tensor(a[sl], requires_grad=True) for a in (x, h, c))
    res = cell(xt, (ht, ct)) if mode == "LSTM" else cell(xt, ht)
    if mode == "LSTM":
        np.testing.assert_allclose(_np(res[0]), np.stack([r[0] for r in ref])[sl], atol=1e-12)
        np.testing.assert_allclose(_np(res[1]), np.stack([r[1] for r in ref])[sl], atol=1e-12)
    else:
        np.testing.assert_allclose(_np(res), np.stack([r[0] for r in ref])[sl], atol=1e-12)

    def f(x, h, c, *ps):
        return cell(x, (h, c)) if mode == "LSTM" else cell(x, h)
    assert disttorch.autograd.gradcheck(f, [xt, ht, ct] + list(cell.parameters()), atol=1e-6, rtol=1e-4)


def test_cell_default_state_is_zero():
    disttorch.manual_seed(0)
    cell = LSTMCell(3, 4)
    x = disttorch.randn(2, 3)
    h, c = cell(x)
    h2, c2 = cell(x, (disttorch.zeros(2, 4), disttorch.zeros(2, 4)))
    np.testing.assert_array_equal(_np(h), _np(h2))
    assert tuple(GRUCell(3, 4)(disttorch.randn(3)).shape) == (4,)


# ---- construction, init, state_dict, repr ----------------------------------------------------------------
def test_state_dict_names_match_pytorch():
    m = LSTM(10, 20, num_layers=2, bidirectional=True, proj_size=5)
    assert list(m.state_dict()) == [
        "weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0", "weight_hr_l0",
        "weight_ih_l0_reverse", "weight_hh_l0_reverse", "bias_ih_l0_reverse", "bias_hh_l0_reverse",
        "weight_hr_l0_reverse",
        "weight_ih_l1", "weight_hh_l1", "bias_ih_l1", "bias_hh_l1", "weight_hr_l1",
        "weight_ih_l1_reverse", "weight_hh_l1_reverse", "bias_ih_l1_reverse", "bias_hh_l1_reverse",
        "weight_hr_l1_reverse"]
    shapes = {k: tuple(v.shape) for k, v in m.state_dict().items()}
    assert shapes["weight_ih_l0"] == (80, 10) and shapes["weight_hh_l0"] == (80, 5)
    assert shapes["weight_ih_l1"] == (80, 10) and shapes["weight_hr_l1_reverse"] == (5, 20)
    assert list(GRU(3, 6, bias=False).state_dict()) == ["weight_ih_l0", "weight_hh_l0"]
    assert {k: tuple(v.shape) for k, v in GRU(3, 6).state_dict().items()} == {
        "weight_ih_l0": (18, 3), "weight_hh_l0": (18, 6), "bias_ih_l0": (18,), "bias_hh_l0": (18,)}
    assert list(LSTMCell(3, 4).state_dict()) == ["weight_ih", "weight_hh", "bias_ih", "bias_hh"]
    assert tuple(LSTMCell(3, 4).weight_hh.shape) == (16, 4)
    assert list(RNNCell(3, 4, bias=False).state_dict()) == ["weight_ih", "weight_hh"]


def test_state_dict_round_trip_and_weight_lists():
    a, b = GRU(3, 4, 2), GRU(3, 4, 2)
    b.load_state_dict(a.state_dict())
    x = disttorch.randn(3, 2, 3)
    np.testing.assert_array_equal(_np(a(x)[0]), _np(b(x)[0]))
    assert a._flat_weights_names[:4] == ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"]
    assert [len(ws) for ws in a.all_weights] == [4, 4]
    assert a.all_weights[1][0] is a.weight_ih_l1
    assert a._flat_weights[5] is a.weight_hh_l1
    a.flatten_parameters()


@pytest.mark.parametrize("cls", [RNN, LSTM, GRU])
def test_default_init_bounds(cls):
    disttorch.manual_seed(0)
    m = cls(30, 64, 2)
    bound = 1 / math.sqrt(64)
    vals = np.concatenate([_np(p).ravel() for p in m.parameters()])
    assert np.abs(vals).max() <= bound
    assert np.abs(vals).max() > 0.95 * bound
    assert abs(vals.std() - bound / math.sqrt(3)) < 0.05 * bound
    c = GRUCell(30, 64)
    assert np.abs(_np(c.weight_hh)).max() <= bound


def test_repr():
    assert repr(LSTM(10, 20)) == "LSTM(10, 20)"
    assert repr(GRU(10, 20, num_layers=2, bias=False, batch_first=True, dropout=0.1, bidirectional=True)) == \
        "GRU(10, 20, num_layers=2, bias=False, batch_first=True, dropout=0.1, bidirectional=True)"
    assert repr(LSTM(10, 20, proj_size=5)) == "LSTM(10, 20, proj_size=5)"
    assert repr(RNN(10, 20, 1, "relu")) == "RNN(10, 20)"
    assert repr(RNNCell(3, 4, nonlinearity="relu")) == "RNNCell(3, 4, nonlinearity=relu)"
    assert repr(LSTMCell(3, 4, bias=False)) == "LSTMCell(3, 4, bias=False)"


def test_attributes_and_factory_kwargs():
    m = RNN(3, 4, 2, "relu", False, True, 0.0, True, dtype=disttorch.float64)
    assert (m.mode, m.nonlinearity, m.bias, m.batch_first, m.bidirectional) == ("RNN_RELU", "relu", False, True, True)
    assert m.weight_ih_l0.dtype == disttorch.float64 and m.dropout == 0.0
    assert LSTM(3, 4).proj_size == 0


def test_dropout_warning():
    with pytest.warns(UserWarning, match=r"dropout option adds dropout after all but last recurrent layer, so "
                                         r"non-zero dropout expects num_layers greater than 1, but got "
                                         r"dropout=0.5 and num_layers=1"):
        LSTM(10, 20, dropout=0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        LSTM(10, 20, num_layers=2, dropout=0.5)


def test_constructor_errors():
    with pytest.raises(ValueError, match="dropout should be a number in range"):
        GRU(3, 4, dropout=1.5)
    with pytest.raises(TypeError, match="hidden_size should be of type int"):
        GRU(3, 4.0)
    with pytest.raises(ValueError, match="hidden_size must be greater than zero"):
        GRU(3, 0)
    with pytest.raises(ValueError, match="num_layers must be greater than zero"):
        GRU(3, 4, 0)
    with pytest.raises(ValueError, match="proj_size has to be smaller than hidden_size"):
        LSTM(3, 4, proj_size=4)
    with pytest.raises(ValueError, match="proj_size argument is only supported for LSTM"):
        GRU(3, 4, proj_size=2)
    with pytest.raises(ValueError, match="Unknown nonlinearity 'gelu'"):
        RNN(3, 4, nonlinearity="gelu")


def test_forward_shape_errors():
    rnn = RNN(10, 20)
    with pytest.raises(RuntimeError, match=r"Expected hidden size \(1, 3, 20\), got \[1, 2, 20\]"):
        rnn(disttorch.randn(5, 3, 10), disttorch.randn(1, 2, 20))
    with pytest.raises(RuntimeError, match="input.size\\(-1\\) must be equal to input_size. Expected 10, got 7"):
        rnn(disttorch.randn(5, 3, 7))
    with pytest.raises(ValueError, match="RNN: Expected input to be 2D or 3D, got 4D tensor instead"):
        rnn(disttorch.randn(5, 3, 10, 1))
    with pytest.raises(RuntimeError, match="For batched 3-D input, hx should also be 3-D but got 2-D tensor"):
        rnn(disttorch.randn(5, 3, 10), disttorch.randn(3, 20))
    with pytest.raises(ValueError, match="input must have the type"):
        rnn(disttorch.randn(5, 3, 10, dtype=disttorch.float64))
    lstm = LSTM(10, 20)
    with pytest.raises(RuntimeError, match=r"Expected hidden\[1\] size \(1, 3, 20\), got \[1, 3, 4\]"):
        lstm(disttorch.randn(5, 3, 10), (disttorch.randn(1, 3, 20), disttorch.randn(1, 3, 4)))
    with pytest.raises(RuntimeError, match=r"For unbatched 2-D input, hx and cx should also be 2-D but got "
                                           r"\(3-D, 2-D\) tensors"):
        lstm(disttorch.randn(5, 10), (disttorch.randn(1, 1, 20), disttorch.randn(1, 20)))
    cell = GRUCell(10, 20)
    with pytest.raises(RuntimeError, match="input has inconsistent input_size: got 7 expected 10"):
        cell(disttorch.randn(3, 7))
    with pytest.raises(RuntimeError, match="Input batch size 3 doesn't match hidden0 batch size 2"):
        cell(disttorch.randn(3, 10), disttorch.randn(2, 20))
    with pytest.raises(RuntimeError, match="hidden0 has inconsistent hidden_size: got 5, expected 20"):
        cell(disttorch.randn(3, 10), disttorch.randn(3, 5))
    with pytest.raises(ValueError, match="GRUCell: Expected input to be 1D or 2D, got 3D instead"):
        cell(disttorch.randn(1, 3, 10))


def test_half_precision_runs():
    disttorch.manual_seed(0)
    m = LSTM(3, 4)
    x = disttorch.randn(3, 2, 3)
    ref = _np(m(x)[0])
    m16 = m.to(disttorch.bfloat16)
    out = m16(x.to(disttorch.bfloat16))[0]
    assert out.dtype == disttorch.bfloat16
    np.testing.assert_allclose(_np(out.float()), ref, atol=3e-2)


@pytest.mark.parametrize("name,kw", MODES)
def test_no_grad_path_matches(name, kw):
    m = _make(name, kw, num_layers=2, bidirectional=True)
    x = disttorch.tensor(np.random.default_rng(11).normal(size=(3, 2, 3)))
    with disttorch.no_grad():
        out, hid = m(x)
    assert out.grad_fn is None and not out.requires_grad
    ref_out, ref_h, _ = ref_rnn(m, _np(x))
    np.testing.assert_allclose(_np(out), ref_out, atol=1e-12)
    np.testing.assert_allclose(_np(hid[0] if name == "LSTM" else hid), ref_h, atol=1e-12)


def test_empty_batch_and_zero_length():
    m = LSTM(3, 4, 2, bidirectional=True)
    out, (h, c) = m(disttorch.randn(5, 0, 3, requires_grad=True))
    assert tuple(out.shape) == (5, 0, 8) and tuple(h.shape) == (4, 0, 4)
    with pytest.raises(RuntimeError, match="Expected sequence length to be larger than 0"):
        m(disttorch.randn(0, 2, 3))


def test_graph_size_does_not_grow_with_sequence_length():
    m = _make("LSTM", {}, num_layers=2)
    out, _ = m(disttorch.randn(20, 2, 3, dtype=disttorch.float64))
    seen, todo = set(), [out.grad_fn]
    while todo:
        fn = todo.pop()
        if fn is not None and fn not in seen:
            seen.add(fn)
            todo.extend(f for f, _ in fn.next_functions)
    names = [fn.name() for fn in seen]
    assert names.count("RnnLayerBackward0") == 2 and len(names) < 20


def test_input_dim_error_wording():
    with pytest.raises(ValueError, match="LSTM: Expected input to be 2D or 3D, got 1D instead"):
        LSTM(3, 4)(disttorch.randn(3))
    with pytest.raises(TypeError, match="must be Tensor or PackedSequence"):
        GRU(3, 4)([1.0, 2.0])
