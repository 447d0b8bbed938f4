"""``disttorch doctor``: what this machine offers, checked for real.

It lists the Python environment and the optional packages, then runs small jobs through ``disttorch launch``
exactly as users do: a 2-rank zmq ring all-reduce, a 2-rank MPI all-reduce (when mpi4py and mpiexec are here)
and a parameter-server push/pull; it asks CuPy for CUDA and NCCL and Ray for its version, and runs one of the
compiled CPU kernels (numba). Each missing piece
comes with what to install. ``--quick`` skips the jobs. Exit status 0 when every check that could run passed.
"""
from __future__ import annotations

import importlib.util
import os
import platform
import shutil
import subprocess
import sys

__all__ = ["facts", "checks", "main"]

_JOB = "disttorch.testing._doctor_job"
_EXTRA = {"mpi4py": "pip install 'disttorch[mpi]'", "ray": "pip install 'disttorch[ray]'",
          "cupy": "pip install 'disttorch[cuda12x]' (on a machine with an NVIDIA GPU and driver)",
          "onnx": "pip install 'disttorch[onnx]'", "starlette": "pip install 'disttorch[serve]'",
          "torch": "pip install 'disttorch[bench]' (only for benchmarks and parity checks)",
          "numba": "pip install numba (a dependency of disttorch: reinstall it; without it the CPU kernels run on NumPy)"}
# Loads (or compiles, the first time on a machine) one compiled kernel and runs it on a few elements.
_KERNEL_PROBE = ("import warnings, numpy as np, numba\n"
                 "warnings.simplefilter('error')\n"
                 "from disttorch import _compiled as C\n"
                 "k = C.get('pointwise')\n"
                 "a = np.array([-1.0, 2.0], np.float32); o = np.empty_like(a)\n"
                 "if k is None: print('off (DISTTORCH_COMPILED=0): CPU kernels run on NumPy')\n"
                 "else:\n"
                 "    k.relu(a, o); assert o.tolist() == [0.0, 2.0]\n"
                 "    print(f'numba {numba.__version__}: kernels load and run')")


def facts(version: str) -> dict:
    """Versions and which optional packages are importable (nothing is imported)."""
    out = {"python": platform.python_version(), "platform": platform.platform(), "disttorch": version}
    for mod in ("numpy", "ml_dtypes", "zmq", "msgpack", "numba", "mpi4py", "cupy", "ray", "onnx", "starlette", "torch"):
        out[mod] = "available" if importlib.util.find_spec(mod) is not None else "missing"
    return out


def _launch(args: list, timeout: float) -> tuple[bool, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DISTTORCH_", "PET_"))}
    cmd = [sys.executable, "-m", "disttorch.launcher.cli", "launch", *args]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return False, f"no answer within {timeout:.0f} s (a firewall, or a hung backend: see docs/troubleshooting.md)"
    ok = [line.split("DOCTOR-OK ", 1)[1] for line in p.stdout.splitlines() if "DOCTOR-OK " in line]
    if p.returncode == 0 and ok:
        return True, ok[0]
    tail = (p.stderr.strip().splitlines() or ["(no output)"])[-1]
    return False, f"exit status {p.returncode}: {tail}"


def _probe(code: str) -> tuple[bool, str]:
    """Run ``code`` in a fresh interpreter (CUDA and Ray probes must not touch this process)."""
    try:
        p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        return False, "the probe did not answer within 120 s"
    out = (p.stdout.strip() or p.stderr.strip().splitlines()[-1:] or ["(no output)"])
    text = out if isinstance(out, str) else out[0]
    return p.returncode == 0, text


def checks(quick: bool = False, timeout: float = 90.0) -> list:
    """(name, status, detail) rows: status is "ok", "fail" or "missing" (detail says what to install)."""
    rows = []
    have = {m: importlib.util.find_spec(m) is not None for m in ("mpi4py", "ray", "cupy")}
    if quick:
        rows.append(("zmq all_reduce", "skipped", "--quick"))
    else:
        ok, detail = _launch(["--nproc-per-node", "2", "--backend", "zmq", "-m", _JOB, "allreduce"], timeout)
        rows.append(("zmq all_reduce", "ok" if ok else "fail", detail))
    if not have["mpi4py"]:
        rows.append(("mpi all_reduce", "missing", _EXTRA["mpi4py"]))
    elif not (os.access(os.path.join(os.path.dirname(sys.executable), "mpiexec"), os.X_OK)
              or shutil.which("mpiexec")):  # where launch --backend mpi looks (launcher/mpi.py)
        rows.append(("mpi all_reduce", "missing", "mpiexec is not on PATH (the mpi extra installs Open MPI's)"))
    elif quick:
        rows.append(("mpi all_reduce", "skipped", "--quick"))
    else:
        ok, detail = _launch(["--nproc-per-node", "2", "--backend", "mpi", "-m", _JOB, "allreduce"], timeout)
        rows.append(("mpi all_reduce", "ok" if ok else "fail", detail))
    if quick:
        rows.append(("parameter server", "skipped", "--quick"))
    else:
        ok, detail = _launch(["--mode", "ps", "--num-servers", "1", "--nproc-per-node", "1", "-m", _JOB, "ps"],
                             timeout)
        rows.append(("parameter server", "ok" if ok else "fail", detail))
    if importlib.util.find_spec("numba") is None:
        rows.append(("compiled kernels", "missing", _EXTRA["numba"]))
    else:
        ok, detail = _probe(_KERNEL_PROBE)
        rows.append(("compiled kernels", "ok" if ok else "fail", detail))
    if have["cupy"]:
        ok, detail = _probe("import disttorch, disttorch.distributed as d\n"
                            "c = disttorch.cuda\n"
                            "print(f'{c.device_count()} GPU(s): {c.get_device_name(0)}; nccl: {d.is_nccl_available()}'"
                            " if c.is_available() else 'no usable GPU')")
        rows.append(("cuda", "ok" if ok and "GPU(s)" in detail else "missing", detail))
    else:
        rows.append(("cuda", "missing", _EXTRA["cupy"]))
    if have["ray"]:
        ok, detail = _probe("import ray; print('ray', ray.__version__)")
        rows.append(("ray", "ok" if ok else "fail", detail + ("; `disttorch ray submit` runs jobs" if ok else "")))
    else:
        rows.append(("ray", "missing", _EXTRA["ray"]))
    return rows


def main(version: str, argv: list | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="disttorch doctor", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="list the environment without running jobs")
    args = p.parse_args(argv or [])
    for k, v in facts(version).items():
        hint = f"  ({_EXTRA[k]})" if v == "missing" and k in _EXTRA else ""
        print(f"{k:10s} {v}{hint}")
    print()
    rows = checks(quick=args.quick)
    for name, status, detail in rows:
        print(f"{name:18s} {status:8s} {detail}")
    return 1 if any(s == "fail" for _, s, _ in rows) else 0
