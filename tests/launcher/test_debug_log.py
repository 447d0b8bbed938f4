"""DISTTORCH_DEBUG=1: every rank logs each collective with the fingerprint the ranks compare."""
import os
import re
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from launch_helpers import ALLREDUCE, clean_env, launch  # noqa: E402


@pytest.mark.timeout(60)
def test_each_rank_logs_each_collective_with_its_fingerprint():
    rc, out, err = launch("--nproc-per-node", "2", ALLREDUCE, env=clean_env(DISTTORCH_DEBUG="1"))
    assert rc == 0, err
    for r in (0, 1):
        lines = [ln for ln in err.splitlines() if f"[disttorch rank {r}] seq=" in ln]
        # the all_reduce then the barrier, in order, with the same fingerprints on both ranks
        assert re.search(r"seq=1 all_reduce\(float32\[2\], SUM\) group=\S+ backend=zmq", lines[0]), lines
        assert "seq=2 barrier" in lines[1], lines
    rc, out, err = launch("--nproc-per-node", "2", ALLREDUCE)
    assert rc == 0 and "[disttorch rank" not in err  # off by default
