"""Start a `disttorch serve` process on loopback and talk to it with http.client (tests/serve)."""
from __future__ import annotations

import http.client
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time

import numpy as np

# The served models. TwoHead: (x FP32 [n, 4], k INT64 [n]) -> (fc(x), 2 * k). Slow: fc(x), but when x[0, 0] == 99
# it runs until a file named "go" appears in the server's directory (the test creates it), then removes it.
MODELS = '''
import os
import time

import disttorch as torch


class TwoHead(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(4, 3)

    def forward(self, x, k):
        return self.fc(x), k * 2


class Slow(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(4, 3)

    def forward(self, x):
        if x.shape[0] and x.numpy()[0, 0] == 99.0:  # a slow request: runs until the test creates ./go
            deadline = time.monotonic() + 60
            while not os.path.exists("go") and time.monotonic() < deadline:
                time.sleep(0.01)
            os.remove("go")
        return self.fc(x)


def make():
    return TwoHead()


def make_slow():
    return Slow()
'''


def write_model(tmp) -> tuple:
    """Write the model module and a checkpoint of random weights into ``tmp``; returns (checkpoint, W, b)."""
    import disttorch

    (tmp / "serve_models.py").write_text(MODELS)
    rng = np.random.default_rng(7)
    w = rng.standard_normal((3, 4)).astype(np.float32)
    b = rng.standard_normal(3).astype(np.float32)
    path = tmp / "net.pt"
    disttorch.save({"fc.weight": disttorch.tensor(w), "fc.bias": disttorch.tensor(b)}, str(path))
    return path, w, b


class Server:
    """A `disttorch serve` process (``python -m disttorch.serve``) on 127.0.0.1 and a free port."""

    def __init__(self, cwd, checkpoint, *args: str, timeout: float = 60.0) -> None:
        env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
        cmd = [sys.executable, "-m", "disttorch.serve", str(checkpoint), "--host", "127.0.0.1", "--port", "0", *args]
        self.proc = subprocess.Popen(cmd, cwd=str(cwd), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True)
        self.lines: queue.Queue = queue.Queue()
        self.output: list = []
        threading.Thread(target=self._drain, daemon=True).start()
        try:
            self.port = self._wait_port(timeout)
            self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise

    def _drain(self) -> None:
        for line in self.proc.stdout:
            self.output.append(line)
            self.lines.put(line)

    def _wait_port(self, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                if self.proc.poll() is not None:
                    break
                continue
            m = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
            if m:
                return int(m.group(1))
        raise AssertionError(f"the server did not start: {''.join(self.output)[-2000:]}")

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self.request("GET", "/v2/health/ready")[0] == 200:
                    return
            except OSError:
                pass
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)  # polling interval of a condition with a deadline, not a synchronisation sleep
        raise AssertionError(f"the server never became ready: {''.join(self.output)[-2000:]}")

    def request(self, method: str, path: str, body=None, headers=None, timeout: float = 30.0) -> tuple:
        """(status, headers dict with lower-case names, body bytes)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
        finally:
            conn.close()

    def infer(self, doc, name: str = "net", **kw) -> tuple:
        """POST a JSON document; returns (status, parsed JSON body)."""
        body = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
        status, _, data = self.request("POST", f"/v2/models/{name}/infer", body,
                                       {"Content-Type": "application/json"}, **kw)
        return status, json.loads(data)

    def metrics(self) -> dict:
        """Prometheus samples as {"name{labels}": value}."""
        text = self.request("GET", "/metrics")[2].decode()
        out = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                key, _, value = line.rpartition(" ")
                out[key] = float(value)
        return out

    def stop(self) -> None:
        """End the process by its pid (SIGTERM, then SIGKILL after 10 s)."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)


def sample(metrics: dict, name: str, **labels) -> float:
    """The value of one sample, matched by name and a subset of its labels (0.0 when absent)."""
    total = 0.0
    for key, value in metrics.items():
        base, _, rest = key.partition("{")
        if base == name and all(f'{k}="{v}"' in rest for k, v in labels.items()):
            total += value
    return total
