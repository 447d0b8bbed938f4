"""``disttorch.kernels``: CUDA C sources (``*.cu``) and their loader.

Kernels are an optional fast path beside the generic array code (DESIGN rule 1). They are
compiled at run time by CuPy (``cupy.RawModule``), once per source and device. ``launch`` holds the launch
plans (grid, block, entry point per dtype, arguments) and ``philox`` the host twin of the dropout generator.
Setting the environment variable ``DISTTORCH_KERNELS=0`` turns the fast path off (``enabled()`` is False), so the
generic array code runs everywhere; see docs/gpu.md. The ops reach the kernels through ``disttorch.ops._fused``.
"""
from __future__ import annotations

import functools
import os
from importlib import resources

_OFF = ("0", "false", "off", "no")


def enabled() -> bool:
    """Whether the fused-kernel fast path may be used: False when ``DISTTORCH_KERNELS`` is 0/false/off/no.

    Read at each call, so tests and users can switch it with the environment at run time.
    """
    return os.environ.get("DISTTORCH_KERNELS", "1").strip().lower() not in _OFF


def sources() -> list[str]:
    """Names of the ``.cu`` files shipped with the package."""
    return sorted(p.name for p in resources.files(__name__).iterdir() if p.name.endswith(".cu"))


def source(name: str) -> str:
    """The CUDA source text of ``name`` (e.g. ``"softmax.cu"``)."""
    path = resources.files(__name__) / name
    if not path.is_file():
        raise FileNotFoundError(f"disttorch.kernels: no kernel source {name!r}; shipped: {sources()}")
    # NVRTC compiles a string, without the file's directory to search: the shared header goes in inline
    common = (resources.files(__name__) / "common.cuh").read_text().replace("#pragma once\n", "", 1)
    return path.read_text().replace('#include "common.cuh"', common, 1)


@functools.lru_cache(maxsize=None)
def load(name: str, device_id: int = 0):
    """Compile ``name`` with CuPy for GPU ``device_id`` (cached) and return the ``cupy.RawModule``."""
    import cupy

    with cupy.cuda.Device(device_id):
        return cupy.RawModule(code=source(name), options=("-std=c++17",))
