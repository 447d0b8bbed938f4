"""Fuzz the model server's request decoder (disttorch.serve.protocol.decode_request), the parser of outside bytes
behind ``POST /v2/models/NAME/infer``: random bytes, random JSON documents shaped like requests, and mutations
of valid JSON and binary-tensor requests. Every input must either decode into arrays of the declared shapes and
datatypes or raise ProtocolError (status 4xx) -- never another exception -- and what it decodes must be bounded
by the body's size (a JSON value takes at least one byte; a binary tensor lies inside the body). A last test
sends mutated requests to a live server and checks it still answers a valid request correctly.

Example counts scale with ``fuzz_support.examples`` (``make fuzz`` runs 50x).
"""
from __future__ import annotations

import json
import struct

import numpy as np
import pytest
from fuzz_support import examples, settings_for
from hypothesis import given
from hypothesis import strategies as st

from disttorch.serve.protocol import DATATYPES, ProtocolError, TensorSpec, decode_request, parse_header_length

INPUTS = [TensorSpec("x", "FP32", (-1, 4)), TensorSpec("k", "INT64", (-1,))]
OUTPUTS = [TensorSpec("output__0", "FP32", (-1, 3)), TensorSpec("output__1", "INT64", (-1,))]


def _check(body: bytes, header: str | None) -> None:
    try:
        hl = parse_header_length(header, len(body))
        req = decode_request(body, hl, INPUTS, OUTPUTS)
    except ProtocolError as e:
        assert 400 <= e.status < 500 and str(e)
        return
    for spec in INPUTS:
        arr = req.inputs[spec.name]
        assert arr.dtype == DATATYPES[spec.datatype]
        assert arr.ndim == len(spec.shape) and all(s in (-1, d) for s, d in zip(spec.shape, arr.shape))
        assert arr.size <= len(body), "decoded more elements than the body has bytes"


def _valid_binary(n: int = 2) -> tuple:
    head = json.dumps({"inputs": [
        {"name": "x", "shape": [n, 4], "datatype": "FP32", "parameters": {"binary_data_size": 16 * n}},
        {"name": "k", "shape": [n], "datatype": "INT64", "parameters": {"binary_data_size": 8 * n}}],
        "outputs": [{"name": "output__0", "parameters": {"binary_data": True}}]}).encode()
    return head + struct.pack(f"<{4 * n}f", *range(4 * n)) + struct.pack(f"<{n}q", *range(n)), len(head)


VALID_JSON = json.dumps({"id": "a", "inputs": [
    {"name": "x", "shape": [2, 4], "datatype": "FP32", "data": [[1, 2, 3, 4], [5, 6, 7, 8]]},
    {"name": "k", "shape": [2], "datatype": "INT64", "data": [1, 2]}]}).encode()

scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=True),
                    st.text(max_size=8))
json_values = st.recursive(scalars, lambda c: st.one_of(st.lists(c, max_size=6),
                                                        st.dictionaries(st.text(max_size=6), c, max_size=4)),
                           max_leaves=30)
dims = st.one_of(st.integers(0, 5), st.integers(-3, 2**64), st.just(True), st.floats(0, 4))
tensor = st.fixed_dictionaries(
    {"name": st.sampled_from(["x", "k", "y", ""]),
     "datatype": st.sampled_from(list(DATATYPES) + ["BYTES", "UINT16", "fp32", 7]),
     "shape": st.one_of(st.lists(dims, max_size=4), json_values)},
    optional={"data": st.one_of(st.lists(scalars, max_size=20), json_values),
              "parameters": st.one_of(st.fixed_dictionaries({"binary_data_size": st.integers(-4, 200)}),
                                      json_values)})
documents = st.fixed_dictionaries({"inputs": st.one_of(st.lists(tensor, max_size=3), json_values)},
                                  optional={"id": json_values, "outputs": json_values, "parameters": json_values})


@settings_for(300)
@given(st.binary(max_size=300), st.one_of(st.none(), st.integers(-5, 400).map(str), st.text(max_size=6)))
def test_random_bytes(body, header):
    _check(body, header)


@settings_for(200)
@given(documents, st.binary(max_size=200), st.booleans())
def test_request_shaped_documents(doc, blob, binary):
    head = json.dumps(doc).encode()
    _check(head + blob if binary else head, str(len(head)) if binary else None)


@settings_for(300)
@given(st.data())
def test_mutated_valid_requests(data):
    body, hl = (VALID_JSON, None) if data.draw(st.booleans()) else _valid_binary(data.draw(st.integers(0, 3)))
    buf = bytearray(body)
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(["flip", "cut", "insert", "digit"]))
        if not buf:
            break
        i = data.draw(st.integers(0, len(buf) - 1))
        if op == "flip":
            buf[i] ^= 1 << data.draw(st.integers(0, 7))
        elif op == "cut":
            del buf[i:i + data.draw(st.integers(1, 8))]
        elif op == "insert":
            buf[i:i] = data.draw(st.binary(min_size=1, max_size=6))
        else:
            buf[i:i] = data.draw(st.sampled_from([b"9", b"99999999999", b"-1", b"[", b"]", b",0"]))
    header = None if hl is None else str(data.draw(st.sampled_from([hl, hl - 1, hl + 1, len(buf), 0])))
    _check(bytes(buf), header)


def test_shape_product_is_checked_before_allocating():
    # 2**62 elements announced by a tiny body: refused by arithmetic on the shape, with nothing allocated
    for dt_shape in ([2**31, 2**31], [2**62]):
        spec = [TensorSpec("x", "FP32", tuple(-1 for _ in dt_shape))]
        doc = {"inputs": [{"name": "x", "shape": dt_shape, "datatype": "FP32", "data": [1.0]}]}
        with pytest.raises(ProtocolError, match="elements but the body holds only"):
            decode_request(json.dumps(doc).encode(), None, spec, OUTPUTS)
        doc["inputs"][0].pop("data")
        doc["inputs"][0]["parameters"] = {"binary_data_size": 4 * int(np.prod(dt_shape, dtype=object))}
        head = json.dumps(doc).encode()
        with pytest.raises(ProtocolError, match="runs past"):
            decode_request(head, len(head), spec, OUTPUTS)


def test_live_server_survives_mutated_requests(tmp_path):
    import os
    import sys

    pytest.importorskip("uvicorn")
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), "serve"))
    from serve_helpers import Server, write_model

    ckpt, w, b = write_model(tmp_path)
    server = Server(tmp_path, ckpt, "--model", "serve_models:make", "--name", "net", "--input", "x:FP32:-1,4",
                    "--input", "k:INT64:-1", "--max-batch-size", "8", "--max-delay-ms", "1")
    rng = np.random.default_rng(5)
    try:
        for i in range(examples(40)):
            body, hl = (VALID_JSON, None) if i % 2 else _valid_binary(2)
            buf = bytearray(body)
            for _ in range(int(rng.integers(1, 4))):
                j = int(rng.integers(0, len(buf)))
                buf[j] = int(rng.integers(0, 256))
            headers = {} if hl is None else {"Inference-Header-Content-Length": str(hl)}
            status, _, answer = server.request("POST", "/v2/models/net/infer", bytes(buf), headers)
            assert status in (200, 400), (status, answer[:300])
            if status == 400:
                assert json.loads(answer)["error"]
        status, out = server.infer(json.loads(VALID_JSON))
        assert status == 200
        x = np.array([[1, 2, 3, 4], [5, 6, 7, 8]], np.float64)
        np.testing.assert_allclose(np.array(out["outputs"][0]["data"]).reshape(2, 3), x @ w.T + b, rtol=1e-5)
    finally:
        server.stop()
