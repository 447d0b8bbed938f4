"""Server snapshots: a server restarted beside its snapshot continues exactly; an altered snapshot is refused."""
from __future__ import annotations

import os
import secrets
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from ps_support import ServerThread  # noqa: E402

import disttorch as torch  # noqa: E402
from disttorch.distributed.ps import KVClient  # noqa: E402
from disttorch.distributed.ps import snapshot  # noqa: E402

pytest.importorskip("zmq")

GRADS = [np.array([0.5, -1.0, 2.0]), np.array([1.0, 0.25, -0.5]), np.array([-2.0, 1.0, 0.0]),
         np.array([0.125, 0.5, 1.0])]


def _reference(steps: int) -> tuple:
    p = torch.nn.Parameter(torch.from_numpy(np.array([1.0, 2.0, 3.0])))
    opt = torch.optim.Adam([p], lr=0.1, betas=(0.8, 0.9))
    for t in range(steps):
        if t == 2:
            opt.param_groups[0]["lr"] = 0.05
        p.grad = torch.from_numpy(GRADS[t].copy())
        opt.step()
    return p.detach().numpy().copy(), opt.state_dict()["state"][0]


def _push(kv, t):
    if t == 2:
        kv.wait(kv.send("hp", "w", {"hp": {"lr": 0.05}}))
    return kv.push_pull("w", GRADS[t], clock=t, min_version=t + 1)._data


def test_restart_from_snapshot_continues_exactly(tmp_path):
    secret = secrets.token_bytes(16)
    first = ServerThread(num_workers=1, secret=secret, snapshot_dir=str(tmp_path), snapshot_steps=1)
    kv = KVClient([first.address], secret, rank=0, timeout=20)
    kv.init("w", np.array([1.0, 2.0, 3.0]), rule="adam", mode="sync", lr=0.1, betas=(0.8, 0.9))
    kv.init(7, np.arange(4, dtype=np.int32), rule="add", mode="async")
    for t in range(3):
        _push(kv, t)
    kv.push(7, np.ones(4, np.int32))
    kv.close()
    first.close()  # its last snapshot holds all 3 steps (written at exit too)
    path = snapshot.path_for(str(tmp_path), 0)
    assert os.path.exists(path) and not [p for p in os.listdir(tmp_path) if ".tmp." in p]

    second = ServerThread(num_workers=1, secret=secret, snapshot_dir=str(tmp_path))
    kv = KVClient([second.address], secret, rank=0, timeout=20)
    try:
        value, _ = _reference(3)
        np.testing.assert_array_equal(kv.pull("w", min_version=3)._data, value)
        np.testing.assert_array_equal(kv.pull(7)._data, np.arange(4, dtype=np.int32) + 1)
        got = _push(kv, 3)  # optimizer state, step count and the changed lr all came back
        value, state = _reference(4)
        np.testing.assert_array_equal(got, value)
        st = second.server.keys["w"].rule.state_arrays()
        np.testing.assert_array_equal(st["exp_avg_sq"], state["exp_avg_sq"].numpy())
    finally:
        kv.close()
        second.close()


def test_altered_or_foreign_snapshot_is_refused(tmp_path):
    secret = secrets.token_bytes(16)
    s = ServerThread(num_workers=1, secret=secret, snapshot_dir=str(tmp_path))
    kv = KVClient([s.address], secret, rank=0, timeout=20)
    kv.init("w", np.zeros(8), rule="add")
    kv.push("w", np.ones(8))
    kv.close()
    s.close()
    path = snapshot.path_for(str(tmp_path), 0)
    good = open(path, "rb").read()
    with pytest.raises(ValueError, match="another job"):
        ServerThread(num_workers=1, secret=secrets.token_bytes(16), snapshot_dir=str(tmp_path))
    for bad in (good[:-3], good[:-16] + b"\x01" + good[-15:], b"junk" + good, good + b"\x05\x00\x00\x00"):
        with open(path, "wb") as f:
            f.write(bad)
        with pytest.raises(ValueError, match="snapshot"):
            ServerThread(num_workers=1, secret=secret, snapshot_dir=str(tmp_path))
