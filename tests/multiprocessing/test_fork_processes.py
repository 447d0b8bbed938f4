"""Tensors shared with forked children (the default start method on Linux) and spawn's error propagation.

Every test ends the processes it started by pid (``_end``) and waits with deadlines, never with sleeps.
"""
from __future__ import annotations

import os
import signal
import time

import numpy as np
import pytest

import disttorch as torch
import disttorch.multiprocessing as mp

pytestmark = pytest.mark.timeout(120)
CTX = mp.get_context("fork")
N = 200  # updates per process


def _end(procs) -> None:
    for p in procs:
        if p.pid is not None and p.is_alive():
            p.kill()  # SIGKILL to this pid
        p.join(timeout=10)


def _add_into(rank, t, lock, n, barrier, results):
    for _ in range(n):
        with lock:
            t.add_(1.0)
    barrier.wait(timeout=60)  # both done: each must now see the other's n additions
    results.put((rank, t.tolist()))


def test_two_processes_add_under_a_lock_and_see_each_others_writes():
    t = torch.zeros(3).share_memory_()
    lock, barrier, results = CTX.Lock(), CTX.Barrier(2), CTX.Queue()
    procs = [CTX.Process(target=_add_into, args=(r, t, lock, N, barrier, results)) for r in range(2)]
    try:
        for p in procs:
            p.start()
        seen = dict(results.get(timeout=60) for _ in procs)
        for p in procs:
            p.join(timeout=60)
            assert p.exitcode == 0
    finally:
        _end(procs)
    assert seen == {0: [2.0 * N] * 3, 1: [2.0 * N] * 3}
    assert t.tolist() == [2.0 * N] * 3


def test_unshared_tensor_passed_to_a_forked_child_is_a_private_copy():
    t = torch.zeros(3)  # not shared: fork gives the child a copy-on-write copy, as in PyTorch
    procs = [CTX.Process(target=_add_into, args=(0, t, CTX.Lock(), 5, CTX.Barrier(1), CTX.Queue()))]
    try:
        procs[0].start()
        procs[0].join(timeout=60)
        assert procs[0].exitcode == 0
    finally:
        _end(procs)
    assert t.tolist() == [0.0, 0.0, 0.0]


def _receive_and_update(inbox, outbox):
    t, model = inbox.get(timeout=60)
    t.mul_(2.0)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    outbox.put((t.is_shared(), all(p.is_shared() for p in model.parameters()), t.sum().item()))
    inbox.get(timeout=60)  # stay alive until the parent has what it needs


def test_queue_moves_an_unshared_tensor_and_a_module_to_shared_memory():
    t = torch.arange(6.).reshape(2, 3)  # not shared before put: PyTorch moves it on put
    model = torch.nn.Linear(2, 2)
    before = [p.detach().clone() for p in model.parameters()]
    inbox, outbox = CTX.Queue(), CTX.Queue()
    procs = [CTX.Process(target=_receive_and_update, args=(inbox, outbox))]
    try:
        procs[0].start()
        inbox.put((t, model))
        child_t_shared, child_params_shared, child_sum = outbox.get(timeout=60)
        inbox.put(None)
        procs[0].join(timeout=60)
        assert procs[0].exitcode == 0
    finally:
        _end(procs)
    assert child_t_shared and child_params_shared and child_sum == 30.0
    assert t.is_shared()
    np.testing.assert_array_equal(t.numpy(), 2 * np.arange(6.).reshape(2, 3))
    for p, b in zip(model.parameters(), before):
        np.testing.assert_allclose(p.detach().numpy(), b.numpy() + 1.0)


def _write_through_views(inbox, outbox):
    base, row, col_t = inbox.get(timeout=60)
    from disttorch.multiprocessing import _segments

    same = _segments.segment_of(row._data) is _segments.segment_of(base._data) is _segments.segment_of(col_t._data)
    row.fill_(-1.0)  # base[1]
    col_t[0, 2] = 99.0  # base[2, 0]
    outbox.put((same, row.shape == (4,), col_t.stride()))
    inbox.get(timeout=60)


def test_views_cross_with_their_offset_and_strides_into_one_mapping():
    base = torch.arange(12.).reshape(3, 4)
    inbox, outbox = CTX.Queue(), CTX.Queue()
    procs = [CTX.Process(target=_write_through_views, args=(inbox, outbox))]
    try:
        procs[0].start()
        inbox.put((base, base[1], base.t()))
        same, shape_ok, strides = outbox.get(timeout=60)
        inbox.put(None)
        procs[0].join(timeout=60)
    finally:
        _end(procs)
    assert same and shape_ok and tuple(strides) == (1, 4)
    ref = np.arange(12.).reshape(3, 4)
    ref[1] = -1.0
    ref[2, 0] = 99.0
    np.testing.assert_array_equal(base.numpy(), ref)


def _send_and_exit(q):
    q.put(torch.ones(3))
    q.close()
    q.join_thread()  # the message is in the pipe; this process then exits before anyone received it


def test_receiving_from_a_sender_that_already_exited_names_the_cause():
    q = CTX.Queue()
    procs = [CTX.Process(target=_send_and_exit, args=(q,))]
    try:
        procs[0].start()
        procs[0].join(timeout=60)
        assert procs[0].exitcode == 0
        with pytest.raises(RuntimeError, match=rf"sent by process {procs[0].pid} .*the sender must stay alive"):
            q.get(timeout=60)
    finally:
        _end(procs)


def _pipe_child(conn):
    t = conn.recv()
    t.fill_(7.0)
    conn.send("done")
    conn.recv()


def test_pipe_sends_shared_memory():
    parent, child = CTX.Pipe()
    t = torch.zeros(4)
    procs = [CTX.Process(target=_pipe_child, args=(child,))]
    try:
        procs[0].start()
        parent.send(t)
        assert parent.poll(60) and parent.recv() == "done"
        parent.send(None)
        procs[0].join(timeout=60)
    finally:
        _end(procs)
    assert t.tolist() == [7.0] * 4


def _sum_times(t, k):
    return float(t.sum().item()) * k


def test_pool_map_receives_tensors():
    with CTX.Pool(2) as pool:
        try:
            out = pool.starmap(_sum_times, [(torch.full((3,), float(i)), i) for i in range(4)])
        finally:
            pool.terminate()
            pool.join()
    assert out == [3.0 * i * i for i in range(4)]


# ---- Hogwild: a shared model trained by two processes without locks converges --------------------
def _hogwild_train(rank, model, x, y, steps):
    torch.manual_seed(rank)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    for _ in range(steps):
        idx = torch.randint(0, x.shape[0], (16,))
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x[idx]), y[idx])
        loss.backward()
        opt.step()


def test_hogwild_training_of_a_shared_model_converges():
    rng = np.random.default_rng(0)
    w_true = np.array([[1.5, -2.0, 0.5]], dtype=np.float32)
    b_true = np.float32(0.3)
    x_np = rng.normal(size=(256, 3)).astype(np.float32)
    y_np = x_np @ w_true.T + b_true
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    model.share_memory()
    x, y = torch.from_numpy(x_np), torch.from_numpy(y_np)
    # 40 steps in one process leave errors of ~0.025; both processes' 80 steps together reach ~1e-3.
    procs = [CTX.Process(target=_hogwild_train, args=(r, model, x, y, 40)) for r in range(2)]
    try:
        for p in procs:
            p.start()
        for p in procs:
            p.join(timeout=90)
            assert p.exitcode == 0
    finally:
        _end(procs)
    # The parent never stepped: whatever it sees was written by the children.
    np.testing.assert_allclose(model.weight.detach().numpy(), w_true, atol=0.01)
    np.testing.assert_allclose(model.bias.item(), b_true, atol=0.01)


# ---- start_processes: PyTorch's error propagation --------------------------------------------------
def _raise_in_rank_1(i, ev, pids):
    pids.put((i, os.getpid()))
    if i == 1:
        raise ValueError(f"bad value in rank {i}")
    ev.wait(120)


def _kill_self(i, ev):
    if i == 0:
        os.kill(os.getpid(), signal.SIGKILL)
    ev.wait(120)  # block: the parent terminates this one


def _exit_with_3(i):
    raise SystemExit(3)


def _wait_dead(pid, deadline=30.0):
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.02)  # polling a condition, with a deadline
    return False


def test_raising_child_gives_its_traceback_and_the_others_are_terminated():
    ev, pids = CTX.Event(), CTX.SimpleQueue()
    ctx = mp.start_processes(_raise_in_rank_1, args=(ev, pids), nprocs=2, join=False, start_method="fork")
    try:
        with pytest.raises(mp.ProcessRaisedException) as info:
            while not ctx.join(timeout=60):
                pass
        e = info.value
        assert e.error_index == 1 and e.pid == ctx.processes[1].pid
        msg = str(e)
        assert msg.startswith("\n\n-- Process 1 terminated with the following error:\nTraceback (most recent call last):")
        assert "in _raise_in_rank_1" in msg and msg.rstrip().endswith("ValueError: bad value in rank 1")
        other = ctx.processes[0]
        assert not other.is_alive() and other.exitcode == -signal.SIGTERM
        assert _wait_dead(other.pid)
    finally:
        _end(ctx.processes)


def test_child_killed_by_a_signal_is_named():
    ctx = mp.start_processes(_kill_self, args=(CTX.Event(),), nprocs=2, join=False, start_method="fork")
    try:
        with pytest.raises(mp.ProcessExitedException, match=r"^process 0 terminated with signal SIGKILL$") as info:
            while not ctx.join(timeout=60):
                pass
        assert info.value.exit_code == -9 and info.value.signal_name == "SIGKILL" and info.value.error_index == 0
        assert not ctx.processes[1].is_alive()
    finally:
        _end(ctx.processes)


def test_child_exit_code_and_join_semantics():
    with pytest.raises(mp.ProcessExitedException, match=r"^process 0 terminated with exit code 3$") as info:
        mp.start_processes(_exit_with_3, nprocs=1, start_method="fork")
    assert info.value.exit_code == 3 and info.value.signal_name is None

    ev, pids = CTX.Event(), CTX.SimpleQueue()
    ctx = mp.start_processes(_raise_in_rank_1, args=(ev, pids), nprocs=1, join=False, start_method="fork")
    try:
        assert ctx.join(timeout=0.05) is False  # rank 0 waits on the event
        assert len(ctx.pids()) == 1 and ctx.pids()[0] == ctx.processes[0].pid
        ev.set()
        deadline = time.monotonic() + 60
        while not ctx.join(timeout=1):
            assert time.monotonic() < deadline
        assert ctx.join() is True  # joining again once done
        assert ctx.processes[0].exitcode == 0
    finally:
        _end(ctx.processes)
