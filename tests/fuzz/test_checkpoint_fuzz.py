"""Fuzz every checkpoint reader with mutations of real files (see checkpoint_fuzz_worker.py for the batches).

The batches run in a child process, so a crash (a segfault from a C-level overflow) fails this test with the
child's exit code instead of killing pytest. Example counts scale with ``fuzz_support.examples`` (``make fuzz``
runs 50x); the quick pass takes about 20 s.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from fuzz_support import SCALE

WORKER = Path(__file__).with_name("checkpoint_fuzz_worker.py")


@pytest.mark.parametrize("batches", [["raw", "pickle"], ["structure", "round_trip"]])
def test_every_mutated_checkpoint_loads_or_raises_checkpoint_error(batches):
    timeout = 300 * max(1.0, SCALE)
    proc = subprocess.run([sys.executable, str(WORKER)] + batches, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, (f"fuzz batches {batches} failed (exit code {proc.returncode}; negative: killed by "
                                  f"that signal)\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")
    for batch in batches:
        assert f"batch {batch}: ok" in proc.stdout
