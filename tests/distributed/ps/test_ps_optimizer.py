"""DistributedOptimizer against two in-process servers (one worker): exact equality with disttorch.optim,
sliced tensors, the overlap hooks, learning-rate schedulers and state_dict/load_state_dict."""
from __future__ import annotations

import os
import secrets
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from ps_support import ServerThread  # noqa: E402

import disttorch as torch  # noqa: E402
from disttorch import nn  # noqa: E402
from disttorch.distributed import ps  # noqa: E402
from disttorch.distributed.ps.endpoint import RemoteError  # noqa: E402

pytest.importorskip("zmq")


@pytest.fixture
def client():
    secret = secrets.token_bytes(16)
    servers = [ServerThread(num_workers=1, secret=secret) for _ in range(2)]
    kv = ps.KVClient([s.address for s in servers], secret, rank=0, timeout=30)
    yield kv
    kv.close()
    for s in servers:
        s.close()


def _model(seed=3):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(5, 12), nn.Tanh(), nn.Linear(12, 2)).double()


def _data(step):
    g = torch.Generator().manual_seed(step)
    return torch.randn(7, 5, generator=g, dtype=torch.float64), torch.randn(7, 2, generator=g, dtype=torch.float64)


def _train(model, opt, steps, start=0, sched=None):
    for t in range(start, start + steps):
        x, y = _data(t)
        opt.zero_grad()
        ((model(x) - y) ** 2).mean().backward()
        opt.step()
        if sched is not None:
            sched.step()


def _params(model):
    return [p.detach().numpy().copy() for p in model.parameters()]


@pytest.mark.parametrize("rule,cls,kw,overlap", [("adam", "Adam", {"lr": 0.01, "weight_decay": 0.1}, True),
                                                 ("sgd", "SGD", {"lr": 0.1, "momentum": 0.9, "nesterov": True}, False),
                                                 ("rmsprop", "RMSprop", {"lr": 0.01}, True)])
def test_one_worker_equals_local_optimizer(client, rule, cls, kw, overlap):
    model, ref = _model(), _model()
    opt = ps.DistributedOptimizer(model.parameters(), rule, mode="sync", client=client, overlap=overlap,
                                  min_slice_bytes=128, **kw)
    assert {sh.server for sh in opt.shards} == {0, 1} and len(opt.shards) > 4  # sliced over both servers
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=0.7)
    ropt = getattr(torch.optim, cls)(ref.parameters(), **kw)
    rsched = torch.optim.lr_scheduler.ExponentialLR(ropt, gamma=0.7)
    _train(model, opt, 5, sched=sched)
    _train(ref, ropt, 5, sched=rsched)
    for a, b in zip(_params(model), _params(ref)):
        np.testing.assert_array_equal(a, b)  # the same update code on the same numbers: bit for bit
    sd, rsd = opt.state_dict(), ropt.state_dict()
    assert sd["param_groups"][0]["lr"] == rsd["param_groups"][0]["lr"]
    for i, st in rsd["state"].items():
        for name, v in st.items():
            np.testing.assert_array_equal(np.asarray(sd["state"][i][name].numpy()), np.asarray(v.numpy()), name)


def test_load_state_dict_continues_exactly(client):
    model, ref = _model(), _model()
    opt = ps.DistributedOptimizer(model.parameters(), "adam", client=client, lr=0.02, min_slice_bytes=128)
    ropt = torch.optim.Adam(ref.parameters(), lr=0.02)
    _train(model, opt, 3)
    _train(ref, ropt, 3)
    saved = opt.state_dict()
    # a fresh model and optimizer (other initial values), restored from the saved state, goes on as the reference
    model2 = _model(seed=99)
    model2.load_state_dict(model.state_dict())
    opt2 = ps.DistributedOptimizer(model2.parameters(), "adam", client=client, lr=0.5, min_slice_bytes=128)
    opt2.load_state_dict(saved)
    for a, b in zip(_params(model2), _params(ref)):
        np.testing.assert_array_equal(a, b)
    _train(model2, opt2, 3, start=3)
    _train(ref, ropt, 3, start=3)
    for a, b in zip(_params(model2), _params(ref)):
        np.testing.assert_array_equal(a, b)


def test_overlap_refuses_accumulated_gradients(client):
    model = _model()
    opt = ps.DistributedOptimizer(model.parameters(), "sgd", client=client, lr=0.1)
    x, y = _data(0)
    ((model(x) - y) ** 2).mean().backward()
    with pytest.raises(RuntimeError, match="overlap=False"):
        ((model(x) - y) ** 2).mean().backward()
    assert opt.clock == 0


def test_bad_arguments(client):
    model = _model()
    with pytest.raises(ValueError, match="mode"):
        ps.DistributedOptimizer(model.parameters(), "sgd", mode="bsp", client=client, lr=0.1)
    with pytest.raises(ValueError, match="staleness"):
        ps.DistributedOptimizer(model.parameters(), "sgd", mode="sync", staleness=2, client=client, lr=0.1)
    with pytest.raises(RemoteError, match="L-BFGS"):
        ps.DistributedOptimizer(model.parameters(), "lbfgs", client=client, lr=0.1)


def test_init_outside_a_ps_job_names_what_is_missing(monkeypatch):
    for var in ("DISTTORCH_PS_SCHEDULER", "RANK", "WORLD_SIZE", "DISTTORCH_PS_ROLE"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(RuntimeError, match="DISTTORCH_PS_SCHEDULER is not set"):
        ps.init()
    monkeypatch.setenv("DISTTORCH_PS_ROLE", "server")
    with pytest.raises(RuntimeError, match="only workers call ps.init"):
        ps.init()
    assert not ps.is_initialized()
    with pytest.raises(RuntimeError, match="ps.init"):
        ps.get_rank()


def test_import_is_cheap():
    import subprocess

    code = ("import sys, disttorch.distributed.ps as ps; heavy = [m for m in ('zmq', 'mpi4py', 'cupy', 'ray') "
            "if m in sys.modules]; assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
