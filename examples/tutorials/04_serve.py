"""Tutorial 4: serve a trained model over HTTP with ``disttorch serve``.

    python examples/tutorials/04_serve.py [--quick]

``disttorch serve CHECKPOINT --model MODULE:FACTORY`` (the ``serve`` extra: Starlette, Uvicorn,
prometheus-client) builds the model with ``FACTORY()``, loads the checkpoint into it with
``disttorch.load(..., weights_only=True)`` (nothing in the file runs) and answers the Open Inference Protocol
(KServe v2), so existing Triton/KServe/MLServer clients work. This script does what a deployment does:

1. Save a checkpoint: ``torch.save(model.state_dict(), "regression.pt")``, with the model built by
   ``tutorial_models.make_regression_model`` (tutorial 1's MLP).
2. Start the server on loopback and a free port::

       disttorch serve regression.pt --model tutorial_models:make_regression_model --name regression \\
           --host 127.0.0.1 --port 0

   (run from examples/tutorials, so that ``tutorial_models`` is importable); its first line says the URL.
3. Poll ``GET /v2/health/ready`` until it answers 200 (with a deadline), read the model's metadata from
   ``GET /v2/models/regression``.
4. Send ``POST /v2/models/regression/infer`` with a JSON body
   ``{"inputs": [{"name": "input__0", "shape": [4, 3], "datatype": "FP32", "data": [...]}]}`` using only
   ``http.client``, and compare the ``outputs`` with the model run in this process.
5. A request with the wrong shape is answered ``400`` with ``{"error": "..."}`` naming what is wrong; without
   ``--quick`` the script also reads the request counters from ``GET /metrics`` (Prometheus text format).
6. Stop the server by its pid with SIGTERM, in a ``finally``: it finishes the requests in flight and exits.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import queue
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

import disttorch as torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from tutorial_models import make_regression_model  # noqa: E402


def request(port: int, method: str, path: str, body=None) -> tuple:
    """(status, parsed JSON body) of one HTTP request to the server."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        conn.request(method, path, body=None if body is None else json.dumps(body), headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, (json.loads(data) if data else None)
    finally:
        conn.close()


def start_reader(proc: subprocess.Popen) -> queue.Queue:
    """Drain the server's output in a thread (a full pipe would block it); its lines arrive on the queue."""
    lines: queue.Queue = queue.Queue()

    def drain() -> None:
        for line in proc.stdout:
            lines.put(line)
    threading.Thread(target=drain, daemon=True).start()
    return lines


def wait_until_ready(proc: subprocess.Popen, lines: queue.Queue, timeout: float) -> int:
    """Find the server's port in its output, then poll its readiness, both within ``timeout``; returns the port."""
    deadline = time.monotonic() + timeout
    port = None
    while port is None and time.monotonic() < deadline and proc.poll() is None:
        try:
            line = lines.get(timeout=0.2)
        except queue.Empty:
            continue
        print("server:", line.rstrip())
        m = re.search(r"http://127\.0\.0\.1:(\d+)/", line)  # "... http://127.0.0.1:PORT/ ..." once it listens
        port = int(m.group(1)) if m else None
    if port is None:
        raise RuntimeError(f"disttorch serve did not print its URL within {timeout:.0f} s (exit {proc.poll()})")
    while time.monotonic() < deadline:
        try:
            if request(port, "GET", "/v2/health/ready")[0] == 200:
                return port
        except OSError:
            pass
        if proc.poll() is not None:
            raise RuntimeError(f"disttorch serve exited with status {proc.returncode}")
        time.sleep(0.05)  # polling interval
    raise RuntimeError(f"disttorch serve was not ready within {timeout:.0f} s")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="a shortened run (the test suite's)")
    p.add_argument("--rows", type=int, default=4, help="rows in the inference request")
    args = p.parse_args(argv)
    torch.manual_seed(0)
    model = make_regression_model().eval()

    with tempfile.TemporaryDirectory() as tmp:
        ckpt = os.path.join(tmp, "regression.pt")
        torch.save(model.state_dict(), ckpt)
        # `disttorch serve ...`, spelled through this interpreter so that it is the same installation
        cmd = [sys.executable, "-m", "disttorch.launcher.cli", "serve", ckpt,
               "--model", "tutorial_models:make_regression_model", "--name", "regression",
               "--host", "127.0.0.1", "--port", "0"]
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        proc = subprocess.Popen(cmd, cwd=HERE, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        print(f"server pid {proc.pid}")
        try:
            port = wait_until_ready(proc, start_reader(proc), timeout=60)
            status, meta = request(port, "GET", "/v2/models/regression")
            print(f"metadata ({status}): inputs {meta['inputs']} outputs {meta['outputs']}")

            x = np.random.default_rng(0).uniform(-1, 1, (args.rows, 3)).astype(np.float32)
            doc = {"id": "tutorial-1", "inputs": [{"name": meta["inputs"][0]["name"], "shape": list(x.shape),
                                                   "datatype": "FP32", "data": x.ravel().tolist()}]}
            status, answer = request(port, "POST", "/v2/models/regression/infer", doc)
            out = answer["outputs"][0]
            served = np.array(out["data"], np.float32).reshape(out["shape"])
            print(f"infer ({status}): model {answer['model_name']}, output {out['name']} {out['datatype']} "
                  f"shape {out['shape']}")
            print("served:", " ".join(f"{v:.6f}" for v in served.ravel()))
            with torch.no_grad():
                local = model(torch.from_numpy(x)).numpy()
            print(f"max difference served vs local {float(np.abs(served - local).max()):.3g}")

            # a request with the wrong shape gets a 400 and the protocol's {"error": ...} body
            bad = {"inputs": [{"name": doc["inputs"][0]["name"], "shape": [2, 2], "datatype": "FP32",
                               "data": [0.0, 1.0, 2.0, 3.0]}]}
            status, answer = request(port, "POST", "/v2/models/regression/infer", bad)
            print(f"bad request ({status}): {answer['error']}")
            if not args.quick:  # the Prometheus metrics count both requests
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                conn.request("GET", "/metrics")
                text = conn.getresponse().read().decode()
                conn.close()
                print("\n".join(line for line in text.splitlines() if line.startswith("disttorch_serve_requests_total")))
        finally:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGTERM)  # graceful: in-flight requests finish, then it exits
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.kill(proc.pid, signal.SIGKILL)
                    proc.wait()
            print(f"server stopped with status {proc.returncode}")


if __name__ == "__main__":
    main()
