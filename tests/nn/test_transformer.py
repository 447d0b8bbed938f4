"""Transformer layers (disttorch/nn/modules/transformer.py) against a NumPy reference built from the modules'
own weights; state_dict names against PyTorch's literal names."""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

import disttorch as torch
import disttorch.nn.functional as F
from disttorch.nn.modules.activation import GELU
from disttorch.nn.modules.normalization import LayerNorm
from disttorch.nn.modules.transformer import (Transformer, TransformerDecoder, TransformerDecoderLayer,
                                              TransformerEncoder, TransformerEncoderLayer)
from helpers import assert_close

_rng = np.random.default_rng(11)
_erf = np.vectorize(math.erf)
ACTS = {"relu": lambda x: np.maximum(x, 0), "gelu": lambda x: 0.5 * x * (1 + _erf(x / math.sqrt(2))),
        "tanh": np.tanh}


def _np(t):
    return None if t is None else t.detach().numpy().astype(np.float64)


def _t(a, requires_grad=False):
    return torch.tensor(a, requires_grad=requires_grad)


def _randomize(m):
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.tensor(_rng.uniform(-0.5, 0.5, tuple(p.shape))))
    return m


# ---- NumPy reference (sequence-first (L, N, E)) ----------------------------------------------------------
def _ln(x, norm):
    mu = x.mean(-1, keepdims=True)
    y = (x - mu) / np.sqrt(((x - mu) ** 2).mean(-1, keepdims=True) + norm.eps)
    return y * _np(norm.weight) + (0.0 if norm.bias is None else _np(norm.bias))


def _lin(x, lin):
    return x @ _np(lin.weight).T + (0.0 if lin.bias is None else _np(lin.bias))


def _mask_bias(mask):
    if mask is None:
        return 0.0
    return np.where(mask, -np.inf, 0.0) if mask.dtype == bool else mask


def _attn(mha, q, kv, attn_mask=None, key_padding_mask=None):
    E, H = mha.embed_dim, mha.num_heads
    hd = E // H
    wq, wk, wv = np.split(_np(mha.in_proj_weight), 3)
    bq, bk, bv = np.split(_np(mha.in_proj_bias), 3) if mha.in_proj_bias is not None else (0.0, 0.0, 0.0)
    heads = lambda X: X.reshape(X.shape[0], X.shape[1], H, hd).transpose(1, 2, 0, 3)  # noqa: E731 - (N, H, len, hd)
    s = heads(q @ wq.T + bq) @ heads(kv @ wk.T + bk).transpose(0, 1, 3, 2) / math.sqrt(hd)
    s = s + _mask_bias(attn_mask)
    if key_padding_mask is not None:
        s = s + _mask_bias(key_padding_mask)[:, None, None, :]
    e = np.exp(s - s.max(-1, keepdims=True))
    o = (e / e.sum(-1, keepdims=True)) @ heads(kv @ wv.T + bv)
    return _lin(o.transpose(2, 0, 1, 3).reshape(q.shape), mha.out_proj)


def ref_encoder_layer(layer, x, act, src_mask=None, kpm=None):
    sa = lambda y: _attn(layer.self_attn, y, y, src_mask, kpm)  # noqa: E731
    ff = lambda y: _lin(ACTS[act](_lin(y, layer.linear1)), layer.linear2)  # noqa: E731
    if layer.norm_first:
        x = x + sa(_ln(x, layer.norm1))
        return x + ff(_ln(x, layer.norm2))
    x = _ln(x + sa(x), layer.norm1)
    return _ln(x + ff(x), layer.norm2)


def ref_decoder_layer(layer, x, mem, act, tgt_mask=None, memory_mask=None, tgt_kpm=None, mem_kpm=None):
    sa = lambda y: _attn(layer.self_attn, y, y, tgt_mask, tgt_kpm)  # noqa: E731
    ca = lambda y: _attn(layer.multihead_attn, y, mem, memory_mask, mem_kpm)  # noqa: E731
    ff = lambda y: _lin(ACTS[act](_lin(y, layer.linear1)), layer.linear2)  # noqa: E731
    if layer.norm_first:
        x = x + sa(_ln(x, layer.norm1))
        x = x + ca(_ln(x, layer.norm2))
        return x + ff(_ln(x, layer.norm3))
    x = _ln(x + sa(x), layer.norm1)
    x = _ln(x + ca(x), layer.norm2)
    return _ln(x + ff(x), layer.norm3)


def _causal(n):
    return np.triu(np.full((n, n), -np.inf), 1)


def _kpm(N, S):
    m = _rng.random((N, S)) < 0.3
    m[:, 0] = False
    return m


def _bf(a, batch_first):
    return a.transpose(1, 0, 2).copy() if batch_first else a


# ---- layers ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("masks", [None, "bool", "float"])
def test_encoder_layer_matches_numpy(norm_first, activation, batch_first, masks):
    E, H, FF, L, N = 8, 2, 12, 5, 3
    layer = _randomize(TransformerEncoderLayer(E, H, FF, dropout=0.0, activation=activation,
                                               batch_first=batch_first, norm_first=norm_first).double())
    x = _rng.standard_normal((L, N, E))
    kw, ref_kw = {}, {}
    if masks == "bool":
        ref_kw = {"src_mask": np.triu(np.ones((L, L), dtype=bool), 1), "kpm": _kpm(N, L)}
    elif masks == "float":
        ref_kw = {"src_mask": _rng.standard_normal((L, L)), "kpm": np.where(_kpm(N, L), -np.inf, 0.0)}
    if masks:
        kw = {"src_mask": _t(ref_kw["src_mask"]), "src_key_padding_mask": _t(ref_kw["kpm"])}
    out = layer(_t(_bf(x, batch_first)), **kw)
    assert out.dtype == torch.float64
    assert_close(out, _bf(ref_encoder_layer(layer, x, activation, **ref_kw), batch_first), rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("masks", [False, True])
def test_decoder_layer_matches_numpy(norm_first, activation, batch_first, masks):
    E, H, FF, T, S, N = 8, 4, 10, 4, 6, 2
    layer = _randomize(TransformerDecoderLayer(E, H, FF, dropout=0.0, activation=activation,
                                               batch_first=batch_first, norm_first=norm_first).double())
    tgt, mem = _rng.standard_normal((T, N, E)), _rng.standard_normal((S, N, E))
    ref_kw = {}
    if masks:
        mm = _rng.random((T, S)) < 0.3
        mm[:, 0] = False
        ref_kw = {"tgt_mask": np.triu(np.ones((T, T), dtype=bool), 1), "memory_mask": mm, "tgt_kpm": _kpm(N, T),
                  "mem_kpm": _kpm(N, S)}
    names = {"tgt_kpm": "tgt_key_padding_mask", "mem_kpm": "memory_key_padding_mask"}
    kw = {names.get(k, k): _t(v) for k, v in ref_kw.items()}
    out = layer(_t(_bf(tgt, batch_first)), _t(_bf(mem, batch_first)), **kw)
    ref = ref_decoder_layer(layer, tgt, mem, activation, **ref_kw)
    assert_close(out, _bf(ref, batch_first), rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("activation,name", [(F.gelu, "gelu"), (GELU(), "gelu"), (lambda x: x.tanh(), "tanh")])
def test_callable_activation(activation, name):
    layer = _randomize(TransformerEncoderLayer(4, 2, 6, dropout=0.0, activation=activation).double())
    x = _rng.standard_normal((3, 2, 4))
    assert_close(layer(_t(x)), ref_encoder_layer(layer, x, name), rtol=1e-9, atol=1e-11)
    assert layer.activation is activation


def test_activation_choice_attributes():
    assert TransformerEncoderLayer(4, 2).activation is F.relu
    assert TransformerEncoderLayer(4, 2).activation_relu_or_gelu == 1
    assert TransformerEncoderLayer(4, 2, activation="gelu").activation is F.gelu
    assert TransformerEncoderLayer(4, 2, activation=GELU()).activation_relu_or_gelu == 2
    assert TransformerEncoderLayer(4, 2, activation=F.silu).activation_relu_or_gelu == 0
    assert TransformerDecoderLayer(4, 2, activation="gelu").activation is F.gelu
    with pytest.raises(RuntimeError, match="activation should be relu/gelu, not tanh"):
        TransformerEncoderLayer(4, 2, activation="tanh")
    with pytest.raises(RuntimeError, match="activation should be relu/gelu, not tanh"):
        TransformerDecoderLayer(4, 2, activation="tanh")


def test_unbatched_input():
    layer = _randomize(TransformerEncoderLayer(4, 2, 6, dropout=0.0, batch_first=True).double())
    x = _rng.standard_normal((5, 4))
    kpm = np.array([False, False, True, False, True])
    out = layer(_t(x), src_key_padding_mask=_t(kpm))
    assert_close(out, ref_encoder_layer(layer, x[:, None], "relu", kpm=kpm[None])[:, 0], rtol=1e-9, atol=1e-11)
    dec = _randomize(TransformerDecoderLayer(4, 2, 6, dropout=0.0).double())
    tgt, mem = _rng.standard_normal((3, 4)), _rng.standard_normal((5, 4))
    assert_close(dec(_t(tgt), _t(mem)), ref_decoder_layer(dec, tgt[:, None], mem[:, None], "relu")[:, 0],
                 rtol=1e-9, atol=1e-11)


def test_dropout_train_vs_eval():
    layer = _randomize(TransformerEncoderLayer(8, 2, 16, dropout=0.5).double())
    x = _rng.standard_normal((5, 3, 8))
    torch.manual_seed(0)
    train_out = layer(_t(x)).detach().numpy()
    layer.eval()
    ref = ref_encoder_layer(layer, x, "relu")
    assert_close(layer(_t(x)), ref, rtol=1e-9, atol=1e-11)
    assert not np.allclose(train_out, ref)


def test_layer_is_causal_hint():
    layer = _randomize(TransformerEncoderLayer(4, 2, 6, dropout=0.0).double())
    x = _rng.standard_normal((5, 2, 4))
    out = layer(_t(x), src_mask=_t(_causal(5)), is_causal=True)
    assert_close(out, ref_encoder_layer(layer, x, "relu", src_mask=_causal(5)), rtol=1e-9, atol=1e-11)


def test_layer_repr_and_state_dict_names():
    layer = TransformerEncoderLayer(4, 2, 8)
    lines = repr(layer).splitlines()
    assert lines[0] == "TransformerEncoderLayer("
    assert [ln.split(")")[0].strip(" (") for ln in lines if ln.startswith("  (")] == [
        "self_attn", "linear1", "dropout", "linear2", "norm1", "norm2", "dropout1", "dropout2"]
    assert "  (linear1): Linear(in_features=4, out_features=8, bias=True)" in lines
    assert "  (dropout1): Dropout(p=0.1, inplace=False)" in lines
    assert list(layer.state_dict()) == [
        "self_attn.in_proj_weight", "self_attn.in_proj_bias", "self_attn.out_proj.weight", "self_attn.out_proj.bias",
        "linear1.weight", "linear1.bias", "linear2.weight", "linear2.bias", "norm1.weight", "norm1.bias",
        "norm2.weight", "norm2.bias"]
    assert list(TransformerEncoderLayer(4, 2, 8, bias=False).state_dict()) == [
        "self_attn.in_proj_weight", "self_attn.out_proj.weight", "linear1.weight", "linear2.weight", "norm1.weight",
        "norm2.weight"]
    assert list(TransformerDecoderLayer(4, 2, 8).state_dict()) == [
        "self_attn.in_proj_weight", "self_attn.in_proj_bias", "self_attn.out_proj.weight", "self_attn.out_proj.bias",
        "multihead_attn.in_proj_weight", "multihead_attn.in_proj_bias", "multihead_attn.out_proj.weight",
        "multihead_attn.out_proj.bias", "linear1.weight", "linear1.bias", "linear2.weight", "linear2.bias",
        "norm1.weight", "norm1.bias", "norm2.weight", "norm2.bias", "norm3.weight", "norm3.bias"]


def test_layer_constructor_kwargs():
    layer = TransformerEncoderLayer(6, 3, 10, dropout=0.2, layer_norm_eps=1e-3, batch_first=True, norm_first=True,
                                    dtype=torch.float64)
    assert all(p.dtype == torch.float64 for p in layer.parameters())
    assert layer.norm1.eps == 1e-3 and layer.norm2.eps == 1e-3 and layer.norm_first
    assert layer.self_attn.batch_first and layer.self_attn.dropout == 0.2 and layer.dropout.p == 0.2
    assert tuple(layer.linear1.weight.shape) == (10, 6)


# ---- stacks ---------------------------------------------------------------------------------------------
def test_encoder_copies_are_independent():
    layer = TransformerEncoderLayer(4, 2, 6, dropout=0.0)
    enc = TransformerEncoder(layer, 3, enable_nested_tensor=False)
    assert len(enc.layers) == 3 and enc.num_layers == 3 and type(enc.layers).__name__ == "ModuleList"
    assert all(lay is not layer for lay in enc.layers)
    ids = {id(p) for lay in enc.layers for p in lay.parameters()}
    assert len(ids) == 3 * len(list(layer.parameters()))
    for lay in enc.layers:  # each copy starts with the original's values
        for (n, p), q in zip(lay.named_parameters(), layer.parameters()):
            assert_close(p, q.detach().numpy())
    with torch.no_grad():
        enc.layers[0].linear1.weight.fill_(3.0)
    assert not np.any(enc.layers[1].linear1.weight.detach().numpy() == 3.0)
    assert not np.any(layer.linear1.weight.detach().numpy() == 3.0)
    assert enc.layers[1].activation is F.relu


@pytest.mark.parametrize("with_norm", [False, True])
def test_encoder_stack_matches_numpy(with_norm):
    norm = LayerNorm(4) if with_norm else None
    enc = TransformerEncoder(TransformerEncoderLayer(4, 2, 6, dropout=0.0), 2, norm, enable_nested_tensor=False)
    enc = _randomize(enc.double())
    x = _rng.standard_normal((5, 2, 4))
    kpm = np.where(_kpm(2, 5), -np.inf, 0.0)
    out = enc(_t(x), mask=_t(_causal(5)), src_key_padding_mask=_t(kpm))
    ref = x
    for lay in enc.layers:
        ref = ref_encoder_layer(lay, ref, "relu", src_mask=_causal(5), kpm=kpm)
    if with_norm:
        ref = _ln(ref, enc.norm)
    assert_close(out, ref, rtol=1e-9, atol=1e-11)


def test_decoder_stack_matches_numpy():
    dec = _randomize(TransformerDecoder(TransformerDecoderLayer(4, 2, 6, dropout=0.0), 2, LayerNorm(4)).double())
    tgt, mem = _rng.standard_normal((3, 2, 4)), _rng.standard_normal((5, 2, 4))
    out = dec(_t(tgt), _t(mem), tgt_mask=_t(_causal(3)))
    ref = tgt
    for lay in dec.layers:
        ref = ref_decoder_layer(lay, ref, mem, "relu", tgt_mask=_causal(3))
    assert_close(out, _ln(ref, dec.norm), rtol=1e-9, atol=1e-11)


def test_encoder_causal_detection_and_nested_tensor_flags():
    from disttorch.nn.modules.transformer import _detect_is_causal_mask
    m = _t(_causal(4))
    assert _detect_is_causal_mask(m, None, 4) is True
    assert _detect_is_causal_mask(m, False, 4) is False
    assert _detect_is_causal_mask(_t(np.zeros((4, 4))), None, 4) is False
    assert _detect_is_causal_mask(m, None, 5) is False
    assert _detect_is_causal_mask(None, None, 4) is False
    assert _detect_is_causal_mask(_t(np.triu(np.ones((4, 4), dtype=bool), 1)), None, 4) is True
    assert _detect_is_causal_mask(_t(np.triu(np.ones((4, 4), dtype=bool))), None, 4) is False
    with pytest.warns(UserWarning, match="enable_nested_tensor is True, but self.use_nested_tensor is False because "
                                         "encoder_layer.self_attn.batch_first was not True"):
        enc = TransformerEncoder(TransformerEncoderLayer(4, 2), 1)
    assert enc.enable_nested_tensor and not enc.use_nested_tensor and enc.mask_check
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        enc = TransformerEncoder(TransformerEncoderLayer(4, 2, batch_first=True), 1, mask_check=False)
        assert enc.use_nested_tensor and not enc.mask_check
        TransformerEncoder(TransformerEncoderLayer(4, 2), 1, enable_nested_tensor=False)


# ---- Transformer ----------------------------------------------------------------------------------------
def test_generate_square_subsequent_mask():
    m = Transformer.generate_square_subsequent_mask(4)
    assert m.dtype == torch.float32 and tuple(m.shape) == (4, 4)
    np.testing.assert_array_equal(m.numpy(), np.triu(np.full((4, 4), -np.inf, dtype=np.float32), 1))
    m64 = Transformer.generate_square_subsequent_mask(3, dtype=torch.float64)
    assert m64.dtype == torch.float64
    np.testing.assert_array_equal(m64.numpy(), [[0, -np.inf, -np.inf], [0, 0, -np.inf], [0, 0, 0]])
    assert tuple(Transformer.generate_square_subsequent_mask(0).shape) == (0, 0)


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.filterwarnings("ignore:enable_nested_tensor is True")
def test_transformer_end_to_end(batch_first):
    model = Transformer(8, 2, 2, 1, 12, dropout=0.0, batch_first=batch_first).double()
    S, T, N = 6, 4, 3
    src, tgt = _rng.standard_normal((S, N, 8)), _rng.standard_normal((T, N, 8))
    tmask = Transformer.generate_square_subsequent_mask(T, dtype=torch.float64)
    out = model(_t(_bf(src, batch_first)), _t(_bf(tgt, batch_first)), tgt_mask=tmask)
    assert tuple(out.shape) == ((N, T, 8) if batch_first else (T, N, 8))
    mem = src
    for lay in model.encoder.layers:
        mem = ref_encoder_layer(lay, mem, "relu")
    mem = _ln(mem, model.encoder.norm)
    ref = tgt
    for lay in model.decoder.layers:
        ref = ref_decoder_layer(lay, ref, mem, "relu", tgt_mask=tmask.numpy())
    assert_close(out, _bf(_ln(ref, model.decoder.norm), batch_first), rtol=1e-9, atol=1e-11)


@pytest.mark.filterwarnings("ignore:enable_nested_tensor is True")
def test_transformer_errors_and_attributes():
    model = Transformer(8, 2, 1, 1, 12)
    assert (model.d_model, model.nhead, model.batch_first) == (8, 2, False)
    with pytest.raises(RuntimeError, match="the batch number of src and tgt must be equal"):
        model(torch.randn(5, 2, 8), torch.randn(4, 3, 8))
    with pytest.raises(RuntimeError, match="the feature number of src and tgt must be equal to d_model"):
        model(torch.randn(5, 2, 8), torch.randn(4, 2, 6))


@pytest.mark.filterwarnings("ignore:enable_nested_tensor is True")
def test_transformer_state_dict_names_and_init():
    model = Transformer(4, 2, 1, 1, 8)
    assert list(model.state_dict()) == [
        "encoder.layers.0.self_attn.in_proj_weight", "encoder.layers.0.self_attn.in_proj_bias",
        "encoder.layers.0.self_attn.out_proj.weight", "encoder.layers.0.self_attn.out_proj.bias",
        "encoder.layers.0.linear1.weight", "encoder.layers.0.linear1.bias", "encoder.layers.0.linear2.weight",
        "encoder.layers.0.linear2.bias", "encoder.layers.0.norm1.weight", "encoder.layers.0.norm1.bias",
        "encoder.layers.0.norm2.weight", "encoder.layers.0.norm2.bias", "encoder.norm.weight", "encoder.norm.bias",
        "decoder.layers.0.self_attn.in_proj_weight", "decoder.layers.0.self_attn.in_proj_bias",
        "decoder.layers.0.self_attn.out_proj.weight", "decoder.layers.0.self_attn.out_proj.bias",
        "decoder.layers.0.multihead_attn.in_proj_weight", "decoder.layers.0.multihead_attn.in_proj_bias",
        "decoder.layers.0.multihead_attn.out_proj.weight", "decoder.layers.0.multihead_attn.out_proj.bias",
        "decoder.layers.0.linear1.weight", "decoder.layers.0.linear1.bias", "decoder.layers.0.linear2.weight",
        "decoder.layers.0.linear2.bias", "decoder.layers.0.norm1.weight", "decoder.layers.0.norm1.bias",
        "decoder.layers.0.norm2.weight", "decoder.layers.0.norm2.bias", "decoder.layers.0.norm3.weight",
        "decoder.layers.0.norm3.bias", "decoder.norm.weight", "decoder.norm.bias"]
    big = Transformer(64, 4, 1, 1, 256)
    for name, p in big.named_parameters():  # _reset_parameters: xavier_uniform_ on every matrix
        if p.dim() > 1:
            fan_out, fan_in = p.shape
            bound = math.sqrt(6.0 / (fan_in + fan_out))
            a = np.abs(p.detach().numpy())
            assert a.max() <= bound and a.max() > 0.8 * bound, name


def test_transformer_custom_encoder_decoder_and_round_trip():
    enc = TransformerEncoder(TransformerEncoderLayer(4, 2, 6, dropout=0.0), 1, enable_nested_tensor=False)
    dec = TransformerDecoder(TransformerDecoderLayer(4, 2, 6, dropout=0.0), 1)
    model = Transformer(4, 2, custom_encoder=enc, custom_decoder=dec).double()
    assert model.encoder is enc and model.decoder is dec
    fresh = Transformer(4, 2, custom_encoder=TransformerEncoder(TransformerEncoderLayer(4, 2, 6, dropout=0.0), 1,
                                                                enable_nested_tensor=False),
                        custom_decoder=TransformerDecoder(TransformerDecoderLayer(4, 2, 6, dropout=0.0), 1)).double()
    fresh.load_state_dict(model.state_dict())
    src, tgt = _t(_rng.standard_normal((5, 2, 4))), _t(_rng.standard_normal((3, 2, 4)))
    assert_close(fresh(src, tgt), model(src, tgt).detach().numpy(), rtol=1e-12)


# ---- gradients ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("norm_first", [False, True])
def test_encoder_layer_gradcheck(norm_first):
    layer = _randomize(TransformerEncoderLayer(4, 2, 3, dropout=0.0, activation="gelu", norm_first=norm_first,
                                               batch_first=True).double())
    x = _t(_rng.standard_normal((2, 3, 4)), True)
    kpm = _t(np.array([[False, False, True], [False, False, False]]))
    assert torch.autograd.gradcheck(lambda x, *ps: layer(x, src_key_padding_mask=kpm),
                                    (x,) + tuple(layer.parameters()))


def test_decoder_layer_gradcheck():
    layer = _randomize(TransformerDecoderLayer(4, 2, 3, dropout=0.0).double())
    tgt, mem = _t(_rng.standard_normal((2, 2, 4)), True), _t(_rng.standard_normal((3, 2, 4)), True)
    mask = _t(_causal(2))
    assert torch.autograd.gradcheck(lambda t, m, *ps: layer(t, m, tgt_mask=mask),
                                    (tgt, mem) + tuple(layer.parameters()))
