"""Fused ops carry two backward forms: an array-level fast path (``backward_arrays``, or the RNN node's
raw-array BPTT) and a Tensor-op path used under ``create_graph``. One test per fused op holds them together:
gradcheck (float64, against finite differences) through each path, and the two paths' gradients equal to 1e-12.
Each test also checks that the fast path really ran (a counting wrapper), so a path that silently falls back
to the other cannot pass for both.
"""
import importlib

import numpy as np
import pytest

import disttorch as torch
import disttorch.nn.functional as F
from disttorch.autograd import op as O

# by module path: the package re-exports functions under some of these names (norm, embedding)
_rnn, attention, conv, embedding, loss, norm = (importlib.import_module(f"disttorch.ops.{m}") for m in
                                                ("_rnn", "attention", "conv", "embedding", "loss", "norm"))

RNG = np.random.default_rng(12)


def _t(*shape, lo=-1.0, hi=1.0):
    return torch.tensor(RNG.uniform(lo, hi, shape), dtype=torch.float64, requires_grad=True)


@pytest.fixture
def count(monkeypatch):
    """``count(cls)`` wraps ``cls.backward_arrays`` and returns a dict counting its calls."""
    def wrap(cls):
        calls = {"arrays": 0}
        orig = cls.backward_arrays

        def counted(self, xp, *grads):
            calls["arrays"] += 1
            return orig(self, xp, *grads)

        monkeypatch.setattr(cls, "backward_arrays", counted)
        return calls
    return wrap


def _grads(f, inputs, create_graph: bool):
    out = f(*inputs)
    g = torch.tensor(RNG.standard_normal(tuple(out.shape)), dtype=torch.float64)
    return torch.autograd.grad(out, inputs, g, create_graph=create_graph, allow_unused=True)


def _both_paths(f, inputs, calls, cls, gradcheck: bool = True):
    """gradcheck through the fast path, then through the Tensor path; then both paths' gradients agree."""
    if gradcheck:
        assert torch.autograd.gradcheck(f, inputs)
        assert calls["arrays"] > 0, f"{cls.__name__}.backward_arrays did not run"
        n = calls["arrays"]
        with O.array_backward(False):
            assert torch.autograd.gradcheck(f, inputs)
        assert calls["arrays"] == n, f"{cls.__name__}: the fast path ran under array_backward(False)"
    n = calls["arrays"]
    state = RNG.bit_generator.state
    fast = _grads(f, inputs, create_graph=False)
    assert calls["arrays"] > n, f"{cls.__name__}.backward_arrays did not run"
    n = calls["arrays"]
    RNG.bit_generator.state = state  # the same output gradient for the create_graph (Tensor) path
    slow = _grads(f, inputs, create_graph=True)
    assert calls["arrays"] == n, "create_graph=True did not take the Tensor path"
    for a, b, x in zip(fast, slow, inputs):
        if a is None:
            assert b is None
            continue
        np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), rtol=1e-12, atol=1e-12,
                                   err_msg=f"{cls.__name__}: fast and Tensor backward differ for input {x.shape}")


@pytest.mark.parametrize("transposed", [False, True])
def test_convolution_both_paths(count, transposed):
    calls = count(conv.ConvolutionBackward0)
    if transposed:
        x, w, b = _t(1, 2, 3, 3), _t(2, 2, 2, 2), _t(4)

        def f(x, w, b):
            return F.conv_transpose2d(x, w, b, stride=2, padding=1, output_padding=1, groups=2)
    else:
        x, w, b = _t(2, 2, 4, 4), _t(3, 2, 2, 3), _t(3)

        def f(x, w, b):
            return F.conv2d(x, w, b, stride=(1, 2), padding=1, dilation=(2, 1))
    _both_paths(f, (x, w, b), calls, conv.ConvolutionBackward0)


@pytest.mark.parametrize("kind", ["batch", "layer", "group", "rms"])
def test_norm_both_paths(count, kind):
    cls = {"batch": norm.NativeBatchNormBackward0, "layer": norm.NativeLayerNormBackward0,
           "group": norm.NativeGroupNormBackward0, "rms": norm.FusedRmsNormBackward0}[kind]
    calls = count(cls)
    x = _t(3, 4, 2)
    if kind == "batch":
        w, b = _t(4, lo=0.5, hi=1.5), _t(4)
        args, f = (x, w, b), lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True)
    elif kind == "layer":
        w, b = _t(4, 2, lo=0.5, hi=1.5), _t(4, 2)
        args, f = (x, w, b), lambda x, w, b: F.layer_norm(x, (4, 2), w, b)
    elif kind == "group":
        w, b = _t(4, lo=0.5, hi=1.5), _t(4)
        args, f = (x, w, b), lambda x, w, b: F.group_norm(x, 2, w, b)
    else:
        w = _t(2, lo=0.5, hi=1.5)
        args, f = (x, w), lambda x, w: F.rms_norm(x, (2,), w, eps=1e-6)
    _both_paths(f, args, calls, cls)


def test_embedding_both_paths(count):
    calls = count(embedding.EmbeddingBackward0)
    idx = torch.tensor([[0, 2, 2], [4, 1, 2]])
    w = _t(5, 3)

    _both_paths(lambda w: F.embedding(idx, w), (w,), calls, embedding.EmbeddingBackward0)

    def f(w):  # padding_idx and scale_grad_by_freq are not true derivatives: no gradcheck, the paths must agree
        return F.embedding(idx, w, padding_idx=1, scale_grad_by_freq=True)
    _both_paths(f, (w,), calls, embedding.EmbeddingBackward0, gradcheck=False)


def test_self_attention_both_paths(count):
    calls = count(attention.SelfAttentionBackward0)
    qkv = _t(3, 2, 12)  # (L, N, 3E) with E = 4, two heads
    _both_paths(lambda a: attention._self_attention(a, 2, 0), (qkv,), calls, attention.SelfAttentionBackward0)


@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_cross_entropy_both_paths(count, smoothing):
    calls = count(loss.CrossEntropyLossBackward0)
    x = _t(4, 5)
    target = torch.tensor([1, 0, 4, -100])
    weight = torch.tensor([1.0, 0.5, 2.0, 1.0, 0.3], dtype=torch.float64)

    def f(x):
        return F.cross_entropy(x, target, weight=weight, label_smoothing=smoothing, reduction="none")
    _both_paths(f, (x,), calls, loss.CrossEntropyLossBackward0)


def test_nll_loss_both_paths(count):
    calls = count(loss.NllLossBackward0)
    x = _t(3, 4, 2)
    target = torch.tensor([[0, 3], [2, 2], [1, -100]])

    def f(x):
        return F.nll_loss(x, target, weight=torch.tensor([0.2, 1.0, 3.0, 0.5], dtype=torch.float64))
    _both_paths(f, (x,), calls, loss.NllLossBackward0)


@pytest.mark.parametrize("mode", ["LSTM", "GRU"])
def test_rnn_layer_both_paths(mode, monkeypatch):
    """The RNN node has several outputs, so it picks its path itself: raw-array BPTT without create_graph,
    the composed Tensor-op layer (``compose_layer``) with it."""
    gates = 4 if mode == "LSTM" else 3
    H, B = 2, 2
    bsz, offs = (2, 2, 1), (0, 2, 4)  # a packed batch: the second sequence stops after two steps
    gi, h0, w_hh, b_hh = _t(5, gates * H), _t(B, H), _t(gates * H, H), _t(gates * H)
    c0 = _t(B, H) if mode == "LSTM" else None
    inputs = tuple(t for t in (gi, h0, c0, w_hh, b_hh) if t is not None)

    def f(*ts):
        gi, h0, *rest = ts
        c0 = rest.pop(0) if mode == "LSTM" else None
        out, hn, cn = _rnn.rnn_layer(mode, gi, h0, c0, rest[0], rest[1], None, bsz, offs, False)
        return torch.cat([out.reshape(-1), hn.reshape(-1)] + ([cn.reshape(-1)] if cn is not None else []))

    assert torch.autograd.gradcheck(f, inputs)  # raw-array BPTT
    with monkeypatch.context() as m:  # the composed layer the create_graph path differentiates
        m.setattr(_rnn, "_FUSED", False)
        assert torch.autograd.gradcheck(f, inputs)
    state = RNG.bit_generator.state
    fast = _grads(f, inputs, create_graph=False)
    RNG.bit_generator.state = state
    slow = _grads(f, inputs, create_graph=True)
    for a, b in zip(fast, slow):
        assert b.requires_grad  # the composed path: a differentiable gradient
        np.testing.assert_allclose(a.numpy(), b.detach().numpy(), rtol=1e-12, atol=1e-12)
