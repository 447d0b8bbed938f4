"""The zmq backend's ProcessGroup on real multi-process jobs (2, 3 and 4 ranks over loopback).

This file is also the worker script: ``python test_zmq_backend.py SCENARIO RANK WORLD PORT`` runs one rank of
a scenario, checks every result against a closed-form reference and prints ``OK``.
"""
from __future__ import annotations

import functools
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

HERE = os.path.abspath(__file__)
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))


# ---------------------------------------------------------------------------------------------------------------
# worker side

def _data(r: int, n: int, dtype, salt: int = 0) -> np.ndarray:
    """Rank-dependent data whose sums and products stay exact in every dtype (values 1..3, or bits)."""
    i = np.arange(n)
    if dtype == np.bool_:
        return ((i * (r + 1) + salt) % 3) == 0
    if np.dtype(dtype).kind in "iu":
        return ((i * (r + 2) + 5 * r + salt) % 16).astype(dtype)
    return ((i + r + salt) % 3 + 1).astype(dtype)


def _ops_for(dtype):
    from disttorch.distributed.process_group import ReduceOp

    ops = [ReduceOp.SUM, ReduceOp.AVG, ReduceOp.PRODUCT, ReduceOp.MIN, ReduceOp.MAX]
    if np.dtype(dtype).kind in "iub":
        ops += [ReduceOp.BAND, ReduceOp.BOR, ReduceOp.BXOR]
    return ops


def _expected(arrays, op):
    from disttorch.distributed.process_group import REDUCE_UFUNCS

    return functools.reduce(lambda a, b: REDUCE_UFUNCS[op](a, b), arrays)  # AVG: the backend returns the sum


def _check(got, want, what):
    assert got.dtype == want.dtype, (what, got.dtype, want.dtype)
    assert np.array_equal(got, want), f"{what}: got {got[:8]} want {want[:8]}"


def _collectives(pg, r: int, n: int, sizes, dtypes) -> None:
    for dtype in dtypes:
        for size in sizes:
            what = f"{np.dtype(dtype).name}[{size}]"
            alls = [_data(q, size, dtype) for q in range(n)]
            for op in _ops_for(dtype):
                x = alls[r].copy()
                pg.allreduce([x], op).wait()
                _check(x, _expected(alls, op), f"allreduce {op} {what}")
            for root in range(n):
                x = alls[r].copy() if r == root else np.zeros(size, dtype)
                pg.broadcast([x], root).wait()
                _check(x, alls[root], f"broadcast src={root} {what}")
                x = alls[r].copy()
                pg.reduce(x, root, _ops_for(dtype)[0]).wait()
                _check(x, _expected(alls, _ops_for(dtype)[0]) if r == root else alls[r], f"reduce dst={root} {what}")
                outs = [np.zeros(size, dtype) for _ in range(n)] if r == root else None
                pg.gather(outs, alls[r], root).wait()
                if r == root:
                    for q in range(n):
                        _check(outs[q], alls[q], f"gather {what}")
                ins = [_data(q, size, dtype, salt=root) for q in range(n)] if r == root else None
                out = np.zeros(size, dtype)
                pg.scatter(out, ins, root).wait()
                _check(out, _data(r, size, dtype, salt=root), f"scatter src={root} {what}")
            outs = [np.zeros(size, dtype) for _ in range(n)]
            pg.allgather(outs, alls[r]).wait()
            for q in range(n):
                _check(outs[q], alls[q], f"allgather {what}")
            # reduce_scatter: rank q contributes _data(q, size, salt=d) for destination d
            ins = [_data(r, size, dtype, salt=d) for d in range(n)]
            out = np.zeros(size, dtype)
            pg.reduce_scatter(out, ins, _ops_for(dtype)[-1]).wait()
            _check(out, _expected([_data(q, size, dtype, salt=r) for q in range(n)], _ops_for(dtype)[-1]),
                   f"reduce_scatter {what}")
            _check(ins[0], _data(r, size, dtype, salt=0), "reduce_scatter leaves its inputs alone")
            # alltoall with uneven sizes: rank q sends size + q + d elements to rank d
            ins = [_data(r * 10 + d, size + r + d, dtype) for d in range(n)]
            outs = [np.zeros(size + q + r, dtype) for q in range(n)]
            pg.alltoall(outs, ins).wait()
            for q in range(n):
                _check(outs[q], _data(q * 10 + r, size + q + r, dtype), f"alltoall {what}")
    pg.barrier().wait()


def _send_garbage(store, r: int) -> None:
    """Frames without a valid MAC sent to rank 1's socket by a holder of the job secret (it passes the PLAIN
    gate): rank 1 must drop them and keep working."""
    import hashlib
    import hmac

    import zmq

    if r != 0:
        return
    raw = zmq.Context.instance().socket(zmq.PUSH)
    raw.plain_username = b"disttorch"
    raw.plain_password = hmac.new(bytes.fromhex(os.environ["DISTTORCH_JOB_SECRET"]), b"disttorch transport plain v1",
                                  hashlib.sha256).hexdigest().encode()
    raw.connect(store.get("zmq/addr/1").decode().split()[0])
    raw.send(b"garbage")
    raw.send_multipart([b"\x00" * 40, b"\x00" * 32, b"payload"])
    raw.send_multipart([b"short", b"x", b""])
    raw.close(linger=2000)


def _scenario_all(pg, r, n, big):
    sizes = [0, 1, 3, 1000] + ([300_001] if big else [])
    _collectives(pg, r, n, sizes, [np.float32, np.int64])
    _collectives(pg, r, n, [0, 1, 1000] + ([70_000] if big else []), [np.float64, np.bool_, np.float16])
    # several arrays in one call, and 0-d arrays
    xs = [np.array(float(r + 1)), _data(r, 5, np.float64)]
    from disttorch.distributed.process_group import ReduceOp
    pg.allreduce(xs, ReduceOp.SUM).wait()
    _check(xs[0], np.array(float(n * (n + 1) // 2)), "0-d allreduce")
    _check(xs[1], _expected([_data(q, 5, np.float64) for q in range(n)], ReduceOp.SUM), "second array")
    # async: two collectives queued, then waited; the second one's result depends on the first's order
    a = _data(r, 300_000 if big else 1000, np.float32)
    b = np.full(3, r + 1, np.int64)
    wa, wb = pg.allreduce([a], ReduceOp.MAX), pg.allreduce([b], ReduceOp.PRODUCT)
    assert wb.wait() and wa.wait() and wa.is_completed() and wb.is_completed()
    _check(a, _expected([_data(q, a.size, np.float32) for q in range(n)], ReduceOp.MAX), "async a")
    _check(b, np.full(3, np.prod(np.arange(1, n + 1)), np.int64), "async b")
    # subgroup of the last and the first rank, in that order
    sub = pg.new_subgroup([n - 1, 0])
    if r not in (0, n - 1):
        assert sub is None
    else:
        assert sub.size == 2 and sub.rank == (0 if r == n - 1 else 1) and sub.global_ranks == [n - 1, 0]
        x = np.full(4, r + 1.0)
        sub.allreduce([x], ReduceOp.SUM).wait()
        _check(x, np.full(4, n + 1.0), "subgroup allreduce")
        y = np.arange(4.0) * (r + 1)
        sub.broadcast([y], 0).wait()  # group rank 0 = global rank n-1
        _check(y, np.arange(4.0) * n, "subgroup broadcast")
    pg.barrier().wait()
    # point to point: everyone sends to rank 0 (received from any source), then 0 answers each by tag
    if r == 0:
        senders = set()
        for _ in range(n - 1):
            buf = np.zeros(3, np.int64)
            w = pg.recv(buf, None, tag=7)
            w.wait()
            q = w.result()
            senders.add(q)
            _check(buf, np.array([q, q * 2, q * 3]), "recv any-source")
        assert senders == set(range(1, n)), senders
        for q in range(1, n):
            pg.send(np.full(2, q * 1.5), q, tag=q).wait()
    else:
        pg.send(np.array([r, r * 2, r * 3], np.int64), 0, tag=7).wait()
        buf = np.zeros(2)
        w = pg.recv(buf, 0, tag=r)
        w.wait()
        assert w.result() == 0
        _check(buf, np.full(2, r * 1.5), "recv from 0")
    pg.barrier().wait()


def _scenario_mismatch(pg, r, n):
    from disttorch.distributed.process_group import ReduceOp
    x = np.ones(4, np.float32)
    if r == 0:
        pg.verify("seq=0 all_reduce(float32[4], SUM)")
        w = pg.allreduce([x], ReduceOp.SUM)
    else:
        pg.verify("seq=0 broadcast(float32[4], src=0)")
        w = pg.broadcast([x], 0)
    with pytest.raises(RuntimeError, match="Mismatched") as e:
        w.wait()
    assert "all_reduce(float32[4], SUM)" in str(e.value) and "broadcast(float32[4], src=0)" in str(e.value)


def _scenario_stuck_peer(pg, r, n, store):
    from disttorch.distributed.process_group import ReduceOp
    if r == 0:
        with pytest.raises(RuntimeError, match="all_reduce.*rank 0 timed out .*waiting for rank 1"):
            pg.allreduce([np.ones(4)], ReduceOp.SUM).wait()
        store.set("done", "1")
    else:
        store.get("done")  # never calls the collective; ends when rank 0 has seen the timeout


def _worker(scenario: str, r: int, n: int, port: int) -> None:
    from datetime import timedelta

    from disttorch.distributed.backends.zmq import ZMQProcessGroup
    from disttorch.distributed.store import TCPStore

    short = scenario in ("stuck", "nojoin")
    timeout = 1.5 if short else 60.0
    store = TCPStore("127.0.0.1", port, n, r == 0, timedelta(seconds=30), wait_for_workers=False)
    if scenario == "nojoin":
        with pytest.raises(RuntimeError, match="rank 0 timed out after 1.5 s waiting for rank 1 to join"):
            ZMQProcessGroup.create(store, r, n, timeout, {"interface": "127.0.0.1"})
        print("OK", flush=True)
        return
    pg = ZMQProcessGroup.create(store, r, n, timeout, {"interface": "127.0.0.1"})
    try:
        if scenario.startswith("all"):
            _send_garbage(store, r)
            _scenario_all(pg, r, n, big=scenario == "all-big")
        elif scenario == "mismatch":
            _scenario_mismatch(pg, r, n)
        elif scenario == "stuck":
            _scenario_stuck_peer(pg, r, n, store)
    finally:
        pg.shutdown()
    print("OK", flush=True)


# ---------------------------------------------------------------------------------------------------------------
# test side

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(scenario: str, n: int, ranks=None, timeout: float = 90.0) -> None:
    port = _free_port()
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""), OMP_NUM_THREADS="1",
               DISTTORCH_JOB_SECRET="00ff" * 8,
               DISTTORCH_ZMQ_CHUNK_BYTES="65536")  # small sub-chunks: exercise the pipelining
    procs = []
    try:
        for r in ranks if ranks is not None else range(n):
            procs.append(subprocess.Popen([sys.executable, HERE, scenario, str(r), str(n), str(port)], env=env,
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        results = [p.communicate(timeout=timeout) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    for r, (p, (out, err)) in enumerate(zip(procs, results)):
        assert p.returncode == 0 and out.strip().endswith("OK"), f"rank {r} failed:\n{out}\n{err[-4000:]}"


@pytest.mark.timeout(120)
@pytest.mark.parametrize("n,scenario", [(2, "all-big"), (3, "all-big"), (4, "all")])
def test_collectives(n, scenario):
    _run(scenario, n)


@pytest.mark.timeout(60)
def test_mismatched_collectives_fail_on_every_rank():
    _run("mismatch", 2)


@pytest.mark.timeout(60)
def test_peer_that_never_calls_the_collective_times_out():
    _run("stuck", 2)


@pytest.mark.timeout(60)
def test_peer_that_never_joins_times_out():
    _run("nojoin", 2, ranks=[0])


def test_subchunk_boundaries_cover_the_block():
    from disttorch.distributed.backends import zmq as zb

    for n, itemsize in [(0, 4), (1, 4), (300_001, 4), (1 << 20, 8)]:
        subs = zb._subs(n, itemsize)
        assert sum(b - a for a, b in subs) == n and all(a < b for a, b in subs)
        assert all((b - a) * itemsize <= zb._SUB for a, b in subs)


if __name__ == "__main__":
    _worker(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
