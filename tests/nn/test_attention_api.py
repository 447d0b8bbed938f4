"""nn.attention: SDPBackend, sdpa_kernel's nesting and CPU rules, and the causal biases (against NumPy)."""
import warnings

import numpy as np
import pytest

import disttorch as torch
import disttorch.nn.functional as F
from disttorch.nn.attention import SDPBackend, _cur_sdpa_kernel_backends, sdpa_kernel
from disttorch.nn.attention.bias import CausalBias, CausalVariant, causal_lower_right, causal_upper_left
from helpers import assert_close

RNG = np.random.default_rng(5)
Q, K, V = RNG.standard_normal((2, 3, 4, 8)), RNG.standard_normal((2, 3, 6, 8)), RNG.standard_normal((2, 3, 6, 8))


def t(a):
    return torch.tensor(np.asarray(a, dtype=np.float64))


def np_attention(q, k, v, allowed):
    s = q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1])
    s = np.where(allowed, s, -np.inf)
    dead = ~allowed.any(-1, keepdims=True)
    s = np.where(dead, 0.0, s)
    p = np.exp(s - s.max(-1, keepdims=True))
    p = p / p.sum(-1, keepdims=True)
    return np.where(dead, 0.0, p @ v)


def test_enum_values_are_pytorchs():
    assert [(b.name, int(b)) for b in SDPBackend] == [("ERROR", -1), ("MATH", 0), ("FLASH_ATTENTION", 1),
                                                       ("EFFICIENT_ATTENTION", 2), ("CUDNN_ATTENTION", 3),
                                                       ("OVERRIDEABLE", 4)]
    assert str(SDPBackend.MATH) == "SDPBackend.MATH"


def test_nesting_restores_the_previous_backends_and_priority():
    everything = _cur_sdpa_kernel_backends()
    assert set(everything) == {SDPBackend.MATH, SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION,
                               SDPBackend.CUDNN_ATTENTION, SDPBackend.OVERRIDEABLE}
    with sdpa_kernel(SDPBackend.MATH) as ctx:
        assert ctx == {}
        with sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.FLASH_ATTENTION]):
            assert _cur_sdpa_kernel_backends() == [SDPBackend.FLASH_ATTENTION]
        assert _cur_sdpa_kernel_backends() == [SDPBackend.MATH]
    assert _cur_sdpa_kernel_backends() == everything
    with sdpa_kernel([SDPBackend.MATH, SDPBackend.FLASH_ATTENTION], set_priority=True):
        assert _cur_sdpa_kernel_backends(with_priority=True) == [SDPBackend.MATH, SDPBackend.FLASH_ATTENTION]
    assert [int(b) for b in _cur_sdpa_kernel_backends(with_priority=True)] == [1, 2, 0, 3, 4]


def test_argument_validation():
    with pytest.raises(AssertionError, match="got tuple"):
        with sdpa_kernel((SDPBackend.MATH,)):
            pass
    with pytest.raises(AssertionError, match="got str"):
        with sdpa_kernel("math"):
            pass
    with pytest.raises(AssertionError, match="list containing 'math'"):
        with sdpa_kernel([SDPBackend.MATH, "math"]):
            pass
    assert len(_cur_sdpa_kernel_backends()) == 5  # a failed entry changes nothing


def test_results_equal_reference_under_every_cpu_backend():
    allowed = np.tril(np.ones((4, 6), bool))
    expected = np_attention(Q, K, V, allowed)
    for backends in (SDPBackend.MATH, SDPBackend.FLASH_ATTENTION, [SDPBackend.MATH, SDPBackend.EFFICIENT_ATTENTION]):
        with sdpa_kernel(backends):
            assert_close(F.scaled_dot_product_attention(t(Q), t(K), t(V), is_causal=True), expected, rtol=1e-10)


def _no_kernel(fn, reason: str) -> None:
    """``fn`` raises PyTorch's "No available kernel" after warning why flash attention was not used."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(RuntimeError, match="No available kernel.  Aborting execution."):
            fn()
    messages = [str(w.message) for w in caught]
    assert messages[0] == "Flash attention kernel not used because:" and reason in messages[1], messages


def test_cpu_rules_when_math_is_disabled():
    q, k, v = t(Q), t(K), t(V)
    with sdpa_kernel(SDPBackend.EFFICIENT_ATTENTION):
        with pytest.raises(RuntimeError, match="No viable backend for scaled_dot_product_attention was found"):
            F.scaled_dot_product_attention(q, k, v)
    with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
        _no_kernel(lambda: F.scaled_dot_product_attention(q, k, v, dropout_p=0.5), "do not support non-zero dropout")
        _no_kernel(lambda: F.scaled_dot_product_attention(q[0], k[0], v[0]), "to be 4 dimensional")
        _no_kernel(lambda: F.scaled_dot_product_attention(q, k[:1], v[:1]), "same batch_size")
        _no_kernel(lambda: F.scaled_dot_product_attention(q, k[:, :1], v[:, :1]), "same num_heads")
        _no_kernel(lambda: F.scaled_dot_product_attention(q, k, v[..., :5]), "same last dimension")
        out = F.scaled_dot_product_attention(q, k[:, :1], v[:, :1], enable_gqa=True)  # flash takes GQA
        assert tuple(out.shape) == (2, 3, 4, 8)
    F.scaled_dot_product_attention(q, k, v, dropout_p=0.5)  # restored: math takes everything


@pytest.mark.parametrize("lq,lk", [(4, 6), (6, 6), (6, 4)])
def test_causal_biases_against_numpy(lq, lk):
    q, k, v = Q[:, :, :1].repeat(lq, 2), K[:, :, :lk], V[:, :, :lk]
    q = q + RNG.standard_normal(q.shape)
    ul = causal_upper_left(lq, lk)
    assert isinstance(ul, CausalBias) and isinstance(ul, torch.Tensor) and ul.variant == CausalVariant.UPPER_LEFT
    assert (ul.seq_len_q, ul.seq_len_kv) == (lq, lk)
    assert_close(ul._materialize(), np.tril(np.ones((lq, lk), bool)))
    assert_close(F.scaled_dot_product_attention(t(q), t(k), t(v), attn_mask=ul),
                 np_attention(q, k, v, np.tril(np.ones((lq, lk), bool))), rtol=1e-10)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # lq > lk warns that rows are fully masked
        lr = causal_lower_right(lq, lk)
    lower = np.tril(np.ones((lq, lk), bool), lk - lq)
    assert_close(lr._materialize(), lower)
    assert_close(F.scaled_dot_product_attention(t(q), t(k), t(v), attn_mask=lr), np_attention(q, k, v, lower),
                 rtol=1e-10)


def test_causal_bias_errors_and_warning():
    with pytest.warns(UserWarning, match="Lower right causal bias will produce NaNs"):
        causal_lower_right(5, 3)
    with pytest.raises(AssertionError, match="causal_lower_right only supports 2D tensors"):
        causal_lower_right(2, 3, 4)
    with pytest.raises(ValueError, match="CausalBias should not be used with causal=True"):
        F.scaled_dot_product_attention(t(Q), t(K), t(V), attn_mask=causal_upper_left(4, 6), is_causal=True)
    with pytest.raises(AssertionError, match="variant must be a CausalVariant"):
        CausalBias(1, 2, 2)


# ---- flex_attention ----------------------------------------------------------------------------------------
def test_flex_attention_score_mod_and_block_mask_against_numpy():
    from disttorch.nn.attention.flex_attention import and_masks, create_block_mask, flex_attention

    q, k, v = Q[:1, :2], K[:1, :2], V[:1, :2]  # (1, 2, 4, 8) x (1, 2, 6, 8)
    table = np.array([0.3, -0.7])

    def rel_bias(score, b, h, q_idx, kv_idx):
        return score + (q_idx - kv_idx) * 0.1 + t(table)[h]

    def causal(b, h, q_idx, kv_idx):
        return q_idx >= kv_idx

    window = and_masks(causal, lambda b, h, q_idx, kv_idx: q_idx - kv_idx < 2)
    bm = create_block_mask(window, None, None, 4, 6, device="cpu", BLOCK_SIZE=2)
    out, lse = flex_attention(t(q), t(k), t(v), score_mod=rel_bias, block_mask=bm, return_lse=True)
    qi, ki = np.arange(4)[:, None], np.arange(6)[None, :]
    s = q @ np.swapaxes(k, -1, -2) / np.sqrt(8) + (qi - ki) * 0.1 + table[None, :, None, None]
    allowed = (qi >= ki) & (qi - ki < 2)
    s = np.where(allowed, s, -np.inf)
    p = np.exp(s - s.max(-1, keepdims=True))
    assert_close(out, (p / p.sum(-1, keepdims=True)) @ v, rtol=1e-10)
    assert_close(lse, np.log(np.exp(s).sum(-1)), rtol=1e-10)
    blocks = bm.to_dense().numpy()[0, 0]  # 2x2 blocks of the 4x6 mask: any kept pair
    np.testing.assert_array_equal(blocks, [[1, 0, 0], [1, 1, 0]])
    assert bm.sparsity() == pytest.approx(100 * (1 - 3 * 4 / 24))


def test_flex_attention_fully_masked_rows_gqa_errors_and_gradients():
    from disttorch.autograd import gradcheck
    from disttorch.nn.attention.flex_attention import create_block_mask, flex_attention

    q, k, v = t(Q[:1, :2]), t(K[:1, :2]), t(V[:1, :2])
    nothing = create_block_mask(lambda b, h, qi, ki: qi < 0, None, None, 4, 6)
    out, lse = flex_attention(q, k, v, block_mask=nothing, return_lse=True)
    assert out.abs().max().item() == 0.0 and bool(lse.isneginf().all())
    q4 = t(RNG.standard_normal((1, 4, 4, 8)))
    grouped = flex_attention(q4, k, v, enable_gqa=True)
    assert_close(grouped[:, 2:], flex_attention(q4[:, 2:], k[:, 1:].expand(1, 2, 6, 8), v[:, 1:].expand(1, 2, 6, 8)),
                 rtol=1e-12)
    with pytest.raises(ValueError, match="Try setting enable_gqa=True for GQA"):
        flex_attention(q4, k, v)
    with pytest.raises(ValueError, match="block_mask was created for block_mask.shape"):
        flex_attention(q, k, v, block_mask=create_block_mask(lambda b, h, qi, ki: qi >= ki, None, None, 8, 8))
    table = torch.tensor([0.2, -0.1], dtype=torch.float64, requires_grad=True)
    qg = t(Q[:1, :2, :3, :4]).requires_grad_()
    kg, vg = t(K[:1, :2, :5, :4]), t(V[:1, :2, :5, :4])
    assert gradcheck(lambda qq, tb: flex_attention(qq, kg, vg, score_mod=lambda s, b, h, i, j: s + tb[h] * (i - j)),
                     (qg, table))
