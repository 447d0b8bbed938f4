"""scaled_dot_product_attention and multi_head_attention_forward against NumPy re-implementations."""
import importlib

import numpy as np
import pytest

import disttorch
from tests.helpers import assert_close, check_grad

A = importlib.import_module("disttorch.ops.attention")

rng = np.random.default_rng(3)


def T(a, **kw):
    return disttorch.tensor(a, **kw)


def randn(*shape):
    return rng.standard_normal(shape)


def np_softmax(s):
    """Softmax over the last axis; rows of all -inf give 0 (PyTorch's safe softmax in SDPA)."""
    m = s.max(-1, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    e = np.exp(s - m)
    d = e.sum(-1, keepdims=True)
    return np.where(d > 0, e / np.where(d > 0, d, 1.0), 0.0)


def ref_sdpa(q, k, v, mask=None, causal=False, scale=None, gqa=False):
    if gqa:
        k = np.repeat(k, q.shape[-3] // k.shape[-3], axis=-3)
        v = np.repeat(v, q.shape[-3] // v.shape[-3], axis=-3)
    s = q @ np.swapaxes(k, -1, -2) * (1 / np.sqrt(q.shape[-1]) if scale is None else scale)
    if causal:
        s = np.where(np.tri(q.shape[-2], k.shape[-2], dtype=bool), s, -np.inf)
    if mask is not None:
        s = np.where(mask, s, -np.inf) if mask.dtype == bool else s + mask
    return np_softmax(s) @ v


# ---- scaled_dot_product_attention -----------------------------------------------------------------------
@pytest.mark.parametrize("qs,ks,vd", [((2, 3, 4, 5), (2, 3, 6, 5), 7), ((4, 5), (6, 5), 3), ((3, 4, 2), (3, 4, 2), 2),
                                      ((2, 1, 3, 4), (2, 1, 3, 4), 4)])
def test_sdpa_plain_and_scale(qs, ks, vd):
    q, k, v = randn(*qs), randn(*ks), randn(*(ks[:-1] + (vd,)))
    assert_close(A.scaled_dot_product_attention(T(q), T(k), T(v)), ref_sdpa(q, k, v), rtol=1e-10, atol=1e-12)
    assert_close(A.scaled_dot_product_attention(T(q), T(k), T(v), scale=0.7), ref_sdpa(q, k, v, scale=0.7),
                 rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("L,S", [(4, 4), (3, 5), (5, 3)])
def test_sdpa_causal_top_left(L, S):
    q, k, v = randn(2, L, 3), randn(2, S, 3), randn(2, S, 2)
    out = A.scaled_dot_product_attention(T(q), T(k), T(v), is_causal=True)
    assert_close(out, ref_sdpa(q, k, v, causal=True), rtol=1e-10, atol=1e-12)
    # the first query row sees only the first key
    assert_close(out[:, 0], v[:, 0], rtol=1e-12)


@pytest.mark.parametrize("mshape", [(4, 6), (1, 4, 6), (2, 1, 4, 6), (6,)])
def test_sdpa_bool_and_float_masks(mshape):
    q, k, v = randn(2, 3, 4, 5), randn(2, 3, 6, 5), randn(2, 3, 6, 2)
    bm = rng.random(mshape) > 0.4
    bm[..., 0] = True
    assert_close(A.scaled_dot_product_attention(T(q), T(k), T(v), attn_mask=T(bm)), ref_sdpa(q, k, v, bm),
                 rtol=1e-10, atol=1e-12)
    fm = randn(*mshape)
    fm[..., 1] = -np.inf
    assert_close(A.scaled_dot_product_attention(T(q), T(k), T(v), attn_mask=T(fm)), ref_sdpa(q, k, v, fm),
                 rtol=1e-10, atol=1e-12)


def test_sdpa_fully_masked_rows_give_zeros_and_finite_grads():
    q, k, v = randn(1, 3, 2), randn(1, 4, 2), randn(1, 4, 3)
    bm = np.ones((3, 4), bool)
    bm[1] = False
    qt = T(q, requires_grad=True)
    out = A.scaled_dot_product_attention(qt, T(k), T(v), attn_mask=T(bm))
    assert_close(out[0, 1], np.zeros(3))
    assert_close(out, ref_sdpa(q, k, v, bm), rtol=1e-10, atol=1e-12)
    out.sum().backward()
    assert np.isfinite(qt.grad.numpy()).all()
    assert_close(qt.grad[0, 1], np.zeros(2))
    fm = np.zeros((3, 4))
    fm[2] = -np.inf
    out = A.scaled_dot_product_attention(T(q), T(k), T(v), attn_mask=T(fm))
    assert_close(out, ref_sdpa(q, k, v, fm), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("hq,hk", [(4, 2), (4, 1), (3, 3)])
def test_sdpa_gqa(hq, hk):
    q, k, v = randn(2, hq, 3, 4), randn(2, hk, 5, 4), randn(2, hk, 5, 2)
    out = A.scaled_dot_product_attention(T(q), T(k), T(v), enable_gqa=True)
    assert_close(out, ref_sdpa(q, k, v, gqa=True), rtol=1e-10, atol=1e-12)


def test_sdpa_float32_and_half_dtypes():
    q, k, v = (randn(2, 3, 4).astype(np.float32) for _ in range(3))
    out = A.scaled_dot_product_attention(T(q), T(k), T(v))
    assert out.dtype is disttorch.float32
    assert_close(out, ref_sdpa(q.astype(np.float64), k, v), rtol=1e-5, atol=1e-6)
    for dt in (disttorch.float16, disttorch.bfloat16):
        qh, kh, vh = (T(a).to(dt) for a in (q, k, v))
        out = A.scaled_dot_product_attention(qh, kh, vh)
        assert out.dtype is dt
        ref = ref_sdpa(*(t.float().numpy().astype(np.float64) for t in (qh, kh, vh)))
        assert_close(out.float(), ref, rtol=3e-2, atol=3e-2)


def test_sdpa_dropout_uses_global_generator():
    q, k, v = (T(randn(2, 4, 3)) for _ in range(3))
    disttorch.manual_seed(5)
    a = A.scaled_dot_product_attention(q, k, v, dropout_p=0.5)
    disttorch.manual_seed(5)
    b = A.scaled_dot_product_attention(q, k, v, dropout_p=0.5)
    assert_close(a, b.numpy())
    assert not np.allclose(a.numpy(), A.scaled_dot_product_attention(q, k, v).numpy())
    # with p -> weights scaled by 1/(1-p) where kept: the expectation matches; here only a sanity bound
    assert np.isfinite(a.numpy()).all()


def test_sdpa_errors():
    q = disttorch.randn(2, 3, 4)
    with pytest.raises(RuntimeError, match="same dtype"):
        A.scaled_dot_product_attention(q, q.double(), q)
    with pytest.raises(RuntimeError, match="is_causal"):
        A.scaled_dot_product_attention(q, q, q, attn_mask=disttorch.ones(3, 3, dtype=disttorch.bool), is_causal=True)
    with pytest.raises(RuntimeError, match="attn_mask dtype"):
        A.scaled_dot_product_attention(q, q, q, attn_mask=disttorch.ones(3, 3, dtype=disttorch.int64))
    with pytest.raises(RuntimeError, match="must divide"):
        A.scaled_dot_product_attention(disttorch.randn(1, 4, 2, 2), disttorch.randn(1, 3, 2, 2),
                                       disttorch.randn(1, 3, 2, 2), enable_gqa=True)
    with pytest.raises(RuntimeError, match="last dimension"):
        A.scaled_dot_product_attention(q, disttorch.randn(2, 3, 5), disttorch.randn(2, 3, 5))


def test_sdpa_grad():
    q, k, v = randn(1, 2, 3, 2), randn(1, 1, 4, 2), randn(1, 1, 4, 2)
    bm = T(rng.random((3, 4)) > 0.3)
    check_grad(lambda q, k, v: A.scaled_dot_product_attention(q, k, v, enable_gqa=True), q, k, v, gradgrad=True)
    check_grad(lambda q, k, v: A.scaled_dot_product_attention(q, k, v, attn_mask=bm, enable_gqa=True), q, k, v)
    check_grad(lambda q, k, v: A.scaled_dot_product_attention(q, k, v, is_causal=True, scale=0.4),
               randn(2, 3, 2), randn(2, 3, 2), randn(2, 3, 2))
    check_grad(lambda q, m: A.scaled_dot_product_attention(q, q, q, attn_mask=m), randn(3, 2), randn(3, 3))


# ---- multi_head_attention_forward -----------------------------------------------------------------------
def ref_mha(q, k, v, H, w_in, b_in, w_out, b_out, kpm=None, attn_mask=None, average=True, bias_kv=None,
            zero_attn=False):
    """The documented computation, sequence-first (L, N, E); bool masks are True where *not* allowed."""
    L, n, E = q.shape
    hd = E // H
    bq, bk, bv = np.split(b_in, 3) if b_in is not None else (0, 0, 0)
    wq, wk, wv = np.split(w_in, 3)
    Q, K, V = q @ wq.T + bq, k @ wk.T + bk, v @ wv.T + bv
    if bias_kv is not None:
        K = np.concatenate([K, np.broadcast_to(bias_kv[0], (1, n, E))])
        V = np.concatenate([V, np.broadcast_to(bias_kv[1], (1, n, E))])

    def heads(x):  # (S, n, E) -> (n, H, S, hd)
        return x.reshape(x.shape[0], n, H, hd).transpose(1, 2, 0, 3)

    Q, K, V = heads(Q), heads(K), heads(V)
    if zero_attn:
        K = np.concatenate([K, np.zeros((n, H, 1, hd))], 2)
        V = np.concatenate([V, np.zeros((n, H, 1, hd))], 2)
    s = Q @ K.swapaxes(-1, -2) / np.sqrt(hd)
    S2 = s.shape[-1]
    bias = np.zeros((n, H, L, S2))
    if attn_mask is not None:
        am = np.where(attn_mask, -np.inf, 0.0) if attn_mask.dtype == bool else attn_mask
        am = am if am.ndim == 2 else am.reshape(n, H, L, -1)
        bias = bias + np.pad(am, [(0, 0)] * (am.ndim - 1) + [(0, S2 - am.shape[-1])])
    if kpm is not None:
        km = np.where(kpm, -np.inf, 0.0) if kpm.dtype == bool else kpm
        bias = bias + np.pad(km, [(0, 0), (0, S2 - km.shape[-1])])[:, None, None, :]
    s = s + bias
    e = np.exp(s - s.max(-1, keepdims=True))
    p = e / e.sum(-1, keepdims=True)
    o = (p @ V).transpose(2, 0, 1, 3).reshape(L, n, E)
    out = o @ w_out.T + b_out
    return out, (p.mean(1) if average else p)


def _weights(E, bias=True):
    return randn(3 * E, E) * 0.5, (randn(3 * E) if bias else None), randn(E, E) * 0.5, randn(E)


def _call(q, k, v, H, w_in, b_in, w_out, b_out, **kw):
    return A.multi_head_attention_forward(T(q), T(k), T(v), q.shape[-1], H, T(w_in),
                                          None if b_in is None else T(b_in), None, None, False, 0.0, T(w_out),
                                          T(b_out), **kw)


@pytest.mark.parametrize("average", [True, False])
@pytest.mark.parametrize("self_attn", [True, False])
def test_mha_need_weights(average, self_attn):
    L, S, n, E, H = 3, 4, 2, 6, 2
    q = randn(L, n, E)
    k = q if self_attn else randn(S, n, E)
    v = q if self_attn else randn(S, n, E)
    w_in, b_in, w_out, b_out = _weights(E)
    out, w = _call(q, k, v, H, w_in, b_in, w_out, b_out, average_attn_weights=average)
    ro, rw = ref_mha(q, k, v, H, w_in, b_in, w_out, b_out, average=average)
    assert_close(out, ro, rtol=1e-10, atol=1e-12)
    assert_close(w, rw, rtol=1e-10, atol=1e-12)
    out2, w2 = _call(q, k, v, H, w_in, b_in, w_out, b_out, need_weights=False)
    assert w2 is None
    assert_close(out2, ro, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("need_weights", [True, False])
@pytest.mark.parametrize("mask_kind", ["bool2d", "float2d", "float3d", "bool3d"])
def test_mha_masks(need_weights, mask_kind):
    L, S, n, E, H = 3, 4, 2, 4, 2
    q, k, v = randn(L, n, E), randn(S, n, E), randn(S, n, E)
    w_in, b_in, w_out, b_out = _weights(E, bias=False)
    shape = (L, S) if mask_kind.endswith("2d") else (n * H, L, S)
    am = rng.random(shape) > 0.6 if mask_kind.startswith("bool") else randn(*shape)
    kpm = np.zeros((n, S), bool)
    kpm[0, 1] = kpm[1, 3] = True
    if am.dtype == bool:
        am[..., 0] = False
    out, w = _call(q, k, v, H, w_in, None, w_out, b_out, key_padding_mask=T(kpm), attn_mask=T(am),
                   need_weights=need_weights)
    ro, rw = ref_mha(q, k, v, H, w_in, None, w_out, b_out, kpm=kpm, attn_mask=am)
    assert_close(out, ro, rtol=1e-10, atol=1e-12)
    if need_weights:
        assert_close(w, rw, rtol=1e-10, atol=1e-12)
        assert_close(w[0, :, 1], np.zeros(L))


def test_mha_unbatched_bias_kv_zero_attn_and_causal():
    L, E, H = 3, 4, 2
    q = randn(L, E)
    w_in, b_in, w_out, b_out = _weights(E)
    bk, bv = randn(1, 1, E), randn(1, 1, E)
    out, w = A.multi_head_attention_forward(T(q), T(q), T(q), E, H, T(w_in), T(b_in), T(bk), T(bv), True, 0.0,
                                            T(w_out), T(b_out), average_attn_weights=False)
    ro, rw = ref_mha(q[:, None], q[:, None], q[:, None], H, w_in, b_in, w_out, b_out, average=False,
                     bias_kv=(bk[0], bv[0]), zero_attn=True)
    assert out.shape == (L, E) and w.shape == (H, L, L + 2)
    assert_close(out, ro[:, 0], rtol=1e-10, atol=1e-12)
    assert_close(w, rw[0], rtol=1e-10, atol=1e-12)
    causal = np.triu(np.ones((L, L), bool), 1)
    out_c, none = _call(q, q, q, H, w_in, b_in, w_out, b_out, attn_mask=T(causal), is_causal=True,
                        need_weights=False)
    assert none is None
    assert_close(out_c, ref_mha(q[:, None], q[:, None], q[:, None], H, w_in, b_in, w_out, b_out,
                                attn_mask=causal)[0][:, 0], rtol=1e-10, atol=1e-12)


def test_mha_separate_proj_weights_and_training_dropout():
    L, S, n, E, H = 2, 3, 1, 4, 1
    q, k, v = randn(L, n, E), randn(S, n, E), randn(S, n, E)
    w_in, b_in, w_out, b_out = _weights(E)
    wq, wk, wv = np.split(w_in, 3)
    out, _ = A.multi_head_attention_forward(T(q), T(k), T(v), E, H, None, T(b_in), None, None, False, 0.9,
                                            T(w_out), T(b_out), training=False, use_separate_proj_weight=True,
                                            q_proj_weight=T(wq), k_proj_weight=T(wk), v_proj_weight=T(wv))
    assert_close(out, ref_mha(q, k, v, H, w_in, b_in, w_out, b_out)[0], rtol=1e-10, atol=1e-12)


def test_mha_errors():
    q = disttorch.randn(3, 2, 4)
    w_in, w_out = disttorch.randn(12, 4), disttorch.randn(4, 4)
    with pytest.raises(AssertionError, match="embedding dimension of 6"):
        A.multi_head_attention_forward(q, q, q, 6, 2, w_in, None, None, None, False, 0.0, w_out, None)
    with pytest.raises(AssertionError, match="not divisible"):
        A.multi_head_attention_forward(q, q, q, 4, 3, w_in, None, None, None, False, 0.0, w_out, None)
    with pytest.raises(AssertionError, match="4-D query"):
        A.multi_head_attention_forward(q[None], q[None], q[None], 4, 2, w_in, None, None, None, False, 0.0, w_out,
                                       None)
    with pytest.raises(RuntimeError, match="2D attn_mask"):
        A.multi_head_attention_forward(q, q, q, 4, 2, w_in, None, None, None, False, 0.0, w_out, None,
                                       attn_mask=disttorch.zeros(2, 2))
    with pytest.raises(RuntimeError, match="Need attn_mask"):
        A.multi_head_attention_forward(q, q, q, 4, 2, w_in, None, None, None, False, 0.0, w_out, None,
                                       is_causal=True)


def test_mha_grad():
    E, H = 4, 2
    q = randn(2, 1, E)
    w_in, b_in, w_out, b_out = (a * 0.5 for a in _weights(E))
    kpm = T(np.array([[False, True]]))

    def fn(q, w_in, b_in, w_out):
        return A.multi_head_attention_forward(q, q, q, E, H, w_in, b_in, None, None, False, 0.0, w_out, T(b_out),
                                              key_padding_mask=kpm)

    check_grad(fn, q, w_in, b_in, w_out)


def test_exports():
    assert A.__all__ == []
    assert set(A.FUNCTIONAL) == {"scaled_dot_product_attention", "multi_head_attention_forward"}


# ---- fused self-attention path (need_weights=False, no masks, no dropout) -------------------------------
@pytest.mark.parametrize("L,n,E,H", [(3, 2, 4, 2), (5, 1, 6, 3), (1, 3, 2, 1)])
def test_mha_fused_self_attention_matches_reference(L, n, E, H):
    q = randn(L, n, E)
    w_in, b_in, w_out, b_out = _weights(E)
    out, w = _call(q, q, q, H, w_in, b_in, w_out, b_out, need_weights=False)
    assert w is None
    assert_close(out, ref_mha(q, q, q, H, w_in, b_in, w_out, b_out)[0], rtol=1e-10, atol=1e-12)
    out32, _ = A.multi_head_attention_forward(*(T(a, dtype=disttorch.float32) for a in (q, q)), T(q).float(), E, H,
                                              T(w_in).float(), T(b_in).float(), None, None, False, 0.0,
                                              T(w_out).float(), T(b_out).float(), need_weights=False)
    assert out32.dtype == disttorch.float32
    assert_close(out32, ref_mha(q, q, q, H, w_in, b_in, w_out, b_out)[0], rtol=1e-4, atol=1e-5)


def test_mha_fused_self_attention_grad_and_gradgrad():
    E, H = 4, 2
    w_in, b_in, w_out, b_out = (a * 0.5 for a in _weights(E))

    def fn(q, w_in, b_in):
        return A.multi_head_attention_forward(q, q, q, E, H, w_in, b_in, None, None, False, 0.0, T(w_out),
                                              T(b_out), need_weights=False)[0]

    check_grad(fn, randn(3, 2, E), w_in, b_in, gradgrad=True)
    q = T(randn(3, 2, E), requires_grad=True)
    a = fn(q, T(w_in), T(b_in))
    b = A.multi_head_attention_forward(q, q, q, E, H, T(w_in), T(b_in), None, None, False, 0.0, T(w_out), T(b_out),
                                       need_weights=True)[0]
    names, todo = set(), [a.grad_fn]
    while todo:
        fn = todo.pop()
        names.add(fn.name())
        todo.extend(f for f, _ in fn.next_functions if f is not None)
    assert "SelfAttentionBackward0" in names
    g = T(randn(3, 2, E))
    ga, = disttorch.autograd.grad(a, q, g)
    gb, = disttorch.autograd.grad(b, q, g)
    assert_close(ga, gb.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("batch_first", [False, True])
def test_mha_fused_float32_layouts(batch_first):
    L, n, E, H = 6, 3, 8, 2
    x = randn(L, n, E)
    w_in, b_in, w_out, b_out = (a * 0.3 for a in _weights(E))
    if batch_first:  # the MHA module's batch_first input: a transposed view of (n, L, E)
        leaf = T(x.transpose(1, 0, 2).copy(), dtype=disttorch.float32, requires_grad=True)
        q = leaf.transpose(0, 1)
    else:
        leaf = q = T(x, dtype=disttorch.float32, requires_grad=True)
    out = A.multi_head_attention_forward(q, q, q, E, H, *(T(a, dtype=disttorch.float32) for a in (w_in, b_in)),
                                         None, None, False, 0.0, T(w_out, dtype=disttorch.float32),
                                         T(b_out, dtype=disttorch.float32), need_weights=False)[0]
    assert out.shape == (L, n, E) and out.dtype == disttorch.float32
    assert_close(out, ref_mha(x, x, x, H, w_in, b_in, w_out, b_out)[0], rtol=1e-4, atol=1e-5)
    out.sum().backward()
    assert leaf.grad.shape == leaf.shape and leaf.grad.dtype == disttorch.float32


def test_mha_fused_batch_first_grad_and_gradgrad():
    E, H = 4, 2
    w_in, b_in, w_out, b_out = (a * 0.5 for a in _weights(E))

    def fn(xb, w_in, b_in):
        q = xb.transpose(0, 1)
        return A.multi_head_attention_forward(q, q, q, E, H, w_in, b_in, None, None, False, 0.0, T(w_out),
                                              T(b_out), need_weights=False)[0]

    check_grad(fn, randn(2, 3, E), w_in, b_in, gradgrad=True)
    xb = randn(2, 3, E)
    assert_close(fn(T(xb), T(w_in), T(b_in)), ref_mha(xb.transpose(1, 0, 2), *(xb.transpose(1, 0, 2),) * 2, H, w_in,
                                                       b_in, w_out, b_out)[0], rtol=1e-10, atol=1e-12)


@pytest.fixture
def split_attention(monkeypatch):
    """Two pool threads and no size floor: the fused self-attention splits every batch over the pool."""
    monkeypatch.setattr(A, "_SPLIT_MACS", 0)
    monkeypatch.setattr(A.P, "ENABLED", True)
    before = disttorch.get_num_threads()
    disttorch.set_num_threads(2)
    yield
    disttorch.set_num_threads(before)


@pytest.mark.parametrize("bf", [0, 1])
@pytest.mark.parametrize("n", [2, 5])
def test_self_attention_split_over_the_pool_is_bitwise_whole(split_attention, bf, n):
    L, E, H = 7, 8, 2
    qkv = randn(*((n, L, 3 * E) if bf else (L, n, 3 * E))).astype(np.float32)
    g = randn(L * n, E).astype(np.float32)
    results = []
    for threads in (1, 2):
        disttorch.set_num_threads(threads)
        a = T(qkv, requires_grad=True)
        out = A._self_attention(a, H, bf)
        pieces = out.grad_fn.saved_tensors[1][1]
        assert len(pieces) == min(threads, n), pieces
        out.backward(T(g))
        results.append((out.detach().numpy().copy(), a.grad.numpy().copy()))
    assert np.array_equal(results[0][0], results[1][0])
    assert np.array_equal(results[0][1], results[1][1])


def test_self_attention_split_gradcheck(split_attention):
    assert A._sa_pieces(np, np.empty((3, 4, 12)), 0) == [(0, 2), (2, 4)]  # (L=3, n=4): the batch is axis 1
    check_grad(lambda a: A._self_attention(a, 2, 0), randn(3, 4, 12), gradgrad=True)
    check_grad(lambda a: A._self_attention(a, 2, 1), randn(4, 3, 12), gradgrad=True)
