"""Fixtures of the GPU tests (``-m gpu``, run by ``make test-gpu``): they need CuPy and an NVIDIA GPU.

Without them every test here skips and says which of the two is missing; CPU-only CI still exercises the device
path through the stand-in device (tests/gpu_standin) and the kernels through nvcc (tests/kernels).
"""
import functools

import numpy as np
import pytest


@functools.lru_cache(maxsize=None)
def cuda_unavailable_reason() -> str:
    """Why the GPU tests cannot run here, or '' when they can."""
    try:
        import cupy
    except Exception as e:  # ImportError, or a CuPy build that finds no CUDA library
        return f"CuPy is not importable ({type(e).__name__}: {e}); `make test-gpu` installs cupy-cuda12x"
    try:
        n = cupy.cuda.runtime.getDeviceCount()
    except Exception as e:  # no driver, or a driver older than the CUDA runtime CuPy was built for
        return f"CuPy finds no usable CUDA driver ({type(e).__name__}: {e})"
    if n == 0:
        return "CuPy sees no CUDA device (is CUDA_VISIBLE_DEVICES empty?)"
    import disttorch

    if not disttorch.cuda.is_available():
        return "disttorch.cuda.is_available() is False although CuPy sees a GPU"
    return ""


@pytest.fixture(scope="session")
def cp():
    """CuPy, once a GPU is known to be usable; otherwise the test is skipped with the reason."""
    reason = cuda_unavailable_reason()
    if reason:
        pytest.skip(reason)
    import cupy

    return cupy


# Largest |kernel - reference| over the largest |reference|, per storage dtype of the kernel's inputs and
# outputs: float32 allows for a different summation order; float16 for one rounding of inputs and output
# (2^-11 relative) plus float32 arithmetic.
REL_TOL = {"float32": 1e-5, "float16": 4e-3}


def assert_rel_close(got, want, dtype, what: str) -> None:
    """Fail when the error of ``got`` relative to the largest magnitude of ``want`` exceeds REL_TOL[dtype]."""
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, f"{what}: shape {got.shape}, expected {want.shape}"
    scale = max(float(np.max(np.abs(want))) if want.size else 0.0, 1e-30)
    err = float(np.max(np.abs(got - want))) / scale if want.size else 0.0
    limit = REL_TOL[np.dtype(dtype).name]
    assert err <= limit, f"{what} ({np.dtype(dtype).name}): relative error {err:.3g} exceeds {limit:g}"


@pytest.fixture
def rel_close():
    """:func:`assert_rel_close`, as a fixture (test modules here cannot import this conftest by name)."""
    return assert_rel_close
