"""``torch.onnx`` for disttorch: :func:`export` writes what one forward pass ran as an ONNX model.

The exporter records the dynamic graph through the op entry point's observer hook (every ``Op.apply``), maps
each op to ONNX nodes (``_sym_*.py``, one file per op family) and builds the model with the ``onnx`` package
(``pip install disttorch[onnx]``). See docs/onnx.md.
"""
from __future__ import annotations

from enum import Enum

__all__ = ["export", "is_in_onnx_export", "TrainingMode", "OperatorExportTypes", "errors",
           "OnnxExporterError", "UnsupportedOperatorError"]


class TrainingMode(Enum):
    """``torch.onnx.TrainingMode`` (the export is always of eval mode)."""
    EVAL = 0
    PRESERVE = 1
    TRAINING = 2


class OperatorExportTypes(Enum):
    """``torch.onnx.OperatorExportTypes`` (accepted, ignored)."""
    ONNX = 0
    ONNX_ATEN = 1
    ONNX_ATEN_FALLBACK = 2
    ONNX_FALLTHROUGH = 3


from . import errors  # noqa: E402
from .errors import OnnxExporterError, UnsupportedOperatorError  # noqa: E402


def export(model, args, f, export_params: bool = True, verbose: bool = False, training=None,
           input_names=None, output_names=None, operator_export_type=None, opset_version: int | None = None,
           do_constant_folding: bool = True, dynamic_axes=None, keep_initializers_as_inputs=None,
           custom_opsets=None, export_modules_as_functions=False, autograd_inlining=True, dynamo: bool = False,
           **kwargs) -> None:
    """Write ``model``'s forward pass on ``args`` as an ONNX model (``torch.onnx.export``).

    The model runs in eval mode under the op tracer; what ran is written, so Python control flow in forward is
    fine (the branch taken is exported). Parameters and buffers become initializers named by their
    ``state_dict`` names; values computed without the inputs are folded into initializers. The model runs a
    second time on other input values (other sizes on dynamic axes) to find dynamic reshape dims and to refuse
    values that ops outside the tracer computed from the inputs. See docs/onnx.md.

    Args:
        model: an ``nn.Module`` (or a callable).
        args: a tensor, or a tuple of arguments (tuples may nest, e.g. ``(x, (h0, c0))``; a final dict holds
            keyword arguments). The tensors, flattened in order, are the graph inputs.
        f: a path or a binary file object.
        export_params: False leaves parameters out of the file (they become graph inputs).
        verbose: print the graph.
        training: ``TrainingMode.EVAL`` (the default). ``TRAINING`` (or ``PRESERVE`` on a model in training
            mode) raises: the export is always of eval mode.
        input_names: names of the flattened inputs (default ``input_<i>``).
        output_names: names of the flattened outputs (default ``output_<i>``).
        operator_export_type: accepted, ignored.
        opset_version: 17 (the default; the only one written).
        do_constant_folding: accepted; constants are always folded.
        dynamic_axes: ``{name: {dim: dim_name}}`` or ``{name: [dims]}``: those dims are symbolic.
        keep_initializers_as_inputs: also list the parameters as graph inputs.
        custom_opsets: accepted, ignored.
        export_modules_as_functions: accepted, ignored.
        autograd_inlining: accepted, ignored.
        dynamo: accepted, ignored (the trace is always of what ran).
        **kwargs: other PyTorch options, accepted and ignored.

    Raises:
        UnsupportedOperatorError: an op with no ONNX mapping ran (named, with its module).
        OnnxExporterError: a value the graph would freeze depends on the inputs, or the graph is invalid.

    Example:
        >>> disttorch.onnx.export(model, (x,), "model.onnx", input_names=["x"],
        ...                       dynamic_axes={"x": {0: "batch"}})
    """
    if training == TrainingMode.TRAINING or (training == TrainingMode.PRESERVE and getattr(model, "training", False)):
        raise OnnxExporterError(f"ONNX export: training={training} asks for training-mode behaviour (dropout, batch "
                                "statistics); disttorch exports eval mode only: pass TrainingMode.EVAL")
    try:
        from ._export import export as _export
    except ModuleNotFoundError as e:
        if e.name in ("onnx", "onnx.helper"):
            raise ModuleNotFoundError("disttorch.onnx.export needs the onnx package: pip install 'disttorch[onnx]'",
                                      name=e.name) from e
        raise
    return _export(model, args, f, export_params=export_params, verbose=verbose, input_names=input_names,
                   output_names=output_names, opset_version=opset_version, dynamic_axes=dynamic_axes,
                   keep_initializers_as_inputs=keep_initializers_as_inputs)


def is_in_onnx_export() -> bool:
    """True while :func:`export` runs the model."""
    from ._registry import EXPORTING

    return EXPORTING[0]
