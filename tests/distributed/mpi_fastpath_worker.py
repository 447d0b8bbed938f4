"""One rank of tests/distributed/test_mpi_fastpath.py, run under ``mpiexec -n 2``.

Checks the mpi backend's cheap per-call path: the lazily created completion flag and callback list of its
Work handles (another thread waiting, callbacks before and after completion, failures), the in-place
all-reduce on the caller's own array, and, through ``dist.all_reduce``, that the cached fingerprint pieces
(signatures, digests, accepted reduce ops) still catch mismatched calls, with the check run inside the
collective's own work (``verify_digest``). Every check records "ok" or its
traceback in ``<out>/rank<R>.json``; a failing check does not stop the others.
"""
from __future__ import annotations

import argparse
import json
import threading
import time
import traceback
from datetime import timedelta
from pathlib import Path

import numpy as np

import disttorch as torch
import disttorch.distributed as dist
from disttorch.distributed.backends import _mpi_work
from disttorch.distributed.backends.mpi import MPI, SHM_MIN_BYTES, MPIProcessGroup
from disttorch.distributed.groups import world
from disttorch.distributed.process_group import ReduceOp

RESULTS: dict = {}
DEADLINE_S = 20.0


def check(fn):
    try:
        fn()
        RESULTS[fn.__name__] = "ok"
    except Exception:  # noqa: BLE001 - reported to the test, which fails on it
        RESULTS[fn.__name__] = traceback.format_exc()
    return fn


def poll(predicate, what: str) -> None:
    """Wait for ``predicate()`` with a deadline (no sleeping as synchronisation: this polls a condition)."""
    deadline = time.monotonic() + DEADLINE_S
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.001)


def _world_group() -> MPIProcessGroup:
    pg = world.default._pg
    assert isinstance(pg, MPIProcessGroup), type(pg)
    return pg


def ranked(rank: int, n: int = 1000, salt: int = 0) -> np.ndarray:
    return (np.arange(n, dtype=np.float64) * (rank + 1) + salt).astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    world = MPI.COMM_WORLD
    rank, size = world.Get_rank(), world.Get_size()
    inline = MPIProcessGroup.create(None, -1, -1, 30.0, {})
    threaded = MPIProcessGroup.create(None, -1, -1, 30.0, {"inline_sync": False})
    expected_sum = sum(ranked(r) for r in range(size))

    @check
    def second_thread_waits_while_first_runs():
        # rank 0: thread B claims and runs the call (blocked until rank 1 joins), the main thread waits on
        # the same Work through its lazily created flag; rank 1 joins only once that is the case
        a = ranked(rank)
        if rank == 0:
            w = inline.allreduce([a], ReduceOp.SUM)
            errors = []
            b = threading.Thread(target=lambda: errors.append(w.wait()))
            b.start()
            poll(lambda: w._state != _mpi_work._QUEUED, "thread B to claim the all_reduce")
            assert w._state == _mpi_work._RUNNING, w._state
            waiter = threading.Thread(target=lambda: errors.append(w.wait()))
            waiter.start()
            poll(lambda: w._flag is not None, "the second waiter to block on the work's flag")
            world.Send(np.ones(1, np.int32), dest=1, tag=7)
            assert w.wait() is True
            b.join(DEADLINE_S)
            waiter.join(DEADLINE_S)
            assert errors == [True, True], errors
        else:
            go = np.zeros(1, np.int32)
            world.Recv(go, source=0, tag=7)
            assert go[0] == 1
            inline.allreduce([a], ReduceOp.SUM).wait()
        assert np.array_equal(a, expected_sum)

    @check
    def callbacks_before_and_after_completion():
        for g in (inline, threaded):
            a = ranked(rank, salt=3)
            seen, fired = [], threading.Event()
            w = g.allreduce([a], ReduceOp.SUM)
            w.then(lambda work: (seen.append(("before", work.is_completed(), work.exception())), fired.set()))
            assert fired.wait(DEADLINE_S), "then() registered before completion did not fire"
            w.wait()
            w.then(lambda work: seen.append(("after", work.is_completed(), work.exception())))
            assert seen == [("before", True, None), ("after", True, None)], seen
            assert w.is_success()
            assert np.array_equal(a, sum(ranked(r, salt=3) for r in range(size)))

    @check
    def failure_reaches_waiter_and_callbacks_and_frees_group():
        for g in (inline, threaded):
            boom = ValueError("boom from the MPI call")

            def fail():
                raise boom
            w = g._submit("failing_call", fail)
            got = []
            w.then(lambda work: got.append(work.exception()))
            try:
                w.wait()
            except ValueError as e:
                assert e is boom
            else:
                raise AssertionError("wait() did not raise the call's error")
            poll(lambda: got, "the then() callback of a failed work")
            assert got == [boom] and not w.is_success() and w.exception() is boom
            a = ranked(rank)
            g.allreduce([a], ReduceOp.SUM).wait()  # the group is free again
            assert np.array_equal(a, expected_sum)

    @check
    def in_place_on_the_callers_array():
        for dtype in (np.float32, np.float64, np.int64):
            a = ranked(rank).astype(dtype)
            w = inline.allreduce([a], ReduceOp.SUM)
            handed = w._args[1][0]  # the buffer given to MPI: the caller's array itself, no copy or view
            assert handed is a, type(handed)
            w.wait()
            assert np.array_equal(a, sum(ranked(r).astype(dtype) for r in range(size)))

    @check
    def digest_check_on_either_thread():
        """verify_digest's check rides on the next collective whether the caller or the communication thread
        runs it: equal digests pass, a differing one fails that collective on every rank before data moves."""
        for g in (inline, threaded):
            a = ranked(rank)
            g.verify_digest(12345, "seq=1 all_reduce(float32[1000], SUM)")
            g.allreduce([a], ReduceOp.SUM).wait()
            assert np.array_equal(a, expected_sum)
            a = ranked(rank)
            g.verify_digest(777 + rank, f"seq=2 all_reduce(float32[1000], SUM) on {rank}")
            w = g.allreduce([a], ReduceOp.SUM)
            try:
                w.wait()
            except RuntimeError as e:
                assert "Mismatched" in str(e) and "on 0" in str(e) and "on 1" in str(e), str(e)
            else:
                raise AssertionError("differing digests not detected")
            assert np.array_equal(a, ranked(rank)), "data moved despite the mismatch"
            b = ranked(rank)
            g.allreduce([b], ReduceOp.SUM).wait()  # no check pending: the group goes on
            assert np.array_equal(b, expected_sum)

    threaded.shutdown()
    inline.shutdown()

    dist.init_process_group("mpi")

    @check
    def api_mismatch_caught_with_warm_caches():
        shapes = [(4,), (5,)]
        for shape in shapes:  # every signature, digest and op check is cached on both ranks first
            for op in (ReduceOp.SUM, ReduceOp.MAX):
                t = torch.ones(shape)
                dist.all_reduce(t, op=op)
        for differ in ("shape", "op"):
            shape = shapes[rank % 2] if differ == "shape" else shapes[0]
            op = (ReduceOp.SUM, ReduceOp.MAX)[rank % 2] if differ == "op" else ReduceOp.SUM
            try:
                dist.all_reduce(torch.ones(shape), op=op)
            except RuntimeError as e:
                text = str(e)
                assert "Mismatched" in text, text
                assert ("float32[4]" in text and "float32[5]" in text) if differ == "shape" else \
                    ("SUM" in text and "MAX" in text), text
            else:
                raise AssertionError(f"mismatched {differ} not detected")
        t = torch.from_numpy(ranked(rank))
        version = t._version
        dist.all_reduce(t)  # the group still works, results and version counter as before
        assert np.array_equal(t.numpy(), expected_sum) and t._version == version + 1

    @check
    def api_check_runs_inside_the_collective():
        """The check is one 16-byte MPI all-reduce inside the collective's own work: a synchronous call is run
        at once on the caller's thread (never queued) and no second collective goes through the backend."""
        pg = _world_group()
        submitted, real_submit = [], pg._submit
        pg._submit = lambda *a: (submitted.append(a[0]), real_submit(*a))[1]
        try:
            t = torch.from_numpy(ranked(rank))
            dist.all_reduce(t)
        finally:
            del pg._submit
        assert submitted == ["all_reduce(SUM)"], submitted
        assert np.array_equal(t.numpy(), expected_sum)
        assert pg._check_next is None and not pg._pending and not pg._busy

    @check
    def new_group_timeout_reaches_the_backend():
        """A synchronous call on an idle group runs inline, watched with the backend's timeout: new_group's."""
        sub = dist.new_group([0, 1], timeout=timedelta(seconds=17))
        assert sub._pg.timeout == 17.0, sub._pg.timeout
        seen = []
        real = sub._pg._submit

        def spy(*a):
            work = real(*a)
            seen.append(work._state)
            return work
        sub._pg._submit = spy
        t = torch.from_numpy(ranked(rank))
        dist.all_reduce(t, group=sub)
        del sub._pg._submit
        assert seen == [_mpi_work._DONE] and np.array_equal(t.numpy(), expected_sum)

    @check
    def api_mismatched_kinds_fail_before_data_moves():
        """all_reduce on one rank, broadcast on the other: every rank raises, naming both calls, and the
        tensors are untouched (the check runs before the collective's data call)."""
        t = torch.from_numpy(ranked(rank))
        before = t.numpy().copy()
        try:
            if rank == 0:
                dist.all_reduce(t)
            else:
                dist.broadcast(t, src=0)
        except RuntimeError as e:
            text = str(e)
            assert "Mismatched" in text and "all_reduce(float32[1000]" in text and "broadcast(float32[1000]" in text, \
                text
        else:
            raise AssertionError("all_reduce against broadcast not detected")
        assert np.array_equal(t.numpy(), before)
        t = torch.from_numpy(ranked(rank))
        dist.all_reduce(t)  # the group still works
        assert np.array_equal(t.numpy(), expected_sum)

    @check
    def failed_launch_drops_the_pending_check():
        """A collective whose backend call raises before submitting keeps no check for the next collective."""
        pg = _world_group()

        def refuse(*a, **k):
            raise TypeError("refused by the test")
        pg.allreduce = refuse
        try:
            dist.all_reduce(torch.ones(3))
        except TypeError:
            pass
        else:
            raise AssertionError("the patched backend call did not raise")
        finally:
            del pg.allreduce
        assert pg._check_next is None
        t = torch.from_numpy(ranked(rank))
        dist.all_reduce(t)
        assert np.array_equal(t.numpy(), expected_sum)

    @check
    def large_all_reduce_through_shared_memory():
        """Both ranks share this host: large all-reduces take the segments, equal to MPI's own results."""
        pg = _world_group()
        assert pg._shm is not None, "no shared-memory state on a single-host world"
        n = SHM_MIN_BYTES // 4 + 3
        calls = []
        real = pg._shm.allreduce
        pg._shm.allreduce = lambda *a: (calls.append(1), (yield from real(*a)))[1]
        try:
            for dtype, op in ((np.float32, ReduceOp.SUM), (np.float64, ReduceOp.MAX), (np.int64, ReduceOp.SUM),
                              (np.float32, ReduceOp.AVG)):
                mine = (np.arange(n) % 1000 * (rank + 1) + rank).astype(dtype)
                ref = mine.copy()
                pg.allreduce([mine], op).wait()
                shm_state, pg._shm = pg._shm, None  # MPI's own all-reduce of the same data, as the reference
                try:
                    pg.allreduce([ref], op).wait()
                finally:
                    pg._shm = shm_state
                assert np.array_equal(mine, ref), (dtype, op)
            assert len(calls) == 4, calls
            small = np.ones(16, np.float32)
            pg.allreduce([small], ReduceOp.SUM).wait()  # below the threshold: MPI
            assert len(calls) == 4 and np.all(small == 2)
        finally:
            pg._shm.allreduce = real

    @check
    def shared_memory_mismatch_fails_instead_of_hanging():
        pg = _world_group()
        n = SHM_MIN_BYTES // 4 + 1000 * rank  # different sizes on the two ranks
        try:
            pg.allreduce([np.ones(n, np.float32)], ReduceOp.SUM).wait(timeout=DEADLINE_S)
        except RuntimeError as e:
            assert "Mismatched" in str(e) or "broken" in str(e), str(e)
        else:
            raise AssertionError("a mismatched large all-reduce was not detected")

    dist.destroy_process_group()
    Path(args.out, f"rank{rank}.json").write_text(json.dumps({"results": RESULTS}))


if __name__ == "__main__":
    main()
