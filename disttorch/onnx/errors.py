"""Errors raised by :func:`disttorch.onnx.export` (``torch.onnx.errors``)."""
from __future__ import annotations

__all__ = ["OnnxExporterError", "UnsupportedOperatorError"]


class OnnxExporterError(RuntimeError):
    """The model cannot be written as an ONNX graph that computes what disttorch computed."""


class UnsupportedOperatorError(OnnxExporterError):
    """An op that ran in the traced forward pass has no ONNX mapping."""
