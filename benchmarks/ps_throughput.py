"""Parameter-server speed: push+pull round trips against a raw pyzmq echo, and digits CNN steps/s beside DDP.

    python benchmarks/ps_throughput.py [--quick] [--sizes 1K,64K,1M,16M,256M] [--parts rt,digits]

Part ``rt`` (round trips). Each side runs in its own process: this process is the client; a library server
(``ParameterServer``, one key per size with the ``assign`` rule in ``async`` mode) and a raw pyzmq ROUTER echo
run in two child processes. Per size, the client alternates rounds of:

  lib   ``KVClient.push_pull(key, x)``: signed request, server checks + applies + signs the value, the reply
        verified, the array handed back as a Tensor (the public API, through the worker's I/O thread);
  raw   a DEALER sends ``[mac, 8-byte header, x]``, the ROUTER verifies the MAC and echoes the payload signed,
        the DEALER verifies it: HMAC-SHA256 over the same length-prefixed frames as the library (``_wire.Mac``,
        computed here with ``hmac`` directly), the same number of bytes each way.

Three security settings, each with its peer in the same run: ``hmac`` (the library's default; peer: raw with
HMAC), ``none`` (the library always signs, so only the raw echo without a MAC is shown, for scale) and
``curve`` (``DISTTORCH_PS_SECURE=curve``; peer: raw with CURVE and the same HMAC). The table shows round
trips/s, GB/s (payload bytes each way / time) and lib/raw, medians over rounds, and the CPU time per round
trip of client and server together (less sensitive to a loaded machine than the rates). Targets from the issue:
>= 0.85x from 1 MiB, >= 0.5x round trips/s at 1 KiB.

Part ``digits`` (training). The digits CNN of examples/ps_digits.py (``DigitsCNN``, its data, SGD with
momentum, batch 32 per worker) run by ``disttorch launch --mode ps`` with W workers and S servers in each mode
(sync, ssp with staleness 2, async), and beside it the same model under DDP (``disttorch launch --backend
zmq|mpi``) with W ranks. Every worker times ``--steps`` steps after a warm-up and prints its steps/s; the
table shows the slowest worker's steps/s and samples/s over all workers (W * batch * steps/s of each worker).
Every process is limited to one BLAS thread; on a machine with fewer cores than processes the figures measure
contention, not the protocol.
"""
from __future__ import annotations

import argparse
import hmac
import json
import os
import secrets
import struct
import subprocess
import sys
import time

import numpy as np

from _bench_util import fmt_bytes, parse_size  # benchmarks/ is sys.path[0]

HERE = os.path.abspath(__file__)
ROOT = os.path.dirname(os.path.dirname(HERE))
MARK = "PS_THROUGHPUT_RESULT "
_LEN = struct.Struct("<Q")
TARGET_SMALL, TARGET_LARGE, LARGE_FROM = 0.5, 0.85, 1 << 20
BATCH = 32


def _env() -> dict:
    return dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1",
                PYTHONPATH=os.pathsep.join(p for p in [ROOT, os.environ.get("PYTHONPATH", "")] if p))


# ---- part rt: the two servers ---------------------------------------------------------------------------------
def _hmac(key: bytes, *parts) -> bytes:
    h = hmac.new(key, digestmod="sha256")
    for p in parts:
        h.update(_LEN.pack(memoryview(p).nbytes))
        h.update(p)
    return h.digest()


def serve_raw(secret: bytes, auth: bool, curve: bool) -> None:
    """The raw peer: a ROUTER that verifies and echoes ``[mac, header, payload]`` (no MAC when not ``auth``)."""
    import zmq

    from disttorch.distributed import _wire

    key = _wire.subkey(secret, "ps")
    ctx = zmq.Context()
    sock = ctx.socket(zmq.ROUTER)
    sock.setsockopt(zmq.LINGER, 0)
    if curve:
        pub, sec = _curve_keys(secret, "server")
        sock.curve_secretkey, sock.curve_publickey, sock.curve_server = sec, pub, True
    port = sock.bind_to_random_port("tcp://127.0.0.1")
    print(f"ADDR 127.0.0.1:{port}", flush=True)
    while True:
        frames = sock.recv_multipart(copy=False)
        if len(frames) == 2 and frames[1].bytes == b"stop":
            sock.send_multipart([frames[0], b"bye"])
            break
        ident, mac, head, payload = frames
        if auth:
            if not hmac.compare_digest(mac.bytes, _hmac(key, head.buffer, payload.buffer)):
                continue
            sock.send_multipart([ident, _hmac(key, head.buffer, payload.buffer), head, payload], copy=False)
        else:
            sock.send_multipart([ident, b"", head, payload], copy=False)
    sock.close(0)
    ctx.term()


def _curve_keys(secret: bytes, who: str) -> tuple:
    """A CURVE key pair derived from the secret (both sides derive the server's public key)."""
    import zmq
    from zmq.utils import z85

    seed = hmac.digest(secret, f"ps_throughput curve {who}".encode(), "sha256")
    sec = z85.encode(seed)
    return zmq.curve_public(sec), sec


def serve_lib(secret: bytes, curve: bool) -> None:
    """The library's ``ParameterServer`` in this process, until the client asks it to stop (a ``stop`` key)."""
    import zmq

    from disttorch.distributed.ps.server import ParameterServer

    ctx = zmq.Context()
    server = ParameterServer(ctx, "127.0.0.1:0", secret, 1, curve)
    print(f"ADDR {server.address}", flush=True)
    server.serve(stop=lambda: "stop" in server.keys)
    server.close()
    ctx.term()


def _start(kind: str, secret: bytes, auth: bool, curve: bool) -> tuple:
    cmd = [sys.executable, HERE, "--serve", kind, "--secret", secret.hex()]
    if not auth:
        cmd.append("--no-auth")
    if curve:
        cmd.append("--curve")
    p = subprocess.Popen(cmd, env=_env(), stdout=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    if not line.startswith("ADDR "):
        p.kill()
        raise SystemExit(f"ps_throughput: the {kind} server did not start (exit {p.wait()})")
    return p, line.split()[1]


class RawClient:
    """The raw peer's client side: sign, send, receive, verify (per round trip)."""

    def __init__(self, ctx, addr: str, secret: bytes, auth: bool, curve: bool) -> None:
        import zmq

        from disttorch.distributed import _wire

        self.key, self.auth = _wire.subkey(secret, "ps"), auth
        self.sock = ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        if curve:
            spub, _ = _curve_keys(secret, "server")
            cpub, csec = zmq.curve_keypair()
            self.sock.curve_serverkey, self.sock.curve_publickey, self.sock.curve_secretkey = spub, cpub, csec
        self.sock.connect(f"tcp://{addr}")
        self.n = 0

    def round_trip(self, payload: np.ndarray) -> np.ndarray:
        self.n += 1
        head = _LEN.pack(self.n)
        mac = _hmac(self.key, head, payload) if self.auth else b""
        self.sock.send_multipart([mac, head, payload], copy=False)
        mac, head, body = self.sock.recv_multipart(copy=False)
        if self.auth and not hmac.compare_digest(mac.bytes, _hmac(self.key, head.buffer, body.buffer)):
            raise SystemExit("ps_throughput: the raw echo's reply failed its MAC")
        return np.frombuffer(body.buffer, np.uint8)

    def close(self) -> None:
        self.sock.send_multipart([b"stop"])
        self.sock.recv_multipart()
        self.sock.close(0)


def _cpu(pid: int) -> float:
    """CPU seconds (user + system) of process ``pid`` so far (Linux; 0 elsewhere)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


def _plan(nbytes: int, budget: float, rounds: int) -> int:
    per = 150e-6 + 4 * nbytes / 1.0e9  # four hashes of the payload dominate large sizes
    return max(1, min(2000, int(budget / 2 / rounds / per)))


def run_rt(args) -> list:
    """Rows ``(setting, size, lib_s or None, raw_s, lib_cpu or None, raw_cpu)``: median seconds per round trip
    and CPU seconds per round trip (client + server process)."""
    import zmq

    from disttorch.distributed.ps import KVClient

    rows = []
    for setting in args.security.split(","):
        secret = secrets.token_bytes(32)
        auth, curve = setting != "none", setting == "curve"
        raw_p, raw_addr = _start("raw", secret, auth, curve)
        lib_p = kv = None
        if auth:
            lib_p, lib_addr = _start("lib", secret, True, curve)
        ctx = zmq.Context()
        raw = RawClient(ctx, raw_addr, secret, auth, curve)
        try:
            if auth:
                kv = KVClient([lib_addr], secret, rank=0, secure=curve, timeout=args.timeout)
            for nbytes in args.sizes:
                x = np.random.default_rng(nbytes).integers(0, 255, nbytes, dtype=np.uint8)
                paths = {"raw": lambda: raw.round_trip(x)}
                pids = {"raw": raw_p.pid, "lib": lib_p.pid if lib_p is not None else 0}
                if kv is not None:
                    key = f"k{nbytes}"
                    kv.init(key, np.zeros_like(x), rule="assign", mode="async")
                    paths["lib"] = lambda: kv.push_pull(key, x)
                for name, fn in paths.items():  # correctness and warm-up
                    got = fn()
                    got = got.numpy() if hasattr(got, "numpy") else got
                    if not np.array_equal(got, x):
                        raise SystemExit(f"ps_throughput: {name} round trip of {fmt_bytes(nbytes)} returned other bytes")
                iters = _plan(nbytes, args.budget, args.rounds)
                times = {k: [] for k in paths}
                cpu = {k: 0.0 for k in paths}
                for _ in range(args.rounds):
                    for name, fn in paths.items():
                        c0 = time.process_time() + _cpu(pids[name])
                        t0 = time.perf_counter()
                        for _ in range(iters):
                            fn()
                        times[name].append((time.perf_counter() - t0) / iters)
                        cpu[name] += (time.process_time() + _cpu(pids[name]) - c0) / iters / args.rounds
                med = {k: float(np.median(v)) for k, v in times.items()}
                rows.append((setting, nbytes, med.get("lib"), med["raw"], cpu.get("lib"), cpu["raw"]))
                _print_rt_row(rows[-1])
        finally:
            if kv is not None:
                try:
                    kv.init("stop", np.zeros(1))
                except Exception:  # noqa: BLE001 - the server is killed below anyway
                    pass
                kv.close()
            raw.close()
            ctx.term()
            for p in (raw_p, lib_p):
                if p is not None:
                    try:
                        p.wait(timeout=10)
                    except subprocess.TimeoutExpired:
                        p.kill()
                        p.wait()
    return rows


def _rt_header() -> None:
    print(f"{'security':>8} {'size':>9} {'lib rt/s':>10} {'raw rt/s':>10} {'lib GB/s':>9} {'raw GB/s':>9}"
          f" {'lib/raw':>8} {'cpu us/rt lib':>13} {'raw':>7}  target", flush=True)


def _print_rt_row(row) -> None:
    setting, nbytes, lib, raw, lib_cpu, raw_cpu = row
    if lib is None:
        print(f"{setting:>8} {fmt_bytes(nbytes):>9} {'n/a':>10} {1 / raw:10.0f} {'n/a':>9} {nbytes / raw / 1e9:9.3f}"
              f" {'n/a':>8} {'n/a':>13} {raw_cpu * 1e6:7.0f}  (the library always signs)", flush=True)
        return
    ratio = raw / lib
    target = TARGET_LARGE if nbytes >= LARGE_FROM else TARGET_SMALL if nbytes <= 1024 else None
    mark = "" if target is None or setting != "hmac" else f"{'ok' if ratio >= target else 'MISS'} (>= {target}x)"
    print(f"{setting:>8} {fmt_bytes(nbytes):>9} {1 / lib:10.0f} {1 / raw:10.0f} {nbytes / lib / 1e9:9.3f}"
          f" {nbytes / raw / 1e9:9.3f} {ratio:8.2f} {lib_cpu * 1e6:13.0f} {raw_cpu * 1e6:7.0f}  {mark}", flush=True)


# ---- part digits ------------------------------------------------------------------------------------------------
def digits_worker(args) -> None:
    """One worker of a ps or ddp job: warm up, time ``args.steps`` steps, print steps/s."""
    sys.path.insert(0, os.path.join(ROOT, "examples"))
    import disttorch as torch
    import disttorch.nn.functional as F
    from disttorch.utils.data import DataLoader
    from disttorch.utils.data.distributed import DistributedSampler
    from train_digits import DigitsCNN, load_digits_tensors

    torch.set_num_threads(1)
    torch.manual_seed(0)
    if args.worker == "ps":
        import disttorch.distributed.ps as ps

        ps.init()
        rank, world = ps.get_rank(), ps.get_world_size()
        model = DigitsCNN()
        staleness = 2 if args.mode == "ssp" else 0
        opt = ps.DistributedOptimizer(model.parameters(), "sgd", lr=0.05, momentum=0.9, mode=args.mode,
                                      staleness=staleness)
    else:
        import disttorch.distributed as dist
        from disttorch.nn.parallel import DistributedDataParallel as DDP

        dist.init_process_group(args.worker)
        rank, world = dist.get_rank(), dist.get_world_size()
        model = DDP(DigitsCNN())
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    train_set, _ = load_digits_tensors(0)
    sampler = DistributedSampler(train_set, num_replicas=world, rank=rank, shuffle=True, seed=0)
    loader = DataLoader(train_set, batch_size=BATCH, sampler=sampler, drop_last=True)
    batches = [b for b in loader]

    def step(i: int) -> None:
        x, y = batches[i % len(batches)]
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()

    for i in range(args.warmup):
        step(i)
    t0 = time.perf_counter()
    for i in range(args.steps):
        step(i)
    if args.worker == "ps":
        opt.synchronize()
    elapsed = time.perf_counter() - t0
    print(MARK + json.dumps({"rank": rank, "steps_s": args.steps / elapsed}), flush=True)
    if args.worker == "ps":
        ps.shutdown()
    else:
        dist.destroy_process_group()


def run_digits_job(kind: str, workers: int, servers: int, mode: str, args) -> list:
    exe = os.path.join(os.path.dirname(sys.executable), "disttorch")
    launcher = [exe] if os.access(exe, os.X_OK) else [sys.executable, "-m", "disttorch.launcher.cli"]
    if kind == "ps":
        cmd = launcher + ["launch", "--mode", "ps", "--num-servers", str(servers), "-n", str(workers)]
    else:
        cmd = launcher + ["launch", "-n", str(workers), "--backend", kind]
    cmd += [HERE, "--worker", "ps" if kind == "ps" else kind, "--mode", mode, "--steps", str(args.steps),
            "--warmup", str(args.warmup)]
    try:
        p = subprocess.run(cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           timeout=args.timeout)
        out, code = p.stdout, p.returncode
    except subprocess.TimeoutExpired as e:
        out, code = (e.stdout or b"").decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or ""), \
            "timeout"
    rates = [json.loads(line.split(MARK, 1)[1])["steps_s"] for line in out.splitlines() if MARK in line]
    if len(rates) != workers:
        print(f"# {kind} job W={workers} S={servers} {mode} failed (exit {code}):\n{out[-2000:]}", flush=True)
        return []
    return rates


def run_digits(args) -> None:
    plan = []
    for w in args.workers:
        for s in args.servers:
            for mode in args.modes:
                plan.append(("ps", w, s, mode))
        for backend in args.backends:
            plan.append((backend, w, 0, "sync"))
    if "mpi" in args.backends:
        try:
            import mpi4py  # noqa: F401
        except ImportError:
            print("# mpi4py not installed: no mpi rows", flush=True)
            plan = [p for p in plan if p[0] != "mpi"]
    print(f"# digits CNN, batch {BATCH} per worker, {args.warmup} warm-up + {args.steps} timed steps, 1 BLAS thread "
          f"per process, {os.cpu_count()} cores; median of {args.repeat} job(s) per row", flush=True)
    print(f"{'job':>5} {'W':>2} {'S':>2} {'mode':>6} {'steps/s (slowest)':>18} {'samples/s (all)':>16}", flush=True)
    for kind, w, s, mode in plan:
        runs = [r for r in (run_digits_job(kind, w, s, mode, args) for _ in range(args.repeat)) if r]
        if not runs:
            continue
        slowest = float(np.median([min(r) for r in runs]))
        total = float(np.median([sum(r) * BATCH for r in runs]))
        print(f"{kind:>5} {w:>2} {s if kind == 'ps' else '-':>2} {mode if kind == 'ps' else 'ddp':>6} "
              f"{slowest:18.1f} {total:16.0f}", flush=True)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a subset: 1 KiB, 1 MiB, 16 MiB; digits with 1-2 workers")
    ap.add_argument("--parts", default="rt,digits", help="rt (round trips), digits (training), or both")
    ap.add_argument("--sizes", default=None, help="round-trip payloads, e.g. 1K,64K,1M,16M,256M")
    ap.add_argument("--security", default="hmac,none,curve", help="round-trip settings: hmac, none, curve")
    ap.add_argument("--rounds", type=int, default=None, help="alternating rounds per size (median)")
    ap.add_argument("--budget", type=float, default=None, help="seconds of timed round trips per size and setting")
    ap.add_argument("--workers", default=None, help="digits: worker counts, e.g. 1,2,4")
    ap.add_argument("--servers", default="1,2", help="digits: server counts")
    ap.add_argument("--modes", default="sync,ssp,async", help="digits: ps modes")
    ap.add_argument("--backends", default="zmq,mpi", help="digits: DDP backends beside the ps rows")
    ap.add_argument("--steps", type=int, default=None, help="digits: timed steps per worker")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--repeat", type=int, default=None, help="digits: jobs per row (median)")
    ap.add_argument("--timeout", type=float, default=600)
    ap.add_argument("--serve", choices=("raw", "lib"), help=argparse.SUPPRESS)
    ap.add_argument("--secret", help=argparse.SUPPRESS)
    ap.add_argument("--no-auth", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--curve", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--worker", choices=("ps", "zmq", "mpi"), help=argparse.SUPPRESS)
    ap.add_argument("--mode", default="sync", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.serve:
        secret = bytes.fromhex(args.secret)
        return serve_raw(secret, not args.no_auth, args.curve) if args.serve == "raw" else serve_lib(secret, args.curve)
    if args.worker:
        return digits_worker(args)
    q = args.quick
    args.sizes = [parse_size(s) for s in (args.sizes or ("1K,1M,16M" if q else "1K,64K,1M,16M,256M")).split(",")]
    args.rounds = args.rounds or (3 if q else 5)
    args.budget = args.budget or (1.0 if q else 4.0)
    args.workers = [int(w) for w in (args.workers or ("1,2" if q else "1,2,4")).split(",")]
    args.servers = [int(s) for s in args.servers.split(",")] if not q or args.servers != "1,2" else [1]
    args.modes = args.modes.split(",")
    args.backends = [b for b in args.backends.split(",") if b]
    args.steps = args.steps or (20 if q else 60)
    args.repeat = args.repeat or (1 if q else 3)
    t0 = time.perf_counter()
    print(f"# {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at start", flush=True)
    parts = args.parts.split(",")
    if "rt" in parts:
        print("# push+pull round trips: lib = KVClient.push_pull, raw = pyzmq DEALER/ROUTER echo with the same HMAC",
              flush=True)
        _rt_header()
        rows = run_rt(args)
        for setting in {r[0] for r in rows if r[2] is not None}:
            small = [r[3] / r[2] for r in rows if r[0] == setting and r[2] and r[1] <= 1024]
            large = [r[3] / r[2] for r in rows if r[0] == setting and r[2] and r[1] >= LARGE_FROM]
            print(f"# {setting}: lib/raw at <= 1 KiB {min(small) if small else float('nan'):.2f} (target "
                  f"{TARGET_SMALL}), from 1 MiB min {min(large) if large else float('nan'):.2f} (target {TARGET_LARGE})",
                  flush=True)
    if "digits" in parts:
        run_digits(args)
    print(f"# {time.perf_counter() - t0:.0f} s", flush=True)


if __name__ == "__main__":
    main()
