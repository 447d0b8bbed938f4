"""disttorch.onnx.export refuses what it cannot write correctly, naming the op and the module."""
from __future__ import annotations

import io

import pytest

import disttorch as torch
import disttorch.nn as nn

pytest.importorskip("onnx")

from disttorch.onnx import OnnxExporterError, UnsupportedOperatorError  # noqa: E402


class Inner(nn.Module):
    def forward(self, t):
        return t.cumprod(1)


class Outer(nn.Module):
    def __init__(self):
        super().__init__()
        self.block = Inner()

    def forward(self, t):
        return self.block(t * 2)


def test_unsupported_op_is_named_with_its_module():
    with pytest.raises(UnsupportedOperatorError, match=r"op 'cumprod' \(in module 'block'\)"):
        torch.onnx.export(Outer(), (torch.randn(2, 3),), io.BytesIO())


class ArgmaxFeature(nn.Module):
    def forward(self, t):
        return t + t.argmax(1, keepdim=True).float()  # argmax runs outside the traced ops


def test_value_computed_from_inputs_by_an_untraced_op_raises():
    with pytest.raises(OnnxExporterError, match=r"input 1 of op 'add'.*depends on the model's inputs"):
        torch.onnx.export(ArgmaxFeature(), (torch.randn(2, 3),), io.BytesIO())


class ItemScale(nn.Module):
    def forward(self, t):
        return t * t.sum().item()


def test_python_number_from_the_inputs_raises():
    with pytest.raises(OnnxExporterError, match="computed from the inputs"):
        torch.onnx.export(ItemScale(), (torch.randn(2, 3),), io.BytesIO())


def test_constants_not_depending_on_inputs_are_folded():
    class AddConst(nn.Module):
        def forward(self, t):
            return t + torch.arange(3).float() * 2

    import onnx

    buf = io.BytesIO()
    torch.onnx.export(AddConst(), (torch.randn(2, 3),), buf)
    proto = onnx.load_from_string(buf.getvalue())
    assert [n.op_type for n in proto.graph.node] == ["Add", "Identity"]


def test_unsupported_opset_and_export_state():
    with pytest.raises(OnnxExporterError, match="opset_version=9"):
        torch.onnx.export(nn.Linear(2, 2), (torch.randn(1, 2),), io.BytesIO(), opset_version=9)
    seen = []

    class Probe(nn.Module):
        def forward(self, t):
            seen.append(torch.onnx.is_in_onnx_export())
            return t + 1

    torch.onnx.export(Probe(), torch.randn(2), io.BytesIO())
    assert seen and all(seen) and not torch.onnx.is_in_onnx_export()
    with pytest.raises(OnnxExporterError, match="eval mode only"):
        torch.onnx.export(Probe(), torch.randn(2), io.BytesIO(), training=torch.onnx.TrainingMode.TRAINING)


class InPlace(nn.Module):
    def __init__(self, bump: bool):
        super().__init__()
        self.lin, self.act, self.bump = nn.Linear(3, 3), nn.ReLU(inplace=True), bump

    def forward(self, t):
        y = self.act(self.lin(t))  # the op reports its result, then writes it into its input
        if self.bump:
            y += 1  # a fast in-place path no traced op reports
        return y * 2


def test_in_place_writes_are_followed_or_refused():
    import numpy as np
    import onnxruntime as ort

    model, x = InPlace(False), torch.randn(4, 3)
    buf = io.BytesIO()
    torch.onnx.export(model, (x,), buf)
    got = ort.InferenceSession(buf.getvalue(), providers=["CPUExecutionProvider"]).run(None, {"input_0": x.numpy()})
    with torch.no_grad():
        np.testing.assert_allclose(got[0], model(x).numpy(), rtol=1e-6, atol=1e-6)
    with pytest.raises(OnnxExporterError, match="input 0 of op 'mul'.*overwritten in place"):
        torch.onnx.export(InPlace(True), (x,), io.BytesIO())


class WriteThroughBase(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 4)

    def forward(self, t):
        y = self.lin(t)
        v = y.view(8)
        y += 1  # changes v too (shared memory), outside the traced ops
        return v * 2


def test_write_through_a_views_base_is_refused():
    with pytest.raises(OnnxExporterError, match="overwritten in place"):
        torch.onnx.export(WriteThroughBase(), (torch.randn(2, 4),), io.BytesIO())


def test_dynamic_dims_of_equal_size_must_be_named():
    with pytest.raises(OnnxExporterError, match="cannot tell apart"):
        torch.onnx.export(nn.Linear(3, 3), (torch.randn(3, 3),), io.BytesIO(), input_names=["x"],
                          dynamic_axes={"x": [0, 1]})


class PackedInput(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = nn.GRU(2, 3)

    def forward(self, packed):
        return self.rnn(packed)[1]


def test_packed_sequence_as_a_model_input_is_refused():
    packed = nn.utils.rnn.pack_sequence([torch.randn(4, 2), torch.randn(2, 2)])
    with pytest.raises(OnnxExporterError, match="a PackedSequence as a model input has no ONNX form"):
        torch.onnx.export(PackedInput(), (packed,), io.BytesIO())


def test_unequal_lengths_packed_outside_the_trace_are_refused():
    packed = nn.utils.rnn.pack_sequence([torch.randn(4, 2), torch.randn(2, 2)])

    class Closure(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = nn.GRU(2, 3)

        def forward(self, x):
            return self.rnn(nn.utils.rnn.PackedSequence(packed.data * x, packed.batch_sizes))[1]

    with pytest.raises(UnsupportedOperatorError, match=r"packed sequences of unequal lengths \(in module 'rnn'\) "
                                                       "that were not packed by nn.utils.rnn.pack_padded_sequence"):
        torch.onnx.export(Closure(), (torch.randn(1, 2),), io.BytesIO())
