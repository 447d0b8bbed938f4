"""End-to-end: examples/ddp_digits.py as a 2-rank zmq job (2 epochs), then a resume from its checkpoint."""
from __future__ import annotations

import os
import re
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ddp_starter import REPO, run_job  # noqa: E402

pytest.importorskip("sklearn")
pytest.importorskip("matplotlib")

EXAMPLE = os.path.join(REPO, "examples", "ddp_digits.py")


def _ok(runs):
    for r, (code, out, err) in enumerate(runs):
        assert code == 0, f"rank {r} exited with {code}:\n{out}\n{err}"
    return runs[0][1]


@pytest.mark.timeout(240)
def test_ddp_digits_two_ranks(tmp_path):
    out_dir = tmp_path / "run"
    args = [EXAMPLE, "--epochs", "2", "--no-progress", "--backend", "zmq", "--out-dir", str(out_dir)]
    stdout = _ok(run_job(args, n=2, timeout=200))
    accs = [float(a) for a in re.findall(r"test accuracy (\d\.\d+)", stdout)]
    assert len(accs) == 3 and accs[-1] > 0.9, stdout  # two epochs + the final line
    assert f"checkpoint: {out_dir / 'checkpoint.pt'}" in stdout
    assert (out_dir / "checkpoint.pt").exists() and (out_dir / "curves.png").exists()
    # a restarted job resumes after epoch 2 and trains only the third
    again = _ok(run_job(args[:2] + ["3"] + args[3:], n=2, timeout=200,
                        env={"TORCHELASTIC_RESTART_COUNT": "1"}))
    assert "resumed from" in again and "after epoch 2" in again
    assert re.findall(r"epoch +(\d+)/3", again) == ["3"]
