"""With no address, no RAY_ADDRESS and no Ray running, disttorch.ray.run starts a local Ray and stops it."""
import os
import subprocess
import sys

import pytest

pytestmark = [pytest.mark.ray, pytest.mark.timeout(240)]

PROGRAM = """\
import ray
import disttorch.ray as dray

def rank_and_world():
    import disttorch.distributed as dist
    return dist.get_rank(), dist.get_world_size()

print("values", dray.run(rank_and_world, num_workers=2))
print("after", ray.is_initialized())
"""


def test_run_starts_and_stops_an_embedded_local_ray(tmp_path):
    pytest.importorskip("ray.train", reason="the ray extra is not installed (pip install disttorch[ray])")
    from disttorch.ray.local import _local_cluster_running

    if _local_cluster_running():
        pytest.skip("a Ray is already running on this machine: run() would connect to it instead")
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    proc = subprocess.run([sys.executable, "-c", PROGRAM], capture_output=True, text=True, timeout=200, env=env,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "values [(0, 2), (1, 2)]" in proc.stdout
    assert "after False" in proc.stdout  # shut down again
    assert "Started a local Ray instance" in proc.stderr
