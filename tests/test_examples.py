"""The examples run end to end (each in a subprocess with a timeout)."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

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
