"""One rank of the torch.distributed API test job (tests/distributed/test_api.py starts N of these).

Every check uses rank-dependent inputs and compares with the exact result computed here from all ranks'
inputs with NumPy. Each check's outcome ("ok" or the traceback) goes to ``<out>/rank<R>.json``; a failing
check does not stop the others. ``--errors`` adds the fault scenarios (mismatched calls, a stall, a
timeout), which run last because a timed-out collective leaves its backend unusable.
"""
import argparse
import json
import logging
import os
import sys
import threading
import time
import traceback
import warnings
from datetime import timedelta

import numpy as np

import disttorch as torch
import disttorch.distributed as dist
from disttorch.distributed import distributed_c10d as c10d
from disttorch.distributed.nn import functional as dfn

R = N = 0
RESULTS: dict = {}
ReduceOp = dist.ReduceOp


def check(fn):
    """Run one check; record "ok" or the error."""
    try:
        fn()
        RESULTS[fn.__name__] = "ok"
    except Exception:
        RESULTS[fn.__name__] = "FAIL on rank %d:\n%s" % (R, traceback.format_exc())
    return fn


def T(arr):
    return torch.from_numpy(np.ascontiguousarray(arr))


def eq(t, expected, what=""):
    got = t.numpy() if hasattr(t, "numpy") else np.asarray(t)
    exp = np.asarray(expected)
    assert got.shape == exp.shape, f"{what}: shape {got.shape} != {exp.shape}"
    assert got.dtype == exp.dtype, f"{what}: dtype {got.dtype} != {exp.dtype}"
    if exp.dtype.kind == "f" or exp.dtype.kind == "c" or exp.dtype.kind == "V":
        ok = np.allclose(got.astype(np.complex128), exp.astype(np.complex128), rtol=1e-2 if exp.itemsize <= 2 else
                         1e-6, atol=0)
    else:
        ok = np.array_equal(got, exp)
    assert ok, f"{what}: got {got!r}, expected {exp!r}"


DTYPES = ["float32", "float64", "float16", "bfloat16", "int64", "int32", "int8", "uint8", "bool", "complex64"]


def npdt(name):
    return getattr(torch, name).np if name != "bool" else np.dtype(bool)


def rank_input(name, r, kind="sum"):
    """Rank r's input for a reduction: small values, so sums and products stay exact in every dtype."""
    base = np.arange(6).reshape(2, 3)
    if name == "bool":
        return ((base + r) % 2 == 0)
    if kind == "prod":
        v = 1 + (base + r) % 2
    else:
        v = (base * (r + 1) + r) % 7
    v = v.astype(npdt(name)) if name not in ("complex64",) else (v + 1j * r).astype(np.complex64)
    return v


def reference(name, op, inputs):
    wide = {"b": bool, "c": np.complex128}.get(np.dtype(npdt(name)).kind, np.float64)
    xs = [x.astype(wide) for x in inputs]
    if name == "bool":
        fn = {ReduceOp.SUM: np.logical_or.reduce, ReduceOp.MAX: np.logical_or.reduce, ReduceOp.BOR: np.logical_or.reduce,
              ReduceOp.PRODUCT: np.logical_and.reduce, ReduceOp.MIN: np.logical_and.reduce,
              ReduceOp.BAND: np.logical_and.reduce, ReduceOp.BXOR: np.logical_xor.reduce}[op]
        return fn(np.stack(xs))
    if op in (ReduceOp.BAND, ReduceOp.BOR, ReduceOp.BXOR):
        ints = np.stack([x.astype(np.int64) for x in inputs])
        fn = {ReduceOp.BAND: np.bitwise_and, ReduceOp.BOR: np.bitwise_or, ReduceOp.BXOR: np.bitwise_xor}[op]
        return fn.reduce(ints).astype(npdt(name))
    st = np.stack(xs)
    out = {ReduceOp.SUM: st.sum(0), ReduceOp.AVG: st.sum(0) / len(xs), ReduceOp.PRODUCT: st.prod(0),
           ReduceOp.MIN: st.min(0) if wide is not np.complex128 else None,
           ReduceOp.MAX: st.max(0) if wide is not np.complex128 else None}[op]
    return out.astype(npdt(name))


def ops_for(name):
    kind = np.dtype(npdt(name)).kind
    if kind == "c":
        return [ReduceOp.SUM, ReduceOp.PRODUCT, ReduceOp.AVG]
    ops = [ReduceOp.SUM, ReduceOp.PRODUCT, ReduceOp.MIN, ReduceOp.MAX]
    if kind == "f" or kind == "V":
        ops.append(ReduceOp.AVG)
    if kind in "iub":
        ops += [ReduceOp.BAND, ReduceOp.BOR, ReduceOp.BXOR]
    return ops


# ---------------------------------------------------------------------------------------------------------------
# tensor collectives
# ---------------------------------------------------------------------------------------------------------------
def all_reduce_every_dtype_and_op():
    for name in DTYPES:
        for op in ops_for(name):
            kind = "prod" if op is ReduceOp.PRODUCT else "sum"
            t = T(rank_input(name, R, kind))
            v0 = t._version
            assert dist.all_reduce(t, op=op) is None
            eq(t, reference(name, op, [rank_input(name, r, kind) for r in range(N)]), f"all_reduce {name} {op.name}")
            assert t._version == v0 + 1, "all_reduce must bump the version counter"


def all_reduce_views_and_0d():
    base = T(np.arange(12, dtype=np.float32).reshape(3, 4) * (R + 1))
    view = base.t()  # non-contiguous
    dist.all_reduce(view)
    total = sum(r + 1 for r in range(N))
    eq(base, np.arange(12, dtype=np.float32).reshape(3, 4) * total, "all_reduce through a transposed view")
    col = base[:, 1]
    dist.all_reduce(col, op=ReduceOp.MAX)
    eq(base[:, 1], np.arange(12, dtype=np.float32).reshape(3, 4)[:, 1] * total, "strided column view")
    s = torch.tensor(float(R + 1))
    dist.all_reduce(s, op=ReduceOp.PRODUCT)
    eq(s, np.array(np.prod([r + 1.0 for r in range(N)]), np.float32), "0-d")
    e = torch.zeros(0, 3)
    dist.all_reduce(e)
    eq(e, np.zeros((0, 3), np.float32), "empty")


def broadcast_from_every_rank():
    for src in range(N):
        for name in ("float32", "int64", "bool", "bfloat16"):
            t = T(rank_input(name, R))
            dist.broadcast(t, src=src)
            eq(t, rank_input(name, src), f"broadcast {name} from {src}")
    base = T(np.full((4, 4), R, np.int32))
    dist.broadcast(base[1:3, ::2], src=N - 1)
    exp = np.full((4, 4), R, np.int32)
    exp[1:3, ::2] = N - 1
    eq(base, exp, "broadcast into a strided view")
    s = torch.tensor(R * 10)
    dist.broadcast(s, src=0)
    eq(s, np.array(0, np.int64), "broadcast 0-d")


def reduce_to_last_rank():
    dst = N - 1
    for op in (ReduceOp.SUM, ReduceOp.MAX, ReduceOp.AVG):
        x = rank_input("float64", R)
        t = T(x)
        dist.reduce(t, dst=dst, op=op)
        if R == dst:
            eq(t, reference("float64", op, [rank_input("float64", r) for r in range(N)]), f"reduce {op.name}")
        else:
            eq(t, x, "reduce leaves non-destination tensors unchanged")


def all_gather_variants():
    x = rank_input("int32", R)
    outs = [torch.zeros(2, 3, dtype=torch.int32) for _ in range(N)]
    dist.all_gather(outs, T(x))
    for r in range(N):
        eq(outs[r], rank_input("int32", r), f"all_gather[{r}]")
    cat = torch.zeros(2 * N, 3, dtype=torch.int32)
    dist.all_gather_into_tensor(cat, T(x))
    eq(cat, np.concatenate([rank_input("int32", r) for r in range(N)]), "all_gather_into_tensor (concat)")
    stacked = torch.zeros(N, 2, 3, dtype=torch.int32)
    dist.all_gather_into_tensor(stacked, T(x))
    eq(stacked, np.stack([rank_input("int32", r) for r in range(N)]), "all_gather_into_tensor (stack)")
    bf = [torch.zeros(2, 3, dtype=torch.bfloat16) for _ in range(N)]
    dist.all_gather(bf, T(rank_input("bfloat16", R)))
    eq(bf[N - 1], rank_input("bfloat16", N - 1), "all_gather bfloat16")


def reduce_scatter_variants():
    # rank r's input chunk for rank s: (r + 1) * (s + 1) * [1, 2, 3]
    row = np.array([1, 2, 3], np.float32)
    ins = [T(row * (R + 1) * (s + 1)) for s in range(N)]
    out = torch.zeros(3)
    dist.reduce_scatter(out, ins)
    tot = sum(r + 1 for r in range(N))
    eq(out, row * tot * (R + 1), "reduce_scatter SUM")
    big = T(np.concatenate([row * (R + 1) * (s + 1) for s in range(N)]))
    out2 = torch.zeros(3)
    dist.reduce_scatter_tensor(out2, big, op=ReduceOp.AVG)
    eq(out2, (row * tot * (R + 1) / N).astype(np.float32), "reduce_scatter_tensor AVG")
    ints = T(np.arange(2 * N, dtype=np.int64).reshape(N, 2) + R)
    o3 = torch.zeros(2, dtype=torch.int64)
    dist.reduce_scatter_tensor(o3, ints, op=ReduceOp.MAX)
    eq(o3, np.arange(2 * N, dtype=np.int64).reshape(N, 2)[R] + N - 1, "reduce_scatter_tensor MAX (stacked)")


def gather_and_scatter():
    dst = 1 % N
    x = T(np.array([R, R * R], np.int64))
    lst = [torch.zeros(2, dtype=torch.int64) for _ in range(N)] if R == dst else None
    dist.gather(x, lst, dst=dst)
    if R == dst:
        for r in range(N):
            eq(lst[r], np.array([r, r * r], np.int64), f"gather[{r}]")
    out = torch.zeros(2, 2)
    chunks = [T(np.full((2, 2), 10.0 * s, np.float32)) for s in range(N)] if R == 0 else None
    dist.scatter(out, chunks, src=0)
    eq(out, np.full((2, 2), 10.0 * R, np.float32), "scatter")


def all_to_all_variants():
    # rank r sends rank s a vector of length r + s + 1 filled with 100 r + s
    ins = [T(np.full(R + s + 1, 100 * R + s, np.int64)) for s in range(N)]
    outs = [torch.zeros(s + R + 1, dtype=torch.int64) for s in range(N)]
    dist.all_to_all(outs, ins)
    for s in range(N):
        eq(outs[s], np.full(s + R + 1, 100 * s + R, np.int64), f"all_to_all from {s}")
    # all_to_all_single with split sizes: rank r sends s + 1 rows to rank s
    in_split = [s + 1 for s in range(N)]
    rows = np.concatenate([np.full((s + 1, 2), 100 * R + s, np.float64) for s in range(N)])
    out = torch.zeros((R + 1) * N, 2, dtype=torch.float64)
    dist.all_to_all_single(out, T(rows), output_split_sizes=[R + 1] * N, input_split_sizes=in_split)
    exp = np.concatenate([np.full((R + 1, 2), 100 * s + R, np.float64) for s in range(N)])
    eq(out, exp, "all_to_all_single with splits")
    even = torch.zeros(N, 3)
    dist.all_to_all_single(even, T(np.arange(3 * N, dtype=np.float32).reshape(N, 3) + 1000 * R))
    eq(even, np.stack([np.arange(3 * N, dtype=np.float32).reshape(N, 3)[R] + 1000 * s for s in range(N)]),
       "all_to_all_single equal splits")


def point_to_point():
    nxt, prv = (R + 1) % N, (R - 1) % N
    buf = torch.zeros(3, dtype=torch.int64)
    if R % 2 == 0:
        dist.send(T(np.array([R, 1, 2], np.int64)), dst=nxt)
        got = dist.recv(buf, src=prv)
    else:
        got = dist.recv(buf, src=prv)
        dist.send(T(np.array([R, 1, 2], np.int64)), dst=nxt)
    assert got == prv, f"recv returned {got}, expected {prv}"
    eq(buf, np.array([prv, 1, 2], np.int64), "send/recv ring")
    # isend/irecv both ways at once
    inbox = torch.zeros(2)
    works = [dist.isend(T(np.array([R, -R], np.float32)), dst=nxt), dist.irecv(inbox, src=prv)]
    for w in works:
        w.wait()
    eq(inbox, np.array([prv, -prv], np.float32), "isend/irecv")
    # batch_isend_irecv and a receive from any source
    box = torch.zeros(1)
    ops = [dist.P2POp(dist.irecv, box, prv), dist.P2POp(dist.isend, T(np.array([R + 0.5], np.float32)), nxt)]
    for w in dist.batch_isend_irecv(ops):
        w.wait()
    eq(box, np.array([prv + 0.5], np.float32), "batch_isend_irecv")
    if R == 0:
        senders = set()
        for _ in range(N - 1):
            b = torch.zeros(1, dtype=torch.int64)
            s = dist.recv(b)
            assert int(b.item()) == s * 7, (s, b)
            senders.add(s)
        assert senders == set(range(1, N)), senders
    else:
        dist.send(T(np.array([R * 7], np.int64)), dst=0)


def async_ops():
    ts = [T(np.full(5, float(R + k), np.float32)) for k in range(3)]
    works = [dist.all_reduce(t, async_op=True) for t in ts]
    works.append(dist.all_reduce(T(np.ones(2, np.float32)), op=ReduceOp.AVG, async_op=True))
    for w in works:
        assert w.wait() is True
        assert w.is_completed()
    for k, t in enumerate(ts):
        eq(t, np.full(5, float(sum(r + k for r in range(N))), np.float32), f"async all_reduce {k}")
    b = torch.zeros(2) + R
    w = dist.broadcast(b, src=N - 1, async_op=True)
    w.wait(timeout=timedelta(seconds=20))
    eq(b, np.full(2, N - 1, np.float32), "async broadcast")
    fut = dist.all_reduce(torch.ones(2), async_op=True).get_future()
    eq(fut.wait()[0], np.full(2, N, np.float32), "Work.get_future().wait() gives the tensors")
    dist.barrier()
    dist.barrier(async_op=True).wait()


def subgroups():
    evens = [r for r in range(N) if r % 2 == 0]
    odds = [r for r in range(N) if r % 2 == 1]
    ge = dist.new_group(evens)
    go = dist.new_group(odds) if odds else None
    mine, other = (ge, go) if R % 2 == 0 else (go, ge)
    members = evens if R % 2 == 0 else odds
    assert other is None or other == dist.GroupMember.NON_GROUP_MEMBER
    assert dist.get_rank(mine) == members.index(R) and dist.get_world_size(mine) == len(members)
    assert mine.rank() == members.index(R) and mine.size() == len(members)
    assert dist.get_process_group_ranks(mine) == members
    assert dist.get_group_rank(mine, members[-1]) == len(members) - 1
    assert dist.get_global_rank(mine, 0) == members[0]
    assert dist.get_backend(mine) == dist.get_backend()
    t = T(np.array([R], np.int64))
    dist.all_reduce(t, group=mine)
    eq(t, np.array([sum(members)], np.int64), "all_reduce in a subgroup")
    b = T(np.array([R * 3], np.int64))
    dist.broadcast(b, src=members[-1], group=mine)  # src is a global rank
    eq(b, np.array([members[-1] * 3], np.int64), "broadcast in a subgroup (global src)")
    got = [None] * len(members)
    dist.all_gather_object(got, {"rank": R}, group=mine)
    assert got == [{"rank": m} for m in members], got
    if other is not None:
        assert dist.get_rank(other) == -1 and dist.get_world_size(other) == -1
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            assert dist.all_reduce(torch.ones(1), group=other) is None
        assert any("does not belong to the given group" in str(x.message) for x in w)
    outsider = next(r for r in range(N) if r not in members)
    try:
        dist.broadcast(torch.zeros(1), src=outsider, group=mine)
    except ValueError as e:
        assert "not part of group" in str(e), e
    else:
        raise AssertionError("broadcast from a non-member src must raise")
    whole = dist.new_group()
    t = torch.ones(2)
    dist.all_reduce(t, group=whole)
    eq(t, np.full(2, N, np.float32), "new_group() of every rank")
    dist.barrier()


# ---------------------------------------------------------------------------------------------------------------
# object collectives
# ---------------------------------------------------------------------------------------------------------------
class Secret:
    def __init__(self, v):
        self.v = v


class Allowed:
    def __init__(self, v):
        self.v = v

    def __eq__(self, other):
        return type(other) is Allowed and other.v == self.v


def objects():
    payload = {1: ("a", 2.5, None), 2: [R, {3: b"bytes"}], "t": torch.arange(4) * 2, "set": {1, 2}}
    objs = [payload, (1, (2, 3)), "x" * 1000] if R == 0 else [None, None, None]
    dist.broadcast_object_list(objs, src=0)
    assert objs[0][1] == ("a", 2.5, None) and objs[0][2] == [0, {3: b"bytes"}], objs[0]
    assert objs[0]["set"] == {1, 2} and objs[1] == (1, (2, 3)) and objs[2] == "x" * 1000
    eq(objs[0]["t"], np.arange(4, dtype=np.int64) * 2, "tensor inside an object")
    gathered = [None] * N
    dist.all_gather_object(gathered, {R: (R, "r" * R)})
    assert gathered == [{r: (r, "r" * r)} for r in range(N)], gathered
    dst = N - 1
    lst = [None] * N if R == dst else None
    dist.gather_object((R, [R] * R), lst, dst=dst)
    if R == dst:
        assert lst == [(r, [r] * r) for r in range(N)], lst
    out = [None]
    dist.scatter_object_list(out, [{"to": s, "pad": "p" * (s * 50)} for s in range(N)] if R == 0 else None, src=0)
    assert out[0] == {"to": R, "pad": "p" * (R * 50)}, out
    if R == 0:
        dist.send_object_list([{"k": (1, 2)}, torch.tensor([1.5, 2.5])], dst=N - 1)
    elif R == N - 1:
        got = [None, None]
        assert dist.recv_object_list(got, src=0) == 0
        assert got[0] == {"k": (1, 2)}
        eq(got[1], np.array([1.5, 2.5], np.float32), "recv_object_list tensor")
    # an object of a class that is not allowlisted is refused on the receiving ranks, never unpickled
    objs = [Secret(R)] if R == 0 else [None]
    try:
        dist.broadcast_object_list(objs, src=0)
    except Exception as e:
        assert R != 0, f"the sender must not fail: {e!r}"
        assert "Secret" in str(e) and "add_safe_globals" in str(e), str(e)
    else:
        assert R == 0, "a non-allowlisted class must be refused"
    with torch.serialization.safe_globals([Allowed]):
        objs = [Allowed(R + 5)] if R == 0 else [None]
        dist.broadcast_object_list(objs, src=0)
        assert objs == [Allowed(5)], objs


# ---------------------------------------------------------------------------------------------------------------
# argument errors (all raised locally, before any communication)
# ---------------------------------------------------------------------------------------------------------------
def argument_errors():
    def raises(exc, match, fn):
        try:
            fn()
        except exc as e:
            assert match in str(e), f"{match!r} not in {e}"
        else:
            raise AssertionError(f"expected {exc.__name__} matching {match!r}")

    raises(RuntimeError, "AVG", lambda: dist.all_reduce(torch.ones(2, dtype=torch.int64), op=ReduceOp.AVG))
    raises(RuntimeError, "BAND", lambda: dist.all_reduce(torch.ones(2), op=ReduceOp.BAND))
    raises(TypeError, "torch.Tensor", lambda: dist.all_reduce([1.0, 2.0]))
    raises(ValueError, "tensors", lambda: dist.all_gather([torch.zeros(2)] * (N + 1), torch.zeros(2)))
    raises(RuntimeError, "shape", lambda: dist.all_gather([torch.zeros(3) for _ in range(N)], torch.zeros(2)))
    raises(RuntimeError, "dtype", lambda: dist.all_gather([torch.zeros(2, dtype=torch.int64) for _ in range(N)],
                                                          torch.zeros(2)))
    raises(ValueError, "world_size", lambda: dist.all_gather_into_tensor(torch.zeros(N + 1), torch.zeros(1)))
    raises(ValueError, "split sizes", lambda: dist.all_to_all_single(torch.zeros(N), torch.zeros(N),
                                                                     input_split_sizes=[N] + [0] * (N - 2)))
    raises(ValueError, "not part of group", lambda: dist.broadcast(torch.zeros(1), src=N))
    if N > 1:
        raises(ValueError, "same as the rank", lambda: dist.send(torch.zeros(1), dst=R))
    raises(ValueError, "must NOT be specified", lambda: dist.gather(torch.zeros(1), [torch.zeros(1)] * N,
                                                                    dst=(R + 1) % N))
    raises(ValueError, "twice", lambda: dist.init_process_group())
    dist.barrier()  # every rank is still in step


# ---------------------------------------------------------------------------------------------------------------
# differentiable collectives
# ---------------------------------------------------------------------------------------------------------------
def nn_functional():
    x = torch.tensor([1.0, 2.0], requires_grad=True)
    y = dfn.all_reduce(x * (R + 1))
    total = sum(r + 1 for r in range(N))
    eq(y.detach(), np.array([1.0, 2.0], np.float32) * total, "nn all_reduce forward")
    (y * (R + 1)).sum().backward()
    eq(x.grad, np.full(2, (R + 1) * total, np.float32), "nn all_reduce backward")
    eq(x.detach(), np.array([1.0, 2.0], np.float32), "nn all_reduce leaves the input alone")

    x = torch.tensor([float(R), 1.0], requires_grad=True)
    parts = dfn.all_gather(x * 2)
    assert len(parts) == N
    for r in range(N):
        eq(parts[r].detach(), np.array([2.0 * r, 2.0], np.float32), f"nn all_gather[{r}]")
    sum((p * (R + 1 + k)).sum() for k, p in enumerate(parts)).backward()
    # d/dx of sum over ranks q and slots k of (q + 1 + k) * parts_k, at slot k = R: 2 * sum_q (q + 1 + R)
    eq(x.grad, np.full(2, 2.0 * sum(q + 1 + R for q in range(N)), np.float32), "nn all_gather backward")

    x = torch.tensor([float(R + 1)], requires_grad=True)
    b = dfn.broadcast(x, src=0)
    eq(b.detach(), np.array([1.0], np.float32), "nn broadcast forward")
    (b * (R + 2)).sum().backward()
    eq(x.grad, np.array([float(sum(r + 2 for r in range(N))) if R == 0 else 0.0], np.float32),
       "nn broadcast backward")

    ins = [torch.full((2,), float((R + 1) * (s + 1)), requires_grad=True) for s in range(N)]
    out = dfn.reduce_scatter(torch.zeros(2), ins)
    eq(out.detach(), np.full(2, float(total * (R + 1)), np.float32), "nn reduce_scatter forward")
    (out * (R + 3)).sum().backward()
    for s in range(N):
        eq(ins[s].grad, np.full(2, float(s + 3), np.float32), f"nn reduce_scatter backward[{s}]")


# ---------------------------------------------------------------------------------------------------------------
# fault scenarios
# ---------------------------------------------------------------------------------------------------------------
class Capture(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.records = []
        self.cv = threading.Condition()

    def emit(self, record):
        with self.cv:
            self.records.append(record.getMessage())
            self.cv.notify_all()

    def wait_for(self, pred, timeout):
        with self.cv:
            self.cv.wait_for(lambda: any(pred(m) for m in self.records), timeout)
            return [m for m in self.records if pred(m)]


CAPTURE = Capture()


def mismatched_collectives():
    g = dist.new_group()
    try:
        if R == 0:
            dist.all_reduce(torch.ones(4), group=g)
        else:
            dist.broadcast(torch.ones(4), src=0, group=g)
    except RuntimeError as e:
        text = str(e)
        assert "all_reduce" in text and "broadcast" in text, text
        assert "rank 0" in text, text
    else:
        raise AssertionError("mismatched collectives must raise on every rank")


def stall_check():
    g = dist.new_group(timeout=timedelta(seconds=30))
    late = N - 1
    wd = c10d._W.watchdog
    if R == late:
        # Enter only once every other rank has asked, through the store, where everybody is.
        ok = wd.wait_requests(lambda reqs: {who for who, gname, _ in reqs if gname == g.group_name}
                              >= set(range(N - 1)), 60)
        assert ok, f"stall requests seen: {wd.requests}"
        dist.all_reduce(torch.ones(1), group=g)
        return
    dist.all_reduce(torch.ones(1), group=g)
    msgs = CAPTURE.wait_for(lambda m: f"in group {g.group_name} has been waiting" in m, 30)
    assert msgs, f"no stall warning; captured: {CAPTURE.records}"
    text = msgs[0]
    assert f"ranks that have not arrived: [{late}]" in text, text
    assert f"rank {late} (host" in text and "not in a collective" in text, text
    assert "stall_check" in text and "api_worker.py" in text, text  # the late rank's stack
    assert f"rank {R} (host" in text and "waiting in seq=1 all_reduce(float32[1], SUM)" in text, text


def timeout_check():
    g = dist.new_group(timeout=timedelta(seconds=2))
    store = c10d._W.store
    late = N - 1
    if R == late:  # skips the collective; waits (answering stall queries) until the others have timed out
        store.wait(["api/timeouts_done"], timedelta(seconds=60))
        return
    t0 = time.monotonic()
    try:
        dist.all_reduce(torch.ones(3), group=g)
    except RuntimeError as e:
        text = str(e)
        took = time.monotonic() - t0
        assert took < 20, f"took {took:.1f} s"
        assert "all_reduce timed out on rank %d" % R in text, text
        assert f"ranks that have not arrived: [{late}]" in text, text
        assert "timeout_check" in text, text
    else:
        raise AssertionError("a collective that one rank skips must time out")
    finally:  # stay (answering where this rank is) until every rank has seen its timeout
        if store.add("api/timeouts", 1) == N - 1:
            store.set("api/timeouts_done", "1")
        store.wait(["api/timeouts_done"], timedelta(seconds=60))


def main():
    global R, N
    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True)
    p.add_argument("--errors", action="store_true")
    args = p.parse_args()
    logging.getLogger("disttorch.distributed").addHandler(CAPTURE)
    dist.init_process_group()
    R, N = dist.get_rank(), dist.get_world_size()
    assert dist.is_initialized() and dist.GroupMember.WORLD is not None
    for fn in (all_reduce_every_dtype_and_op, all_reduce_views_and_0d, broadcast_from_every_rank, reduce_to_last_rank,
               all_gather_variants, reduce_scatter_variants, gather_and_scatter, all_to_all_variants, point_to_point,
               async_ops, subgroups, objects, argument_errors, nn_functional):
        check(fn)
    broken = False
    if args.errors:
        for fn in (mismatched_collectives, stall_check, timeout_check):
            check(fn)
        broken = True
    info = {"rank": R, "world_size": N, "backend": str(dist.get_backend()), "results": RESULTS, "broken": broken}
    tmp = os.path.join(args.out, f".rank{R}.json.tmp")
    with open(tmp, "w") as f:
        json.dump(info, f)
    os.replace(tmp, os.path.join(args.out, f"rank{R}.json"))
    # rank 0 serves the store: it leaves last
    store = c10d._W.store
    store.add("api/finished", 1)
    deadline = time.monotonic() + 60
    while R == 0 and store.add("api/finished", 0) < N and time.monotonic() < deadline:
        time.sleep(0.02)
    sys.stdout.flush()
    sys.stderr.flush()
    if broken:  # a timed-out collective is still stuck in the backend: end without waiting for it
        os._exit(0)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
