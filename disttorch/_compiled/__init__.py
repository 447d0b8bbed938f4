"""CPU kernels compiled by numba, loaded on first use; the NumPy code they replace stays the reference.

Some CPU work is a chain of cheap element-wise steps over arrays larger than the cache (an Adam update is 13
NumPy passes) or a gather that NumPy can only express as several strided copies (2x2 max pooling and its
backward). A numba-compiled loop does each in one pass, with the GIL released, and computes the same IEEE
operations in the same order in the array's own dtype, so its results are bitwise those of the NumPy path
(tests compare the two).

- :func:`get` returns a kernel module, importing numba the first time a kernel is worth it (callers ask only
  above :data:`MIN_ELEMENTS`, so small programs and most processes never pay numba's import, ~0.3 s).
- Compiled code is cached on disk (numba's ``cache=True``, next to this package or in the user's cache), so
  only the first process on a machine compiles (~0.5 s per kernel and signature).
- ``DISTTORCH_COMPILED=0``, or numba missing or failing to load, leaves every caller on the NumPy path.
"""
from __future__ import annotations

import importlib
import os
import warnings

import numpy as np

from .. import _parallel as P

__all__ = ["ENABLED", "FLOAT", "MIN_ELEMENTS", "SPLIT_MIN", "get", "available", "loaded", "run_planes"]

ENABLED = os.environ.get("DISTTORCH_COMPILED", "1") != "0"
# Elements below which callers keep the NumPy path: there the NumPy calls cost microseconds, and numba's
# dispatch (a few us for a many-argument kernel) and first import would not pay.
MIN_ELEMENTS = 1 << 15
# The dtypes the kernels are compiled for (others keep the NumPy path).
FLOAT = (np.dtype(np.float32), np.dtype(np.float64))

# Elements of work from which a compiled kernel is split over the intra-op pool: a kernel call holds no GIL, so
# a split costs one hand-off per piece (~80 us a region on the build machine) against ~0.4 ns per element saved.
# Re-measured with small products held to one BLAS thread (``_parallel.GEMM_THREADED_MIN``), in-process alternation
# at 2 threads: 256 Ki made the CNN step 5% faster (8.2 against 8.7 ms) but the MLP's 3-5% slower (its large
# products keep OpenBLAS's workers spinning on the second core, which its split Adam update then shares).
SPLIT_MIN = 1 << 20

_MODULES: dict = {}
_STATE = {"failed": None}


def available() -> bool:
    """True when the compiled kernels can be used (enabled, and numba imports)."""
    if not ENABLED or _STATE["failed"] is not None:
        return False
    if "numba" in _MODULES:
        return True
    try:
        import numba  # noqa: F401
    except Exception as exc:  # missing, or an llvmlite that does not load on this machine
        _STATE["failed"] = exc
        warnings.warn(f"disttorch: numba is unavailable ({exc!r}); CPU kernels run on the NumPy path",
                      stacklevel=3)
        return False
    _MODULES["numba"] = True
    return True


def get(name: str):
    """The compiled-kernel module ``disttorch._compiled.<name>`` (``adam``, ``sgd``, ``pool``, ``conv``,
    ``pointwise``, ``norm``), or ``None`` when the kernels are off or numba cannot be loaded."""
    if not ENABLED:
        return None
    mod = _MODULES.get(name)
    if mod is None and available():
        try:
            mod = importlib.import_module(f"{__name__}.{name}")
        except Exception as exc:  # e.g. numba finds no writable cache directory for cache=True
            _STATE["failed"] = exc
            warnings.warn(f"disttorch: the compiled kernels of disttorch._compiled.{name} cannot be loaded "
                          f"({exc!r}); CPU kernels run on the NumPy path", stacklevel=2)
            return None
        _MODULES[name] = mod
    return mod


def loaded(name: str) -> bool:
    """True when kernel module ``name`` is in use already (a cheap test: imports nothing)."""
    return ENABLED and name in _MODULES


def run_planes(n: int, work: int, body) -> None:
    """``body(start, stop)`` over ``range(n)`` (planes, rows): split over the intra-op pool from
    :data:`SPLIT_MIN` elements of ``work``, else in one call."""
    if work >= SPLIT_MIN and n > 1 and P.threads() > 1:
        P.run_ranges(n, body)
    else:
        body(0, n)
