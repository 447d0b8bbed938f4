"""nn.MultiheadAttention (disttorch/nn/modules/activation.py) against a NumPy implementation of the documented
computation, using the module's own weights."""
from __future__ import annotations

import math

import numpy as np
import pytest

import disttorch as torch
from disttorch.nn.modules.activation import MultiheadAttention
from helpers import assert_close

_rng = np.random.default_rng(7)


def _np(t):
    return None if t is None else t.detach().numpy().astype(np.float64)


def _softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def ref_mha(m, q, k, v, key_padding_mask=None, attn_mask=None, average=True):
    """Sequence-first (L, N, E) NumPy multi-head attention from ``m``'s parameters: (out, weights)."""
    E, H = m.embed_dim, m.num_heads
    hd = E // H
    if m._qkv_same_embed_dim:
        wq, wk, wv = np.split(_np(m.in_proj_weight), 3)
    else:
        wq, wk, wv = _np(m.q_proj_weight), _np(m.k_proj_weight), _np(m.v_proj_weight)
    bq, bk, bv = np.split(_np(m.in_proj_bias), 3) if m.in_proj_bias is not None else (0.0, 0.0, 0.0)
    Q, K, V = q @ wq.T + bq, k @ wk.T + bk, v @ wv.T + bv
    L, N, _ = Q.shape
    S = K.shape[0]
    bias = np.zeros((N, H, L, S))
    if attn_mask is not None:
        am = attn_mask if attn_mask.ndim == 2 else attn_mask.reshape(N, H, L, S)
        bias = bias + (np.where(am, -np.inf, 0.0) if am.dtype == bool else am)
    if key_padding_mask is not None:
        kp = key_padding_mask
        bias = bias + (np.where(kp, -np.inf, 0.0) if kp.dtype == bool else kp)[:, None, None, :]
    if m.bias_k is not None:  # one extra key/value row, never masked
        K = np.concatenate([K, np.broadcast_to(_np(m.bias_k), (1, N, E))])
        V = np.concatenate([V, np.broadcast_to(_np(m.bias_v), (1, N, E))])
        bias = np.concatenate([bias, np.zeros((N, H, L, 1))], axis=-1)
    if m.add_zero_attn:
        K = np.concatenate([K, np.zeros((1, N, E))])
        V = np.concatenate([V, np.zeros((1, N, E))])
        bias = np.concatenate([bias, np.zeros((N, H, L, 1))], axis=-1)
    heads = lambda X: X.reshape(X.shape[0], N, H, hd).transpose(1, 2, 0, 3)  # noqa: E731 - (N, H, len, hd)
    w = _softmax(heads(Q) @ heads(K).transpose(0, 1, 3, 2) / math.sqrt(hd) + bias)
    o = (w @ heads(V)).transpose(2, 0, 1, 3).reshape(L, N, E)
    o = o @ _np(m.out_proj.weight).T + (0.0 if m.out_proj.bias is None else _np(m.out_proj.bias))
    return o, (w.mean(axis=1) if average else w)


def _randomize(m):
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.tensor(_rng.uniform(-0.5, 0.5, tuple(p.shape))))
    return m


def _t(a, requires_grad=False):
    return torch.tensor(a, requires_grad=requires_grad)


def _run(m, q, k, v, batch_first, **kw):
    """Call ``m`` with sequence-first NumPy inputs (transposed for batch_first) and return sequence-first output."""
    conv = (lambda a: a.transpose(1, 0, 2).copy()) if batch_first else (lambda a: a)
    out, w = m(_t(conv(q)), _t(conv(k)), _t(conv(v)), **kw)
    out = out.detach().numpy()
    return (out.transpose(1, 0, 2) if batch_first else out), w


def _masks(kind, N, H, L, S):
    if kind is None:
        return {}
    kp = _rng.random((N, S)) < 0.3
    kp[:, 0] = False  # no query row is fully masked
    am = _rng.random((L, S)) < 0.3
    am[:, 0] = False
    if kind == "bool":
        return {"key_padding_mask": kp, "attn_mask": am}
    if kind == "float":
        return {"key_padding_mask": np.where(kp, -np.inf, 0.0), "attn_mask": _rng.standard_normal((L, S))}
    if kind == "attn3d":
        a3 = _rng.random((N * H, L, S)) < 0.3
        a3[:, :, 0] = False
        return {"attn_mask": a3}
    return {"key_padding_mask": kp}


CONFIGS = [dict(), dict(bias=False), dict(add_bias_kv=True), dict(add_zero_attn=True), dict(kdim=3, vdim=5),
           dict(kdim=3, vdim=5, add_bias_kv=True, add_zero_attn=True)]


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()) or "default")
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("masks", [None, "bool", "float", "attn3d", "kpm"])
@pytest.mark.parametrize("need_weights,average", [(True, True), (True, False), (False, True)])
def test_forward_matches_numpy(cfg, batch_first, masks, need_weights, average):
    E, H, L, S, N = 6, 2, 4, 5, 3
    m = _randomize(MultiheadAttention(E, H, batch_first=batch_first, **cfg).double())
    q = _rng.standard_normal((L, N, E))
    k = _rng.standard_normal((S, N, cfg.get("kdim", E)))
    v = _rng.standard_normal((S, N, cfg.get("vdim", E)))
    mk = _masks(masks, N, H, L, S)
    out, w = _run(m, q, k, v, batch_first, need_weights=need_weights, average_attn_weights=average,
                  **{n: _t(a) for n, a in mk.items()})
    ref_out, ref_w = ref_mha(m, q, k, v, average=average, **mk)
    np.testing.assert_allclose(out, ref_out, rtol=1e-10, atol=1e-12)
    if need_weights:
        assert_close(w, ref_w, rtol=1e-10, atol=1e-12)
    else:
        assert w is None


@pytest.mark.parametrize("batch_first", [False, True])
def test_self_attention_same_tensor(batch_first):
    E, H, L, N = 8, 4, 5, 2
    m = _randomize(MultiheadAttention(E, H, batch_first=batch_first).double())
    x = _rng.standard_normal((N, L, E) if batch_first else (L, N, E))
    xt = _t(x)
    out, w = m(xt, xt, xt)
    xs = x.transpose(1, 0, 2) if batch_first else x
    ref_out, ref_w = ref_mha(m, xs, xs, xs)
    assert_close(out, ref_out.transpose(1, 0, 2) if batch_first else ref_out, rtol=1e-10, atol=1e-12)
    assert_close(w, ref_w, rtol=1e-10, atol=1e-12)
    assert tuple(out.shape) == x.shape and tuple(w.shape) == (N, L, L)


def test_unbatched_input():
    E, H, L, S = 4, 2, 3, 5
    m = _randomize(MultiheadAttention(E, H, batch_first=True).double())
    q, k, v = (_rng.standard_normal((n, E)) for n in (L, S, S))
    kp = np.array([False, True, False, False, True])
    out, w = m(_t(q), _t(k), _t(v), key_padding_mask=_t(kp))
    ref_out, ref_w = ref_mha(m, q[:, None], k[:, None], v[:, None], key_padding_mask=kp[None])
    assert_close(out, ref_out[:, 0], rtol=1e-10, atol=1e-12)
    assert_close(w, ref_w[0], rtol=1e-10, atol=1e-12)


def test_is_causal_with_mask():
    E, H, L, N = 4, 2, 5, 2
    m = _randomize(MultiheadAttention(E, H).double())
    x = _rng.standard_normal((L, N, E))
    causal = np.triu(np.full((L, L), -np.inf), 1)
    out, w = m(_t(x), _t(x), _t(x), attn_mask=_t(causal), is_causal=True, need_weights=False)
    assert w is None
    assert_close(out, ref_mha(m, x, x, x, attn_mask=causal)[0], rtol=1e-10, atol=1e-12)
    with pytest.raises(RuntimeError, match="is_causal"):
        m(_t(x), _t(x), _t(x), is_causal=True)


def test_dropout_train_vs_eval():
    E, H, L, N = 4, 2, 6, 2
    m = _randomize(MultiheadAttention(E, H, dropout=0.5).double())
    x = _t(_rng.standard_normal((L, N, E)))
    torch.manual_seed(0)
    w_train = m(x, x, x)[1].detach().numpy()
    m.eval()
    out_eval, w_eval = m(x, x, x)
    ref_out, ref_w = ref_mha(m, x.numpy(), x.numpy(), x.numpy())
    assert_close(w_eval, ref_w, rtol=1e-10, atol=1e-12)
    assert not np.allclose(w_train, ref_w)


def test_parameters_and_state_dict_names():
    m = MultiheadAttention(8, 2)
    assert list(m.state_dict()) == ["in_proj_weight", "in_proj_bias", "out_proj.weight", "out_proj.bias"]
    assert tuple(m.in_proj_weight.shape) == (24, 8) and tuple(m.in_proj_bias.shape) == (24,)
    assert m.q_proj_weight is None and m.bias_k is None and m.head_dim == 4 and m._qkv_same_embed_dim
    m2 = MultiheadAttention(8, 2, kdim=3, vdim=5, add_bias_kv=True, bias=False)
    assert list(m2.state_dict()) == ["q_proj_weight", "k_proj_weight", "v_proj_weight", "bias_k", "bias_v",
                                     "out_proj.weight"]
    shapes = {n: tuple(p.shape) for n, p in m2.named_parameters()}
    assert shapes == {"q_proj_weight": (8, 8), "k_proj_weight": (8, 3), "v_proj_weight": (8, 5),
                      "bias_k": (1, 1, 8), "bias_v": (1, 1, 8), "out_proj.weight": (8, 8)}
    assert m2.in_proj_weight is None and m2.in_proj_bias is None and m2.out_proj.bias is None
    assert type(m.out_proj).__name__ == "NonDynamicallyQuantizableLinear"
    assert type(m.out_proj).__module__ == "disttorch.nn.modules.linear"


def test_state_dict_round_trip():
    a = _randomize(MultiheadAttention(6, 3, add_bias_kv=True).double())
    b = MultiheadAttention(6, 3, add_bias_kv=True).double()
    b.load_state_dict(a.state_dict())
    x = _t(_rng.standard_normal((4, 2, 6)))
    assert_close(b(x, x, x)[0], a(x, x, x)[0].detach().numpy())


def test_repr():
    assert repr(MultiheadAttention(4, 2)) == ("MultiheadAttention(\n  (out_proj): NonDynamicallyQuantizableLinear("
                                             "in_features=4, out_features=4, bias=True)\n)")


def test_default_initialisation():
    m = MultiheadAttention(64, 4, add_bias_kv=True)
    w = m.in_proj_weight.detach().numpy()
    bound = math.sqrt(6.0 / (64 + 192))  # xavier_uniform_ on (3E, E)
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.9 * bound
    assert np.all(m.in_proj_bias.detach().numpy() == 0) and np.all(m.out_proj.bias.detach().numpy() == 0)
    wo = m.out_proj.weight.detach().numpy()  # Linear's default: U(+-1/sqrt(fan_in))
    assert np.abs(wo).max() <= 1 / 8 and np.abs(wo).max() > 0.9 / 8
    bk = np.concatenate([m.bias_k.detach().numpy().ravel(), m.bias_v.detach().numpy().ravel()])
    # xavier_normal_ on (1, 1, E): fan_in = E, fan_out = 1 -> std sqrt(2 / (E + 1))
    assert 0.5 * math.sqrt(2 / 65) < bk.std() < 1.5 * math.sqrt(2 / 65)
    sep = MultiheadAttention(16, 2, kdim=4, vdim=8)
    kb = math.sqrt(6.0 / (16 + 4))
    assert np.abs(sep.k_proj_weight.detach().numpy()).max() <= kb


def test_factory_kwargs():
    m = MultiheadAttention(4, 2, dtype=torch.float64)
    assert all(p.dtype == torch.float64 for p in m.parameters())


def test_constructor_errors():
    with pytest.raises(ValueError, match="embed_dim and num_heads must be greater than 0"):
        MultiheadAttention(0, 2)
    with pytest.raises(AssertionError, match="embed_dim must be divisible by num_heads"):
        MultiheadAttention(6, 4)


def test_input_errors():
    m = MultiheadAttention(4, 2).double()
    x = _t(_rng.standard_normal((3, 2, 4)))
    with pytest.raises(AssertionError, match="was expecting embedding dimension of 4"):
        m(_t(_rng.standard_normal((3, 2, 5))), x, x)
    with pytest.raises(AssertionError, match="only bool and floating types of attn_mask"):
        m(x, x, x, attn_mask=torch.zeros(3, 3, dtype=torch.int64))
    with pytest.raises(RuntimeError, match="2D attn_mask"):
        m(x, x, x, attn_mask=torch.zeros(2, 3, dtype=torch.bool))


def test_mismatched_mask_types_warn():
    m = MultiheadAttention(4, 2).double()
    x = _t(_rng.standard_normal((3, 2, 4)))
    with pytest.warns(UserWarning, match="mismatched key_padding_mask and attn_mask"):
        m(x, x, x, key_padding_mask=torch.zeros(2, 3, dtype=torch.bool), attn_mask=torch.zeros(3, 3, dtype=torch.float64))


@pytest.mark.parametrize("cfg", [dict(), dict(kdim=3, vdim=2, add_bias_kv=True, add_zero_attn=True)])
@pytest.mark.parametrize("batch_first", [False, True])
def test_gradcheck(cfg, batch_first):
    E, H, L, S, N = 4, 2, 2, 3, 2
    m = _randomize(MultiheadAttention(E, H, batch_first=batch_first, **cfg).double())
    shape = (lambda n: (N, n)) if batch_first else (lambda n: (n, N))
    q = _t(_rng.standard_normal(shape(L) + (E,)), True)
    k = _t(_rng.standard_normal(shape(S) + (cfg.get("kdim", E),)), True)
    v = _t(_rng.standard_normal(shape(S) + (cfg.get("vdim", E),)), True)
    kp = _t(np.array([[False, True, False], [False, False, True]]))
    params = tuple(m.parameters())
    assert torch.autograd.gradcheck(lambda q, k, v, *ps: m(q, k, v, key_padding_mask=kp)[0], (q, k, v) + params)
    assert torch.autograd.gradcheck(lambda q, k, v, *ps: m(q, k, v, need_weights=False)[0], (q, k, v) + params)


def test_gradcheck_self_attention_weights():
    m = _randomize(MultiheadAttention(4, 2, batch_first=True).double())
    x = _t(_rng.standard_normal((2, 3, 4)), True)
    assert torch.autograd.gradcheck(lambda x, *ps: m(x, x, x, average_attn_weights=False)[1],
                                    (x,) + tuple(m.parameters()))
