"""DDP on a real one-rank zmq group: the built-in all-reduce of one rank moves nothing (no bucket copies, no
collective), and everything that needs the buckets (comm hooks, gradient_as_bucket_view) still gets them."""
from __future__ import annotations

import os
import sys
from datetime import timedelta

import numpy as np
import pytest

import disttorch
import disttorch.distributed as dist
from disttorch import nn
from disttorch.nn.parallel import DistributedDataParallel as DDP

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _procs import free_port  # noqa: E402

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def one_rank(monkeypatch):
    for var in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "LOCAL_RANK"):
        monkeypatch.delenv(var, raising=False)
    dist.init_process_group("zmq", init_method=f"tcp://127.0.0.1:{free_port()}", rank=0, world_size=1,
                            timeout=timedelta(seconds=30))
    yield
    dist.destroy_process_group()


class _Net(nn.Module):
    """Linear-Tanh-Linear-Linear; ``skip_last`` leaves the last layer out of the forward (an unused parameter)."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b, self.c = nn.Linear(6, 16), nn.Linear(16, 3), nn.Linear(3, 2)
        self.skip_last = False

    def forward(self, x):
        h = self.b(self.a(x).tanh())
        return h if self.skip_last else self.c(h)


def _net(seed: int = 0) -> _Net:
    disttorch.manual_seed(seed)
    return _Net()


def _grads(model, x):
    model(x).pow(2).sum().backward()
    return [None if p.grad is None else p.grad.numpy().copy() for p in model.parameters()]


def _counting(monkeypatch) -> list:
    """Record every all-reduce DDP issues (plain and bucket ones)."""
    from disttorch.nn.parallel import _reducer

    calls = []
    real, real_bucket = dist.all_reduce, _reducer.bucket_all_reduce
    monkeypatch.setattr(dist, "all_reduce", lambda *a, **k: (calls.append(1), real(*a, **k))[1])
    monkeypatch.setattr(_reducer, "bucket_all_reduce", lambda *a, **k: (calls.append(1), real_bucket(*a, **k))[1])
    return calls


def test_one_rank_backward_moves_nothing(one_rank, monkeypatch):
    x = disttorch.tensor(np.random.default_rng(0).standard_normal((5, 6)), dtype=disttorch.float32)
    want = _grads(_net(), x)
    ddp = DDP(_net(), bucket_cap_mb=100 / 2 ** 20)  # several buckets
    assert len(ddp._buckets) > 1
    calls = _counting(monkeypatch)
    for b in ddp._buckets:
        b.buffer[...] = 7.0  # what a copy into the bucket would overwrite
    ddp(x).pow(2).sum().backward()
    assert calls == []
    assert all(np.all(b.buffer == 7.0) for b in ddp._buckets)
    for p, w in zip(ddp.module.parameters(), want):
        assert np.array_equal(p.grad.numpy(), w)
    ddp(x).pow(2).sum().backward()  # the next iteration starts cleanly: the reduction finished
    for p, w in zip(ddp.module.parameters(), want):
        assert np.array_equal(p.grad.numpy(), 2 * w)


def test_one_rank_no_sync_then_sync_with_an_unused_parameter(one_rank):
    x = disttorch.tensor(np.random.default_rng(1).standard_normal((4, 6)), dtype=disttorch.float32)
    ref = _net()
    ref.skip_last = True
    _grads(ref, x)
    want = _grads(ref, x)  # two accumulated backwards
    ddp = DDP(_net(), find_unused_parameters=True)
    ddp.module.skip_last = True
    with ddp.no_sync():
        ddp(x).pow(2).sum().backward()
    ddp(x).pow(2).sum().backward()
    got = [None if p.grad is None else p.grad.numpy() for p in ddp.module.parameters()]
    for g, w in zip(got, want):
        assert (g is None) == (w is None)
        if g is not None:
            assert np.array_equal(g, w)
    assert ddp.module.c.weight.grad is None and ddp.module.c.bias.grad is None


def test_one_rank_comm_hook_and_bucket_views_still_use_the_buckets(one_rank, monkeypatch):
    x = disttorch.tensor(np.random.default_rng(2).standard_normal((3, 6)), dtype=disttorch.float32)
    want = _grads(_net(), x)
    seen = []

    def hook(state, bucket):
        seen.append(bucket.index())
        fut = disttorch.futures.Future()
        fut.set_result(bucket.buffer())
        return fut
    ddp = DDP(_net(), bucket_cap_mb=100 / 2 ** 20)
    ddp.register_comm_hook(None, hook)
    ddp(x).pow(2).sum().backward()
    assert sorted(seen) == list(range(len(ddp._buckets)))
    for g, w in zip([p.grad.numpy() for p in ddp.module.parameters()], want):
        np.testing.assert_allclose(g, w, rtol=1e-6, atol=1e-7)

    view = DDP(_net(), gradient_as_bucket_view=True)
    calls = _counting(monkeypatch)
    view(x).pow(2).sum().backward()
    assert calls, "gradient_as_bucket_view needs the bucket all-reduce"
    bucket = view._buckets[0]
    assert all(np.shares_memory(p.grad.numpy(), bucket.buffer) for p in view.module.parameters())
    for g, w in zip([p.grad.numpy() for p in view.module.parameters()], want):
        np.testing.assert_allclose(g, w, rtol=1e-6, atol=1e-7)
