"""`disttorch launch --nproc-per-node gpu`: one worker per visible GPU, CUDA_VISIBLE_DEVICES left as it is and
LOCAL_RANK set (torchrun's behaviour), and a clear error where no GPU is visible. No GPU is needed: the count
comes from CUDA_VISIBLE_DEVICES (or a faked nvidia-smi)."""
import os
import subprocess
import sys

import pytest

from disttorch.launcher import config as C
from disttorch.launcher import gpus as G

sys.path.insert(0, os.path.dirname(__file__))
from launch_helpers import clean_env, env_lines, launch  # noqa: E402

SCRIPT = """import json, os
keys = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "CUDA_VISIBLE_DEVICES")
print("ENV " + json.dumps({k: os.environ.get(k) for k in keys}), flush=True)
"""


@pytest.mark.parametrize("value, ids", [
    ("0,1", ["0", "1"]), ("", []), ("-1", []), ("0,-1,2", ["0"]), (" 1 , 3 ", ["1", "3"]),
    ("GPU-8f2a-11ee,MIG-GPU-8f2a/1/0", ["GPU-8f2a-11ee", "MIG-GPU-8f2a/1/0"]), ("0,,1", ["0"]), ("x", [])])
def test_cuda_visible_devices_as_cuda_reads_it(value, ids):
    assert G.parse_visible_devices(value) == ids


def test_count_from_nvidia_smi_when_cvd_is_unset(monkeypatch):
    monkeypatch.setattr(G.shutil, "which", lambda name: "/opt/bin/nvidia-smi" if name == "nvidia-smi" else None)
    listing = "GPU 0: NVIDIA H100 (UUID: GPU-1)\nGPU 1: NVIDIA H100 (UUID: GPU-2)\n  MIG 1g.10gb Device 0\nGPU 2: X\n"

    def run(cmd, **kw):
        assert cmd == ["/opt/bin/nvidia-smi", "-L"]
        return subprocess.CompletedProcess(cmd, 0, listing, "")
    assert G.visible_gpus({}, run=run) == (3, "`nvidia-smi -L` lists 3")
    assert G.visible_gpus({"CUDA_VISIBLE_DEVICES": "1"}, run=run)[0] == 1  # the variable wins


def test_no_gpu_is_a_clear_config_error(monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setattr(G.shutil, "which", lambda name: None)
    monkeypatch.setattr(G, "_cupy_count", lambda: None)
    monkeypatch.setattr(G, "_dev_files", lambda: 0)
    with pytest.raises(C.ConfigError, match=r"'gpu' asked for one worker per GPU, but no GPU is visible \(nvidia-smi "
                                            r"not found, CuPy not installed, no /dev/nvidia<N> device files\)"):
        C._nproc("gpu", "--nproc-per-node")
    monkeypatch.setattr(G, "_dev_files", lambda: 2)
    assert C._nproc("GPU", "--nproc-per-node") == 2


@pytest.mark.timeout(90)
def test_launch_one_worker_per_visible_gpu(tmp_path):
    script = tmp_path / "show_env.py"
    script.write_text(SCRIPT)
    rc, out, err = launch("--nproc-per-node", "gpu", str(script), env=clean_env(CUDA_VISIBLE_DEVICES="0,1"))
    assert rc == 0, err
    envs = env_lines(out)
    assert sorted(envs) == [0, 1]
    for r, e in envs.items():
        assert e["LOCAL_RANK"] == str(r) and e["WORLD_SIZE"] == "2" and e["LOCAL_WORLD_SIZE"] == "2"
        assert e["CUDA_VISIBLE_DEVICES"] == "0,1"  # as torchrun: not narrowed; LOCAL_RANK picks the GPU


@pytest.mark.timeout(60)
def test_launch_without_a_visible_gpu_fails_clearly(tmp_path):
    script = tmp_path / "show_env.py"
    script.write_text(SCRIPT)
    rc, out, err = launch("--nproc-per-node", "gpu", str(script), env=clean_env(CUDA_VISIBLE_DEVICES=""))
    assert rc != 0 and "ENV" not in out
    assert "--nproc-per-node: 'gpu' asked for one worker per GPU, but no GPU is visible (CUDA_VISIBLE_DEVICES='' " \
           "exposes 0)" in err
