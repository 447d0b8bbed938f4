"""The PTX of every kernel source, compiled once per session: one nvcc call per file and architecture."""
import concurrent.futures
import os
import pathlib
import shutil
import subprocess
import time

import pytest

from disttorch import kernels

ARCHS = ("sm_80", "sm_90")
KERNEL_DIR = pathlib.Path(__file__).resolve().parents[2] / "kernels"
NVCC = shutil.which("nvcc")


def _compile(name: str, arch: str, out_dir: pathlib.Path):
    out = out_dir / f"{name}.{arch}.ptx"
    proc = subprocess.run([NVCC, "-ptx", f"-arch={arch}", "-std=c++17", "-o", str(out), str(KERNEL_DIR / name)],
                          capture_output=True, text=True, timeout=120)
    return proc.returncode, proc.stderr + proc.stdout, out.read_text() if proc.returncode == 0 else ""


@pytest.fixture(scope="session")
def ptx(tmp_path_factory):
    """(file, arch) -> (nvcc return code, its log, the PTX text)."""
    if NVCC is None:
        pytest.skip("nvcc is not on PATH: the CUDA sources cannot be compiled here")
    out_dir = tmp_path_factory.mktemp("ptx")
    jobs = [(name, arch) for name in kernels.sources() for arch in ARCHS]
    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 2)) as pool:
        results = dict(zip(jobs, pool.map(lambda job: _compile(*job, out_dir), jobs)))
    # Not a performance measurement: a guard that the compile step stays a small part of `make test` (about 1.5 s
    # per job on an idle core; the bound leaves room for a loaded, shared machine).
    limit = 10 * len(jobs)
    assert time.monotonic() - t0 < limit, f"compiling {len(jobs)} kernel sources took over {limit} s"
    return results


