"""disttorch.onnx.export: each exported model is run in onnxruntime on fresh random inputs and compared with
disttorch's own output of the same model (relative error <= 1e-5 in float32). One onnxruntime session per model."""
from __future__ import annotations

import io

import numpy as np
import pytest

import disttorch as torch
import disttorch.nn as nn
import disttorch.nn.functional as F
from helpers import flat_args

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

RTOL = 1e-5




def export_and_compare(model, args, run_args=None, **kw):
    """Export ``model`` on ``args``; run the ONNX model on ``run_args`` (default: other random values of
    ``args``' shapes) and compare with disttorch's output. Returns the loaded ONNX model."""
    buf = io.BytesIO()
    torch.onnx.export(model, args, buf, **kw)
    proto = onnx.load_from_string(buf.getvalue())
    onnx.checker.check_model(proto)
    if run_args is None:
        run_args = tuple(_rebuild_random(a) for a in args)
    sess = ort.InferenceSession(buf.getvalue(), providers=["CPUExecutionProvider"])
    feeds = {i.name: t.numpy() for i, t in zip(sess.get_inputs(), flat_args(run_args, []))}
    got = sess.run(None, feeds)
    model.eval()
    with torch.no_grad():
        ref = [t.numpy() for t in flat_args(model(*run_args), [])]
    assert len(got) == len(ref)
    for g, r in zip(got, ref):
        assert g.shape == r.shape
        err = np.max(np.abs(g - r)) / max(np.max(np.abs(r)), 1e-30) if r.size else 0.0
        assert err <= RTOL, f"relative error {err:.2e} > {RTOL}"
    return proto


def _rebuild_random(a):
    if isinstance(a, tuple):
        return tuple(_rebuild_random(x) for x in a)
    if a.dtype == torch.int64:
        return torch.randint(0, int(a.max()) + 1, tuple(a.shape))
    return torch.randn(*a.shape)


def test_mlp_dynamic_batch_to_a_path(tmp_path):
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3))
    path = tmp_path / "mlp.onnx"
    model.train()
    torch.onnx.export(model, (torch.randn(2, 6),), str(path), input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}}, dynamo=False)
    assert model.training  # restored after the eval-mode trace
    proto = onnx.load(str(path))
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    assert {"0.weight", "0.bias", "2.weight", "2.bias"} <= {i.name for i in proto.graph.initializer}
    x = torch.randn(5, 6)
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x.numpy()})[0]
    with torch.no_grad():
        np.testing.assert_allclose(got, model(x).numpy(), rtol=RTOL, atol=RTOL)


def test_cnn_with_batch_norm_pools_and_dynamic_batch():
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(4, 4, 3, stride=2, padding=1, groups=2), nn.AvgPool2d(2, stride=1),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
    model[1].running_mean.copy_(torch.randn(4))
    model[1].running_var.copy_(torch.rand(4) + 0.5)
    export_and_compare(model, (torch.randn(2, 3, 16, 16),), (torch.randn(5, 3, 16, 16),), input_names=["img"],
                       dynamic_axes={"img": [0]})


def test_conv_transpose_and_norms():
    model = nn.Sequential(nn.ConvTranspose2d(3, 4, 3, stride=2, padding=1, output_padding=1), nn.GroupNorm(2, 4),
                          nn.LayerNorm([8, 8]), nn.AdaptiveAvgPool2d((4, 2)))
    export_and_compare(model, (torch.randn(2, 3, 4, 4),))


class Activations(nn.Module):
    def forward(self, t):
        return torch.stack([F.relu(t), F.gelu(t), F.gelu(t, approximate="tanh"), F.silu(t), torch.tanh(t),
                            torch.sigmoid(t), F.leaky_relu(t, 0.2), F.elu(t), F.softplus(t), F.hardswish(t),
                            F.softmax(t, -1), F.log_softmax(t, 0)])


def test_activations_softmax():
    export_and_compare(Activations(), (torch.randn(3, 7) * 4,))


class TokenModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(11, 6)

    def forward(self, tok):
        return F.log_softmax(self.emb(tok) @ self.emb.weight.t(), dim=-1)


def test_embedding():
    export_and_compare(TokenModel(), (torch.randint(0, 11, (2, 5)),))


class Shapes(nn.Module):
    def forward(self, t):
        a = t.reshape(4, 6).transpose(0, 1)
        b = t.view(2, 12)[:, 2:10:2].permute(1, 0).reshape(2, 4)
        c, d = t.reshape(2, 12).split(6, 1)
        return torch.cat([a.reshape(2, 12), c, d], 1), torch.stack([t, -t], 1), t[1, ..., None], b, \
            t.unsqueeze(0).expand(3, 2, 3, 4).flatten(0, 1), t.unbind(1)[2]


def test_reshape_transpose_permute_slice_cat_stack():
    export_and_compare(Shapes(), (torch.randn(2, 3, 4),))


class Math(nn.Module):
    def forward(self, t, u):
        return ((t + 1) * 2 - t / 3 + u.exp() - t.abs().sqrt() + t ** 2 + t.clamp(-0.5, 0.5) + torch.maximum(t, u)
                - torch.rsqrt(u.abs() + 1) + torch.log(t.abs() + 1) * torch.sin(u) - torch.minimum(t, 0.5 * u)
                + torch.where(u.abs() > -1, t, u))


def test_elementwise_math():
    export_and_compare(Math(), (torch.randn(3, 4), torch.randn(3, 4)))


class Reductions(nn.Module):
    def forward(self, t):
        return (t.sum(1), t.mean((0, 2), keepdim=True), t.max(1).values, t.amax((0, 1)), t.sum(), t.mean(),
                t.max(), t.min(dim=2)[0], t.var(1), t.std(2, keepdim=True), t.logsumexp(0))


def test_reductions():
    export_and_compare(Reductions(), (torch.randn(3, 4, 5),))


class LSTMLanguageModel(nn.Module):
    def __init__(self, vocab=17, dim=8, hidden=12):
        super().__init__()
        self.emb = nn.Embedding(vocab, dim)
        self.rnn = nn.LSTM(dim, hidden, num_layers=2)
        self.head = nn.Linear(hidden, vocab)

    def forward(self, tok, state):
        y, (h, c) = self.rnn(self.emb(tok), state)
        return self.head(y), (h, c)


def test_lstm_language_model_with_hidden_state_and_dynamic_batch():
    model = LSTMLanguageModel()
    args = (torch.randint(0, 17, (5, 2)), (torch.randn(2, 2, 12), torch.randn(2, 2, 12)))
    run = (torch.randint(0, 17, (5, 4)), (torch.randn(2, 4, 12), torch.randn(2, 4, 12)))
    proto = export_and_compare(model, args, run, input_names=["tok", "h0", "c0"],
                               output_names=["logits", "hn", "cn"],
                               dynamic_axes={"tok": {1: "batch"}, "h0": {1: "batch"}, "c0": {1: "batch"}})
    assert [n.op_type for n in proto.graph.node].count("LSTM") == 2


def test_gru_batch_first():
    model = nn.GRU(4, 6, num_layers=1, batch_first=True)
    proto = export_and_compare(model, (torch.randn(3, 5, 4), torch.randn(1, 3, 6)))
    assert any(n.op_type == "GRU" for n in proto.graph.node)


def test_multihead_attention():
    mha = nn.MultiheadAttention(8, 2, batch_first=True)
    q, kv = torch.randn(2, 3, 8), torch.randn(2, 4, 8)
    export_and_compare(mha, (q, kv, kv), (torch.randn(5, 3, 8),) + (torch.randn(5, 4, 8),) * 2,
                       input_names=["q", "k", "v"], dynamic_axes={"q": [0], "k": [0], "v": [0]})


class CausalEncoder(nn.Module):
    def __init__(self):
        super().__init__()
        layer = nn.TransformerEncoderLayer(16, 4, 32, dropout=0.0, activation="gelu")
        self.enc = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)

    def forward(self, src):
        n = src.shape[0]
        mask = torch.log(torch.tril(torch.ones(n, n)))  # 0 on and below the diagonal, -inf above
        return self.enc(src, mask=mask)


def test_transformer_encoder_with_causal_float_mask():
    export_and_compare(CausalEncoder(), (torch.randn(6, 2, 16),), (torch.randn(6, 3, 16),),
                       input_names=["src"], dynamic_axes={"src": {1: "batch"}})


class ControlFlow(nn.Module):
    """Python control flow in forward: a mask cached on self, and a length check."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(5, 5)
        self._mask = None

    def forward(self, t):
        if t.shape[0] > 64:
            raise ValueError("sequence too long")
        if self._mask is None or self._mask.shape[0] != t.shape[1]:
            self._mask = torch.triu(torch.ones(t.shape[1], t.shape[1]))
        return self.lin(t) @ self._mask


def test_python_control_flow_exports_what_ran():
    export_and_compare(ControlFlow(), (torch.randn(4, 5),))


def test_bidirectional_lstm_and_relu_rnn():
    proto = export_and_compare(nn.LSTM(4, 5, num_layers=2, bidirectional=True, batch_first=True),
                               (torch.randn(2, 3, 4),))
    directions = [a.s for n in proto.graph.node if n.op_type == "LSTM" for a in n.attribute if a.name == "direction"]
    assert sorted(directions) == [b"forward", b"forward", b"reverse", b"reverse"]
    export_and_compare(nn.RNN(4, 5, nonlinearity="relu"), (torch.randn(3, 2, 4),))


def test_transformer_decoder_fused_self_attention():
    layer = nn.TransformerDecoderLayer(8, 2, 16, dropout=0.0, batch_first=True, norm_first=True)
    proto = export_and_compare(nn.TransformerDecoder(layer, 1), (torch.randn(2, 3, 8), torch.randn(2, 4, 8)))
    assert "Softmax" in {n.op_type for n in proto.graph.node}


class Gated(nn.Module):
    def forward(self, t):
        a, b = t.chunk(2, -1)
        return a * torch.sigmoid(b), torch.flip(t, [0]), torch.cumsum(t, 1), F.pad(t, (1, 2), value=0.5)


def test_chunk_flip_cumsum_pad():
    export_and_compare(Gated(), (torch.randn(3, 4),))


def test_layers_exported_whole_resize_pad_instance_norm_prelu_shuffle():
    model = nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(3, 8, 3), nn.InstanceNorm2d(8, affine=True),
                          nn.PReLU(8), nn.Upsample(scale_factor=1.5, mode="bilinear"), nn.PixelShuffle(2),
                          nn.ReplicationPad2d((1, 0, 0, 1)), nn.Upsample(size=(10, 10), mode="nearest"),
                          nn.AdaptiveMaxPool2d(5), nn.Flatten(), nn.RMSNorm(50), nn.Hardshrink(0.3))
    export_and_compare(model, (torch.randn(2, 3, 4, 4),), (torch.randn(3, 3, 4, 4),), input_names=["x"],
                       dynamic_axes={"x": {0: "n"}})


class PairScore(nn.Module):
    def __init__(self):
        super().__init__()
        self.bil = nn.Bilinear(6, 5, 3)
        self.cos = nn.CosineSimilarity(dim=1)

    def forward(self, a, b):
        return self.bil(a, b), self.cos(a[:, :5], b), torch.einsum("bi,bj->bij", a, b).norm(dim=(1, 2))


def test_bilinear_cosine_similarity_einsum_norm():
    export_and_compare(PairScore(), (torch.randn(4, 6), torch.randn(4, 5)))


class Masks(nn.Module):
    """Masks computed from the inputs with comparisons (reported to the tracer by the comparison ops)."""

    def forward(self, t, u):
        keep = (t > 0) & torch.logical_not(u <= -0.5)
        shrunk = F.hardshrink(t, 0.3) + F.softshrink(t, 0.2) + F.threshold(t, 0.1, 20.0)
        return (torch.where(keep, t, 0.1 * u), t.masked_fill(u > 0.3, -1.0), (t != u).float(),
                F.prelu(t, torch.ones(1) * 0.2), shrunk)


def test_masks_from_comparisons():
    export_and_compare(Masks(), (torch.randn(3, 4), torch.randn(3, 4)))


class PaddedEncoder(nn.Module):
    def __init__(self):
        super().__init__()
        layer = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True)
        self.enc = nn.TransformerEncoder(layer, 1, enable_nested_tensor=False)

    def forward(self, src, pad):
        return self.enc(src, src_key_padding_mask=pad)


def test_transformer_key_padding_mask_as_input_dynamic_batch_and_length():
    pad, other = torch.zeros(2, 5, dtype=torch.bool), torch.zeros(3, 7, dtype=torch.bool)
    pad[1, 3:] = True
    other[0, 4:] = True
    other[2, 1:] = True
    axes = {0: "batch", 1: "seq"}
    export_and_compare(PaddedEncoder(), (torch.randn(2, 5, 8), pad), (torch.randn(3, 7, 8), other),
                       input_names=["src", "pad"], dynamic_axes={"src": axes, "pad": axes})


class _FunctionalCNN(nn.Module):
    """PyTorch's classic MNIST net style: pooling and resizing called through F inside forward."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3, padding=1)
        self.conv2 = nn.Conv2d(4, 6, 3, padding=1)
        self.fc = nn.Linear(6 * 2 * 2, 5)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.interpolate(x, scale_factor=2, mode="nearest")
        x = F.avg_pool2d(F.relu(self.conv2(x)), kernel_size=3, stride=2, padding=1)
        x = F.adaptive_avg_pool2d(x, (2, 2))
        return self.fc(torch.flatten(x, 1))


def test_functional_pooling_and_interpolate_export_as_their_layers():
    torch.manual_seed(0)
    model = _FunctionalCNN().eval()
    proto = export_and_compare(model, (torch.randn(2, 1, 8, 8),), input_names=["x"],
                               dynamic_axes={"x": {0: "batch"}})
    ops = [n.op_type for n in proto.graph.node]
    assert {"MaxPool", "AveragePool", "Resize"} <= set(ops), ops
    assert F.max_pool2d.__name__ == "max_pool2d"  # the tracer put the functions back


class _IndexAndLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.lp = nn.LPPool2d(2, 2)
        self.register_buffer("perm", torch.tensor([2, 0, 3, 1]))

    def forward(self, x):
        y = self.lp(x) + F.lp_pool2d(x, 3, 2)  # module and functional forms
        y = y[:, self.perm]  # channels reordered by an integer index tensor: Gather
        return y[..., torch.tensor([1, 0])] * 2 + y.index_select(1, torch.tensor([0, 0]))[:, :1].sum()


def test_lp_pool_and_integer_index_tensors_export():
    torch.manual_seed(0)
    proto = export_and_compare(_IndexAndLP().eval(), (torch.rand(2, 4, 4, 4) + 0.1,),
                               run_args=(torch.rand(2, 4, 4, 4) + 0.1,))  # positive: an odd p of x < 0 is NaN
    ops = [n.op_type for n in proto.graph.node]
    assert ops.count("Gather") >= 3 and "AveragePool" in ops, ops


def test_data_dependent_index_is_refused():
    class Pick(nn.Module):
        def forward(self, x):
            return x[:, x[0].argsort()]

    with pytest.raises(Exception, match="depends on the model's inputs|no ONNX mapping"):
        torch.onnx.export(Pick(), (torch.randn(3, 4),), io.BytesIO())


class _Masked(nn.Module):
    def forward(self, x):
        pos = x[x > 0]  # a mask over every dim computed from the input: a data-dependent length
        cols = x[:, torch.tensor([True, False, True, True])]  # a constant mask over one dim
        picked = x[:, x[0] > -10.0]  # a traced mask over one dim (keeps every column, whatever the values)
        return pos.sum() + cols + picked[:, :3]


def test_boolean_mask_indexing_exports_as_compress():
    proto = export_and_compare(_Masked().eval(), (torch.randn(3, 4),))
    assert [n.op_type for n in proto.graph.node].count("Compress") == 3


class _Pick(nn.Module):
    """Per-row picks, as a loss or a decoder does: an index that is a graph input, and two index tensors."""

    def forward(self, logp, target):
        rows = torch.arange(logp.shape[0])
        return logp[:, target] + logp[rows, target].unsqueeze(1)


def test_index_tensors_from_inputs_and_two_index_tensors():
    logp = torch.randn(4, 6)
    target = torch.tensor([5, 0, 3, 3])
    buf = io.BytesIO()
    torch.onnx.export(_Pick(), (logp, target), buf)
    sess = ort.InferenceSession(buf.getvalue(), providers=["CPUExecutionProvider"])
    x2, t2 = torch.randn(4, 6), torch.tensor([1, 2, 0, 5])
    got = sess.run(None, {i.name: v.numpy() for i, v in zip(sess.get_inputs(), (x2, t2))})[0]
    ref = x2.numpy()[:, t2.numpy()] + x2.numpy()[np.arange(4), t2.numpy()][:, None]
    np.testing.assert_allclose(got, ref, rtol=1e-6)
    assert {"Gather", "GatherND"} <= {n.op_type for n in onnx.load_from_string(buf.getvalue()).graph.node}


class _ManyIndex(nn.Module):
    """Index tensors away from the leading dims: adjacent ones keep their place, separated ones go first
    (NumPy's and PyTorch's rule)."""

    def forward(self, x):
        i, j = torch.tensor([[0, 2], [1, 1]]), torch.tensor([[3, 0], [2, 1]])
        rows, cols = torch.tensor([[0], [2]]), torch.tensor([1, 3, 4])  # broadcast to (2, 3)
        return x[:, i, j], x[i, :, j] * 2, x[rows, :, cols]


def test_several_index_tensors_anywhere():
    x = torch.randn(3, 4, 5)
    ref = x.numpy()
    i, j = np.array([[0, 2], [1, 1]]), np.array([[3, 0], [2, 1]])
    a, b, c = _ManyIndex()(x)
    assert a.shape == ref[:, i, j].shape == (3, 2, 2) and b.shape == ref[i, :, j].shape == (2, 2, 4)
    np.testing.assert_array_equal(c.numpy(), ref[np.array([[0], [2]]), :, np.array([1, 3, 4])])
    export_and_compare(_ManyIndex().eval(), (x,))


class _CausalLM(nn.Module):
    """A causal mask and positions built from the input's sizes inside forward, as GPT-style code does."""

    def __init__(self):
        super().__init__()
        self.tok = nn.Embedding(11, 16)
        self.pos = nn.Embedding(32, 16)
        layer = nn.TransformerEncoderLayer(16, 2, 32, dropout=0.0, batch_first=True)
        self.enc = nn.TransformerEncoder(layer, 1, enable_nested_tensor=False)
        self.head = nn.Linear(16, 11)

    def forward(self, ids):
        t = ids.shape[1]
        mask = torch.triu(torch.full((t, t), float("-inf")), diagonal=1)
        h = self.tok(ids) + self.pos(torch.arange(t))
        return self.head(self.enc(h, mask=mask))


def test_mask_and_positions_from_sizes_follow_a_dynamic_sequence_length():
    torch.manual_seed(0)
    model = _CausalLM().eval()
    ids = torch.randint(0, 11, (2, 6))
    proto = export_and_compare(model, (ids,), run_args=(torch.randint(0, 11, (3, 9)),), input_names=["ids"],
                               dynamic_axes={"ids": {0: "batch", 1: "seq"}})
    ops = {n.op_type for n in proto.graph.node}
    assert {"ConstantOfShape", "Range", "Trilu"} <= ops, ops
