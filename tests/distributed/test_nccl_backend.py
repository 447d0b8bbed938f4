"""The nccl backend without a GPU: its logic over the fake NCCL of _fake_nccl.py on the stand-in device.

The fake reads and writes raw addresses with the datatype and count the backend passes, so the expected values
below (computed here with NumPy / by hand) also check the argument packing. What cannot be checked here: that
real NCCL and CUDA streams behave as the fake's (tests/gpu/ does, on a machine with a GPU).
"""
import os
import sys
import threading
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _fake_nccl as F  # noqa: E402
from _procs import free_port, mpi_skip_reason, run_job  # noqa: E402

from disttorch.distributed import distributed_c10d as c10d  # noqa: E402
from disttorch.distributed.backends import _nccl_types as T  # noqa: E402
from disttorch.distributed.backends import nccl as N  # noqa: E402
from disttorch.distributed.process_group import ReduceOp  # noqa: E402
from disttorch.distributed.store import HashStore  # noqa: E402

WORKER = str(Path(__file__).with_name("nccl_worker.py"))


# ---------------------------------------------------------------------------------------------------------------
# dtype / op mapping and the unique id (pure functions)
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype, const, per", [
    (np.int8, 0, 1), (np.uint8, 1, 1), (np.int32, 2, 1), (np.uint32, 3, 1), (np.int64, 4, 1), (np.uint64, 5, 1),
    (np.float16, 6, 1), (np.float32, 7, 1), (np.float64, 8, 1), (ml_dtypes.bfloat16, 9, 1), (np.bool_, 1, 1),
    (np.complex64, 7, 2), (np.complex128, 8, 2)])
def test_datatype_matches_nccl_h(dtype, const, per):
    assert T.datatype(F, np.dtype(dtype), "all_reduce") == (const, per)  # values of nccl.h's ncclDataType_t


def test_datatype_errors_name_the_dtype_and_what_is_missing():
    with pytest.raises(RuntimeError, match=r"all_reduce on the nccl backend: dtype int16 cannot be reduced"):
        T.datatype(F, np.dtype(np.int16), "all_reduce")
    old_cupy = type("nccl", (), {k: getattr(F, k) for k in dir(F) if k.startswith("NCCL_") and k != "NCCL_BFLOAT16"})
    with pytest.raises(RuntimeError, match="lacks NCCL_BFLOAT16"):
        T.datatype(old_cupy, np.dtype(ml_dtypes.bfloat16), "reduce")


@pytest.mark.parametrize("op, dtype, const", [
    (ReduceOp.SUM, np.float32, F.NCCL_SUM), (ReduceOp.AVG, np.float32, F.NCCL_SUM),
    (ReduceOp.PRODUCT, np.int32, F.NCCL_PROD), (ReduceOp.MIN, np.float64, F.NCCL_MIN),
    (ReduceOp.MAX, np.int64, F.NCCL_MAX), (ReduceOp.SUM, np.bool_, F.NCCL_MAX), (ReduceOp.BOR, np.bool_, F.NCCL_MAX),
    (ReduceOp.BAND, np.bool_, F.NCCL_MIN), (ReduceOp.PRODUCT, np.bool_, F.NCCL_MIN),
    (ReduceOp.AVG, np.complex64, F.NCCL_SUM)])
def test_reduction_mapping(op, dtype, const):
    assert T.reduction(F, op, np.dtype(dtype), "all_reduce") == const


@pytest.mark.parametrize("op, dtype, match", [
    (ReduceOp.BAND, np.int32, "ReduceOp.BAND is not supported"), (ReduceOp.BXOR, np.bool_, "BXOR is not supported"),
    (ReduceOp.MAX, np.complex64, "MAX is not supported for complex")])
def test_reduction_errors(op, dtype, match):
    with pytest.raises(RuntimeError, match=match):
        T.reduction(F, op, np.dtype(dtype), "all_reduce")


def test_unique_id_round_trip_and_length_check():
    uid = F.get_unique_id()
    raw = T.uid_to_bytes(uid)
    assert len(raw) == 128 and raw == bytes(v % 256 for v in uid)
    assert T.uid_from_bytes(raw, "x") == uid
    for bad in (raw[:100], raw + b"\0", "not bytes"):
        with pytest.raises(RuntimeError, match="expected 128"):
            T.uid_from_bytes(bad, "through the rendezvous store")


# ---------------------------------------------------------------------------------------------------------------
# two ranks in threads over a HashStore
# ---------------------------------------------------------------------------------------------------------------
@pytest.fixture
def fake():
    store = HashStore()
    undo = F.install(store)
    yield store
    undo()


def on_ranks(store, fn, n=2):
    """Run ``fn(pg, rank)`` on ``n`` thread ranks of one nccl group; their results by rank (errors re-raised)."""
    out, errs = {}, {}

    def body(r):
        try:
            pg = N.NCCLProcessGroup.create(store, r, n, 30.0, {"use_mpi": False})
            out[r] = fn(pg, r)
            pg.shutdown()
        except BaseException as e:  # noqa: BLE001 - reported below
            errs[r] = e
    ts = [threading.Thread(target=body, args=(r,), daemon=True) for r in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(20)
    assert not any(t.is_alive() for t in ts), "a rank hung"
    if errs:
        raise next(iter(errs.values()))
    return out


def dev(values, dtype=np.float32):
    return N._MODULES[0].asarray(np.asarray(values, dtype=dtype))


def test_collectives_against_numpy(fake):
    rng = np.random.default_rng(0)
    data = {r: rng.standard_normal((2, 3)).astype(np.float32) for r in range(2)}
    ints = {r: rng.integers(-50, 50, 5).astype(np.int64) for r in range(2)}

    def fn(pg, r):
        res = {}
        for op in (ReduceOp.SUM, ReduceOp.PRODUCT, ReduceOp.MIN, ReduceOp.MAX):
            a, b = dev(data[r]), dev(ints[r], np.int64)
            pg.allreduce([a, b], op).wait()
            res[op] = (a.get(), b.get())
        flags = dev([r == 0, True, False], np.bool_)
        pg.allreduce([flags], ReduceOp.SUM).wait()  # "or"
        res["or"] = flags.get()
        c = dev([1 + 2j * r, -1j], np.complex64)
        pg.allreduce([c], ReduceOp.SUM).wait()
        res["complex"] = c.get()
        bf = dev([1.5 * (r + 1)], ml_dtypes.bfloat16)
        pg.allreduce([bf], ReduceOp.SUM).wait()
        res["bf16"] = bf.get()
        x = dev(data[r])
        pg.reduce(x, 1, ReduceOp.MAX).wait()
        res["reduce"] = x.get()
        y = dev([r, r, r], np.int16)  # data movement works for any dtype
        pg.broadcast([y], 1).wait()
        res["broadcast"] = y.get()
        outs = [dev(np.zeros(3, np.int16), np.int16) for _ in range(2)]
        pg.allgather(outs, dev([r, 2 * r, 3 * r], np.int16)).wait()
        res["allgather"] = [o.get() for o in outs]
        o = dev(np.zeros(2))
        pg.reduce_scatter(o, [dev([r + 1.0, r + 2.0]), dev([10.0 * r, 20.0])], ReduceOp.SUM).wait()
        res["reduce_scatter"] = o.get()
        oc = dev(np.zeros(2), np.complex128)
        pg.reduce_scatter(oc, [dev([1j * r, 1.0], np.complex128), dev([2.0, -1j * r], np.complex128)],
                          ReduceOp.AVG).wait()  # complex as float pairs; AVG sums here (the API divides)
        res["reduce_scatter_complex"] = oc.get()
        g = [dev(np.zeros(2)) for _ in range(2)] if r == 0 else None
        pg.gather(g, dev([r + 0.5, r + 0.25]), 0).wait()
        res["gather"] = None if g is None else [v.get() for v in g]
        s = dev(np.zeros(1))
        pg.scatter(s, [dev([5.0]), dev([6.0])] if r == 1 else None, 1).wait()
        res["scatter"] = s.get()
        return res

    res = on_ranks(fake, fn)
    for r in range(2):
        got = res[r]
        for op, uf in ((ReduceOp.SUM, np.add), (ReduceOp.PRODUCT, np.multiply), (ReduceOp.MIN, np.minimum),
                       (ReduceOp.MAX, np.maximum)):
            np.testing.assert_allclose(got[op][0], uf(data[0], data[1]), rtol=1e-6)
            np.testing.assert_array_equal(got[op][1], uf(ints[0], ints[1]))
        np.testing.assert_array_equal(got["or"], [True, True, False])
        np.testing.assert_array_equal(got["complex"], np.array([2 + 2j, -2j], np.complex64))
        assert got["bf16"].dtype == ml_dtypes.bfloat16 and float(got["bf16"][0]) == 4.5
        np.testing.assert_array_equal(got["broadcast"], [1, 1, 1])
        np.testing.assert_array_equal(np.stack(got["allgather"]), [[0, 0, 0], [1, 2, 3]])
        np.testing.assert_array_equal(got["scatter"], [5.0 + r])
    np.testing.assert_array_equal(res[1]["reduce"], np.maximum(data[0], data[1]))
    np.testing.assert_array_equal(res[0]["reduce"], data[0])  # not the root: left as it was
    np.testing.assert_array_equal(res[0]["reduce_scatter"], [1.0 + 2.0, 2.0 + 3.0])  # inputs[0] summed
    np.testing.assert_array_equal(res[1]["reduce_scatter"], [0.0 + 10.0, 20.0 + 20.0])  # inputs[1] summed
    np.testing.assert_array_equal(res[0]["reduce_scatter_complex"], [1j, 2.0])
    np.testing.assert_array_equal(res[1]["reduce_scatter_complex"], [4.0, -1j])
    np.testing.assert_array_equal(np.stack(res[0]["gather"]), [[0.5, 0.25], [1.5, 1.25]])


def test_argument_packing_streams_and_handles(fake):
    """Counts/datatypes as NCCL wants them, everything on the group's own stream after the current stream's
    work, and handles that follow the CUDA event."""
    def fn(pg, r):
        a = dev(np.ones((4, 5)), np.float16)
        ready_before = len(pg._stream.waited)
        w = pg.allreduce([a], ReduceOp.SUM)
        w._event.held = True  # the device has not finished yet
        pending = w.is_completed()
        w._event.held = False
        waited_before = len(F.CURRENT.waited)
        w.wait()
        return {"stream": pg._stream.ptr, "pending": pending, "stream_waited": len(pg._stream.waited) - ready_before,
                "current_waited": len(F.CURRENT.waited) - waited_before, "done": w.is_completed(), "a": a.get()}

    res = on_ranks(fake, fn)
    calls = [c for c in F.CALLS if c[0] == "allReduce" and c[3] == F.NCCL_FLOAT16]
    assert len(calls) == 2 and {c[2] for c in calls} == {20}  # 4 x 5 elements, not bytes
    for r in range(2):
        mine = [c for c in calls if c[1] == r][0]
        assert mine[4] == (F.NCCL_SUM, res[r]["stream"]) and res[r]["stream"] != F.CURRENT.ptr
        assert res[r]["pending"] is False and res[r]["done"] is True
        assert res[r]["stream_waited"] == 1 and res[r]["current_waited"] >= 1
        np.testing.assert_array_equal(res[r]["a"], np.full((4, 5), 2, np.float16))


def test_all_to_all_send_recv_and_subgroups(fake):
    def fn(pg, r):
        n = pg.size
        outs = [dev(np.zeros(2)) for _ in range(n)]
        pg.alltoall(outs, [dev([10.0 * r + j, -1.0]) for j in range(n)]).wait()
        peer = (r + 1) % n
        got = dev(np.zeros(2, np.int32), np.int32)
        if r % 2 == 0:
            pg.send(dev([r, 7], np.int32), peer).wait()
            w = pg.recv(got, (r - 1) % n)
        else:
            w = pg.recv(got, (r - 1) % n)
            pg.send(dev([r, 7], np.int32), peer).wait()
        w.wait()
        sub = pg.new_subgroup([2, 0])  # numbered in the order given
        s = None
        if sub is not None:
            x = dev([float(r + 1)])
            sub.allreduce([x], ReduceOp.SUM).wait()
            s = (sub.rank, sub.global_ranks, x.get().tolist())
            sub.shutdown()
        return [o.get().tolist() for o in outs], got.get().tolist(), w.result(), s

    res = on_ranks(fake, fn, n=3)
    for r in range(3):
        outs, got, src, s = res[r]
        assert outs == [[10.0 * j + r, -1.0] for j in range(3)]
        assert got == [(r - 1) % 3, 7] and src == (r - 1) % 3
    assert res[1][3] is None
    assert res[2][3] == (0, [2, 0], [4.0]) and res[0][3] == (1, [2, 0], [4.0])


def test_error_paths(fake):
    errs = {}

    def fn(pg, r):
        errs[r] = []
        for call in (lambda: pg.allreduce([np.ones(3, np.float32)], ReduceOp.SUM),
                     lambda: pg.broadcast([dev([1.0])], 5),
                     lambda: pg.recv(dev([0.0]), None),
                     lambda: pg.allreduce([dev([1], np.int32)], ReduceOp.BAND)):
            try:
                call()
                errs[r].append("no error")
            except (RuntimeError, ValueError) as e:
                errs[r].append(str(e))
        pg.verify(f"seq=1 all_reduce(float32[{r}])")  # differs between the ranks: raises on both

    with pytest.raises(RuntimeError, match=r"Mismatched collective calls .*called seq=1 all_reduce\(float32\[0\]\) but "
                                          r"rank 1 called seq=1 all_reduce\(float32\[1\]\)"):
        on_ranks(fake, fn)
    msgs = errs[1]
    assert msgs[0].startswith("all_reduce on the nccl backend needs CUDA tensors, but tensor 0 is on cpu "
                              "(float32[3], rank 1)")
    assert "src 5 is out of range for a group of 2 ranks" in msgs[1]
    assert "any source (src=None) is not supported" in msgs[2]
    assert "ReduceOp.BAND is not supported" in msgs[3]


def test_no_cupy_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(N, "_MODULES", None)
    monkeypatch.setitem(__import__("sys").modules, "cupy", None)  # as on a machine without CuPy
    with pytest.raises(RuntimeError, match=r"doesn't have NCCL built in: the nccl backend needs CuPy, which is not "
                                           r"installed") as info:
        N._load()
    assert "backend='zmq'" in str(info.value)
    assert N.usable() is False


def test_backend_selection(monkeypatch):
    for k in ("OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setattr(c10d, "_cuda_nccl_usable", lambda: False)
    assert c10d._choose_backend(None) == "zmq"
    monkeypatch.setattr(c10d, "_cuda_nccl_usable", lambda: True)
    assert c10d._choose_backend(None) == "cpu:zmq,cuda:nccl"
    assert c10d.get_default_backend_for_device("cpu") == "zmq"
    assert c10d._choose_backend("cuda:nccl,cpu:gloo") == "cpu:zmq,cuda:nccl"
    assert c10d._choose_backend("cpu:mpi,cuda:nccl") == "cpu:mpi,cuda:nccl"
    assert c10d._choose_backend("cuda:nccl") == "nccl" and c10d._choose_backend("cpu:gloo") == "zmq"
    for bad, match in (("cuda:gloo", "CUDA tensors need 'nccl'"), ("cpu:nccl", "CPU tensors need"),
                       ("tpu:xla", "device:backend pairs")):
        with pytest.raises(ValueError, match=match):
            c10d._choose_backend(bad)


# ---------------------------------------------------------------------------------------------------------------
# two real processes: the torch.distributed API, the unique id through the rendezvous store (or MPI)
# ---------------------------------------------------------------------------------------------------------------
EXPECTED = {  # ranks 0 and 1 of nccl_worker.py, worked out by hand
    "all_reduce_sum": [3.0, 6.0, -3.0], "all_reduce_avg": [1.5, 3.0, -1.5], "all_reduce_prod": [2.0, 8.0, 0.0],
    "all_reduce_min": [1.0, 2.0, -3.0], "all_reduce_max": [2.0, 4.0, 0.0], "all_reduce_async_int64": [12, 14],
    "broadcast": [1.0, 1.0, 1.0], "subgroup_all_reduce": [3.0], "all_gather_into_tensor": [0.5, 0.25, 1.5, 1.25],
    "all_gather": [[0, 0], [1, -1]],
}


def _check_job(job, backend):
    res = job.results(2)
    assert not job.timed_out and sorted(res) == [0, 1], job.logs
    for r in range(2):
        got = res[r]
        for k, v in EXPECTED.items():
            assert got[k] == v, (r, k, got[k])
        assert got["reduce_scatter_tensor"] == ([1.0, 3.0] if r == 0 else [5.0, 7.0])
        assert got["all_to_all_single"] == [float(r), 100.0 + r]
        assert len(got["streams"]) == 2 and F.CURRENT.ptr not in got["streams"]  # one per group, never the current
    assert res[0]["reduce_on_dst"] == [3.0, 5.0] and res[1]["recv"] == [7.0, 8.0]
    # each communicator's id, drawn by rank 0 only, reached rank 1 intact
    assert res[0]["drawn"] == 2 and res[1]["drawn"] == 0
    assert len(res[0]["uids"]) == 2 and res[0]["uids"] == res[1]["uids"]  # the world's and new_group's
    return res


@pytest.mark.timeout(120)
def test_two_processes_nccl_through_the_store(tmp_path):
    job = run_job(WORKER, 2, "zmq", tmp_path, args=["--backend", "nccl", "--fake-port", str(free_port())],
                  timeout=60)
    res = _check_job(job, "nccl")
    assert res[0]["backend"] == "nccl" and res[0]["uid_in_store"] is True
    assert res[1]["cpu_all_reduce"].startswith("error: all_reduce on the nccl backend needs CUDA tensors, but "
                                               "tensor 0 is on cpu (float32[1], rank 1)")


@pytest.mark.timeout(120)
def test_two_processes_cpu_gloo_cuda_nccl(tmp_path):
    job = run_job(WORKER, 2, "zmq", tmp_path, args=["--backend", "cpu:gloo,cuda:nccl", "--fake-port",
                                                    str(free_port())], timeout=60)
    res = _check_job(job, "cpu:gloo,cuda:nccl")
    for r in range(2):
        assert res[r]["backend"] == "cpu:zmq,cuda:nccl"
        assert res[r]["cpu_all_reduce"] == [3.0]  # went to the zmq backend
        assert res[r]["objects"] == [{"rank": 0}, {"rank": 1}]
        # DDP: each rank's gradient of sum(W x + b) is x (per output row) and 1; DDP averages them
        assert res[r]["ddp_weight_grad"] == [[1.5, 2.0, -0.5]] * 2 and res[r]["ddp_bias_grad"] == [1.0, 1.0]


@pytest.mark.mpi
@pytest.mark.timeout(120)
@pytest.mark.skipif(mpi_skip_reason() is not None, reason=str(mpi_skip_reason()))
def test_two_processes_nccl_id_over_mpi(tmp_path):
    job = run_job(WORKER, 2, "mpi", tmp_path, args=["--backend", "nccl", "--fake-port", str(free_port())],
                  timeout=60)
    res = _check_job(job, "nccl")
    assert res[0]["uid_in_store"] is False  # it went over MPI
