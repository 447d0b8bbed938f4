"""The zmq backend's same-host shared-memory path (backends/_shm_transport.py) on real multi-process jobs.

This file is also the worker script: ``python test_zmq_shm.py SCENARIO RANK WORLD PORT`` runs one rank and
prints ``OK`` (and ``TOKEN <hex>``, the job's segment-name token) when every check passed. References are
computed here with NumPy over every rank's inputs (stacked, then np.sum/prod/min/max), not with the
backend's ufunc table.
"""
from __future__ import annotations

import glob
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

HERE = os.path.abspath(__file__)
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
SLOT = 65536  # DISTTORCH_ZMQ_SHM_BYTES in the jobs: large collectives take several chunks


# ---------------------------------------------------------------------------------------------------------------
# worker side

def _dtypes():
    import ml_dtypes

    return [np.float32, np.float64, np.int64, ml_dtypes.bfloat16]


def _data(r: int, n: int, dtype, salt: int = 0) -> np.ndarray:
    """Values 1..3 (exact sums and products in every dtype, bfloat16 included), rank- and salt-dependent."""
    return ((np.arange(n) * (r + 2) + r + salt) % 3 + 1).astype(dtype)


def _reference(arrays, op) -> np.ndarray:
    from disttorch.distributed.process_group import ReduceOp

    st = np.stack([a.astype(np.float64) for a in arrays])
    fn = {ReduceOp.SUM: np.sum, ReduceOp.AVG: np.sum, ReduceOp.PRODUCT: np.prod, ReduceOp.MIN: np.min,
          ReduceOp.MAX: np.max}[op]
    return fn(st, axis=0).astype(arrays[0].dtype)  # AVG: the backend returns the sum (the API divides)


def _same(got, want, what):
    assert got.dtype == want.dtype, (what, got.dtype, want.dtype)
    assert np.array_equal(got.astype(np.float64), want.astype(np.float64)), \
        f"{what}: got {got[:6]} want {want[:6]}"


def _sizes(itemsize: int) -> list:
    small = 65536 // itemsize  # the one-step threshold (_shm_transport.SMALL)
    return [1, 7, small, small + 1, 3 * SLOT // itemsize + 5]  # the last spans several slots


def _collectives(pg, r: int, n: int) -> None:
    from disttorch.distributed.process_group import ReduceOp

    for dtype in _dtypes():
        for size in _sizes(np.dtype(dtype).itemsize):
            what = f"{np.dtype(dtype).name}[{size}] on {n} ranks"
            alls = [_data(q, size, dtype) for q in range(n)]
            for op in (ReduceOp.SUM, ReduceOp.AVG, ReduceOp.PRODUCT, ReduceOp.MIN, ReduceOp.MAX):
                x = alls[r].copy()
                pg.allreduce([x], op).wait()
                _same(x, _reference(alls, op), f"all_reduce {op.name} {what}")
            root = size % n
            x = alls[r].copy() if r == root else np.zeros(size, dtype)
            pg.broadcast([x], root).wait()
            _same(x, alls[root], f"broadcast src={root} {what}")
            outs = [np.zeros(size, dtype) for _ in range(n)]
            pg.allgather(outs, alls[r]).wait()
            for q in range(n):
                _same(outs[q], alls[q], f"all_gather from {q} {what}")
            ins = [_data(r, size, dtype, salt=d) for d in range(n)]
            out = np.zeros(size, dtype)
            pg.reduce_scatter(out, ins, ReduceOp.MAX).wait()
            _same(out, _reference([_data(q, size, dtype, salt=r) for q in range(n)], ReduceOp.MAX),
                  f"reduce_scatter {what}")
    # two arrays in one call, and async calls queued behind each other (the second runs on the thread)
    a, b = _data(r, 3 * SLOT, np.float32), np.full(5, r + 1, np.int64)
    wa, wb = pg.allreduce([a], ReduceOp.SUM), pg.allreduce([b, np.full(2, r + 1.0)], ReduceOp.PRODUCT)
    assert wb.wait() and wa.wait()
    _same(a, _reference([_data(q, 3 * SLOT, np.float32) for q in range(n)], ReduceOp.SUM), "async all_reduce")
    _same(b, np.full(5, np.prod(np.arange(1, n + 1)), np.int64), "second async all_reduce")
    pg.barrier().wait()


def _no_tcp(pg):
    """Make the TCP data path of ``pg``'s transport fail loudly: collectives must not touch it."""
    def refuse(*a, **k):
        raise AssertionError("a shared-memory collective used the TCP path")
    pg._t.send = refuse


def _scenario_shm(pg, r, n, store):
    assert pg._shm is not None, "ranks on one host must get the shared-memory path"
    _no_tcp(pg)
    _collectives(pg, r, n)
    _small_calls_run_inline(pg, r, n)
    _large_calls_inline_when_waited_for_or_single_threaded(pg, r, n)


def _small_calls_run_inline(pg, r, n):
    """Small calls run on the caller's thread: of 40 back-to-back 16 KiB all-reduces, most never reach the
    communication thread (a call goes there only when a peer is over ~1 ms late, which a loaded machine
    causes now and then)."""
    from disttorch.distributed.process_group import ReduceOp

    submitted = []
    real = pg._t.submit
    pg._t.submit = lambda *a: (submitted.append(1), real(*a))
    x = np.ones(4096, np.float32)
    for _ in range(40):
        x[:] = 1
        pg.allreduce([x], ReduceOp.SUM).wait()
        _same(x, np.full(4096, n, np.float32), "small all_reduce")
    pg._t.submit = real
    assert len(submitted) < 20, f"{len(submitted)} of 40 small all-reduces went through the thread"


def _large_calls_inline_when_waited_for_or_single_threaded(pg, r, n):
    """A 1 MiB all-reduce runs on the caller's thread when the caller waits for it at once (``blocking_call``,
    what ``dist.all_reduce(async_op=False)`` sets) or the process runs one thread; an async one in a process with
    spare threads goes to the communication thread (so it overlaps the caller's work)."""
    import disttorch
    from disttorch.distributed.process_group import ReduceOp, blocking_call

    submitted = []
    real = pg._t.submit
    pg._t.submit = lambda *a: (submitted.append(1), real(*a))
    x = np.ones(1 << 18, np.float32)
    before = disttorch.get_num_threads()
    try:
        for threads, blocking in ((2, True), (1, False), (2, False)):
            disttorch.set_num_threads(threads)
            submitted.clear()
            for _ in range(20):
                x[:] = 1
                if blocking:
                    with blocking_call():
                        w = pg.allreduce([x], ReduceOp.SUM)
                else:
                    w = pg.allreduce([x], ReduceOp.SUM)
                w.wait()
                _same(x, np.full(x.size, n, np.float32), "1 MiB all_reduce")
            if threads == 2 and not blocking:
                assert len(submitted) == 20, f"only {len(submitted)} of 20 async 1 MiB all-reduces used the thread"
            else:
                assert len(submitted) < 10, (f"{len(submitted)} of 20 1 MiB all-reduces went through the thread "
                                             f"(threads {threads}, blocking {blocking})")
    finally:
        pg._t.submit = real
        disttorch.set_num_threads(before)


def _scenario_mixed(pg, r, n, store):
    """Ranks 0 and 1 share a host id, rank 2 has another: the world group is on TCP, subgroup [0, 1] on shared
    memory, subgroup [1, 2] on TCP, and all of them give the right results."""
    from disttorch.distributed.process_group import ReduceOp

    assert pg._shm is None, "a group spanning two hosts must use TCP"
    same = pg.new_subgroup([0, 1])
    cross = pg.new_subgroup([1, 2])
    for g, ranks, shm in ((same, [0, 1], True), (cross, [1, 2], False), (pg, [0, 1, 2], False)):
        if g is None:
            assert r not in ranks
            continue
        assert (g._shm is not None) == shm, (ranks, g._shm)
        for size in (5, 3 * SLOT // 8 + 1):
            x = _data(r, size, np.float64)
            g.allreduce([x], ReduceOp.SUM).wait()
            _same(x, _reference([_data(q, size, np.float64) for q in ranks], ReduceOp.SUM), f"group {ranks}")
            y = _data(r, size, np.float64) if g.rank == 0 else np.zeros(size)
            g.broadcast([y], 0).wait()
            _same(y, _data(ranks[0], size, np.float64), f"broadcast in group {ranks}")
        g.barrier().wait()
        if g is not pg:
            state = g._shm
            g.shutdown()  # a destroyed subgroup unmaps its segments (after what was queued)
            if state is not None:
                deadline = time.monotonic() + 10
                while state.maps and time.monotonic() < deadline:
                    time.sleep(0.01)
                assert not state.maps, "a shut-down subgroup kept its shared memory mapped"
    pg.barrier().wait()


def _scenario_disagree(pg, r, n, store):
    """The ranks were given different DISTTORCH_ZMQ_SHM_BYTES: every rank falls back to TCP, and it works."""
    from disttorch.distributed.process_group import ReduceOp

    assert pg._shm is None, "ranks with different segment sizes must agree on TCP"
    x = _data(r, 1000, np.float32)
    pg.allreduce([x], ReduceOp.SUM).wait()
    _same(x, _reference([_data(q, 1000, np.float32) for q in range(n)], ReduceOp.SUM), "all_reduce after fallback")


def _scenario_killed(pg, r, n, store):
    """Rank 1 is SIGKILLed by the test once both ranks are ready; rank 0, waiting in an all-reduce that rank 1
    never joins, must fail naming the dead rank (well before the 60 s timeout)."""
    from disttorch.distributed.process_group import ReduceOp

    assert pg._shm is not None
    x = np.ones(4)
    pg.allreduce([x], ReduceOp.SUM).wait()  # the segments are set up and unlinked
    print("READY", flush=True)
    if r == 1:
        import threading

        threading.Event().wait(100)  # killed by the test long before this ends
        return
    t0 = time.monotonic()
    with pytest.raises(RuntimeError, match="rank 1 .*died"):
        pg.allreduce([np.ones(4)], ReduceOp.SUM).wait()
    assert time.monotonic() - t0 < 20


def _api(r: int, n: int, port: int) -> None:
    """Non-contiguous tensors through the public API on the shared-memory path: results land in the viewed
    elements only, the others stay as they were."""
    import disttorch as torch
    import disttorch.distributed as dist

    dist.init_process_group("zmq", init_method=f"tcp://127.0.0.1:{port}", rank=r, world_size=n)
    try:
        assert dist.group.WORLD._pg._shm is not None
        for rows in (4, 20_000):  # below and above the one-step threshold
            base = torch.from_numpy(np.arange(rows * 6, dtype=np.float32).reshape(rows, 6) + r)
            view = base[:, ::2]
            assert not view.is_contiguous()
            dist.all_reduce(view)
            want = np.arange(rows * 6, dtype=np.float32).reshape(rows, 6) * n + n * (n - 1) / 2
            keep = np.arange(rows * 6, dtype=np.float32).reshape(rows, 6) + r
            got = base.numpy()
            _same(got[:, ::2].copy(), want[:, ::2].copy(), f"all_reduce of a strided view, {rows} rows")
            _same(got[:, 1::2].copy(), keep[:, 1::2].copy(), "elements outside the view")
            t = torch.from_numpy((np.arange(rows * 3, dtype=np.int64).reshape(rows, 3) * (r + 1))).t()
            assert not t.is_contiguous()
            dist.broadcast(t, src=n - 1)
            _same(t.numpy().copy(), (np.arange(rows * 3, dtype=np.int64).reshape(rows, 3) * n).T.copy(),
                  "broadcast of a transposed tensor")
            outs = [torch.zeros(rows, 3, dtype=torch.float32) for _ in range(n)]
            dist.all_gather(outs, base[:, 1::2])
            for q in range(n):
                _same(outs[q].numpy(), np.arange(rows * 6, dtype=np.float32).reshape(rows, 6)[:, 1::2] + q,
                      f"all_gather of a strided view from rank {q}")
        dist.barrier()
    finally:
        dist.destroy_process_group()


def _worker(scenario: str, r: int, n: int, port: int) -> None:
    from datetime import timedelta

    if scenario == "api":
        _api(r, n, port)
        print("OK", flush=True)
        return

    from disttorch.distributed.backends.zmq import ZMQProcessGroup
    from disttorch.distributed.store import TCPStore

    store = TCPStore("127.0.0.1", port, n, r == 0, timedelta(seconds=30), wait_for_workers=False)
    interface = "127.0.0.2" if scenario == "mixed" and r == 2 else "127.0.0.1"
    pg = ZMQProcessGroup.create(store, r, n, 60.0, {"interface": interface})
    if r == 0:
        print("TOKEN", store.get("zmq/shm/token").decode(), flush=True)
    try:
        {"shm": _scenario_shm, "mixed": _scenario_mixed, "killed": _scenario_killed,
         "disagree": _scenario_disagree}[scenario](pg, r, n, store)
    finally:
        if scenario != "killed":
            pg.shutdown()
    print("OK", flush=True)


# ---------------------------------------------------------------------------------------------------------------
# test side

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(**extra) -> dict:
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""), OMP_NUM_THREADS="1",
               DISTTORCH_JOB_SECRET="00ff" * 8, DISTTORCH_ZMQ_SHM_BYTES=str(SLOT))
    env.pop("DISTTORCH_ZMQ_SHM", None)
    env.pop("DISTTORCH_HOST_ID", None)
    env.update(extra)
    return env


def _start(scenario: str, n: int, envs: list) -> list:
    port = _free_port()
    return [subprocess.Popen([sys.executable, HERE, scenario, str(r), str(n), str(port)], env=envs[r],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
            for r in range(n)]


def _finish(procs: list, timeout: float) -> list:
    try:
        return [p.communicate(timeout=timeout) for p in procs]
    finally:
        _kill(procs)


def _kill(procs: list) -> None:
    for p in procs:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()


def _leftovers(outputs: list) -> list:
    token = next(line.split()[1] for out, _ in outputs for line in out.splitlines() if line.startswith("TOKEN"))
    return glob.glob(f"/dev/shm/disttorch-{token}-*")


def _skip_without_shm():
    from disttorch.distributed.backends import _shm_transport as shm

    if not shm.enabled():
        pytest.skip("the shared-memory path needs x86-64 Linux with /dev/shm")


@pytest.mark.timeout(120)
@pytest.mark.parametrize("n", [2, 3])
def test_collectives_over_shared_memory(n):
    _skip_without_shm()
    procs = _start("shm", n, [_env()] * n)
    outs = _finish(procs, 100)
    for r, (p, (out, err)) in enumerate(zip(procs, outs)):
        assert p.returncode == 0 and out.strip().endswith("OK"), f"rank {r} failed:\n{out}\n{err[-4000:]}"
    assert _leftovers(outs) == [], "segments left in /dev/shm after the group was shut down"


@pytest.mark.timeout(120)
def test_non_contiguous_tensors_through_the_api():
    _skip_without_shm()
    procs = _start("api", 2, [_env()] * 2)
    outs = _finish(procs, 100)
    for r, (p, (out, err)) in enumerate(zip(procs, outs)):
        assert p.returncode == 0 and out.strip().endswith("OK"), f"rank {r} failed:\n{out}\n{err[-4000:]}"


@pytest.mark.timeout(120)
def test_mixed_hosts_use_tcp_across_and_shared_memory_within():
    _skip_without_shm()
    envs = [_env(DISTTORCH_HOST_ID="host-a"), _env(DISTTORCH_HOST_ID="host-a"), _env(DISTTORCH_HOST_ID="host-b")]
    procs = _start("mixed", 3, envs)
    outs = _finish(procs, 100)
    for r, (p, (out, err)) in enumerate(zip(procs, outs)):
        assert p.returncode == 0 and out.strip().endswith("OK"), f"rank {r} failed:\n{out}\n{err[-4000:]}"
    assert _leftovers(outs) == []


@pytest.mark.timeout(120)
def test_ranks_that_disagree_on_the_segment_size_fall_back_to_tcp():
    _skip_without_shm()
    procs = _start("disagree", 2, [_env(), _env(DISTTORCH_ZMQ_SHM_BYTES=str(2 * SLOT))])
    outs = _finish(procs, 100)
    for r, (p, (out, err)) in enumerate(zip(procs, outs)):
        assert p.returncode == 0 and out.strip().endswith("OK"), f"rank {r} failed:\n{out}\n{err[-4000:]}"
    assert "uses TCP instead of shared memory" in outs[0][1] + outs[1][1]
    assert _leftovers(outs) == []


@pytest.mark.timeout(120)
def test_sigkilled_rank_leaves_no_segment_and_peer_fails_fast():
    _skip_without_shm()
    procs = _start("killed", 2, [_env()] * 2)
    try:
        deadline = time.monotonic() + 60
        line = ""
        while "READY" not in line:  # rank 1 prints READY once its group works
            assert time.monotonic() < deadline and procs[1].poll() is None, "rank 1 never got ready"
            line = procs[1].stdout.readline()
        os.kill(procs[1].pid, signal.SIGKILL)
        procs[1].wait(10)
        out0, err0 = procs[0].communicate(timeout=60)
    finally:
        _kill(procs)
    assert procs[0].returncode == 0 and out0.strip().endswith("OK"), f"rank 0 failed:\n{out0}\n{err0[-4000:]}"
    assert procs[1].returncode == -signal.SIGKILL
    assert _leftovers([(out0, "")]) == [], "a SIGKILLed rank left its segment in /dev/shm"


@pytest.mark.timeout(120)
def test_tcp_path_when_forced():
    """DISTTORCH_ZMQ_SHM=0: the same-host job runs every collective over TCP (the existing scenario of
    test_zmq_backend.py, with its exact checks)."""
    other = os.path.join(os.path.dirname(HERE), "test_zmq_backend.py")
    port = _free_port()
    env = _env(DISTTORCH_ZMQ_SHM="0", DISTTORCH_ZMQ_CHUNK_BYTES="65536")
    procs = [subprocess.Popen([sys.executable, other, "all", str(r), "3", str(port)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
             for r in range(3)]
    outs = _finish(procs, 100)
    for r, (p, (out, err)) in enumerate(zip(procs, outs)):
        assert p.returncode == 0 and out.strip().endswith("OK"), f"rank {r} failed:\n{out}\n{err[-4000:]}"


def test_segment_files_that_are_not_ours_are_refused():
    """A name taken before us makes ``create_own`` report it (the group then uses TCP), and a peer's file that
    others could read or write is refused, not mapped."""
    _skip_without_shm()
    import secrets

    from disttorch.distributed.backends import _shm_transport as shm

    prefix = f"disttorch-test{secrets.token_hex(6)}-0000000000000000"
    mine, peer = shm.ShmGroup(prefix, 0, [0, 1], SLOT, 1.0), shm.ShmGroup(prefix, 1, [0, 1], SLOT, 1.0)
    try:
        with open(mine.paths[0], "wb"):  # squatted name
            pass
        assert "cannot create" in mine.create_own("test") and mine.unlinked
        os.unlink(mine.paths[0])
        assert peer.create_own("test") == ""
        os.chmod(peer.paths[1], 0o644)
        assert mine.create_own("test") == ""
        with pytest.raises(RuntimeError, match="mode 644.*refusing"):
            mine.attach("test", time.monotonic() + 5)
        assert not os.path.exists(mine.paths[0]) and not os.path.exists(peer.paths[1])  # failed set-up cleans up
    finally:
        for path in mine.paths:
            if os.path.exists(path):
                os.unlink(path)


def test_host_identity_and_switches(monkeypatch):
    from disttorch.distributed.backends import _shm_transport as shm

    monkeypatch.delenv("DISTTORCH_HOST_ID", raising=False)
    ident = shm.host_identity()
    assert ident == shm.host_identity() and len(ident) == 32
    monkeypatch.setenv("DISTTORCH_HOST_ID", "elsewhere")
    assert shm.host_identity() == "elsewhere"
    monkeypatch.setenv("DISTTORCH_ZMQ_SHM", "0")
    assert not shm.enabled()
    monkeypatch.setenv("DISTTORCH_ZMQ_SHM_BYTES", "1000")
    with pytest.raises(ValueError, match="DISTTORCH_ZMQ_SHM_BYTES=1000"):
        shm.slot_bytes()


if __name__ == "__main__":
    _worker(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
