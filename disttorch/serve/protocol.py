"""The Open Inference Protocol (KServe v2) codec: request bodies in, response bodies out.

Request bodies are outside bytes, so the decoder trusts nothing: every field's type is checked, shapes are
checked against the model's declared inputs, and an input's element count is checked against the bytes the
body actually holds *before* any array is allocated (a JSON value takes at least one byte per element; a
binary tensor must fit in the bytes after the JSON header). Every problem raises :class:`ProtocolError` with
an HTTP status and a message naming the input, the field and what was expected. This module imports only
NumPy and the standard library, so it is fuzzed on its own (tests/fuzz/test_serve_fuzz.py).

Binary-tensor extension: with an ``Inference-Header-Content-Length: N`` header, the first N bytes of the body
are the JSON header and the rest holds tensor bytes, in input order, for each input whose ``parameters`` carry
``binary_data_size`` (little-endian, row-major; BOOL is one byte per element). Responses use the same layout
for outputs requested with ``"parameters": {"binary_data": true}`` (or ``binary_data_output`` for all).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import numpy as np

#: Protocol datatype -> little-endian NumPy dtype, for the datatypes this server accepts.
DATATYPES: dict[str, np.dtype] = {
    "BOOL": np.dtype("?"), "UINT8": np.dtype("u1"), "INT8": np.dtype("i1"), "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"), "FP16": np.dtype("<f2"), "FP32": np.dtype("<f4"), "FP64": np.dtype("<f8"),
}
_KNOWN_UNSUPPORTED = ("UINT16", "UINT32", "UINT64", "INT16", "BF16")
BINARY_HEADER = "Inference-Header-Content-Length"
MAX_RANK = 32
MAX_TENSORS = 64


class ProtocolError(Exception):
    """A request the server refuses; ``status`` is the HTTP status to answer with (4xx)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class TensorSpec:
    """A model input or output as the metadata endpoint reports it; -1 in ``shape`` means any size."""

    name: str
    datatype: str
    shape: tuple

    def to_json(self) -> dict:
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}


@dataclass
class InferRequest:
    """A decoded request: ``inputs`` maps each declared input name to its array."""

    id: str | None
    inputs: dict
    outputs: list | None = None  # [(name, binary)] when the request lists outputs, else None: all of them
    binary_output: bool = False
    extra: dict = field(default_factory=dict)


def datatype_of(dtype: np.dtype) -> str:
    """The protocol datatype name of a NumPy dtype (ValueError when the protocol has none here)."""
    for name, dt in DATATYPES.items():
        if dt == np.dtype(dtype).newbyteorder("<") or dt == np.dtype(dtype):
            return name
    raise ValueError(f"dtype {np.dtype(dtype)} has no datatype in this server (supported: {', '.join(DATATYPES)})")


def parse_header_length(value: str | None, body_len: int) -> int | None:
    """The ``Inference-Header-Content-Length`` header as an int in [0, body_len], or None when absent."""
    if value is None:
        return None
    v = value.strip()
    if not (v.isascii() and v.isdigit()) or len(v) > 18:
        raise ProtocolError(f"header {BINARY_HEADER}: expected a byte count, got {value[:40]!r}")
    n = int(v)
    if n > body_len:
        raise ProtocolError(f"header {BINARY_HEADER}: {n} exceeds the body's {body_len} bytes")
    return n


def _err(where: str, what: str) -> ProtocolError:
    return ProtocolError(f"{where}: {what}")


def _check_datatype(where: str, dt) -> np.dtype:
    if not isinstance(dt, str):
        raise _err(where, f"'datatype' must be a string such as \"FP32\", got {type(dt).__name__}")
    if dt == "BYTES":
        raise _err(where, "datatype BYTES (strings) is not supported: disttorch models take numeric tensors "
                          f"({', '.join(DATATYPES)})")
    if dt not in DATATYPES:
        what = "is not supported by this server" if dt in _KNOWN_UNSUPPORTED else "is not a protocol datatype"
        raise _err(where, f"datatype {dt[:40]!r} {what} (supported: {', '.join(DATATYPES)})")
    return DATATYPES[dt]


def _check_shape(where: str, shape) -> tuple:
    if not isinstance(shape, list):
        raise _err(where, f"'shape' must be a list of non-negative integers, got {type(shape).__name__}")
    if len(shape) > MAX_RANK:
        raise _err(where, f"'shape' has {len(shape)} dimensions; at most {MAX_RANK} are accepted")
    for d in shape:
        if type(d) is not int or d < 0:
            raise _err(where, f"'shape' must be a list of non-negative integers, got {shape[:MAX_RANK]}")
    return tuple(shape)


def _from_json_data(where: str, data, shape: tuple, dtype: np.dtype, budget: int) -> np.ndarray:
    numel = math.prod(shape)
    # A JSON number or boolean takes at least one byte of the body: refuse before allocating anything.
    if numel > budget:
        raise _err(where, f"shape {list(shape)} has {numel} elements but the body holds only {budget} bytes")
    if not isinstance(data, list):
        raise _err(where, f"'data' must be a list (flat or nested row-major), got {type(data).__name__}")
    try:
        arr = np.array(data)
    except (ValueError, TypeError, OverflowError, RecursionError) as e:
        raise _err(where, f"'data' is not a regular array of numbers ({str(e)[:120]})") from None
    kind = arr.dtype.kind
    if arr.size == 0:
        kind = "empty"
    elif dtype.kind == "b":
        if kind != "b":
            raise _err(where, f"'data' for datatype BOOL must hold true/false values, got {arr.dtype.name} values")
    elif kind not in "iu" and not (dtype.kind == "f" and kind == "f"):
        got = {"f": "non-integer numbers", "b": "booleans", "U": "strings", "O": "mixed or non-numeric values"}
        raise _err(where, f"'data' for datatype {datatype_of(dtype)} must hold "
                          f"{'numbers' if dtype.kind == 'f' else 'integers'}, got {got.get(kind, arr.dtype.name)}")
    if arr.size != numel:
        raise _err(where, f"shape {list(shape)} needs {numel} values, 'data' has {arr.size}")
    if dtype.kind in "iu" and arr.size:
        info = np.iinfo(dtype)
        lo, hi = int(arr.min()), int(arr.max())
        if lo < info.min or hi > info.max:
            raise _err(where, f"value {lo if lo < info.min else hi} is out of range for {datatype_of(dtype)} "
                              f"[{info.min}, {info.max}]")
    with np.errstate(over="ignore", invalid="ignore"):  # 1e6 as FP16 is inf, as NumPy casts it
        return arr.astype(dtype, copy=False).reshape(shape)


def _from_binary(where: str, params: dict, shape: tuple, dtype: np.dtype, blob: bytes, offset: int) -> np.ndarray:
    size = params["binary_data_size"]
    if type(size) is not int or size < 0:
        raise _err(where, f"parameters.binary_data_size must be a non-negative integer, got {size!r:.40}")
    need = math.prod(shape) * dtype.itemsize
    if size != need:
        raise _err(where, f"binary_data_size is {size} bytes, but shape {list(shape)} of {datatype_of(dtype)} "
                          f"needs {need}")
    if offset + size > len(blob):
        raise _err(where, f"binary_data_size {size} at offset {offset} runs past the {len(blob)} bytes of binary "
                          f"data after the JSON header")
    if dtype.kind == "b":
        raw = np.frombuffer(blob, np.uint8, count=math.prod(shape), offset=offset)
        return (raw != 0).reshape(shape)
    return np.frombuffer(blob, dtype, count=math.prod(shape), offset=offset).reshape(shape)


def _match(where: str, spec: TensorSpec, datatype: str, shape: tuple) -> None:
    if datatype != spec.datatype:
        raise _err(where, f"datatype {datatype}, but the model takes {spec.datatype}")
    if len(shape) != len(spec.shape) or any(s != -1 and s != d for s, d in zip(spec.shape, shape)):
        raise _err(where, f"shape {list(shape)} does not match the model's {list(spec.shape)} (-1: any size)")


def decode_request(body: bytes, header_length: int | None, inputs: list, outputs: list) -> InferRequest:
    """Decode and check an infer request body against the model's declared inputs.

    Args:
        body: the whole request body.
        header_length: the ``Inference-Header-Content-Length`` value (see :func:`parse_header_length`), or None
            for a JSON-only body.
        inputs: the model's input :class:`TensorSpec` list.
        outputs: the model's output :class:`TensorSpec` list (requested outputs must name one).

    Returns:
        An :class:`InferRequest` whose ``inputs`` holds one array per declared input.

    Raises:
        ProtocolError: for any malformed or mismatching request (status 400).
    """
    head, blob = (body, b"") if header_length is None else (body[:header_length], body[header_length:])
    try:
        doc = json.loads(head)
    except (ValueError, RecursionError) as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise ProtocolError(f"malformed JSON body: {str(e)[:160]}") from None
    if not isinstance(doc, dict):
        raise ProtocolError(f"the request body must be a JSON object with 'inputs', got {type(doc).__name__}")
    rid = doc.get("id")
    if rid is not None and not isinstance(rid, str):
        raise ProtocolError(f"'id' must be a string, got {type(rid).__name__}")
    items = doc.get("inputs")
    if not isinstance(items, list) or not items:
        raise ProtocolError("'inputs' must be a non-empty list of {\"name\", \"shape\", \"datatype\", \"data\"} "
                            "objects")
    if len(items) > MAX_TENSORS:
        raise ProtocolError(f"'inputs' has {len(items)} entries; at most {MAX_TENSORS} are accepted")
    by_name = {s.name: s for s in inputs}
    decoded: dict = {}
    offset = 0
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise ProtocolError(f"inputs[{i}] must be an object, got {type(item).__name__}")
        name = item.get("name")
        if not isinstance(name, str):
            raise ProtocolError(f"inputs[{i}]: 'name' must be a string")
        where = f"input {name[:64]!r}"
        if name not in by_name:
            raise ProtocolError(f"{where}: the model has no such input (its inputs: {sorted(by_name)})")
        if name in decoded:
            raise ProtocolError(f"{where} appears twice in 'inputs'")
        dtype = _check_datatype(where, item.get("datatype"))
        shape = _check_shape(where, item.get("shape"))
        _match(where, by_name[name], item["datatype"], shape)
        params = item.get("parameters") or {}
        if not isinstance(params, dict):
            raise _err(where, "'parameters' must be an object")
        if "binary_data_size" in params:
            if header_length is None:
                raise _err(where, f"binary_data_size given without the {BINARY_HEADER} header")
            if "data" in item:
                raise _err(where, "has both 'data' and parameters.binary_data_size; give one")
            decoded[name] = _from_binary(where, params, shape, dtype, blob, offset)
            offset += params["binary_data_size"]
        elif "data" in item:
            decoded[name] = _from_json_data(where, item["data"], shape, dtype, len(head))
        else:
            raise _err(where, "has neither 'data' nor parameters.binary_data_size")
    missing = [n for n in by_name if n not in decoded]
    if missing:
        raise ProtocolError(f"missing input(s) {missing}; the model takes {[s.name for s in inputs]}")
    req = InferRequest(rid, decoded)
    params = doc.get("parameters") or {}
    if not isinstance(params, dict):
        raise ProtocolError("'parameters' must be an object")
    req.binary_output = params.get("binary_data_output") is True
    wanted = doc.get("outputs")
    if wanted is not None:
        if not isinstance(wanted, list) or len(wanted) > MAX_TENSORS:
            raise ProtocolError(f"'outputs' must be a list of at most {MAX_TENSORS} {{\"name\"}} objects")
        known = [s.name for s in outputs]
        req.outputs = []
        for j, w in enumerate(wanted):
            if not isinstance(w, dict) or not isinstance(w.get("name"), str):
                raise ProtocolError(f"outputs[{j}] must be an object with a string 'name'")
            if w["name"] not in known:
                raise ProtocolError(f"outputs[{j}]: the model has no output {w['name'][:64]!r} (its outputs: {known})")
            wp = w.get("parameters") or {}
            if not isinstance(wp, dict):
                raise ProtocolError(f"outputs[{j}]: 'parameters' must be an object")
            req.outputs.append((w["name"], wp.get("binary_data", req.binary_output) is True))
    return req


def encode_response(model_name: str, request: InferRequest, outputs: list) -> tuple:
    """The response body and headers for ``outputs``, a list of (name, array) in the model's output order.

    Returns:
        ``(body, headers)``; with binary outputs the body is the JSON header followed by the tensor bytes and
        ``headers`` carries ``Inference-Header-Content-Length``.
    """
    chosen = request.outputs if request.outputs is not None else [(n, request.binary_output) for n, _ in outputs]
    arrays = dict(outputs)
    doc: dict = {"model_name": model_name}
    if request.id is not None:
        doc["id"] = request.id
    out, blobs = [], []
    for name, binary in chosen:
        arr = arrays[name]
        entry = {"name": name, "datatype": datatype_of(arr.dtype), "shape": list(arr.shape)}
        if binary:
            raw = np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<")).tobytes()
            entry["parameters"] = {"binary_data_size": len(raw)}
            blobs.append(raw)
        else:
            entry["data"] = arr.ravel().tolist()
        out.append(entry)
    doc["outputs"] = out
    head = json.dumps(doc, separators=(",", ":")).encode()
    if not blobs:
        return head, {"content-type": "application/json"}
    return head + b"".join(blobs), {"content-type": "application/octet-stream", BINARY_HEADER: str(len(head))}
