"""Compatibility programs for the start-up APIs (tests/compat/progs/startup_*.py): torch.accelerator, autocast
and GradScaler, backend flags, unseeded DDP ranks, jit/compile/hub/testing.

Each program is written as a PyTorch script with ``import disttorch as torch``; it runs in a subprocess and
its printed JSON is checked against expectations computed here independently (the data's generating
parameters, NumPy forward passes, PyTorch's documented behaviour).
"""
import json
import os
import socket
import subprocess
import sys
import time

import numpy as np
from compat_support import PROGS, program_env, run_program

import disttorch



def test_amp_training_script():
    out = run_program("startup_amp_training.py")
    assert out["device"] == "cpu" and out["scaler_enabled"] is False and out["legacy_enabled"] is False
    assert out["legacy_state"] == {}
    assert (out["out_dtype"], out["loss_dtype"], out["grad_dtype"]) == \
        ("disttorch.bfloat16", "disttorch.float32", "disttorch.float32")
    assert out["scale"] >= 2.0 ** 10  # never backed off: no inf/NaN gradients in this run
    # the data were generated with y = 2 x0 - 3 x1 + 0.5 x2 + 0.75; bfloat16 inputs limit the fit to ~1e-2
    np.testing.assert_allclose(out["weight"], [2.0, -3.0, 0.5], atol=0.05)
    np.testing.assert_allclose(out["bias"], 0.75, atol=0.05)
    assert out["last_loss"] < 0.01 * out["first_loss"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unseeded_ddp_ranks_draw_different_data():
    world, port = 2, _free_port()
    procs = []
    try:
        for rank in range(world):
            env = program_env(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1",
                       MASTER_PORT=str(port))
            procs.append(subprocess.Popen([sys.executable, os.path.join(PROGS, "startup_ddp_unseeded.py")], env=env,
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        deadline = time.monotonic() + 120
        results = []
        for p in procs:
            out, err = p.communicate(timeout=max(1.0, deadline - time.monotonic()))
            assert p.returncode == 0, err[-3000:]
            results.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for p in procs:
            if p.poll() is None:
                os.kill(p.pid, 9)
                p.wait(timeout=30)
    r0, r1 = sorted(results, key=lambda r: r["rank"])
    assert r0["backend"] in ("zmq", "mpi")
    assert r0["seed"] != r1["seed"] and r0["data"] != r1["data"]  # fresh seed per process, as PyTorch 2.13
    assert r0["digest"] == r1["digest"]  # DDP keeps the replicas identical anyway
    assert r0["rejected"].startswith("DistributedDataParallel device_ids and output_device arguments only work "
                                     "with single-device/multiple-device GPU modules or CPU modules, but got "
                                     "device_ids [0]")


def test_unseeded_processes_differ_and_report_their_seed():
    code = "import disttorch as t; print(t.initial_seed(), t.rand(1).item(), t.Generator().initial_seed())"
    outs = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=program_env())
            for _ in range(2)]
    assert all(o.returncode == 0 for o in outs), outs[0].stderr
    (s0, v0, g0), (s1, v1, g1) = (o.stdout.split() for o in outs)
    assert s0 != s1 and v0 != v1
    assert g0 == g1 == "67280421310721"  # a new Generator starts from PyTorch's fixed default seed
    assert 0 <= int(s0) < 2 ** 64


def test_jit_hub_testing_script(tmp_path):
    rng = np.random.default_rng(7)
    w1, b1 = rng.standard_normal((3, 4)).astype(np.float32), rng.standard_normal(3).astype(np.float32)
    w2, b2 = rng.standard_normal((2, 3)).astype(np.float32), rng.standard_normal(2).astype(np.float32)
    ckpt = tmp_path / "hub" / "checkpoints"
    ckpt.mkdir(parents=True)
    sd = {"body.0.weight": w1, "body.0.bias": b1, "body.2.weight": w2, "body.2.bias": b2}
    disttorch.save({k: disttorch.tensor(v) for k, v in sd.items()}, str(ckpt / "tinynet-weights.pth"))
    out = run_program("startup_jit_hub_testing.py", TORCH_HOME=str(tmp_path))
    ref = np.tanh(np.ones((2, 4)) @ w1.T.astype(np.float64) + b1) @ w2.T.astype(np.float64) + b2
    np.testing.assert_allclose(out["out"], ref, rtol=1e-5, atol=1e-6)
    assert out["device"] == "cpu" and out["warnings"] == 2  # one from jit.script, one from compile
    assert out["mismatch"] == "Tensor-likes are not close!"
    assert (out["is_xpu"], out["is_mps"], out["describe"], out["scripting"]) == (False, False, "tinynet", False)
