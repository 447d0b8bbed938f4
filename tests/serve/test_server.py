"""`disttorch serve` end to end over loopback: the Open Inference Protocol routes, the binary-tensor extension,
errors, limits, concurrent clients with dynamic batching, metrics and graceful shutdown on SIGTERM."""
import http.client
import json
import os
import signal
import struct
import sys
import threading
import time

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")
pytest.importorskip("prometheus_client")

from serve_helpers import Server, sample, write_model  # noqa: E402

pytestmark = pytest.mark.timeout(120)
MAX_BODY = 65536


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("serve")
    ckpt, w, b = write_model(tmp)
    server = Server(tmp, ckpt, "--model", "serve_models:make", "--input", "x:FP32:-1,4", "--input", "k:INT64:-1",
                    "--workers", "2", "--max-batch-size", "16", "--max-delay-ms", "20",
                    "--max-body-bytes", str(MAX_BODY))
    try:
        yield server, w.astype(np.float64), b.astype(np.float64)
    finally:
        server.stop()


def _doc(x, k, **extra):
    return {"inputs": [{"name": "x", "shape": list(x.shape), "datatype": "FP32", "data": x.ravel().tolist()},
                       {"name": "k", "shape": list(k.shape), "datatype": "INT64", "data": k.tolist()}], **extra}


def test_health_and_metadata(served):
    server, _, _ = served
    assert server.request("GET", "/v2/health/live")[0] == 200
    assert server.request("GET", "/v2/health/ready")[0] == 200
    assert server.request("GET", "/v2/models/net/ready")[0] == 200
    status, _, body = server.request("GET", "/v2/models/net")
    meta = json.loads(body)
    assert status == 200 and meta["name"] == "net"
    assert meta["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [-1, 4]},
                              {"name": "k", "datatype": "INT64", "shape": [-1]}]
    assert meta["outputs"] == [{"name": "output__0", "datatype": "FP32", "shape": [-1, 3]},
                               {"name": "output__1", "datatype": "INT64", "shape": [-1]}]
    assert "binary_tensor_data" in json.loads(server.request("GET", "/v2")[2])["extensions"]


def test_json_infer_matches_reference(served):
    server, w, b = served
    x = np.random.default_rng(1).standard_normal((3, 4)).astype(np.float32)
    k = np.array([1, -5, 2**40], np.int64)
    status, out = server.infer(_doc(x, k, id="req-1"))
    assert status == 200, out
    assert out["model_name"] == "net" and out["id"] == "req-1"
    y, k2 = out["outputs"]
    assert (y["name"], y["datatype"], y["shape"]) == ("output__0", "FP32", [3, 3])
    np.testing.assert_allclose(np.array(y["data"]).reshape(3, 3), x.astype(np.float64) @ w.T + b, rtol=1e-5,
                               atol=1e-6)
    assert (k2["datatype"], k2["shape"], k2["data"]) == ("INT64", [3], [2, -10, 2**41])
    # nested data (row-major) is accepted too, and a requested subset of outputs is all that comes back
    doc = _doc(x, k, outputs=[{"name": "output__1"}])
    doc["inputs"][0]["data"] = x.tolist()
    status, out = server.infer(doc)
    assert status == 200 and [o["name"] for o in out["outputs"]] == ["output__1"]


def test_binary_tensor_extension(served):
    server, w, b = served
    x = np.random.default_rng(2).standard_normal((2, 4)).astype(np.float32)
    head = json.dumps({"inputs": [
        {"name": "x", "shape": [2, 4], "datatype": "FP32", "parameters": {"binary_data_size": 32}},
        {"name": "k", "shape": [2], "datatype": "INT64", "parameters": {"binary_data_size": 16}}],
        "outputs": [{"name": "output__0", "parameters": {"binary_data": True}}, {"name": "output__1"}]}).encode()
    body = head + struct.pack("<8f", *x.ravel()) + struct.pack("<2q", 7, 8)  # k = [7, 8]
    status, headers, data = server.request("POST", "/v2/models/net/infer", body, {
        "Inference-Header-Content-Length": str(len(head)), "Content-Type": "application/octet-stream"})
    assert status == 200, data[:500]
    n = int(headers["inference-header-content-length"])
    doc = json.loads(data[:n])
    y, k2 = doc["outputs"]
    assert y["parameters"]["binary_data_size"] == 24 and "data" not in y
    got = np.array(struct.unpack("<6f", data[n:n + 24])).reshape(2, 3)
    np.testing.assert_allclose(got, x.astype(np.float64) @ w.T + b, rtol=1e-5, atol=1e-6)
    assert k2["data"] == [14, 16] and len(data) == n + 24


@pytest.mark.parametrize("body,status,words", [
    (b'{"inputs": [', 400, "malformed JSON"),
    (b'[1, 2]', 400, "JSON object"),
    (json.dumps({"inputs": [{"name": "x", "shape": [2, 3], "datatype": "FP32", "data": [0] * 6},
                            {"name": "k", "shape": [2], "datatype": "INT64", "data": [1, 2]}]}).encode(), 400,
     "shape [2, 3] does not match the model's [-1, 4]"),
    (json.dumps({"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": [0] * 4},
                            {"name": "k", "shape": [1], "datatype": "INT64", "data": [1]}]}).encode(), 400,
     "datatype FP64, but the model takes FP32"),
    (json.dumps({"inputs": [{"name": "x", "shape": [1, 4], "datatype": "BYTES", "data": ["a"] * 4}]}).encode(), 400,
     "BYTES"),
    (json.dumps({"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [0] * 4}]}).encode(), 400,
     "missing input(s) ['k']"),
    (json.dumps({"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [0] * 3},
                            {"name": "k", "shape": [1], "datatype": "INT64", "data": [1]}]}).encode(), 400,
     "needs 4 values, 'data' has 3"),
    (json.dumps({"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [0] * 4},
                            {"name": "k", "shape": [1], "datatype": "INT64", "data": [1.5]}]}).encode(), 400,
     "must hold integers"),
    (json.dumps({"inputs": [{"name": "x", "shape": [10**9, 4], "datatype": "FP32", "data": [0]},
                            {"name": "k", "shape": [10**9], "datatype": "INT64", "data": [1]}]}).encode(), 400,
     "elements but the body holds only"),
])
def test_malformed_requests_get_4xx_with_error_body(served, body, status, words):
    server, _, _ = served
    got, out = server.infer(body)
    assert got == status and words in out["error"], out


def test_unknown_model_path_method_and_size_limit(served):
    server, _, _ = served
    got, out = server.infer({"inputs": []}, name="other")
    assert got == 404 and "unknown model 'other'" in out["error"]
    status, _, body = server.request("GET", "/v2/nothing/here")
    assert status == 404 and "error" in json.loads(body)
    status, _, body = server.request("GET", "/v2/models/net/infer")
    assert status == 405 and "error" in json.loads(body)
    big = b" " * (MAX_BODY + 1)
    status, _, body = server.request("POST", "/v2/models/net/infer", big)
    assert status == 413 and "--max-body-bytes" in json.loads(body)["error"]
    # a chunked body announces no length: it is counted as it arrives
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        conn.request("POST", "/v2/models/net/infer", body=iter([b" " * 40000, b" " * 40000]), encode_chunked=True)
        resp = conn.getresponse()
        assert resp.status == 413 and "too large" in json.loads(resp.read())["error"]
    finally:
        conn.close()
    # a binary header longer than the body
    status, _, body = server.request("POST", "/v2/models/net/infer", b"{}", {"Inference-Header-Content-Length": "9"})
    assert status == 400 and "exceeds the body" in json.loads(body)["error"]


def test_tritonclient_talks_to_it(served):
    # Triton's own HTTP client (not in the test extra: skipped unless installed), JSON and binary tensors.
    httpclient = pytest.importorskip("tritonclient.http")
    server, w, b = served
    client = httpclient.InferenceServerClient(f"127.0.0.1:{server.port}")
    assert client.is_server_live() and client.is_model_ready("net")
    x = np.random.default_rng(4).standard_normal((2, 4)).astype(np.float32)
    k = np.array([3, -4], np.int64)
    for binary in (True, False):
        ins = [httpclient.InferInput("x", [2, 4], "FP32"), httpclient.InferInput("k", [2], "INT64")]
        ins[0].set_data_from_numpy(x, binary_data=binary)
        ins[1].set_data_from_numpy(k, binary_data=not binary)
        outs = [httpclient.InferRequestedOutput("output__0", binary_data=binary),
                httpclient.InferRequestedOutput("output__1", binary_data=not binary)]
        result = client.infer("net", ins, outputs=outs)
        np.testing.assert_allclose(result.as_numpy("output__0"), x.astype(np.float64) @ w.T + b, rtol=1e-5,
                                   atol=1e-6)
        assert result.as_numpy("output__1").tolist() == [6, -8]


def test_concurrent_clients_are_batched_and_counted(served):
    server, w, b = served
    before = server.metrics()
    n_threads, per_thread = 8, 6
    failures, rows_sent = [], []

    def client(seed):
        rng = np.random.default_rng(100 + seed)
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
        try:
            for _ in range(per_thread):
                n = int(rng.integers(1, 4))
                x = rng.standard_normal((n, 4)).astype(np.float32)
                k = rng.integers(-1000, 1000, n)
                conn.request("POST", "/v2/models/net/infer", json.dumps(_doc(x, k)).encode(),
                             {"Content-Type": "application/json"})
                resp = conn.getresponse()
                out = json.loads(resp.read())
                if resp.status != 200:
                    failures.append(out)
                    continue
                y = np.array(out["outputs"][0]["data"]).reshape(n, 3)
                if not np.allclose(y, x.astype(np.float64) @ w.T + b, rtol=1e-5, atol=1e-6) or \
                        out["outputs"][1]["data"] != (2 * k).tolist():
                    failures.append(("wrong result", seed))
                rows_sent.append(n)
        finally:
            conn.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=90)
    assert not any(t.is_alive() for t in threads)
    assert not failures, failures[:3]
    after = server.metrics()
    requests = n_threads * per_thread
    delta = {key: sample(after, key) - sample(before, key) for key in
             ("disttorch_serve_batch_size_sum", "disttorch_serve_batch_size_count",
              "disttorch_serve_request_duration_seconds_count")}
    assert delta["disttorch_serve_batch_size_sum"] == sum(rows_sent)  # every row ran exactly once
    assert delta["disttorch_serve_batch_size_count"] <= requests
    assert delta["disttorch_serve_request_duration_seconds_count"] == requests
    ok = sample(after, "disttorch_serve_requests_total", endpoint="infer", status="200") - \
        sample(before, "disttorch_serve_requests_total", endpoint="infer", status="200")
    assert ok == requests
    assert sample(after, "disttorch_serve_requests_total", endpoint="infer", status="400") > 0  # earlier tests


def test_queued_requests_batch_and_sigterm_finishes_every_request_in_flight(tmp_path):
    ckpt, w, b = write_model(tmp_path)
    server = Server(tmp_path, ckpt, "--model", "serve_models:make_slow", "--name", "net", "--max-batch-size", "8",
                    "--max-delay-ms", "1")
    rng = np.random.default_rng(3)
    answers = {}

    def client(i, x):
        answers[i] = (x, server.infer({"inputs": [{"name": "input__0", "shape": list(x.shape), "datatype": "FP32",
                                                   "data": x.ravel().tolist()}]}))

    def send(i, x):
        t = threading.Thread(target=client, args=(i, x))
        t.start()
        return t

    def wait_for(what, cond):
        deadline = time.monotonic() + 30
        while not cond(server.metrics()):
            assert time.monotonic() < deadline, what
            time.sleep(0.02)  # polling interval

    def slow():  # x[0, 0] == 99: the model runs until the file tmp_path/go exists
        return np.array([[99.0, 1.0, 2.0, 3.0]], np.float32)

    def refused():
        try:
            server.request("GET", "/v2/health/live", timeout=5)
            return False
        except OSError:
            return True

    try:
        # 1. A slow request holds the only replica; 4 requests queued behind it then run as one batch of 4 rows.
        threads = [send(0, slow())]
        wait_for("the slow request never started", lambda m: sample(m, "disttorch_serve_batch_size_count") == 1)
        threads += [send(i, rng.standard_normal((1, 4)).astype(np.float32)) for i in range(1, 5)]
        wait_for("the queued requests never arrived", lambda m: sample(m, "disttorch_serve_inflight_requests") == 5)
        (tmp_path / "go").touch()
        for t in threads:
            t.join(timeout=30)
        m = server.metrics()
        assert sample(m, "disttorch_serve_batch_size_count") == 2 and sample(m, "disttorch_serve_batch_size_sum") == 5
        # 2. SIGTERM while a slow request runs and two more wait: all three finish, then the process exits 0.
        threads = [send(5, slow())]
        wait_for("the slow request never started", lambda m: sample(m, "disttorch_serve_batch_size_count") == 3)
        threads += [send(i, rng.standard_normal((2, 4)).astype(np.float32)) for i in (6, 7)]
        wait_for("the queued requests never arrived", lambda m: sample(m, "disttorch_serve_inflight_requests") == 3)
        os.kill(server.proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        while not refused():  # the server stopped accepting connections: it is shutting down
            assert time.monotonic() < deadline, "the server kept accepting connections after SIGTERM"
            time.sleep(0.02)  # polling interval
        assert server.proc.poll() is None and len(answers) == 5  # still running, the three requests unanswered
        time.sleep(0.5)  # workload: keep them in flight past uvicorn's own 0.1 s pause, so only the drain saves them
        (tmp_path / "go").touch()
        for t in threads:
            t.join(timeout=30)
        assert sorted(answers) == list(range(8))
        for x, (status, out) in answers.values():
            assert status == 200, out
            np.testing.assert_allclose(np.array(out["outputs"][0]["data"]).reshape(len(x), 3),
                                       x.astype(np.float64) @ w.astype(np.float64).T + b, rtol=1e-5, atol=1e-6)
        assert server.proc.wait(timeout=30) == 0, "".join(server.output)[-2000:]
    finally:
        server.stop()
