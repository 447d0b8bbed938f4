"""Tensor.share_memory_() / is_shared() in one process: in place, aliases follow, values kept."""
from __future__ import annotations

import gc
import os
import pickle
import sys

import numpy as np
import pytest

import disttorch as torch
import disttorch.multiprocessing as mp
from disttorch.multiprocessing import _segments


def _mapped_inodes() -> set:
    """Inodes of the memfd segments this process maps or holds a descriptor of."""
    out = set()
    with open("/proc/self/maps") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 6 and "memfd:disttorch_" in line:
                out.add(int(parts[4]))
    for fd in os.listdir("/proc/self/fd"):
        try:
            if "memfd:disttorch_" in os.readlink(f"/proc/self/fd/{fd}"):
                out.add(os.fstat(int(fd)).st_ino)
        except OSError:
            pass
    return out


def test_module_is_torch_multiprocessing():
    import multiprocessing

    assert torch.multiprocessing is mp
    for name in multiprocessing.__all__:
        assert hasattr(mp, name), name
    for name in ["spawn", "start_processes", "ProcessContext", "SpawnContext", "ProcessRaisedException",
                 "ProcessExitedException", "ProcessException", "set_sharing_strategy", "get_sharing_strategy",
                 "get_all_sharing_strategies"]:
        assert name in mp.__all__ and callable(getattr(mp, name)), name
    assert mp.get_all_sharing_strategies() == {"file_descriptor", "file_system"}
    assert mp.get_sharing_strategy() == "file_descriptor"  # set to "file_system" in test_jobs.py's job
    mp.set_sharing_strategy("file_descriptor")
    with pytest.raises(AssertionError,
                       match=r"^invalid sharing strategy 'shm', expected one of \{'file_descriptor', 'file_system'\}$"):
        mp.set_sharing_strategy("shm")
    assert mp.cpu_count() >= 1 and mp.current_process().name == "MainProcess"


@pytest.mark.parametrize("make", [
    lambda: torch.arange(24, dtype=torch.float32).reshape(2, 3, 4),
    lambda: torch.tensor(3.5, dtype=torch.float64),
    lambda: torch.zeros(0, 3),
    lambda: torch.arange(10, dtype=torch.int64).flip(0),
    lambda: torch.tensor([True, False, True]),
    lambda: torch.linspace(-1, 1, 7, dtype=torch.bfloat16),
    lambda: torch.arange(12.).reshape(3, 4).t(),
], ids=["f32-3d", "0d-f64", "empty", "flipped-i64", "bool", "bf16", "transposed"])
def test_share_memory_keeps_identity_values_and_layout(make):
    t = make()
    expected = t.clone().numpy().copy()
    strides = t.stride()
    assert not t.is_shared()
    assert t.share_memory_() is t
    assert t.is_shared()
    assert t.stride() == strides
    np.testing.assert_array_equal(t.numpy(), expected)
    before = t._data
    t.share_memory_()  # already shared: a no-op
    assert t._data is before


def test_views_and_aliases_move_with_the_tensor():
    base = torch.arange(12.).reshape(3, 4)
    row = base[1]
    col_t = base.t()
    alias = base.data
    det = base.detach()
    unrelated = torch.arange(12.).reshape(3, 4)
    base.share_memory_()
    for t in (row, col_t, alias, det):
        assert t.is_shared()
    assert not unrelated.is_shared()
    # Writes through any alias land in the one shared buffer.
    row.add_(100.0)
    col_t[3, 2] = -7.0  # base[2, 3]
    alias[0, 0] = 42.0
    ref = np.arange(12.).reshape(3, 4)
    ref[1] += 100.0
    ref[2, 3] = -7.0
    ref[0, 0] = 42.0
    for t in (base, det, alias):
        np.testing.assert_array_equal(t.numpy(), ref)
    np.testing.assert_array_equal(row.numpy(), ref[1])
    seg = _segments.segment_of(base._data)
    assert all(_segments.segment_of(t._data) is seg for t in (row, col_t, alias, det))


def test_sharing_a_view_shares_its_whole_base():
    base = torch.arange(10.)
    tail = base[5:]
    tail.share_memory_()
    assert base.is_shared() and tail.is_shared()
    base[7] = -1.0
    assert tail[2].item() == -1.0


def test_parameter_and_module_share_memory_in_place():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 2))
    params = list(model.parameters())
    values = [p.detach().clone() for p in params]
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    assert model.share_memory() is model
    assert [id(p) for p in model.parameters()] == [id(p) for p in params]
    assert all(p.is_shared() and isinstance(p, torch.nn.Parameter) and p.requires_grad for p in params)
    assert all(b.is_shared() for b in model.buffers())
    for p, v in zip(params, values):
        assert torch.equal(p.detach(), v)
    # The optimizer still holds the same objects and updates the shared memory in place.
    x = torch.randn(5, 3)
    model(x).sum().backward()
    grads = [p.grad.clone() for p in params]
    opt.step()
    for p, v, g in zip(params, values, grads):
        np.testing.assert_allclose(p.detach().numpy(), (v - 0.1 * g).numpy(), rtol=1e-6, atol=1e-7)
        assert p.is_shared()


def test_shared_tensor_ops_give_private_results_and_pickle_copies():
    t = torch.ones(4).share_memory_()
    assert not (t + 1).is_shared()
    assert not t.clone().is_shared()
    import copy

    c = copy.deepcopy(t)
    assert not c.is_shared() and torch.equal(c, t)
    # Plain pickle (not multiprocessing's ForkingPickler) copies by value.
    u = pickle.loads(pickle.dumps(t))
    assert not u.is_shared() and torch.equal(u, t)


def test_non_leaf_requiring_grad_is_refused_on_send():
    from multiprocessing.reduction import ForkingPickler

    x = torch.ones(2, requires_grad=True)
    with pytest.raises(RuntimeError, match="Cowardly refusing to serialize non-leaf tensor which requires_grad"):
        ForkingPickler.dumps(x * 2)


def test_file_descriptor_segment_is_released_with_its_last_tensor():
    t = torch.zeros(1000).share_memory_()
    view = t[10:20]
    ino = os.fstat(_segments.segment_of(t._data).fd).st_ino
    assert ino in _mapped_inodes()
    del t
    gc.collect()
    assert ino in _mapped_inodes()  # the view still maps it
    del view
    gc.collect()
    assert ino not in _mapped_inodes()


def test_adagrad_share_memory_moves_its_state():
    p = torch.nn.Parameter(torch.ones(3))
    opt = torch.optim.Adagrad([p], lr=0.1)
    opt.share_memory()
    state = opt.state[p]["sum"]
    assert state.is_shared()
    p.grad = torch.full((3,), 2.0)
    opt.step()
    assert opt.state[p]["sum"] is state and state.is_shared()
    np.testing.assert_allclose(state.numpy(), [4.0] * 3)  # 0 + 2**2, updated in the shared memory


def test_spawn_api_details(monkeypatch):
    calls = []
    spawn_module = sys.modules["disttorch.multiprocessing.spawn"]  # mp.spawn is the function, as in PyTorch
    monkeypatch.setattr(spawn_module, "start_processes", lambda *a, **k: calls.append((a, k)))
    with pytest.warns(FutureWarning, match=r"This method only supports start_method=spawn \(got: fork\)"):
        mp.spawn(print, args=(1,), nprocs=3, start_method="fork")
    assert calls == [((print, (1,), 3, True, False), {"start_method": "spawn"})]
    with pytest.warns(UserWarning, match="SpawnContext is renamed to ProcessContext since 1.4 release."):
        ctx = mp.SpawnContext([], [])
    assert ctx.join() is True and ctx.pids() == []
    e = pickle.loads(pickle.dumps(mp.ProcessExitedException("process 0 terminated with signal SIGKILL", 0, 123, -9,
                                                            "SIGKILL")))
    assert (str(e), e.error_index, e.pid, e.exit_code, e.signal_name) == \
        ("process 0 terminated with signal SIGKILL", 0, 123, -9, "SIGKILL")
    e = pickle.loads(pickle.dumps(mp.ProcessRaisedException("boom", 1, 7)))
    assert (str(e), e.error_index, e.pid) == ("boom", 1, 7)


def test_running_out_of_descriptors_names_the_limit_and_the_fix():
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    kept = []
    # RLIMIT_NOFILE bounds descriptor numbers, and a new descriptor takes the lowest free number: two above the
    # lowest free one leaves room for at most two (counting open descriptors fails when earlier tests left
    # holes below high-numbered ones)
    lowest = os.open(os.devnull, os.O_RDONLY)
    os.close(lowest)
    resource.setrlimit(resource.RLIMIT_NOFILE, (lowest + 2, hard))
    try:
        with pytest.raises(RuntimeError, match=r"too many open files \(limit \d+\).*"
                                               r"set_sharing_strategy\('file_system'\)"):
            for _ in range(10):
                kept.append(torch.zeros(4).share_memory_())
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert all(t.is_shared() for t in kept) and len(kept) < 10
