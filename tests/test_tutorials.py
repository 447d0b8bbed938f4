"""The tutorials in examples/tutorials/ run in their shortened form (``--quick``), each in a subprocess with a
timeout, and what they print is checked against NumPy recomputations (docs/tutorials.md walks through them)."""
from __future__ import annotations

import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
TUTORIALS = ROOT / "examples" / "tutorials"
pytestmark = pytest.mark.timeout(150)


def run(cmd: list, timeout: float = 90) -> str:
    """Run ``cmd`` in its own session; on a timeout its whole process group (servers, ranks) is ended by id."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        raise AssertionError(f"{cmd} did not finish in {timeout} s:\n{out}\n{err}")
    assert proc.returncode == 0, f"exit {proc.returncode}\n{out}\n{err}"
    return out


def tutorial(name: str, *args: str, timeout: float = 90) -> str:
    return run([sys.executable, str(TUTORIALS / name), *args], timeout=timeout)


def load_module(name: str):
    """Import a tutorial file (their names start with digits) to reuse its data generator."""
    spec = importlib.util.spec_from_file_location(name.replace(".py", "").lstrip("0123456789_"), TUTORIALS / name)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def floats(pattern: str, text: str) -> list:
    return [float(v) for v in re.findall(pattern, text, re.MULTILINE)]


def mlp_forward(state: dict, x: np.ndarray) -> np.ndarray:
    """tutorial_models.make_regression_model's Linear-Tanh-Linear-Tanh-Linear in float64 NumPy."""
    w = {k: np.asarray(v.numpy(), np.float64) for k, v in state.items()}
    h = np.tanh(x @ w["0.weight"].T + w["0.bias"])
    h = np.tanh(h @ w["2.weight"].T + w["2.bias"])
    return h @ w["4.weight"].T + w["4.bias"]


def test_01_tensors_autograd(tmp_path):
    import disttorch

    ckpt = tmp_path / "regression.pt"
    out = tutorial("01_tensors_autograd.py", "--quick", "--checkpoint", str(ckpt))
    a = np.arange(6, dtype=np.float64).reshape(2, 3)
    assert re.search(r"^a @ a\.T = (.*)$", out, re.MULTILINE).group(1) == str((a @ a.T).tolist()), out
    x = np.array([1.0, -2.0, 0.5])
    for label in ("grad of sum\\(x\\*\\*3\\)", "grad of Cube"):
        grad = json.loads(re.search(rf"^{label}: (.*)$", out, re.MULTILINE).group(1))
        np.testing.assert_allclose(grad, 3 * x ** 2, rtol=1e-6)
    assert "gradcheck: True" in out
    # StepLR(step_size=20, gamma=0.5) over 60 epochs, printed after each epoch's scheduler.step()
    epochs = [int(v) for v in re.findall(r"^epoch +(\d+)", out, re.MULTILINE)]
    lrs = floats(r"^epoch .* lr ([0-9.]+)$", out)
    np.testing.assert_allclose(lrs, [0.01 * 0.5 ** (e // 20) for e in epochs], rtol=1e-6)
    losses = floats(r"^epoch .* train loss ([0-9.]+)", out)
    assert losses[-1] < losses[0] / 10, losses
    # the test loss printed is the checkpoint's, recomputed here in NumPy; it is far below the target's variance
    mod = load_module("01_tensors_autograd.py")
    x_test, y_test = (t.numpy().astype(np.float64) for t in mod.make_data(256, seed=1))
    state = disttorch.load(str(ckpt), weights_only=True)
    assert state["epoch"] == 60 and state["scheduler"]["last_epoch"] == 60
    mse = float(np.mean((mlp_forward(state["model"], x_test) - y_test) ** 2))
    (printed,) = floats(r"^test loss ([0-9.]+)$", out)
    assert abs(printed - mse) < 1e-5 + 1e-3 * mse, (printed, mse)
    assert mse < 0.02 * np.var(y_test), (mse, np.var(y_test))
    assert "identical predictions True" in out


def test_02_distributed_ddp_two_ranks():
    pytest.importorskip("zmq")
    out = run([sys.executable, "-m", "disttorch.launcher.cli", "launch", "--nproc-per-node", "2", "--backend", "zmq",
               str(TUTORIALS / "02_distributed_ddp.py"), "--quick"], timeout=90)
    assert "[rank 1]" not in out, out  # rank-0 logging only
    assert re.search(r"world size 2, 512 samples per rank, 32 steps per epoch", out), out
    mses = floats(r"mean squared error ([0-9.]+) +over 1024 samples$", out)
    assert len(mses) == 3 and mses[-1] < mses[0], out
    (diff,) = floats(r"max parameter difference between ranks ([0-9.e+-]+)$", out)
    assert diff == 0.0, out
    m = re.search(r"learned weight ([-0-9. ]+) +bias ([-0-9.]+)$", out, re.MULTILINE)
    w, b = np.array(m.group(1).split(), np.float64), float(m.group(2))
    np.testing.assert_allclose(w, [2.0, -3.0, 0.5, 1.0], atol=0.02)
    assert abs(b - 0.25) < 0.02
    # the all-reduced metric equals the mean squared error of the printed model over the whole dataset
    x, y = load_module("02_distributed_ddp.py").make_dataset(1024)
    mse = float(np.mean((x.astype(np.float64) @ w + b - y[:, 0]) ** 2))
    assert abs(mses[-1] - mse) < 1e-6 + 1e-2 * mse, (mses[-1], mse)
    assert mse < 1e-3  # the noise floor is 1e-4


def test_03_profile_and_export(tmp_path):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    out = tutorial("03_profile_and_export.py", "--quick", "--out-dir", str(tmp_path))
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.startswith(("train_step", "aten::"))}
    assert rows["train_step"][-1] == "2" and rows["aten::convolution"][-1] == "2", out  # # of Calls, 2 steps
    events = json.loads((tmp_path / "trace.json").read_text())["traceEvents"]
    steps = [e for e in events if e.get("name") == "train_step"]
    assert len(steps) == 2 and all(e["ph"] == "X" and e["dur"] > 0 for e in steps)
    assert steps[0]["ts"] + steps[0]["dur"] <= steps[1]["ts"]  # the two steps follow each other
    dot = (tmp_path / "graph.dot").read_text()
    assert dot.startswith("digraph") and "ConvolutionBackward0" in dot
    for name in ("conv.weight", "conv.bias", "bn.weight", "bn.bias", "fc.weight", "fc.bias"):
        assert f'"{name}\\n' in dot, name
    import onnx

    model = onnx.load(str(tmp_path / "model.onnx"))
    (inp,) = model.graph.input
    assert inp.name == "image" and inp.type.tensor_type.shape.dim[0].dim_param == "batch"
    m = re.search(r"output shape \[5, 10\], max relative difference onnxruntime vs disttorch ([0-9.e+-]+)$", out,
                  re.MULTILINE)
    assert m and float(m.group(1)) <= 1e-5, out


def test_04_serve():
    pytest.importorskip("starlette")
    pytest.importorskip("uvicorn")
    pytest.importorskip("prometheus_client")
    import disttorch

    out = tutorial("04_serve.py", "--quick")
    served = np.array(re.search(r"^served: (.*)$", out, re.MULTILINE).group(1).split(), np.float64)
    # the served model is tutorial_models.make_regression_model() initialised under manual_seed(0)
    sys.path.insert(0, str(TUTORIALS))
    try:
        from tutorial_models import make_regression_model
    finally:
        sys.path.pop(0)
    disttorch.manual_seed(0)
    state = make_regression_model().state_dict()
    x = np.random.default_rng(0).uniform(-1, 1, (4, 3)).astype(np.float32).astype(np.float64)
    np.testing.assert_allclose(served, mlp_forward(state, x)[:, 0], rtol=1e-4, atol=2e-6)
    assert "infer (200): model regression, output output__0 FP32 shape [4, 1]" in out
    assert re.search(r"^bad request \(400\): .*shape \[2, 2\]", out, re.MULTILINE), out
    assert "server stopped with status 0" in out, out
    pid = int(re.search(r"^server pid (\d+)$", out, re.MULTILINE).group(1))
    with pytest.raises(ProcessLookupError):  # reaped by the tutorial: no server left behind
        os.kill(pid, 0)
