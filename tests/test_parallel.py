"""The intra-op thread pool (disttorch/_parallel.py) and the thread settings that size it."""
import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import disttorch
from disttorch import _parallel as P

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def two_threads():
    before = disttorch.get_num_threads()
    disttorch.set_num_threads(2)
    yield
    disttorch.set_num_threads(before)


def _py(code: str, **env) -> str:
    full = dict(os.environ, PYTHONPATH=ROOT, **env)
    for k, v in env.items():
        if v is None:
            full.pop(k)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=full, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_split_covers_range_with_aligned_bounds():
    for total, parts, align in [(10, 3, 1), (100, 4, 8), (7, 8, 1), (1, 2, 1), (65, 2, 32)]:
        r = P.split(total, parts, align)
        assert r[0][0] == 0 and r[-1][1] == total
        assert all(a < b for a, b in r) and all(r[i][1] == r[i + 1][0] for i in range(len(r) - 1))
        assert len(r) <= parts
        assert all(b % align == 0 for _, b in r[:-1])
    assert P.split(100, 2, 8) == [(0, 48), (48, 100)]


def _on_two_threads():
    """Two pieces that can only finish on two threads: the first (the caller's) waits for the second."""
    ev = threading.Event()

    def first():
        assert ev.wait(30), "no pool thread ran the second piece"
        return threading.current_thread().name

    def second():
        ev.set()
        return threading.current_thread().name
    return [first, second]


def test_run_tasks_results_in_order_on_several_threads(two_threads):
    assert P.run_tasks([lambda i=i: i for i in range(7)]) == list(range(7))
    names = P.run_tasks(_on_two_threads())
    assert names[0] == threading.current_thread().name  # the caller takes the first piece
    assert names[1].startswith("disttorch-intraop")


def test_exception_raised_after_every_task_finished(two_threads):
    done = []

    def slow():
        deadline = time.monotonic() + 0.2
        while time.monotonic() < deadline:  # busy work, so the failing piece returns first
            pass
        done.append(1)

    def bad():
        raise ValueError("piece failed")

    with pytest.raises(ValueError, match="piece failed"):
        P.run_tasks([bad, slow])
    assert done == [1]
    assert P.run_tasks([lambda: 1, lambda: 2]) == [1, 2]  # the pool still works


def test_nested_region_runs_serially(two_threads):
    inner = P.run_tasks([lambda: P.run_tasks([lambda: threading.current_thread().name] * 2)] * 2)
    for names in inner:  # each inner region ran entirely on the thread that asked for it
        assert names[0] == names[1]


def test_tasks_see_the_callers_numpy_error_state(two_threads):
    with np.errstate(over="raise"):
        with pytest.raises(FloatingPointError):
            P.run_tasks([lambda: None, lambda: np.exp(np.float32(1000))])
    with np.errstate(all="ignore"):
        assert P.run_tasks([lambda: 1, lambda: np.geterr()["over"]])[1] == "ignore"


def test_blas_pieces_run_with_one_blas_thread(two_threads):
    from threadpoolctl import threadpool_info

    blas = [i for i in threadpool_info() if i["user_api"] == "blas"]
    if not blas:
        pytest.skip("no BLAS library found by threadpoolctl")
    seen = P.run_tasks([lambda: 0, lambda: [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]],
                       blas=True)
    assert set(seen[1]) == {1}
    assert [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"] == [2] * len(blas)  # restored


def test_set_get_num_threads_size_pool_and_blas():
    from threadpoolctl import threadpool_info

    before = disttorch.get_num_threads()
    try:
        disttorch.set_num_threads(1)
        assert disttorch.get_num_threads() == 1 and P.MIN_SIZE == sys.maxsize
        disttorch.set_num_threads(2)
        assert disttorch.get_num_threads() == 2 and P.MIN_SIZE < sys.maxsize and P.MIN_STREAM >= P.MIN_SIZE
        assert all(i["num_threads"] == 2 for i in threadpool_info() if i["user_api"] == "blas")
        with pytest.raises(RuntimeError, match="positive integer"):
            disttorch.set_num_threads(0)
        with pytest.raises(RuntimeError, match="positive integer"):
            disttorch.set_num_interop_threads(0)
    finally:
        disttorch.set_num_threads(before)


def test_environment_sets_defaults_and_no_pool_at_import():
    code = ("import threading, sys, disttorch; from disttorch import _parallel as P; "
            "names = [t.name for t in threading.enumerate()]; "
            "print(disttorch.get_num_threads(), P.MIN_SIZE == sys.maxsize, any('intraop' in n for n in names))")
    assert _py(code, OMP_NUM_THREADS="3") == "3 False False"
    assert _py(code, OMP_NUM_THREADS="1") == "1 True False"  # what `disttorch launch` sets for ranks sharing a node
    assert _py(code, OMP_NUM_THREADS="2", DISTTORCH_PARALLEL="0") == "2 True False"  # kill switch


def test_kill_switch_keeps_every_task_on_the_caller(two_threads, monkeypatch):
    """DISTTORCH_PARALLEL=0: run_tasks (which the compiled kernels also split through) runs every piece on the
    calling thread, and products keep BLAS's own thread count (nothing is held to one thread)."""
    monkeypatch.setattr(P, "ENABLED", False)
    names = P.run_tasks([lambda: threading.current_thread().name] * 4)
    assert names == [threading.current_thread().name] * 4
    monkeypatch.setattr(P, "_blas_serial", lambda: pytest.fail("BLAS held to one thread with the pool off"))
    a = np.ones((64, 100))
    assert P.matmul(np, a, a.T)[0, 0] == 100


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_pool_is_made_anew_in_a_forked_child(two_threads):
    assert P.run_tasks([lambda: 1, lambda: 2]) == [1, 2]  # the parent's pool is running
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: a split kernel must work (the parent's workers do not exist here)
        try:
            code = 0
            names = P.run_tasks(_on_two_threads())
            code = 0 if names[1].startswith("disttorch-intraop") else 3
        except BaseException:
            code = 4
        os.write(w, bytes([code]))
        os._exit(0)
    os.close(w)
    try:
        deadline = time.monotonic() + 30
        got = b""
        while not got and time.monotonic() < deadline:
            got = os.read(r, 1)
        assert got == bytes([0])
    finally:
        os.close(r)
        os.waitpid(pid, 0)


def test_binary_ufunc_split_matches_numpy(two_threads):
    rng = np.random.default_rng(0)
    a = rng.standard_normal(300_001).astype(np.float32)
    b = rng.standard_normal(300_001).astype(np.float32)
    for f in (np.add, np.multiply, np.divide, np.power, np.maximum):
        with np.errstate(all="ignore"):
            got = P.ufunc2(f, a, b)
            assert got.tobytes() == f(a, b).tobytes()
            assert P.ufunc2(f, a, np.float32(1.5)).tobytes() == f(a, np.float32(1.5)).tobytes()
    assert P.ufunc2(np.add, a, b[:10]) is None  # broadcasting other than by a scalar: not split
    assert P.ufunc2(np.add, a[::2], b[::2]) is None  # not contiguous
