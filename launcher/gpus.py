"""How many GPUs ``--nproc-per-node gpu`` starts workers for: the GPUs this process can see.

In order: ``CUDA_VISIBLE_DEVICES`` when set (as CUDA reads it: a comma-separated list of indices or UUIDs that
ends at the first invalid entry, so ``""`` and ``"-1"`` hide every GPU); else ``nvidia-smi -L``; else CuPy's
device count when CuPy is installed; else the ``/dev/nvidia<N>`` device files. The launcher then starts one
worker per GPU and, as torchrun, leaves ``CUDA_VISIBLE_DEVICES`` as it is: every worker sees every GPU and
picks its own with ``LOCAL_RANK`` (``disttorch.cuda.set_device(int(os.environ["LOCAL_RANK"]))``).
"""
from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
from typing import Callable, Mapping, Optional

__all__ = ["visible_gpus", "parse_visible_devices"]

_ID = re.compile(r"^(\d+|GPU-[0-9A-Za-z-]+|MIG-[0-9A-Za-z/-]+)$")


def parse_visible_devices(value: str) -> list:
    """The devices a ``CUDA_VISIBLE_DEVICES`` value exposes, as CUDA reads it (up to the first invalid entry)."""
    out = []
    for entry in value.split(","):
        entry = entry.strip()
        if not _ID.match(entry):
            break
        out.append(entry)
    return out


def _nvidia_smi(run: Callable) -> Optional[int]:
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    try:
        res = run([exe, "-L"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    if res.returncode != 0:
        return None
    return sum(1 for line in res.stdout.splitlines() if line.startswith("GPU "))


def _cupy_count() -> Optional[int]:
    if importlib.util.find_spec("cupy") is None:
        return None
    try:
        import cupy

        return int(cupy.cuda.runtime.getDeviceCount())
    except Exception:  # noqa: BLE001 - no driver: no GPU
        return 0


def _dev_files() -> int:
    if not os.path.isdir("/dev"):
        return 0
    return sum(1 for d in os.listdir("/dev") if d.startswith("nvidia") and d[6:].isdigit())


def visible_gpus(environ: Optional[Mapping[str, str]] = None, run: Callable = subprocess.run) -> tuple:
    """``(count, how it was found)``; count 0 means no GPU (the caller raises, naming ``how``)."""
    environ = os.environ if environ is None else environ
    cvd = environ.get("CUDA_VISIBLE_DEVICES")
    if cvd is not None:
        ids = parse_visible_devices(cvd)
        return len(ids), f"CUDA_VISIBLE_DEVICES={cvd!r} exposes {len(ids)}"
    n = _nvidia_smi(run)
    if n is not None:
        return n, f"`nvidia-smi -L` lists {n}"
    n = _cupy_count()
    if n is not None:
        return n, f"CuPy counts {n} (nvidia-smi not found)"
    return _dev_files(), "nvidia-smi not found, CuPy not installed, no /dev/nvidia<N> device files"
