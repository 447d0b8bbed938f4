"""The examples run end to end (each in a subprocess with a timeout)."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent


def run_example(script: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, str(ROOT / "examples" / script), *args], check=False, cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_train_mlp_demo():
    proc = run_example("train_mlp.py")
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    m = re.search(r"^final accuracy: train ([0-9.]+), test ([0-9.]+)", proc.stdout, re.MULTILINE)
    assert m, proc.stdout
    assert float(m.group(2)) >= 0.9
    losses = [float(v) for v in re.findall(r"^epoch +\d+ +loss ([0-9.]+)", proc.stdout, re.MULTILINE)]
    assert len(losses) >= 3 and losses[-1] < losses[0] / 5, losses


def test_train_mlp_fails_below_threshold():
    proc = run_example("train_mlp.py", "--epochs", "1", "--min-accuracy", "1.01")
    assert proc.returncode == 1, f"{proc.stdout}\n{proc.stderr}"
    assert "final accuracy:" in proc.stdout
    assert "below 1.01" in proc.stderr


def _accuracies(stdout: str) -> list:
    return [float(v) for v in re.findall(r"test accuracy ([0-9.]+)$", stdout, re.MULTILINE)]


def test_train_digits_short_run_checkpoint_resume_and_plot(tmp_path):
    out = tmp_path / "digits"
    proc = run_example("train_digits.py", "--epochs", "4", "--out-dir", str(out), "--no-progress", timeout=240)
    assert proc.returncode == 0, f"{proc.stdout}\n{proc.stderr}"
    accs = _accuracies(proc.stdout)
    assert len(accs) == 4 and accs[-1] > 0.90, proc.stdout
    assert (out / "checkpoint.pt").stat().st_size > 0
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    proc = run_example("train_digits.py", "--epochs", "5", "--out-dir", str(out), "--no-progress", "--resume",
                       timeout=120)
    assert proc.returncode == 0, f"{proc.stdout}\n{proc.stderr}"
    assert "resumed from" in proc.stdout and "after epoch 4" in proc.stdout
    assert re.findall(r"^epoch +(\d+)/5", proc.stdout, re.MULTILINE) == ["5"], proc.stdout


def test_char_lm_lstm_and_transformer_learn(tmp_path):
    text = tmp_path / "text.txt"
    text.write_text("the quick brown fox jumps over the lazy dog. " * 40)
    for model in ("lstm", "transformer"):
        proc = run_example("char_lm.py", str(text), "--model", model, "--steps", "60", "--sample-every", "30",
                           "--sample-len", "20", "--hidden", "32", "--layers", "1", "--seq-len", "24",
                           "--batch-size", "16", "--lr", "1e-2", timeout=180)
        assert proc.returncode == 0, f"{proc.stdout}\n{proc.stderr}"
        losses = [float(v) for v in re.findall(r"^step \d+ +loss ([0-9.]+)", proc.stdout, re.MULTILINE)]
        # vocabulary of 28 characters: an untrained model's loss is about log(28) = 3.33
        assert len(losses) == 2 and losses[-1] < 2.8, proc.stdout
        assert proc.stdout.count("sample: ") == 2


def test_reinforce_cartpole_runs():
    proc = run_example("reinforce_cartpole.py", "--episodes", "100", "--target", "1000", timeout=240)
    assert proc.returncode == 0, f"{proc.stdout}\n{proc.stderr}"
    assert "not solved after 100 episodes" in proc.stdout
    avgs = [float(v) for v in re.findall(r"average of last 100 +([0-9.]+)", proc.stdout)]
    assert len(avgs) == 2 and all(8 <= a <= 200 for a in avgs), proc.stdout


def test_cartpole_dynamics():
    sys.path.insert(0, str(ROOT / "examples"))
    try:
        from reinforce_cartpole import CartPole
    finally:
        sys.path.pop(0)
    env = CartPole(seed=0)
    env.reset()
    env.state = np.zeros(4)
    obs, reward, done = env.step(1)
    # one Euler step from rest with force +10 N: x and theta unchanged, velocities from the closed-form accelerations
    total, pml = 1.1, 0.05
    temp = 10.0 / total
    theta_acc = -temp / (0.5 * (4 / 3 - 0.1 / total))
    x_acc = temp - pml * theta_acc / total
    np.testing.assert_allclose(obs, [0.0, 0.02 * x_acc, 0.0, 0.02 * theta_acc], rtol=1e-6)
    assert reward == 1.0 and not done
    steps = 1
    while not done:  # always pushing right makes the pole fall to the left well before 200 steps
        obs, _, done = env.step(1)
        steps += 1
    assert steps < 50 and obs[2] < -CartPole.theta_limit


def test_ps_digits_sync_through_launcher():
    """2 servers, 2 workers in sync mode through the real launcher; 5 epochs reached 0.97 test accuracy here."""
    import signal

    pytest.importorskip("zmq")
    pytest.importorskip("sklearn")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-m", "disttorch.launcher.cli", "launch", "--mode", "ps", "--num-servers", "2",
           "--nproc-per-node", "2", str(ROOT / "examples" / "ps_digits.py"), "--mode", "sync", "--epochs", "5",
           "--no-progress", "--min-accuracy", "0.9"]
    # own session: on a timeout the launcher's whole group (scheduler, servers, workers) is ended by its id
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        raise AssertionError(f"ps_digits did not finish in 120 s:\n{out}\n{err}")
    assert proc.returncode == 0, f"exit {proc.returncode}\n{out}\n{err}"
    assert re.findall(r"epoch +(\d+)/5 ", out) == ["1", "2", "3", "4", "5"], out
    m = re.search(r"final test accuracy ([0-9.]+) in sync mode with 2 servers and 2 workers", out)
    assert m and float(m.group(1)) > 0.9, out
