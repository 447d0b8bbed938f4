"""benchmarks/gpu.py without a GPU: it says why and exits 77, and its kernel cases build valid launch plans."""
import importlib.util
import pathlib
import subprocess
import sys
import types

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
# loaded by path: putting benchmarks/ on sys.path would let its module names shadow others
_spec = importlib.util.spec_from_file_location("benchmarks_gpu", ROOT / "benchmarks" / "gpu.py")
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)


def test_no_gpu_message_and_exit_status():
    if not bench.gpu_unavailable_reason():
        pytest.skip("a GPU is usable here: the no-GPU path does not run")
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu.py"), "--quick"], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == bench.NO_GPU == 77
    assert proc.stdout.startswith("no GPU: benchmarks/gpu.py needs CuPy and an NVIDIA GPU;"), proc.stdout


def test_help_lists_the_options():
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu.py"), "--help"], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0 and "--quick" in proc.stdout and "--only" in proc.stdout


def test_kernel_cases_build_plans_with_nonzero_traffic():
    # NumPy in CuPy's place: the plans read only shapes, dtypes and layout (and host addresses)
    fake = types.SimpleNamespace(random=types.SimpleNamespace(standard_normal=lambda shape, dtype: np.zeros(shape, dtype)),
                                 empty=np.empty, empty_like=np.empty_like, ones=np.ones, zeros=np.zeros)
    cases = bench._kernel_cases(fake, 4096 * 8)
    names = [c[0] for c in cases]
    assert len(set(names)) == len(names) and {"softmax", "cross_entropy", "im2col 3x3", "col2im 3x3"} <= set(names)
    assert all(plan.grid[0] > 0 and nbytes > 0 for _, plan, nbytes in cases)
