"""Dynamic batching (disttorch.serve.batching.Engine) on a stand-in model, and the served model's setup."""
import asyncio

import numpy as np
import pytest

from disttorch.serve.batching import Engine, ModelError


def _engine(run, **kw):
    calls = []

    def recording(model, arrays):
        calls.append([a.shape for a in arrays])
        return run(arrays)

    return Engine([object()], recording, **kw), calls


def _serve(engine, requests):
    async def go():
        await engine.start()
        try:
            return await asyncio.gather(*(engine.infer(r) for r in requests), return_exceptions=True)
        finally:
            await engine.stop()
    return asyncio.run(go())


def test_requests_run_as_one_batch_and_split_back():
    engine, calls = _engine(lambda a: [a[0] * 10, a[0].sum(axis=1)], max_batch_size=6, max_delay=30.0)
    reqs = [[np.full((n, 2), float(i))] for i, n in enumerate((1, 2, 3))]  # 6 rows: full, so no waiting
    results = _serve(engine, reqs)
    assert calls == [[(6, 2)]]
    for i, (n, (y, s)) in enumerate(zip((1, 2, 3), results)):
        np.testing.assert_array_equal(y, np.full((n, 2), 10.0 * i))
        np.testing.assert_array_equal(s, np.full(n, 2.0 * i))


def test_incompatible_shapes_and_oversized_requests_run_apart():
    engine, calls = _engine(lambda a: [a[0] + 1], max_batch_size=4, max_delay=0.01)
    reqs = [[np.zeros((1, 2))], [np.zeros((1, 3))], [np.zeros((1, 2))], [np.zeros((9, 2))]]
    results = _serve(engine, reqs)
    assert sorted(map(str, calls)) == sorted(map(str, [[(2, 2)], [(1, 3)], [(9, 2)]]))
    assert [r[0].shape for r in results] == [(1, 2), (1, 3), (1, 2), (9, 2)]


def test_a_failing_request_fails_only_itself():
    def run(arrays):
        if (arrays[0] < 0).any():
            raise IndexError("index -1 is out of range")
        return [arrays[0] * 2]

    engine, calls = _engine(run, max_batch_size=3, max_delay=30.0)
    results = _serve(engine, [[np.array([[1.0]])], [np.array([[-1.0]])], [np.array([[3.0]])]])
    assert isinstance(results[1], ModelError) and "IndexError" in str(results[1])
    np.testing.assert_array_equal(results[0][0], [[2.0]])
    np.testing.assert_array_equal(results[2][0], [[6.0]])
    assert calls[0] == [(3, 1)] and len(calls) == 4  # the batch, then each request alone


def test_a_model_that_mixes_rows_still_answers_each_request_correctly():
    engine, calls = _engine(lambda a: [a[0].sum(axis=0, keepdims=True)], max_batch_size=2, max_delay=30.0)
    results = _serve(engine, [[np.array([[1.0], [2.0]])], [np.array([[5.0], [7.0]])]])
    assert [r[0].tolist() for r in results] == [[[3.0]], [[12.0]]]


def test_without_batching_each_request_runs_alone():
    engine, calls = _engine(lambda a: [a[0]], max_batch_size=0)
    _serve(engine, [[np.zeros((2, 2))], [np.zeros((1, 2))]])
    assert sorted(calls) == [[(1, 2)], [(2, 2)]]


def test_model_setup_describes_inputs_and_outputs(tmp_path, monkeypatch):
    import disttorch
    from disttorch.serve import model as M

    (tmp_path / "nets_for_serve_test.py").write_text(
        "import disttorch as torch\n"
        "def make():\n    return torch.nn.Sequential(torch.nn.Linear(5, 2), torch.nn.Tanh())\n"
        "def make_emb():\n    return torch.nn.Embedding(10, 3)\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    w = np.arange(10, dtype=np.float32).reshape(2, 5) / 10
    disttorch.save({"0.weight": disttorch.tensor(w), "0.bias": disttorch.zeros(2)}, str(tmp_path / "c.pt"))
    model = M.build_model("nets_for_serve_test:make", str(tmp_path / "c.pt"))
    inputs = M.infer_inputs(model)
    assert [s.to_json() for s in inputs] == [{"name": "input__0", "datatype": "FP32", "shape": [-1, 5]}]
    assert [s.to_json() for s in M.probe_outputs(model, inputs)] == [
        {"name": "output__0", "datatype": "FP32", "shape": [-1, 2]}]
    x = np.ones((1, 5), np.float32)
    np.testing.assert_allclose(M.run(model, [x])[0], np.tanh(x @ w.T), rtol=1e-6)
    emb = disttorch.nn.Embedding(10, 3)
    assert [s.to_json() for s in M.infer_inputs(emb)] == [{"name": "input__0", "datatype": "INT64", "shape": [-1, -1]}]
    with pytest.raises(M.ServeSetupError, match="does not fit the model"):
        M.build_model("nets_for_serve_test:make_emb", str(tmp_path / "c.pt"))
    with pytest.raises(M.ServeSetupError, match="no such file"):
        M.build_model("nets_for_serve_test:make", str(tmp_path / "none.pt"))
    with pytest.raises(M.ServeSetupError, match="expected NAME:DATATYPE:SHAPE"):
        M.parse_input_flag("x:FP32")
    assert M.parse_input_flag("x:INT32:-1,3").shape == (-1, 3)


def test_listening_socket_says_tcp():
    # asyncio turns on TCP_NODELAY only for sockets whose proto is TCP; without it every keep-alive response
    # waits for the client's delayed ACK.
    import socket

    from disttorch.serve.cli import _listen

    sock = _listen("127.0.0.1", 0)
    try:
        assert sock.proto == socket.IPPROTO_TCP and sock.getsockname()[1] > 0
    finally:
        sock.close()
