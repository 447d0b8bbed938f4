"""The Open Inference Protocol codec (disttorch.serve.protocol) without a server: every datatype in JSON and
binary form against arrays built here with NumPy, the checks before allocation, and the response layout."""
import json
import struct

import numpy as np
import pytest

from disttorch.serve.protocol import (ProtocolError, TensorSpec, decode_request, encode_response,
                                      parse_header_length)

# (datatype, values, struct format of one element, NumPy dtype the test expects)
CASES = [
    ("FP32", [1.5, -2.0, 3.25, 0.0], "<f", np.float32),
    ("FP64", [1e-300, -2.5, 3.0, 4.0], "<d", np.float64),
    ("FP16", [0.5, -1.0, 2.0, 65504.0], "<e", np.float16),
    ("INT64", [-2**63, 2**63 - 1, 0, 5], "<q", np.int64),
    ("INT32", [-2**31, 2**31 - 1, 0, -1], "<i", np.int32),
    ("INT8", [-128, 127, 0, -1], "<b", np.int8),
    ("UINT8", [0, 255, 7, 1], "<B", np.uint8),
    ("BOOL", [True, False, True, True], "<?", np.bool_),
]
OUT = [TensorSpec("y", "FP32", (-1,))]


def _spec(dt):
    return [TensorSpec("a", dt, (-1, 2))]


@pytest.mark.parametrize("dt,values,fmt,np_dtype", CASES)
def test_every_datatype_decodes_from_json_and_binary(dt, values, fmt, np_dtype):
    expected = np.array(values, dtype=np_dtype).reshape(2, 2)
    body = json.dumps({"inputs": [{"name": "a", "shape": [2, 2], "datatype": dt, "data": values}]}).encode()
    got = decode_request(body, None, _spec(dt), OUT).inputs["a"]
    assert got.dtype == np_dtype and got.shape == (2, 2)
    np.testing.assert_array_equal(got, expected)

    raw = struct.pack(fmt[0] + fmt[1] * 4, *values)
    head = json.dumps({"inputs": [{"name": "a", "shape": [2, 2], "datatype": dt,
                                   "parameters": {"binary_data_size": len(raw)}}]}).encode()
    got = decode_request(head + raw, len(head), _spec(dt), OUT).inputs["a"]
    assert got.dtype == np_dtype
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("dt,data,words", [
    ("INT8", [128, 0, 0, 0], "out of range for INT8"),
    ("UINT8", [-1, 0, 0, 0], "out of range for UINT8"),
    ("INT32", [1.5, 0, 0, 0], "must hold integers"),
    ("BOOL", [1, 0, 1, 0], "true/false"),
    ("FP32", ["1", 0, 0, 0], "must hold numbers"),
    ("FP32", [[1, 2], [3]], "not a regular array"),
    ("FP32", 3.0, "must be a list"),
    ("UINT16", [1, 2, 3, 4], "not supported by this server"),
    ("STRING", [1, 2, 3, 4], "not a protocol datatype"),
])
def test_bad_values_and_datatypes_are_refused(dt, data, words):
    body = json.dumps({"inputs": [{"name": "a", "shape": [2, 2], "datatype": dt, "data": data}]}).encode()
    spec = _spec(dt if dt in ("INT8", "UINT8", "INT32", "BOOL", "FP32") else "FP32")
    with pytest.raises(ProtocolError) as e:
        decode_request(body, None, spec, OUT)
    assert words in str(e.value) and e.value.status == 400


def test_binary_sizes_are_checked_before_reading():
    head = json.dumps({"inputs": [{"name": "a", "shape": [2, 2], "datatype": "FP32",
                                   "parameters": {"binary_data_size": 16}}]}).encode()
    with pytest.raises(ProtocolError, match="runs past the 8 bytes"):
        decode_request(head + b"\0" * 8, len(head), _spec("FP32"), OUT)
    huge = json.dumps({"inputs": [{"name": "a", "shape": [2**40, 2], "datatype": "FP32",
                                   "parameters": {"binary_data_size": 2**43}}]}).encode()
    with pytest.raises(ProtocolError, match="runs past"):
        decode_request(huge, len(huge), _spec("FP32"), OUT)
    wrong = head.replace(b"16", b"12")
    with pytest.raises(ProtocolError, match="needs 16"):
        decode_request(wrong + b"\0" * 12, len(wrong), _spec("FP32"), OUT)
    with pytest.raises(ProtocolError, match="without the Inference-Header-Content-Length"):
        decode_request(head, None, _spec("FP32"), OUT)
    with pytest.raises(ProtocolError, match="expected a byte count"):
        parse_header_length("-3", 10)


def test_binary_response_layout():
    y = np.array([[1.0, 2.0], [3.0, 4.5]], np.float32)
    req = decode_request(json.dumps({"id": "q", "inputs": [{"name": "a", "shape": [1, 2], "datatype": "FP32",
                                                          "data": [0, 0]}],
                                     "parameters": {"binary_data_output": True}}).encode(), None, _spec("FP32"), OUT)
    body, headers = encode_response("m", req, [("y", y)])
    n = int(headers["Inference-Header-Content-Length"])
    doc = json.loads(body[:n])
    assert doc == {"model_name": "m", "id": "q", "outputs": [{"name": "y", "datatype": "FP32", "shape": [2, 2],
                                                              "parameters": {"binary_data_size": 16}}]}
    assert struct.unpack("<4f", body[n:]) == (1.0, 2.0, 3.0, 4.5)
    req.binary_output = False
    body, headers = encode_response("m", req, [("y", y)])
    assert json.loads(body)["outputs"][0]["data"] == [1.0, 2.0, 3.0, 4.5]
