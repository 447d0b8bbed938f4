"""DDP, comm hooks, SyncBatchNorm, futures and elastic without processes: a fake two-rank world.

The fake ``disttorch.distributed`` pretends to be rank 0 of a world of 2 whose other rank holds exactly the
same data: all_reduce(SUM) doubles, broadcast and MAX leave values unchanged. So an averaged gradient must
equal the single-process gradient, and SyncBatchNorm must equal BatchNorm over the batch concatenated with
itself. Real multi-process behaviour is tested in test_ddp.py.
"""
from __future__ import annotations


import numpy as np
import pytest

import disttorch as torch
import disttorch.distributed.algorithms.join as join_mod
import disttorch.distributed.elastic as elastic
import disttorch.nn.modules.batchnorm as bn_mod
import disttorch.nn.parallel.distributed as ddp_mod
from disttorch import nn
from disttorch.distributed.algorithms.ddp_comm_hooks import default_hooks
from disttorch.distributed.process_group import ReduceOp, Work
from disttorch.futures import Future, collect_all, wait_all
from disttorch.nn.parallel import DistributedDataParallel as DDP


class FakeDist:
    """Rank 0 of a world of ``ws`` identical ranks; records every collective."""

    ReduceOp = ReduceOp

    def __init__(self, ws: int = 2) -> None:
        self.ws, self.calls = ws, []

    def is_available(self):
        return True

    def is_initialized(self):
        return True

    def get_rank(self, group=None):
        return 0

    def get_world_size(self, group=None):
        return self.ws

    def all_reduce(self, t, op=ReduceOp.SUM, group=None, async_op=False):
        self.calls.append(("all_reduce", tuple(t.shape), str(t.dtype)))
        if op in (ReduceOp.SUM, ReduceOp.AVG):
            t._data[...] = t._data * self.ws
        return Work.completed() if async_op else None

    def broadcast(self, t, src=0, group=None, async_op=False):
        self.calls.append(("broadcast", tuple(t.shape), str(t.dtype)))
        return Work.completed() if async_op else None

    def barrier(self, group=None):
        self.calls.append(("barrier",))


@pytest.fixture
def fake(monkeypatch):
    d = FakeDist(2)
    for mod in (ddp_mod, join_mod, default_hooks, bn_mod, elastic):
        monkeypatch.setattr(mod, "_dist", lambda: d)
    return d


def _mlp(seed=0, dtype=torch.float32):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3)).to(dtype)


def _copy(m):
    c = _mlp()
    c.load_state_dict(m.state_dict())
    return c


# ---- bucketing ------------------------------------------------------------------------------------
def test_bucket_assignment_by_size():
    f = ddp_mod._compute_bucket_assignment_by_size
    assert f([4, 4, 4, 4, 4], ["a"] * 5, [8]) == [[0, 1], [2, 3], [4]]
    # first bucket uses the first limit, later ones the last
    assert f([4, 4, 4, 4, 4, 4], ["a"] * 6, [4, 12]) == [[0], [1, 2, 3], [4, 5]]
    # dtypes never share a bucket; buckets ordered by their first tensor
    assert f([4, 4, 4, 4], ["a", "b", "a", "b"], [8]) == [[0, 2], [1, 3]]
    assert f([100], ["a"], [8]) == [[0]]


def test_buckets_reverse_registration_order(fake):
    m = DDP(_mlp(), bucket_cap_mb=100 / 2 ** 20)  # 100 bytes: 2.bias (12) + 2.weight (96) fill one bucket
    assert m._bucket_param_names() == [["2.bias", "2.weight"], ["0.bias", "0.weight"]]
    big = DDP(_mlp())
    assert big._bucket_param_names() == [["2.bias", "2.weight", "0.bias", "0.weight"]]
    assert big.bucket_bytes_cap == 25 * 2 ** 20


def test_construction_broadcasts_coalesced(fake):
    m = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    DDP(m)
    # one flat float32 buffer for params + float buffers, one int64 for num_batches_tracked
    assert sorted(c for c in fake.calls if c[0] == "broadcast") == sorted([
        ("broadcast", (3 * 2 + 2 + 2 + 2 + 2 + 2,), "disttorch.float32"), ("broadcast", (1,), "disttorch.int64")])


def test_not_initialized_and_no_params(monkeypatch, fake):
    with pytest.raises(RuntimeError, match="doesn't have any parameter"):
        DDP(nn.ReLU())
    monkeypatch.setattr(fake, "is_initialized", lambda: False)
    with pytest.raises(ValueError, match="init_process_group"):
        DDP(_mlp())


# ---- gradients ------------------------------------------------------------------------------------
@pytest.mark.parametrize("as_view", [False, True])
@pytest.mark.parametrize("cap", [None, 100 / 2 ** 20])
def test_averaged_grads_equal_local(fake, as_view, cap):
    net = _mlp()
    ref = _copy(net)
    m = DDP(net, bucket_cap_mb=cap, gradient_as_bucket_view=as_view)
    x = torch.randn(5, 4)
    for _ in range(2):  # second iteration: grads accumulate into existing .grad
        m(x).pow(2).sum().backward()
        ref(x).pow(2).sum().backward()
        for p, q in zip(net.parameters(), ref.parameters()):
            np.testing.assert_allclose(p.grad.numpy(), q.grad.numpy(), rtol=1e-6, atol=1e-7)
    n_buckets = len(m._buckets)
    assert [c[0] for c in fake.calls].count("all_reduce") == 2 * n_buckets
    if as_view:
        w = net[0].weight
        b = m._buckets[m._param_slot[0][0]].buffer
        assert np.shares_memory(w.grad.numpy(), b)


def test_no_sync_accumulates_locally(fake):
    net = _mlp()
    ref = _copy(net)
    m = DDP(net)
    xs = [torch.randn(3, 4) for _ in range(3)]
    with m.no_sync():
        for x in xs[:2]:
            m(x).sum().backward()
    assert not any(c[0] == "all_reduce" for c in fake.calls)
    m(xs[2]).sum().backward()
    assert [c[0] for c in fake.calls].count("all_reduce") == 1
    for x in xs:
        ref(x).sum().backward()
    for p, q in zip(net.parameters(), ref.parameters()):
        np.testing.assert_allclose(p.grad.numpy(), q.grad.numpy(), rtol=1e-6, atol=1e-6)


def test_backward_without_ddp_forward_does_not_reduce(fake):
    net = _mlp()
    m = DDP(net)
    net(torch.randn(2, 4)).sum().backward()
    with torch.no_grad():
        m(torch.randn(2, 4))
    assert not any(c[0] == "all_reduce" for c in fake.calls)


class TwoHeads(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(3, 2)
        self.b = nn.Linear(3, 2)

    def forward(self, x):
        return self.a(x)


def test_unused_parameter_raises_on_next_forward(fake):
    m = DDP(TwoHeads())
    x = torch.randn(2, 3)
    m(x).sum().backward()
    with pytest.raises(RuntimeError, match=r"(?s)Expected to have finished reduction.*find_unused_parameters=True"
                                           r".*indices which did not receive grad for rank 0: 2 3.*b.weight, b.bias"):
        m(x)
    m(x)  # the error resets the iteration: the model stays usable


def test_find_unused_parameters(fake):
    net = TwoHeads()
    m = DDP(net, find_unused_parameters=True)
    x = torch.randn(2, 3)
    for _ in range(2):
        m(x).sum().backward()
    assert net.b.weight.grad is None and net.b.bias.grad is None
    np.testing.assert_allclose(net.a.bias.grad.numpy(), [4.0, 4.0])


def test_state_dict_and_module(fake):
    net = _mlp()
    m = DDP(net)
    assert m.module is net
    assert list(m.state_dict()) == ["module." + k for k in net.state_dict()]
    assert len(list(m.parameters())) == 4


# ---- comm hooks -----------------------------------------------------------------------------------
def test_custom_comm_hook_plumbing(fake):
    seen = []

    def hook(state, bucket):
        seen.append((state, bucket.index(), bucket.is_last(), [tuple(p.shape) for p in bucket.parameters()]))
        assert all(np.shares_memory(g.numpy(), bucket.buffer().numpy()) for g in bucket.gradients())
        fut = Future()
        fut.set_result(bucket.buffer() * 0 + 1)  # a new tensor: DDP copies it into the bucket
        return fut

    net = _mlp()
    m = DDP(net, bucket_cap_mb=100 / 2 ** 20)
    m.register_comm_hook("state", hook)
    m(torch.randn(2, 4)).sum().backward()
    assert seen == [("state", 0, False, [(3,), (3, 8)]), ("state", 1, True, [(8,), (8, 4)])]
    assert all((p.grad.numpy() == 1).all() for p in net.parameters())
    with pytest.raises(RuntimeError, match="only be called once"):
        m.register_comm_hook(None, hook)


@pytest.mark.parametrize("hook,dtype,tol", [(default_hooks.fp16_compress_hook, "float16", 1e-3),
                                            (default_hooks.bf16_compress_hook, "bfloat16", 1e-2),
                                            (default_hooks.allreduce_hook, "float32", 1e-6)])
def test_default_hooks(fake, hook, dtype, tol):
    net = _mlp()
    ref = _copy(net)
    m = DDP(net)
    m.register_comm_hook(None, hook)
    x = torch.randn(5, 4)
    m(x).sum().backward()
    ref(x).sum().backward()
    assert fake.calls[-1] == ("all_reduce", (sum(p.numel() for p in net.parameters()),), f"disttorch.{dtype}")
    for p, q in zip(net.parameters(), ref.parameters()):
        assert p.grad.dtype == torch.float32
        np.testing.assert_allclose(p.grad.numpy(), q.grad.numpy(), rtol=tol, atol=tol)


def test_hook_must_return_future(fake):
    m = DDP(_mlp())
    m.register_comm_hook(None, lambda s, b: b.buffer())
    with pytest.raises(RuntimeError, match="must return a Future"):
        m(torch.randn(2, 4)).sum().backward()


# ---- futures --------------------------------------------------------------------------------------
def test_future_then_and_errors():
    f = Future()
    g = f.then(lambda x: x.value() * 2)
    assert not f.done() and not g.done()
    f.set_result(21)
    assert g.wait() == 42 and g.done()
    with pytest.raises(RuntimeError, match="only be marked completed once"):
        f.set_result(1)
    e = Future()
    chained = e.then(lambda x: x.value())
    e.set_exception(ValueError("boom"))
    with pytest.raises(ValueError, match="boom"):
        chained.wait()
    with pytest.raises(RuntimeError, match="not completed"):
        Future().value()


def test_future_lazy_of_work():
    w = Work()
    f = Future._of_work(w)
    g = f.then(lambda x: x.value()[0] + 1)
    assert not f.done() and not g.done()
    w._finish(result=[7])
    assert g.done() and f.done()  # done() finds the work finished and completes the chain in this thread
    assert g.wait() == 8
    assert wait_all([Future._of_work(Work.completed(1)), Future._of_work(Work.completed(1), "given")]) == [1, "given"]
    assert collect_all([f]).wait() == [f]
    failed = Work()
    h = Future._of_work(failed)
    failed._finish(ValueError("backend broke"))
    with pytest.raises(ValueError, match="backend broke"):
        h.wait()


# ---- SyncBatchNorm --------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(3, 4), (3, 4, 5), (2, 4, 3, 2)])
def test_sync_batchnorm_matches_concatenated_batch(fake, shape):
    torch.manual_seed(1)
    x = torch.randn(*shape, dtype=torch.float64, requires_grad=True)
    w = torch.randn(*shape, dtype=torch.float64)
    sbn = nn.SyncBatchNorm(4).double()
    with torch.no_grad():
        sbn.weight.uniform_(0.5, 1.5)
        sbn.bias.uniform_(-1, 1)
    bn = (nn.BatchNorm1d if len(shape) < 4 else nn.BatchNorm2d)(4).double()
    bn.load_state_dict(sbn.state_dict())
    y = sbn(x)
    (y * w).sum().backward()
    xx = torch.cat([x.detach(), x.detach()]).requires_grad_()
    yy = bn(xx)
    (yy * torch.cat([w, w])).sum().backward()
    n = shape[0]
    np.testing.assert_allclose(y.detach().numpy(), yy.detach().numpy()[:n], atol=1e-12)
    np.testing.assert_allclose(x.grad.numpy(), xx.grad.numpy()[:n], atol=1e-12)
    # parameter gradients stay local (DDP averages them): half of the concatenated batch's
    np.testing.assert_allclose(2 * sbn.weight.grad.numpy(), bn.weight.grad.numpy(), atol=1e-12)
    np.testing.assert_allclose(2 * sbn.bias.grad.numpy(), bn.bias.grad.numpy(), atol=1e-12)
    np.testing.assert_allclose(sbn.running_mean.numpy(), bn.running_mean.numpy(), atol=1e-12)
    np.testing.assert_allclose(sbn.running_var.numpy(), bn.running_var.numpy(), atol=1e-12)
    assert [c[0] for c in fake.calls] == ["all_reduce", "all_reduce"]


def test_sync_batchnorm_float32_and_eval(fake):
    x = torch.randn(6, 3) * 5 + 100  # large mean: sums are accumulated in float64
    sbn = nn.SyncBatchNorm(3)
    y = sbn(x)
    assert y.dtype == torch.float32
    xn = x.numpy().astype(np.float64)
    ref = (xn - xn.mean(0)) / np.sqrt(xn.var(0) + 1e-5)
    np.testing.assert_allclose(y.detach().numpy(), ref, atol=1e-4)
    sbn.eval()
    fake.calls.clear()
    ye = sbn(x)
    assert fake.calls == []
    rm, rv = sbn.running_mean.numpy(), sbn.running_var.numpy()
    np.testing.assert_allclose(ye.detach().numpy(), (x.numpy() - rm) / np.sqrt(rv + 1e-5), rtol=1e-5)


def test_sync_batchnorm_without_process_group():
    # The real disttorch.distributed is not initialised in this process: plain batch norm.
    x = torch.randn(4, 3, 2)
    sbn = nn.SyncBatchNorm(3)
    bn = nn.BatchNorm1d(3)
    np.testing.assert_allclose(sbn(x).detach().numpy(), bn(x).detach().numpy(), atol=1e-6)
    with pytest.raises(ValueError, match="expected at least 2D input"):
        sbn(torch.randn(3))
    with pytest.raises(ValueError, match="channels should be non-zero"):
        nn.SyncBatchNorm(0)(torch.randn(2, 0))


def test_convert_sync_batchnorm():
    inner = nn.BatchNorm1d(3, momentum=None, eps=1e-3)
    m = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Sequential(inner, nn.ReLU()))
    m[1].running_mean.fill_(2.0)
    m.eval()
    c = nn.SyncBatchNorm.convert_sync_batchnorm(m, process_group="pg")
    assert isinstance(c[1], nn.SyncBatchNorm) and isinstance(c[2][0], nn.SyncBatchNorm)
    assert isinstance(c[0], nn.Conv2d) and isinstance(c[2][1], nn.ReLU)
    assert c[1].weight is m[1].weight and c[1].running_mean is m[1].running_mean
    assert c[2][0].momentum is None and c[2][0].eps == 1e-3 and c[2][0].process_group == "pg"
    assert not c[1].training
    assert list(c.state_dict()) == list(m.state_dict())
    single = nn.SyncBatchNorm.convert_sync_batchnorm(nn.BatchNorm1d(5))
    assert isinstance(single, nn.SyncBatchNorm) and single.num_features == 5


# ---- elastic --------------------------------------------------------------------------------------
def test_checkpointer_single_process(tmp_path, monkeypatch):
    monkeypatch.setattr(elastic, "_initialized", lambda: False)
    ck = elastic.Checkpointer(tmp_path / "sub" / "ckpt.pt")
    assert ck.load() is None and not ck.exists()
    ck.save({"epoch": 3, "w": torch.arange(4)})
    state = ck.load()
    assert state["epoch"] == 3 and state["w"].tolist() == [0, 1, 2, 3]
    monkeypatch.setenv("RANK", "1")
    ck.save({"epoch": 4})  # only rank 0 writes
    assert ck.load()["epoch"] == 3


def test_checkpointer_barrier(tmp_path, fake):
    ck = elastic.Checkpointer(str(tmp_path / "c.pt"))
    ck.save({"a": 1})
    assert fake.calls == [("barrier",)] and ck.load() == {"a": 1}


def test_restart_count(monkeypatch):
    monkeypatch.delenv("TORCHELASTIC_RESTART_COUNT", raising=False)
    assert elastic.restart_count() == 0
    monkeypatch.setenv("TORCHELASTIC_RESTART_COUNT", "2")
    assert elastic.restart_count() == 2
    monkeypatch.setenv("TORCHELASTIC_RESTART_COUNT", "x")
    with pytest.raises(ValueError, match="TORCHELASTIC_RESTART_COUNT"):
        elastic.restart_count()
