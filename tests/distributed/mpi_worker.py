"""Worker for tests/distributed/test_mpi_backend.py, run under ``mpiexec -n N``.

``python mpi_worker.py main``: every MPIProcessGroup method on rank-dependent data with exact expected values
(each rank can compute every other rank's input, so the expected result is a local NumPy reduction).
``python mpi_worker.py timeout``: rank 0 waits on collectives the other ranks never call.

Prints ``R<rank> <check> ok`` or ``R<rank> <check> FAIL <why>`` per check and ``R<rank> DONE <count>`` at the end.
"""
from __future__ import annotations

import functools
import os
import sys
import threading
import time
import traceback

import ml_dtypes
import numpy as np

from disttorch.distributed.backends import _mpi_types
from disttorch.distributed.backends import mpi as mpi_backend
from disttorch.distributed.backends.mpi import MPIProcessGroup
from disttorch.distributed.process_group import REDUCE_UFUNCS, ReduceOp

BF16 = np.dtype(ml_dtypes.bfloat16)
RANK = None
COUNT = 0


def report(name: str, fn) -> None:
    global COUNT
    COUNT += 1
    t0 = time.perf_counter()
    try:
        fn()
    except Exception as e:  # noqa: BLE001 - reported to the test, which fails on it
        detail = f"{type(e).__name__}: {e}".replace("\n", " | ")
        print(f"R{RANK} {name} FAIL {detail} @ {traceback.format_exc().splitlines()[-3].strip()}", flush=True)
    else:
        print(f"R{RANK} {name} ok {time.perf_counter() - t0:.3f}s", flush=True)


def equal(actual: np.ndarray, expected: np.ndarray) -> None:
    assert actual.dtype == expected.dtype, (actual.dtype, expected.dtype)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    assert np.array_equal(actual.reshape(-1).view(np.uint8), expected.reshape(-1).view(np.uint8)), (
        actual.ravel()[:8], expected.ravel()[:8])


def data(rank: int, shape, dtype, salt: int = 0) -> np.ndarray:
    """Small rank-dependent values, so sums and products are exact in every dtype used (a fresh copy)."""
    return _data(rank, shape if isinstance(shape, tuple) else (int(shape),), np.dtype(dtype), salt).copy()


@functools.lru_cache(maxsize=None)
def _data(rank: int, shape: tuple, dtype: np.dtype, salt: int) -> np.ndarray:
    n = int(np.prod(shape))
    k = np.arange(n, dtype=np.int64)
    if np.dtype(dtype) == np.bool_:
        return ((k + rank + salt) % 3 == 0).reshape(shape)
    v = (k * 7 + rank * 5 + salt) % 11 + rank + 1  # 1..(11+rank): products over <=3 ranks stay < 2**11
    if np.dtype(dtype).kind in "f" or np.dtype(dtype) == BF16:
        v = np.where(k % 4 == 1, -v, v)
    return v.astype(dtype).reshape(shape)


def expected_reduce(ins, op: ReduceOp) -> np.ndarray:
    dtype = ins[0].dtype
    if dtype == np.bool_:
        ufunc = {ReduceOp.SUM: np.logical_or, ReduceOp.AVG: np.logical_or, ReduceOp.MAX: np.logical_or,
                 ReduceOp.BOR: np.logical_or, ReduceOp.PRODUCT: np.logical_and, ReduceOp.MIN: np.logical_and,
                 ReduceOp.BAND: np.logical_and, ReduceOp.BXOR: np.logical_xor}[op]
    else:
        ufunc = REDUCE_UFUNCS[op]
    out = ins[0].copy()
    for a in ins[1:]:
        out = ufunc(out, a).astype(dtype)
    return out


FLOAT_OPS = [ReduceOp.SUM, ReduceOp.AVG, ReduceOp.PRODUCT, ReduceOp.MIN, ReduceOp.MAX]
ALL_OPS = FLOAT_OPS + [ReduceOp.BAND, ReduceOp.BOR, ReduceOp.BXOR]
DTYPE_OPS = [(np.float32, FLOAT_OPS), (np.float64, FLOAT_OPS), (np.int64, ALL_OPS), (np.int32, ALL_OPS),
             (np.uint8, [ReduceOp.SUM, ReduceOp.MAX, ReduceOp.BXOR]), (np.bool_, ALL_OPS),
             (np.float16, FLOAT_OPS), (BF16, [ReduceOp.SUM, ReduceOp.PRODUCT, ReduceOp.MIN, ReduceOp.MAX])]
BIG = 300_000


def check_allreduce(g) -> None:
    n, r = g.size, g.rank
    for dtype, ops in DTYPE_OPS:
        dtype = np.dtype(dtype)
        shapes = [(0,), (), (1,), (1000,)] + ([(BIG,)] if dtype.kind in "fb" or dtype == BF16 else [])
        for op in ops:
            def run(dtype=dtype, op=op):
                for shape in shapes:
                    arrays = [data(r, shape, dtype), data(r, (3, 2), dtype, salt=1)]  # a coalesced list
                    g.allreduce(arrays, op).wait()
                    equal(arrays[0], expected_reduce([data(q, shape, dtype) for q in range(n)], op))
                    equal(arrays[1], expected_reduce([data(q, (3, 2), dtype, salt=1) for q in range(n)], op))
            report(f"allreduce_{dtype.name}_{op.name}", run)

    def user_op_float16():  # the MPI.Op fallback for libraries without native short-float reductions
        saved, _mpi_types._F16 = _mpi_types._F16, None
        _mpi_types._REDUCTIONS.clear()
        shm, g._shm = g._shm, None  # through MPI, not the same-host segments (tests/distributed/test_mpi_fastpath.py)
        try:
            for op in (ReduceOp.SUM, ReduceOp.MAX):
                a = data(r, (BIG,), np.float16)
                g.allreduce([a], op).wait()
                equal(a, expected_reduce([data(q, (BIG,), np.float16) for q in range(n)], op))
            assert _mpi_types._REDUCTIONS[np.dtype(np.float16), ReduceOp.SUM][1] == mpi_backend.MPI.UINT16_T
        finally:
            _mpi_types._F16 = saved
            _mpi_types._REDUCTIONS.clear()
            g._shm = shm
    report("allreduce_float16_user_op", user_op_float16)

    def errors():
        for op in (ReduceOp.BAND, ReduceOp.BXOR):
            try:
                g.allreduce([np.ones(3, np.float32)], op)
            except RuntimeError as e:
                assert "non-integral" in str(e) and op.name in str(e), e
            else:
                raise AssertionError("float BAND accepted")
        try:
            g.allreduce([np.ones(3, np.float32)], ReduceOp.PREMUL_SUM)
        except ValueError as e:
            assert "PREMUL_SUM" in str(e)
        else:
            raise AssertionError("PREMUL_SUM accepted")
        try:
            g.allreduce([np.ones((4, 4), np.float32)[:, ::2]], ReduceOp.SUM)
        except ValueError as e:
            assert "C-contiguous" in str(e)
        else:
            raise AssertionError("non-contiguous accepted")
    report("allreduce_errors", errors)


def check_movement(g, tag: str) -> None:
    """broadcast, reduce, all_gather, reduce_scatter, gather, scatter, all_to_all, barrier on group ``g``."""
    n, r = g.size, g.rank
    dtypes = [np.float32, np.int64, np.bool_, np.float16, BF16]

    def broadcast():
        for src in range(n):
            for dtype in dtypes:
                arrays = [data(r, s, dtype, salt=src) for s in [(0,), (), (1000,), (BIG,)]]
                g.broadcast(arrays, src).wait()
                for a, s in zip(arrays, [(0,), (), (1000,), (BIG,)]):
                    equal(a, data(src, s, dtype, salt=src))
    report(f"{tag}_broadcast", broadcast)

    def reduce():
        for dst in range(n):
            for dtype, op in [(np.float64, ReduceOp.SUM), (np.int64, ReduceOp.BXOR), (np.float32, ReduceOp.MIN),
                              (np.bool_, ReduceOp.SUM), (BF16, ReduceOp.SUM)]:
                for shape in [(0,), (), (1000,)]:
                    a = data(r, shape, dtype, salt=dst)
                    g.reduce(a, dst, op).wait()
                    if r == dst:
                        equal(a, expected_reduce([data(q, shape, dtype, salt=dst) for q in range(n)], op))
    report(f"{tag}_reduce", reduce)

    def allgather():
        for dtype in dtypes:
            for shape in [(0,), (), (5,), (BIG,)]:
                expect = [data(q, shape, dtype) for q in range(n)]
                outs = [np.full(shape, 9, dtype) for _ in range(n)]  # separate arrays: staged
                g.allgather(outs, data(r, shape, dtype)).wait()
                for o, e in zip(outs, expect):
                    equal(o, e)
                flat = np.zeros((n,) + shape, dtype)  # back-to-back views of one buffer: no staging
                g.allgather([flat[q, ...] for q in range(n)], data(r, shape, dtype)).wait()
                equal(flat, np.stack(expect))
        expect = [data(q, (q + 1, 2), np.int64) for q in range(n)]  # uneven: Allgatherv
        outs = [np.zeros((q + 1, 2), np.int64) for q in range(n)]
        g.allgather(outs, data(r, (r + 1, 2), np.int64)).wait()
        for o, e in zip(outs, expect):
            equal(o, e)
    report(f"{tag}_allgather", allgather)

    def reduce_scatter():
        for dtype, op in [(np.float32, ReduceOp.SUM), (np.int64, ReduceOp.BOR), (np.bool_, ReduceOp.PRODUCT),
                          (np.float16, ReduceOp.MAX), (BF16, ReduceOp.SUM)]:
            for m in (0, 1, 1000):
                ins = [data(r, (m,), dtype, salt=d) for d in range(n)]
                out = np.zeros((m,), dtype)
                g.reduce_scatter(out, ins, op).wait()
                equal(out, expected_reduce([data(q, (m,), dtype, salt=r) for q in range(n)], op))
                big = np.stack([data(r, (m,), dtype, salt=d) for d in range(n)])  # back to back
                out = np.zeros((m,), dtype)
                g.reduce_scatter(out, list(big), op).wait()
                equal(out, expected_reduce([data(q, (m,), dtype, salt=r) for q in range(n)], op))
        ins = [data(r, (d + 2,), np.int64, salt=d) for d in range(n)]  # uneven counts
        out = np.zeros((r + 2,), np.int64)
        g.reduce_scatter(out, ins, ReduceOp.SUM).wait()
        equal(out, expected_reduce([data(q, (r + 2,), np.int64, salt=r) for q in range(n)], ReduceOp.SUM))
    report(f"{tag}_reduce_scatter", reduce_scatter)

    def gather():
        for dst in range(n):
            for dtype in dtypes:
                for shape in [(0,), (), (1000,)]:
                    outs = [np.zeros(shape, dtype) for _ in range(n)] if r == dst else None
                    g.gather(outs, data(r, shape, dtype, salt=dst), dst).wait()
                    if r == dst:
                        for q, o in enumerate(outs):
                            equal(o, data(q, shape, dtype, salt=dst))
            outs = list(np.zeros((n, 4), np.float64)) if r == dst else None
            g.gather(outs, data(r, (4,), np.float64), dst).wait()
            if r == dst:
                equal(np.stack(outs), np.stack([data(q, (4,), np.float64) for q in range(n)]))
            outs = [np.zeros((q + 1,), np.float32) for q in range(n)] if r == dst else None  # uneven
            g.gather(outs, data(r, (r + 1,), np.float32), dst).wait()
            if r == dst:
                for q, o in enumerate(outs):
                    equal(o, data(q, (q + 1,), np.float32))
    report(f"{tag}_gather", gather)

    def scatter():
        for src in range(n):
            for dtype in dtypes:
                for shape in [(0,), (), (1000,)]:
                    ins = [data(src, shape, dtype, salt=d) for d in range(n)] if r == src else None
                    out = np.zeros(shape, dtype)
                    g.scatter(out, ins, src).wait()
                    equal(out, data(src, shape, dtype, salt=r))
            ins = list(np.stack([data(src, (d + 1,), np.int64)[:1] for d in range(n)])) if r == src else None
            out = np.zeros((1,), np.int64)
            g.scatter(out, ins, src).wait()
            equal(out, data(src, (r + 1,), np.int64)[:1])
            ins = [data(src, (d + 1,), np.int64) for d in range(n)] if r == src else None  # uneven
            out = np.zeros((r + 1,), np.int64)
            g.scatter(out, ins, src).wait()
            equal(out, data(src, (r + 1,), np.int64))
    report(f"{tag}_scatter", scatter)

    def alltoall():
        for dtype in dtypes:
            ins = [data(r, (r + d) % 3, dtype, salt=d) for d in range(n)]  # sizes 0..2, uneven
            outs = [np.zeros((q + r) % 3, dtype) for q in range(n)]
            g.alltoall(outs, ins).wait()
            for q, o in enumerate(outs):
                equal(o, data(q, (q + r) % 3, dtype, salt=r))
            ins = np.stack([data(r, (1000,), dtype, salt=d) for d in range(n)])  # even, back to back
            outs = np.zeros((n, 1000), dtype)
            g.alltoall(list(outs), list(ins)).wait()
            equal(outs, np.stack([data(q, (1000,), dtype, salt=r) for q in range(n)]))
    report(f"{tag}_alltoall", alltoall)

    def barrier():
        for _ in range(3):
            g.barrier().wait()
    report(f"{tag}_barrier", barrier)


def check_p2p(g) -> None:
    n, r = g.size, g.rank
    right, left = (r + 1) % n, (r - 1) % n

    def ring_send_first():  # both ranks send first: must not deadlock even for large messages
        for dtype in (np.float32, np.bool_, BF16):
            for shape in [(0,), (), (BIG,)]:
                out = np.zeros(shape, dtype)
                ws = g.send(data(r, shape, dtype), right, tag=3)
                wr = g.recv(out, left, tag=3)
                ws.wait()
                assert wr.wait() is True and wr.result() == left, wr.result()
                equal(out, data(left, shape, dtype))
    report("p2p_ring", ring_send_first)

    def tags_and_any_source():
        if r == 0:
            got = {}
            for _ in range(n - 1):
                buf = np.zeros(4, np.int64)
                w = g.recv(buf, None, tag=7)
                w.wait()
                got[w.result()] = buf.copy()
            assert sorted(got) == list(range(1, n)), sorted(got)
            for q, buf in got.items():
                equal(buf, data(q, (4,), np.int64, salt=7))
            a, b = np.zeros(3, np.float64), np.zeros(3, np.float64)
            wb = g.recv(b, 1, tag=2)  # posted first, matched by tag not order
            wa = g.recv(a, 1, tag=1)
            wb.wait()
            wa.wait()
            equal(a, data(1, (3,), np.float64, salt=1))
            equal(b, data(1, (3,), np.float64, salt=2))
        else:
            g.send(data(r, (4,), np.int64, salt=7), 0, tag=7).wait()
            if r == 1:
                g.send(data(1, (3,), np.float64, salt=1), 0, tag=1).wait()
                g.send(data(1, (3,), np.float64, salt=2), 0, tag=2).wait()
    report("p2p_tags_any_source", tags_and_any_source)

    def completed_by_callbacks():  # nobody waits: then() callbacks must still fire (the API layer relies on it)
        for shape in [(3,), (BIG,)]:
            out = np.zeros(shape, np.float32)
            got, recv_done, send_done = [], threading.Event(), threading.Event()
            g.recv(out, None, tag=5).then(lambda w: (got.append(w.result()), recv_done.set()))
            g.send(data(r, shape, np.float32, salt=5), right, tag=5).then(lambda w: send_done.set())
            assert recv_done.wait(20) and send_done.wait(20), "p2p then() callbacks did not fire"
            assert got == [left], got
            equal(out, data(left, shape, np.float32, salt=5))
    report("p2p_then", completed_by_callbacks)


def check_async(g, tag: str) -> None:
    n, r = g.size, g.rank

    def overlap():
        arrays = [data(r, (BIG,), np.float32, salt=s) for s in range(3)]
        works = [g.allreduce([a], ReduceOp.SUM) for a in arrays]
        seen = []
        works[0].then(lambda w: seen.append(w.is_completed()))
        # the communication thread completes the work while this thread computes: no wait() called
        deadline = time.monotonic() + 20
        m = np.ones((64, 64))
        while not works[-1].is_completed():
            m = np.tanh(m @ m.T / 64)
            assert time.monotonic() < deadline, "async all_reduce made no progress without wait()"
        for w in reversed(works):
            w.wait()
        assert seen == [True], seen
        for s, a in enumerate(arrays):
            equal(a, expected_reduce([data(q, (BIG,), np.float32, salt=s) for q in range(n)], ReduceOp.SUM))
    report(f"{tag}_async_overlap", overlap)

    def wait_out_of_order():  # waited last-first: the fast path must not run a later collective early
        arrays = [data(r, (1000,), np.int64, salt=s) for s in range(6)]
        works = [g.allreduce([a], ReduceOp.BXOR) if s % 2 else g.broadcast([a], s % n) for s, a in enumerate(arrays)]
        for w in reversed(works):
            w.wait()
        for s, a in enumerate(arrays):
            if s % 2:
                equal(a, expected_reduce([data(q, (1000,), np.int64, salt=s) for q in range(n)], ReduceOp.BXOR))
            else:
                equal(a, data(s % n, (1000,), np.int64, salt=s))
    report(f"{tag}_async_out_of_order", wait_out_of_order)

    def blocked_elsewhere():  # rank 0 blocks outside the backend before waiting: its collective must still run
        a = data(r, (1000,), np.float64)
        w = g.allreduce([a], ReduceOp.SUM)
        raw = mpi_backend.MPI.COMM_WORLD
        if r == 0:
            raw.Barrier()  # the others arrive only once the all_reduce has completed everywhere
            w.wait()
        else:
            w.wait()
            raw.Barrier()
        equal(a, expected_reduce([data(q, (1000,), np.float64) for q in range(n)], ReduceOp.SUM))
    report(f"{tag}_async_blocked_elsewhere", blocked_elsewhere)


def check_verify(g) -> None:
    def same():
        g.verify("seq=1 all_reduce(float32[4], SUM)")
    report("verify_same", same)

    def mismatch():
        call = "seq=2 broadcast(int64[3], src=0)" if g.rank == g.size - 1 else "seq=2 all_reduce(float32[4], SUM)"
        try:
            g.verify(call)
        except RuntimeError as e:
            assert "Mismatched" in str(e) and "broadcast(int64[3]" in str(e) and "all_reduce(float32[4]" in str(e), e
        else:
            raise AssertionError("mismatch not detected")
    report("verify_mismatch", mismatch)


def check_subgroups(world) -> None:
    n, r = world.size, world.rank
    specs = [[1, 0], [n - 1]] if n == 2 else [[0, 2], [2, 1]]
    groups = [world.new_subgroup(ranks) for ranks in specs]

    def membership():
        for ranks, sub in zip(specs, groups):
            if r not in ranks:
                assert sub is None
                continue
            assert sub.rank == ranks.index(r) and sub.size == len(ranks), (sub.rank, sub.size)
            assert sub.global_ranks == ranks, sub.global_ranks
    report("subgroup_membership", membership)

    def collectives():
        for ranks, sub in zip(specs, groups):
            if sub is None:
                continue
            a = data(r, (1000,), np.int64)
            sub.allreduce([a], ReduceOp.SUM).wait()
            equal(a, expected_reduce([data(q, (1000,), np.int64) for q in ranks], ReduceOp.SUM))
            b = data(r, (7,), np.float32)
            sub.broadcast([b], len(ranks) - 1).wait()  # group rank -> global rank ranks[-1]
            equal(b, data(ranks[-1], (7,), np.float32))
            if len(ranks) > 1:
                out = np.zeros(5, np.float64)
                peer = (sub.rank + 1) % sub.size
                ws = sub.send(data(r, (5,), np.float64), peer, tag=4)
                w = sub.recv(out, None, tag=4)
                w.wait()
                ws.wait()
                src = (sub.rank - 1) % sub.size
                assert w.result() == src, w.result()
                equal(out, data(ranks[src], (5,), np.float64))
        world.barrier().wait()
    report("subgroup_collectives", collectives)

    def concurrent():  # async on a subgroup and on the world interleaved: separate communicators and threads
        sub = groups[0]
        a = data(r, (BIG,), np.float32)
        w1 = sub.allreduce([a], ReduceOp.MAX) if sub is not None else None
        b = data(r, (1000,), np.float64)
        world.allreduce([b], ReduceOp.SUM).wait()
        if w1 is not None:
            w1.wait()
            equal(a, expected_reduce([data(q, (BIG,), np.float32) for q in specs[0]], ReduceOp.MAX))
        equal(b, expected_reduce([data(q, (1000,), np.float64) for q in range(n)], ReduceOp.SUM))
    report("subgroup_concurrent", concurrent)

    def errors():
        try:
            world.new_subgroup([0, 0])
        except ValueError as e:
            assert "distinct" in str(e)
        else:
            raise AssertionError("duplicate ranks accepted")
    report("subgroup_errors", errors)
    for sub in groups:
        if sub is not None:
            sub.shutdown()


def check_create() -> None:
    n = mpi_backend.MPI.COMM_WORLD.Get_size()

    def env_mismatch():
        os.environ["RANK"], os.environ["WORLD_SIZE"] = str(RANK), str(n + 1)
        try:
            MPIProcessGroup.create(None, -1, -1, 5.0, {})
        except ValueError as e:
            assert f"WORLD_SIZE (environment) is {n + 1}" in str(e) and f"world size {n}" in str(e), e
        else:
            raise AssertionError("WORLD_SIZE mismatch accepted")
        finally:
            del os.environ["RANK"], os.environ["WORLD_SIZE"]
        try:
            MPIProcessGroup.create(None, (RANK + 1) % n, n, 5.0, {})
        except ValueError as e:
            assert "rank argument" in str(e) and f"rank {RANK} of" in str(e), e
        else:
            raise AssertionError("rank mismatch accepted")
    report("create_mismatch", env_mismatch)

    def thread_level():
        assert mpi_backend.MPI.Query_thread() == mpi_backend.MPI.THREAD_MULTIPLE
    report("thread_multiple", thread_level)


def main() -> None:
    global RANK
    os.environ["RANK"] = str(mpi_backend.MPI.COMM_WORLD.Get_rank())  # agrees with MPI: accepted
    world = MPIProcessGroup.create(None, -1, -1, float(os.environ.get("WORKER_TIMEOUT", 60)), {})
    del os.environ["RANK"]
    RANK = world.rank
    threaded = MPIProcessGroup.create(None, world.rank, world.size, 60.0, {"inline_sync": False})
    check_create()
    check_allreduce(world)
    check_movement(world, "world")
    check_movement(threaded, "threaded")
    check_p2p(world)
    check_async(world, "world")
    check_async(threaded, "threaded")
    check_verify(world)
    check_subgroups(world)
    threaded.shutdown()
    world.shutdown()

    def after_shutdown():
        try:
            world.barrier()
        except RuntimeError as e:
            assert "shut down" in str(e)
        else:
            raise AssertionError("barrier after shutdown accepted")
    report("after_shutdown", after_shutdown)
    print(f"R{RANK} DONE {COUNT}", flush=True)


def timeout() -> None:
    """Rank 0 waits on collectives the others never call: first through the thread (RuntimeError), then on the
    fast path (the watchdog prints the error and aborts the job)."""
    global RANK
    threaded = MPIProcessGroup.create(None, -1, -1, 60.0, {"inline_sync": False})
    inline = MPIProcessGroup.create(None, -1, -1, 1.0, {})
    RANK = threaded.rank
    if RANK != 0:
        print(f"R{RANK} DONE 0", flush=True)
        return

    def raises():
        w = threaded.allreduce([np.ones(4, np.float32)], ReduceOp.SUM)
        try:
            w.wait(0.5)
        except RuntimeError as e:
            msg = str(e)
            assert "all_reduce(SUM)" in msg and "rank 0" in msg and "did not join" in msg and "abort" in msg, msg
        else:
            raise AssertionError("no timeout")
        try:
            threaded.barrier()
        except RuntimeError as e:
            assert "broken" in str(e), e
        else:
            raise AssertionError("broken group accepted a barrier")
    report("timeout_raises", raises)
    print(f"R{RANK} DONE {COUNT}", flush=True)
    inline.allreduce([np.ones(4, np.float32)], ReduceOp.SUM).wait()  # never joined: the watchdog aborts the job
    print(f"R{RANK} NOT ABORTED", flush=True)


if __name__ == "__main__":
    {"main": main, "timeout": timeout}[sys.argv[1]]()
