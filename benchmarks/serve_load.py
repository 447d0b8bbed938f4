"""Model-server load: throughput and p50/p99 latency of ``disttorch serve`` with and without dynamic batching.

    python benchmarks/serve_load.py [--quick] [--concurrency 1,4,16] [--seconds 3] [--rounds 3]

Two servers run side by side on loopback, serving the same MLP (256 -> 512 -> 512 -> 10, float32, one replica
each, one BLAS thread): ``off`` runs every request alone, ``batch`` runs ``--max-batch-size 32
--max-delay-ms 2``. For each concurrency level C, C client threads in this process each keep one HTTP
connection open and send one-row JSON requests back to back for ``--seconds``; the two servers alternate, round
after round, so a change in machine load hits both. The table shows requests/s (median over rounds), p50 and
p99 latency (over every request of every round) and the mean rows per model run the server reports in
/metrics. The clients share this process's GIL: at high concurrency they, not the server, may be the limit.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

MODEL = '''
import disttorch as torch


def make():
    return torch.nn.Sequential(torch.nn.Linear(256, 512), torch.nn.ReLU(), torch.nn.Linear(512, 512),
                               torch.nn.ReLU(), torch.nn.Linear(512, 10))
'''
PEERS = {"off": [], "batch": ["--max-batch-size", "32", "--max-delay-ms", "2"]}


def start(tmp: str, extra: list) -> tuple:
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1",
               PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "disttorch.serve", os.path.join(tmp, "mlp.pt"), "--model",
                             "bench_mlp:make", "--name", "mlp", "--port", "0", *extra], cwd=tmp, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    line = proc.stdout.readline()
    m = re.search(r"127\.0\.0\.1:(\d+)/", line)
    if not m:
        proc.kill()
        raise SystemExit(f"server did not start: {line}{proc.stdout.read()[-2000:]}")
    threading.Thread(target=proc.stdout.read, daemon=True).start()
    port = int(m.group(1))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            c.request("GET", "/v2/health/ready")
            if c.getresponse().status == 200:
                return proc, port
        except OSError:
            time.sleep(0.05)
    raise SystemExit("server never became ready")


def batch_stats(port: int) -> tuple:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("GET", "/metrics")
    text = c.getresponse().read().decode()
    found = [re.search(rf"^disttorch_serve_batch_size_{k}\{{[^}}]*\}} (\S+)$", text, re.M) for k in ("sum", "count")]
    return tuple(float(m.group(1)) if m else 0.0 for m in found)  # no series before the first model run


def load(port: int, body: bytes, clients: int, seconds: float) -> tuple:
    latencies: list = []
    errors = []
    stop = time.monotonic() + seconds

    def client():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        mine = []
        try:
            while time.monotonic() < stop:
                t0 = time.perf_counter()
                conn.request("POST", "/v2/models/mlp/infer", body, {"Content-Type": "application/json"})
                resp = conn.getresponse()
                resp.read()
                if resp.status != 200:
                    errors.append(resp.status)
                mine.append(time.perf_counter() - t0)
        finally:
            conn.close()
            latencies.extend(mine)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise SystemExit(f"{len(errors)} requests failed, e.g. HTTP {errors[0]}")
    return len(latencies) / (time.perf_counter() - t0), latencies


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="concurrency 1,8; 1 s per run; 2 rounds")
    ap.add_argument("--concurrency", default="1,4,16")
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    levels = [int(c) for c in ("1,8" if args.quick else args.concurrency).split(",")]
    seconds, rounds = (1.0, 2) if args.quick else (args.seconds, args.rounds)
    import disttorch

    x = np.random.default_rng(0).standard_normal((1, 256)).astype(np.float32)
    body = json.dumps({"inputs": [{"name": "input__0", "shape": [1, 256], "datatype": "FP32",
                                   "data": x.ravel().tolist()}]}).encode()
    with tempfile.TemporaryDirectory() as tmp:
        with open(os.path.join(tmp, "bench_mlp.py"), "w") as f:
            f.write(MODEL)
        sys.path.insert(0, tmp)
        import bench_mlp

        disttorch.save(bench_mlp.make().state_dict(), os.path.join(tmp, "mlp.pt"))
        servers = {name: start(tmp, extra) for name, extra in PEERS.items()}
        try:
            print(f"{'clients':>7} {'server':>6} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'rows/run':>8}")
            for c in levels:
                rates: dict = {p: [] for p in PEERS}
                lats: dict = {p: [] for p in PEERS}
                before = {p: batch_stats(port) for p, (_, port) in servers.items()}
                for _ in range(rounds):
                    for p, (_, port) in servers.items():  # alternate the peers within each round
                        rate, lat = load(port, body, c, seconds)
                        rates[p].append(rate)
                        lats[p].extend(lat)
                for p, (_, port) in servers.items():
                    s, n = batch_stats(port)
                    rows = (s - before[p][0]) / max(1.0, n - before[p][1])
                    q = np.percentile(np.array(lats[p]) * 1e3, [50, 99])
                    print(f"{c:>7} {p:>6} {statistics.median(rates[p]):>8.0f} {q[0]:>8.2f} {q[1]:>8.2f} {rows:>8.2f}")
        finally:
            for proc, _ in servers.values():
                os.kill(proc.pid, signal.SIGTERM)
            for proc, _ in servers.values():
                proc.wait(timeout=30)


if __name__ == "__main__":
    main()
