"""``disttorch.backends.cpu``."""
from __future__ import annotations


def get_cpu_capability() -> str:
    """The SIMD level of the CPU kernels: NumPy picks its own at run time, so this reports ``"DEFAULT"``."""
    return "DEFAULT"
