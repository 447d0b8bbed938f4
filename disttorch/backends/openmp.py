"""``disttorch.backends.openmp``."""
from __future__ import annotations


def is_available() -> bool:
    """False: disttorch's parallelism is NumPy's BLAS threads, not an OpenMP runtime of its own."""
    return False
