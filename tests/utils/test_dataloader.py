"""DataLoader: argument validation, batching, shuffling, iterable datasets and worker processes."""
from __future__ import annotations

import gc
import multiprocessing
import os
import random
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import disttorch
from disttorch.utils.data import (
    BatchSampler, DataLoader, Dataset, IterableDataset, SequentialSampler, TensorDataset, get_worker_info,
)
from disttorch.utils.data import _worker


def gen(seed):
    return disttorch.Generator().manual_seed(seed)


class Range(Dataset):
    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return i


class Stream(IterableDataset):
    """Yields 0..n-1; with workers, each worker yields its share (id, id + num_workers, ...)."""

    def __init__(self, n, shard=True):
        self.n, self.shard = n, shard

    def __iter__(self):
        info = get_worker_info()
        if info is None or not self.shard:
            return iter(range(self.n))
        return iter(range(info.id, self.n, info.num_workers))

    def __len__(self):
        return self.n


class PidDataset(Dataset):
    """Sample i is (i, pid of the process that loaded it)."""

    def __len__(self):
        return 8

    def __getitem__(self, i):
        return i, os.getpid()


class InfoDataset(Dataset):
    def __len__(self):
        return 4

    def __getitem__(self, i):
        info = get_worker_info()
        return {"id": info.id, "num_workers": info.num_workers, "seed": info.seed, "pid": os.getpid(),
                "same_type": type(info.dataset) is InfoDataset, "py": random.random(), "np": float(np.random.rand()),
                "dt": disttorch.rand(1, dtype=disttorch.float64).item()}


class FailingDataset(Dataset):
    def __init__(self, bad, exc=ValueError):
        self.bad, self.exc = bad, exc

    def __len__(self):
        return 8

    def __getitem__(self, i):
        if i == self.bad:
            raise self.exc(f"bad index {i}")
        return os.getpid()


class BlockingDataset(Dataset):
    """Blocks in the worker on an event nobody sets (stands in for a stuck read)."""

    def __init__(self):
        self.event = multiprocessing.get_context("fork").Event()

    def __len__(self):
        return 4

    def __getitem__(self, i):
        self.event.wait(30)
        return i


class ExitingDataset(Dataset):
    def __len__(self):
        return 4

    def __getitem__(self, i):
        os._exit(3)


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has exited
    except OSError:
        return True


def assert_all_gone(pids, within=5.0):
    deadline = time.monotonic() + within
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not [p for p in pids if alive(p)]
    assert multiprocessing.active_children() == []


# ---------------------------------------------------------------- argument validation

@pytest.mark.parametrize("kwargs,exc,msg", [
    ({"num_workers": -1}, ValueError, "num_workers option should be non-negative"),
    ({"timeout": -1}, ValueError, "timeout option should be non-negative"),
    ({"prefetch_factor": 2}, ValueError, "prefetch_factor option could only be specified in multiprocessing"),
    ({"num_workers": 1, "prefetch_factor": -1}, ValueError, "prefetch_factor option should be non-negative"),
    ({"persistent_workers": True}, ValueError, "persistent_workers option needs num_workers > 0"),
    ({"sampler": [0, 1], "shuffle": True}, ValueError, "sampler option is mutually exclusive with shuffle"),
    ({"batch_sampler": [[0]], "batch_size": 2}, ValueError,
     "batch_sampler option is mutually exclusive with batch_size, shuffle, sampler, and drop_last"),
    ({"batch_sampler": [[0]], "shuffle": True}, ValueError, "batch_sampler option is mutually exclusive"),
    ({"batch_sampler": [[0]], "sampler": [0]}, ValueError, "batch_sampler option is mutually exclusive"),
    ({"batch_sampler": [[0]], "drop_last": True}, ValueError, "batch_sampler option is mutually exclusive"),
    ({"batch_size": None, "drop_last": True}, ValueError,
     "batch_size=None option disables auto-batching and is mutually exclusive with drop_last"),
    ({"batch_size": 0}, ValueError, "batch_size should be a positive integer value, but got batch_size=0"),
    ({"multiprocessing_context": "fork"}, ValueError, "multiprocessing_context can only be used with multi-process"),
    ({"num_workers": 1, "multiprocessing_context": "nope"}, ValueError,
     "multiprocessing_context option should specify a valid start method"),
    ({"num_workers": 1, "multiprocessing_context": 3}, TypeError,
     "multiprocessing_context option should be a valid context object"),
])
def test_argument_errors(kwargs, exc, msg):
    with pytest.raises(exc, match=msg):
        DataLoader(Range(4), **kwargs)


@pytest.mark.parametrize("kwargs,msg", [
    ({"shuffle": True}, "expected unspecified shuffle option, but got shuffle=True"),
    ({"sampler": [0]}, "expected unspecified sampler option"),
    ({"batch_sampler": [[0]]}, "expected unspecified batch_sampler option"),
])
def test_iterable_dataset_argument_errors(kwargs, msg):
    with pytest.raises(ValueError, match=msg):
        DataLoader(Stream(3), **kwargs)


def test_attributes_frozen_after_init():
    dl = DataLoader(Range(4), batch_size=2)
    with pytest.raises(ValueError, match="batch_size attribute should not be set after DataLoader is initialized"):
        dl.batch_size = 3
    dl.num_workers = 0  # others may change
    assert dl.prefetch_factor is None and dl.batch_size == 2 and not dl.drop_last


# ---------------------------------------------------------------- single process

def batches(loader):
    return [b.tolist() if isinstance(b, disttorch.Tensor) else b for b in loader]


@pytest.mark.parametrize("n,bs,drop_last,expected", [
    (7, 3, False, [[0, 1, 2], [3, 4, 5], [6]]),
    (7, 3, True, [[0, 1, 2], [3, 4, 5]]),
    (6, 2, True, [[0, 1], [2, 3], [4, 5]]),
    (2, 4, True, []),
])
def test_batching_and_len(n, bs, drop_last, expected):
    dl = DataLoader(Range(n), batch_size=bs, drop_last=drop_last)
    assert batches(dl) == expected and len(dl) == len(expected)


def test_default_batch_size_is_one():
    out = list(DataLoader(Range(3)))
    assert [b.tolist() for b in out] == [[0], [1], [2]] and out[0].dtype is disttorch.int64


def test_tensor_dataset_batches():
    x = disttorch.tensor(np.arange(10.0, dtype=np.float32).reshape(5, 2))
    y = disttorch.tensor([0, 1, 0, 1, 1])
    out = list(DataLoader(TensorDataset(x, y), batch_size=2))
    assert len(out) == 3
    np.testing.assert_array_equal(out[1][0].numpy(), [[4.0, 5.0], [6.0, 7.0]])
    assert out[1][0].dtype is disttorch.float32
    np.testing.assert_array_equal(out[2][1].numpy(), [1])


def test_batch_size_none_converts_without_batching():
    class Np(Dataset):
        def __len__(self):
            return 3

        def __getitem__(self, i):
            return np.full(2, i, dtype=np.float32)

    dl = DataLoader(Np(), batch_size=None)
    out = list(dl)
    assert len(dl) == 3 and len(out) == 3
    assert isinstance(out[2], disttorch.Tensor) and out[2].dtype is disttorch.float32
    np.testing.assert_array_equal(out[2].numpy(), [2.0, 2.0])
    assert list(DataLoader(Range(3), batch_size=None)) == [0, 1, 2]  # default_convert leaves ints alone


def test_shuffle_reproducible_with_seeded_generator():
    a = [x for b in DataLoader(Range(20), batch_size=6, shuffle=True, generator=gen(11)) for x in b.tolist()]
    b = [x for b in DataLoader(Range(20), batch_size=6, shuffle=True, generator=gen(11)) for x in b.tolist()]
    assert a == b and sorted(a) == list(range(20)) and a != list(range(20))
    dl = DataLoader(Range(20), batch_size=6, shuffle=True, generator=gen(11))
    e1 = [x for b in dl for x in b.tolist()]
    e2 = [x for b in dl for x in b.tolist()]
    assert e1 == a and e2 != e1 and sorted(e2) == list(range(20))  # reshuffled every epoch


def test_shuffle_follows_manual_seed():
    disttorch.manual_seed(0)
    a = batches(DataLoader(Range(10), batch_size=10, shuffle=True))
    disttorch.manual_seed(0)
    assert batches(DataLoader(Range(10), batch_size=10, shuffle=True)) == a


def test_sampler_batch_sampler_and_collate_fn():
    assert batches(DataLoader(Range(5), batch_size=2, sampler=[4, 3, 2, 1, 0])) == [[4, 3], [2, 1], [0]]
    bs = BatchSampler(SequentialSampler(range(5)), 2, True)
    dl = DataLoader(Range(5), batch_sampler=bs)
    assert batches(dl) == [[0, 1], [2, 3]] and len(dl) == 2 and dl.batch_size is None
    assert list(DataLoader(Range(5), batch_size=2, collate_fn=sum)) == [1, 5, 4]


def test_getitems_used_for_batches():
    class Batched(Range):
        def __getitems__(self, idx):
            return [100 + i for i in idx]

    assert batches(DataLoader(Batched(3), batch_size=2)) == [[100, 101], [102]]


def test_iterable_dataset_single_process():
    assert batches(DataLoader(Stream(5), batch_size=2)) == [[0, 1], [2, 3], [4]]
    assert batches(DataLoader(Stream(5), batch_size=2, drop_last=True)) == [[0, 1], [2, 3]]
    assert len(DataLoader(Stream(5), batch_size=2)) == 3
    assert len(DataLoader(Stream(5), batch_size=2, drop_last=True)) == 2
    assert list(DataLoader(Stream(3), batch_size=None)) == [0, 1, 2]


def test_iterable_dataset_longer_than_reported_warns():
    class Liar(Stream):
        def __len__(self):
            return 1

    dl = DataLoader(Liar(3), batch_size=None)
    assert len(dl) == 1
    with pytest.warns(UserWarning, match="was reported to be 1"):
        assert list(dl) == [0, 1, 2]


def test_pin_memory_is_a_noop_on_cpu():
    with pytest.warns(UserWarning, match="'pin_memory' argument is set as true but no accelerator is found"):
        out = batches(DataLoader(Range(3), batch_size=2, pin_memory=True))
    assert out == [[0, 1], [2]]


def test_get_worker_info_in_main_process():
    assert get_worker_info() is None


# ---------------------------------------------------------------- worker processes

pytestmark_workers = pytest.mark.timeout(60)


@pytestmark_workers
def test_workers_keep_order_and_exit():
    dl = DataLoader(PidDataset(), batch_size=2, num_workers=2)
    out = list(dl)
    assert [b[0].tolist() for b in out] == [[0, 1], [2, 3], [4, 5], [6, 7]]
    pids = [b[1][0].item() for b in out]
    # Batches go round-robin: worker 0 loads batches 0 and 2, worker 1 batches 1 and 3.
    assert pids[0] == pids[2] and pids[1] == pids[3] and pids[0] != pids[1] and os.getpid() not in pids
    assert_all_gone(set(pids))


@pytestmark_workers
def test_worker_info_and_seeds():
    dl = DataLoader(InfoDataset(), batch_size=None, num_workers=2, generator=gen(21))
    out = list(dl)
    base = int(disttorch.empty((), dtype=disttorch.int64).random_(generator=gen(21)).item())
    assert [o["id"] for o in out] == [0, 1, 0, 1]
    for o in out:
        assert o["num_workers"] == 2 and o["same_type"] and o["seed"] == base + o["id"]
    w0, w1 = out[0], out[1]
    # First draws in each worker: Python's random seeded with the worker seed, disttorch likewise,
    # NumPy from PyTorch's SeedSequence-style hash of (worker_id, base_seed).
    for o in (w0, w1):
        assert o["py"] == random.Random(base + o["id"]).random()
        assert o["dt"] == disttorch.rand(1, dtype=disttorch.float64, generator=gen(base + o["id"])).item()
        assert o["np"] == np.random.RandomState(reference_numpy_seed(base, o["id"])).rand()
    assert w0["np"] != w1["np"]
    again = list(DataLoader(InfoDataset(), batch_size=None, num_workers=2, generator=gen(21)))
    assert [o["np"] for o in again] == [o["np"] for o in out]
    assert_all_gone({o["pid"] for o in out})


def reference_numpy_seed(base_seed, worker_id):
    """PyTorch's _generate_state, written out (the SeedSequence hash over [worker_id, low32, high32, 0])."""
    mask = 0xFFFFFFFF
    mult_a, mult_b = 0x931E8875, 0x58F38DED
    hash_a = [0x43B0D7E5]

    def h(v):
        v = (v ^ hash_a[0]) & mask
        hash_a[0] = (hash_a[0] * mult_a) & mask
        v = (v * hash_a[0]) & mask
        return (v ^ (v >> 16)) & mask

    def mix(x, y):
        r = ((0xCA01F9DD * x) - (0x4973F715 * y)) & mask
        return (r ^ (r >> 16)) & mask

    pool = [h(e) for e in (worker_id, base_seed & mask, base_seed >> 32, 0)]
    for s in range(4):
        for d in range(4):
            if s != d:
                pool[d] = mix(pool[d], h(pool[s]))
    hash_b, state = 0x8B51F9DD, []
    for v in pool:
        v = (v ^ hash_b) & mask
        hash_b = (hash_b * mult_b) & mask
        v = (v * hash_b) & mask
        state.append((v ^ (v >> 16)) & mask)
    return np.array(state, dtype=np.uint32)


@pytestmark_workers
def test_worker_init_fn():
    def init(worker_id):
        os.environ["DT_TEST_INIT"] = f"w{worker_id}"

    class Env(Range):
        def __getitem__(self, i):
            return os.environ.get("DT_TEST_INIT", "")

    assert list(DataLoader(Env(4), batch_size=None, num_workers=2, worker_init_fn=init)) == ["w0", "w1", "w0", "w1"]
    assert "DT_TEST_INIT" not in os.environ


@pytestmark_workers
def test_iterable_dataset_sharded_per_worker():
    dl = DataLoader(Stream(10), batch_size=2, num_workers=2)
    # Worker 0 streams 0,2,4,6,8 and worker 1 streams 1,3,5,7,9; batches alternate between workers.
    assert batches(dl) == [[0, 2], [1, 3], [4, 6], [5, 7], [8], [9]]
    assert batches(DataLoader(Stream(10), batch_size=2, num_workers=2, drop_last=True)) == [[0, 2], [1, 3], [4, 6],
                                                                                            [5, 7]]


@pytestmark_workers
def test_iterable_dataset_unsharded_is_duplicated():
    out = batches(DataLoader(Stream(3, shard=False), batch_size=None, num_workers=2))
    assert sorted(out) == [0, 0, 1, 1, 2, 2]


@pytestmark_workers
def test_worker_exception_names_worker_and_traceback():
    dl = DataLoader(FailingDataset(bad=3), batch_size=2, num_workers=2)
    it = iter(dl)
    pid0 = next(it)[0].item()
    with pytest.raises(ValueError, match="Caught ValueError in DataLoader worker process 1.") as ei:
        next(it)
    text = str(ei.value)
    assert "Original Traceback (most recent call last)" in text and "bad index 3" in text
    assert "__getitem__" in text
    del ei
    # As in PyTorch the iterator survives a failed batch: the remaining batches still arrive.
    rest = list(it)
    pid1 = rest[0][0].item()
    assert len(rest) == 2
    assert_all_gone({pid0, pid1})


@pytestmark_workers
def test_worker_key_error_and_init_fn_error():
    with pytest.raises(KeyError, match="Caught KeyError in DataLoader worker process 0"):
        list(DataLoader(FailingDataset(bad=0, exc=KeyError), batch_size=2, num_workers=2))

    def bad_init(worker_id):
        if worker_id == 1:
            raise RuntimeError("init failed")

    with pytest.raises(RuntimeError, match="Caught RuntimeError in DataLoader worker process 1"):
        list(DataLoader(Range(4), batch_size=1, num_workers=2, worker_init_fn=bad_init))
    gc.collect()
    assert multiprocessing.active_children() == []


@pytestmark_workers
def test_unpicklable_batch_is_reported():
    class Lambda(Range):
        def __getitem__(self, i):
            return lambda: i

    with pytest.raises(Exception, match="Caught .* in DataLoader worker process 0"):
        list(DataLoader(Lambda(2), batch_size=None, num_workers=1, collate_fn=lambda x: x))


@pytestmark_workers
def test_garbage_collected_iterator_ends_workers():
    dl = DataLoader(PidDataset(), batch_size=1, num_workers=2)
    it = iter(dl)
    pids = {next(it)[1].item(), next(it)[1].item()}
    assert all(alive(p) for p in pids)
    del it  # no gc.collect(): the iterator must not sit in a reference cycle
    assert_all_gone(pids)


@pytestmark_workers
def test_persistent_workers_survive_epochs():
    dl = DataLoader(PidDataset(), batch_size=2, num_workers=2, persistent_workers=True)
    e1, e2 = list(dl), list(dl)
    assert [b[0].tolist() for b in e2] == [[0, 1], [2, 3], [4, 5], [6, 7]]
    pids1 = {b[1][0].item() for b in e1}
    assert pids1 == {b[1][0].item() for b in e2} and len(pids1) == 2
    # An epoch abandoned half-way does not leak its in-flight batches into the next one.
    it = iter(dl)
    next(it)
    assert [b[0].tolist() for b in dl] == [[0, 1], [2, 3], [4, 5], [6, 7]]
    assert all(alive(p) for p in pids1)
    del it, dl
    assert_all_gone(pids1)


@pytestmark_workers
def test_persistent_workers_iterable_dataset():
    dl = DataLoader(Stream(6), batch_size=2, num_workers=2, persistent_workers=True)
    expected = [[0, 2], [1, 3], [4], [5]]
    assert batches(dl) == expected and batches(dl) == expected


@pytestmark_workers
def test_out_of_order_delivers_everything():
    out = batches(DataLoader(Range(10), batch_size=2, num_workers=2, in_order=False))
    assert sorted(x for b in out for x in b) == list(range(10)) and len(out) == 5


@pytestmark_workers
@pytest.mark.parametrize("prefetch_factor", [1, 3])
def test_prefetch_factor(prefetch_factor):
    dl = DataLoader(Range(9), batch_size=2, num_workers=2, prefetch_factor=prefetch_factor)
    assert dl.prefetch_factor == prefetch_factor
    assert batches(dl) == [[0, 1], [2, 3], [4, 5], [6, 7], [8]]
    assert DataLoader(Range(2), num_workers=2).prefetch_factor == 2


@pytestmark_workers
def test_timeout_raises_and_cleans_up(monkeypatch):
    monkeypatch.setattr(_worker, "MP_STATUS_CHECK_INTERVAL", 0.2)  # shorten the join before terminate
    ds = BlockingDataset()
    dl = DataLoader(ds, batch_size=None, num_workers=1, timeout=0.3)
    it = iter(dl)
    pid = it._workers[0].pid
    with pytest.raises(RuntimeError, match=r"DataLoader timed out after 0.3 seconds"):
        next(it)
    del it
    assert_all_gone({pid})


@pytestmark_workers
def test_dead_worker_is_reported(monkeypatch):
    monkeypatch.setattr(_worker, "MP_STATUS_CHECK_INTERVAL", 0.1)
    with pytest.raises(RuntimeError, match=r"DataLoader worker \(pid\(s\) \d+\) exited unexpectedly"):
        list(DataLoader(ExitingDataset(), batch_size=None, num_workers=1))
    gc.collect()
    assert multiprocessing.active_children() == []


@pytestmark_workers
def test_explicit_context_object():
    ctx = multiprocessing.get_context("fork")
    dl = DataLoader(Range(4), batch_size=2, num_workers=2, multiprocessing_context=ctx)
    assert dl.multiprocessing_context is ctx
    assert batches(dl) == [[0, 1], [2, 3]]


@pytestmark_workers
def test_spawn_context_with_tensor_dataset():
    ds = TensorDataset(disttorch.arange(6.0), disttorch.tensor([0, 1, 2, 3, 4, 5]))
    out = list(DataLoader(ds, batch_size=4, num_workers=1, multiprocessing_context="spawn"))
    np.testing.assert_array_equal(out[0][0].numpy(), [0.0, 1.0, 2.0, 3.0])
    np.testing.assert_array_equal(out[1][1].numpy(), [4, 5])


PARENT_SCRIPT = textwrap.dedent("""
    import os, sys, time
    from disttorch.utils.data import DataLoader, Dataset, _worker
    _worker.MP_STATUS_CHECK_INTERVAL = 0.1

    class Pid(Dataset):
        def __len__(self):
            return 100
        def __getitem__(self, i):
            return os.getpid()

    it = iter(DataLoader(Pid(), batch_size=None, num_workers=2))
    print(next(it), next(it), flush=True)
    time.sleep(60)
""")


@pytestmark_workers
def test_workers_exit_when_parent_is_killed():
    p = subprocess.Popen([sys.executable, "-c", PARENT_SCRIPT], stdout=subprocess.PIPE, text=True)
    try:
        pids = {int(x) for x in p.stdout.readline().split()}
        assert len(pids) == 2 and all(alive(x) for x in pids)
    finally:
        p.send_signal(signal.SIGKILL)
        p.wait()
        p.stdout.close()
    assert_all_gone(pids)


def test_worker_info_is_read_only():
    info = _worker.WorkerInfo(id=1, num_workers=2, seed=5, dataset=None)
    assert repr(info) == "WorkerInfo(id=1, num_workers=2, seed=5, dataset=None)"
    with pytest.raises(RuntimeError, match="Cannot assign attributes to WorkerInfo objects"):
        info.id = 3


def test_exception_wrapper_reraise():
    try:
        raise ValueError("boom")
    except ValueError:
        w = _worker.ExceptionWrapper(where="in DataLoader worker process 4")
    with pytest.raises(ValueError, match=r"(?s)Caught ValueError in DataLoader worker process 4\.\nOriginal Traceback"
                                         r".*ValueError: boom"):
        w.reraise()
    try:
        b"\xff".decode("utf-8")
    except UnicodeDecodeError:
        w = _worker.ExceptionWrapper(where="in DataLoader worker process 0")
    # UnicodeDecodeError cannot be built from one message: PyTorch falls back to RuntimeError.
    with pytest.raises(RuntimeError, match="Caught UnicodeDecodeError in DataLoader worker process 0"):
        w.reraise()


def test_len_with_workers_and_iterator_len():
    dl = DataLoader(Range(7), batch_size=2, num_workers=2)
    assert len(dl) == 4
    it = iter(dl)
    assert len(it) == 4
    assert [b.tolist() for b in it] == [[0, 1], [2, 3], [4, 5], [6]]


@pytestmark_workers
def test_failed_worker_init_fails_every_batch_of_that_worker():
    def bad_init(worker_id):
        if worker_id == 0:
            raise OSError("no data here")

    it = iter(DataLoader(Range(4), batch_size=None, num_workers=2, worker_init_fn=bad_init))
    outcomes = []
    for _ in range(4):
        try:
            outcomes.append(next(it))
        except OSError as e:
            outcomes.append(str(e).splitlines()[0])
    assert outcomes == ["Caught OSError in DataLoader worker process 0.", 1,
                        "Caught OSError in DataLoader worker process 0.", 3]
    with pytest.raises(StopIteration):
        next(it)
