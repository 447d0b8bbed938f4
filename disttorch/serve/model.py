"""The served model: built by ``module:factory``, weights from a checkpoint, inputs/outputs described.

The checkpoint is read with ``disttorch.load(..., weights_only=True)``: no code from the file runs. The model
runs in eval mode under ``no_grad``. Its inputs come from ``--input NAME:DATATYPE:SHAPE`` flags, or, without
them, from its first layer (Linear: ``[-1, in_features]``; ConvNd: ``[-1, in_channels, -1, ...]``;
Embedding: INT64 ``[-1, -1]``). Its outputs are found by two probe runs on zeros (every -1 taken as 1, then
as 2): a dimension that changes between them is reported as -1.
"""
from __future__ import annotations

import copy
import importlib
import os
import sys

import numpy as np

from .protocol import DATATYPES, TensorSpec, datatype_of


class ServeSetupError(Exception):
    """The server cannot start: a bad --model, checkpoint or --input (the message says which and why)."""


def import_factory(spec: str):
    """The callable named by ``module:factory`` (``module.sub:attr.attr`` works too); the working directory
    is importable, as for ``python -m``."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ServeSetupError(f"--model {spec!r}: expected MODULE:FACTORY, e.g. mypkg.models:make_net")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        obj = importlib.import_module(module_name)
    except ImportError as e:
        raise ServeSetupError(f"--model {spec!r}: cannot import module {module_name!r}: {e}") from e
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ServeSetupError(f"--model {spec!r}: module {module_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise ServeSetupError(f"--model {spec!r}: {attr!r} is a {type(obj).__name__}, not a callable factory")
    return obj


def _state_dict_of(obj, path: str) -> dict:
    from .. import Tensor

    if isinstance(obj, dict) and obj and all(isinstance(v, Tensor) for v in obj.values()):
        return obj
    if isinstance(obj, dict):
        for key in ("state_dict", "model_state_dict", "model"):
            if isinstance(obj.get(key), dict):
                return obj[key]
    kind = f"a dict with keys {sorted(map(str, obj))[:8]}" if isinstance(obj, dict) else f"a {type(obj).__name__}"
    raise ServeSetupError(f"checkpoint {path!r} holds {kind}; expected a state_dict (or a dict with a "
                          "'state_dict', 'model_state_dict' or 'model' entry holding one)")


def build_model(model_spec: str, checkpoint: str):
    """Build the model with the factory, load the checkpoint's weights into it and put it in eval mode."""
    import disttorch

    factory = import_factory(model_spec)
    try:
        model = factory()
    except Exception as e:  # noqa: BLE001 - any failure of user code is reported with its origin
        raise ServeSetupError(f"--model {model_spec!r}: the factory raised {type(e).__name__}: {e}") from e
    if not isinstance(model, disttorch.nn.Module):
        raise ServeSetupError(f"--model {model_spec!r}: the factory returned a {type(model).__name__}, "
                              "not a disttorch.nn.Module")
    if not os.path.isfile(checkpoint):
        raise ServeSetupError(f"checkpoint {checkpoint!r}: no such file")
    try:
        state = disttorch.load(checkpoint, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - CheckpointError, OSError: reported with the file name
        raise ServeSetupError(f"checkpoint {checkpoint!r}: cannot load it: {e}") from e
    try:
        model.load_state_dict(_state_dict_of(state, checkpoint))
    except (RuntimeError, KeyError, ValueError) as e:
        raise ServeSetupError(f"checkpoint {checkpoint!r} does not fit the model from {model_spec!r}: {e}") from e
    return model.eval()


def parse_input_flag(text: str) -> TensorSpec:
    """``NAME:DATATYPE:SHAPE`` (shape as comma-separated ints, -1 for any size), e.g. ``x:FP32:-1,4``."""
    parts = text.split(":")
    if len(parts) != 3:
        raise ServeSetupError(f"--input {text!r}: expected NAME:DATATYPE:SHAPE, e.g. x:FP32:-1,4")
    name, dt, shape_text = parts
    if dt not in DATATYPES:
        raise ServeSetupError(f"--input {text!r}: datatype {dt!r} is not one of {', '.join(DATATYPES)}")
    try:
        shape = tuple(int(d) for d in shape_text.split(",")) if shape_text else ()
    except ValueError:
        raise ServeSetupError(f"--input {text!r}: shape {shape_text!r} must be comma-separated integers") from None
    if not name or any(d < -1 for d in shape):
        raise ServeSetupError(f"--input {text!r}: needs a name and dimensions >= -1")
    return TensorSpec(name, dt, shape)


def infer_inputs(model) -> list:
    """The input spec guessed from the model's first layer (ServeSetupError when there is no guess)."""
    floating = [p for p in model.parameters() if p.dtype.is_floating_point]
    try:
        fdt = datatype_of(floating[0].detach().cpu().numpy().dtype) if floating else "FP32"
    except ValueError:  # bfloat16 weights: clients send FP32
        fdt = "FP32"
    for m in model.modules():
        if hasattr(m, "num_embeddings") and hasattr(m, "embedding_dim"):
            return [TensorSpec("input__0", "INT64", (-1, -1))]
        if isinstance(getattr(m, "in_features", None), int):
            return [TensorSpec("input__0", fdt, (-1, m.in_features))]
        weight = getattr(m, "weight", None)
        if isinstance(getattr(m, "in_channels", None), int) and weight is not None:
            return [TensorSpec("input__0", fdt, (-1, m.in_channels) + (-1,) * (weight.dim() - 2))]
    raise ServeSetupError("cannot tell the model's inputs from its layers; describe each with "
                          "--input NAME:DATATYPE:SHAPE (e.g. --input x:FP32:-1,4)")


def run(model, arrays: list) -> list:
    """One forward pass on NumPy arrays (no_grad, eval mode): a list of output arrays."""
    import disttorch

    with disttorch.no_grad():
        args = [disttorch.from_numpy(a if a.flags.writeable else a.copy()) for a in arrays]
        out = model(*args)
    outs = list(out) if isinstance(out, (tuple, list)) else [out]
    result = []
    for i, o in enumerate(outs):
        if not isinstance(o, disttorch.Tensor):
            raise TypeError(f"model output {i} is a {type(o).__name__}; the server returns tensors only")
        arr = np.asarray(o.detach().cpu().numpy())
        if arr.dtype.kind == "f" and arr.dtype not in (np.float16, np.float32, np.float64):
            arr = arr.astype(np.float32)  # bfloat16 and other float formats the protocol lacks: sent as FP32
        elif arr.dtype in (np.int16, np.uint16):
            arr = arr.astype(np.int32)  # datatypes this server does not speak, widened without loss
        elif arr.dtype == np.uint32:
            arr = arr.astype(np.int64)
        result.append(arr)
    return result


def probe_outputs(model, inputs: list) -> list:
    """Output specs from two runs on zeros (-1 dims as 1, then 2); dims that differ are reported as -1."""
    runs = []
    for fill in (1, 2):
        arrays = [np.zeros([fill if d == -1 else d for d in s.shape], DATATYPES[s.datatype]) for s in inputs]
        try:
            runs.append(run(model, arrays))
        except Exception as e:  # noqa: BLE001 - user model code
            shapes = [a.shape for a in arrays]
            raise ServeSetupError(f"the model failed on zero inputs of shapes {shapes} ({type(e).__name__}: {e}); "
                                  "check --input") from e
    specs = []
    for i, (a, b) in enumerate(zip(*runs)):
        shape = tuple(x if x == y else -1 for x, y in zip(a.shape, b.shape)) if a.ndim == b.ndim else (-1,) * a.ndim
        try:
            specs.append(TensorSpec(f"output__{i}", datatype_of(a.dtype), shape))
        except ValueError as e:
            raise ServeSetupError(f"model output {i}: {e}") from e
    return specs


def replicas(model, n: int) -> list:
    """``n`` independent copies of the model (the first is ``model`` itself), one per worker thread."""
    return [model] + [copy.deepcopy(model) for _ in range(n - 1)]
