"""Shared test helpers: forward checks against NumPy references and float64 gradchecks."""
from __future__ import annotations

import numpy as np

import disttorch

# Shapes every op family should exercise: 0-d, empty, vectors, matrices, 3-d.
UNARY_SHAPES = [(), (0,), (5,), (2, 3), (2, 0, 3), (2, 3, 4)]
# Pairs that broadcast (including 0-d against anything and empty dims).
BROADCAST_PAIRS = [((), (3,)), ((3,), ()), ((2, 3), (3,)), ((2, 1), (1, 4)), ((4, 1, 3), (2, 1)),
                   ((0, 3), (3,)), ((2, 3), (2, 3))]

_rng = np.random.default_rng(1234)


def rand_array(shape, dtype=np.float64, low=-2.0, high=2.0, rng=None):
    """Random array of ``shape``; integers in [low, high) for integer dtypes."""
    rng = rng or _rng
    if np.dtype(dtype).kind in "iu":
        return rng.integers(int(low), int(high), size=shape).astype(dtype)
    if np.dtype(dtype).kind == "b":
        return rng.random(shape) > 0.5
    return rng.uniform(low, high, size=shape).astype(dtype)


def t64(arr, requires_grad: bool = True):
    """A float64 tensor copy of ``arr`` (leaf; requires grad by default)."""
    return disttorch.tensor(np.asarray(arr, dtype=np.float64), requires_grad=requires_grad)


def assert_close(actual, expected, rtol: float = 1e-6, atol: float = 1e-8, check_dtype=None):
    """Compare a Tensor (or tuple of Tensors) with NumPy arrays (or numbers)."""
    if isinstance(actual, (tuple, list)):
        assert len(actual) == len(expected), (len(actual), len(expected))
        for a, e in zip(actual, expected):
            assert_close(a, e, rtol, atol, check_dtype)
        return
    a = actual.detach().numpy() if isinstance(actual, disttorch.Tensor) else np.asarray(actual)
    e = np.asarray(expected)
    assert a.shape == e.shape, f"shape {a.shape} != expected {e.shape}"
    if check_dtype is not None:
        assert actual.dtype == check_dtype, f"dtype {actual.dtype} != {check_dtype}"
    if a.dtype.kind in "biu" and e.dtype.kind in "biu":
        np.testing.assert_array_equal(a, e)
    elif a.dtype.kind == "c" or e.dtype.kind == "c":
        np.testing.assert_allclose(a.astype(np.complex128), e.astype(np.complex128), rtol=rtol, atol=atol,
                                   equal_nan=True)
    else:
        np.testing.assert_allclose(a.astype(np.float64), e.astype(np.float64), rtol=rtol, atol=atol,
                                   equal_nan=True)


def check_forward(fn, ref, *arrays, rtol: float = 1e-6, atol: float = 1e-8, **kwargs):
    """``fn(*tensors, **kwargs)`` equals ``ref(*arrays, **kwargs)`` computed by NumPy."""
    tensors = [disttorch.tensor(a) if isinstance(a, np.ndarray) else a for a in arrays]
    out = fn(*tensors, **kwargs)
    expected = ref(*arrays, **kwargs)
    assert_close(out, expected, rtol, atol)
    return out


def check_grad(fn, *arrays, atol: float = 1e-5, rtol: float = 1e-3, gradgrad: bool = False):
    """gradcheck ``fn`` at float64 copies of ``arrays`` (non-array arguments pass through)."""
    inputs = tuple(t64(a) if isinstance(a, np.ndarray) and a.dtype.kind == "f" else a for a in arrays)
    assert disttorch.autograd.gradcheck(fn, inputs, atol=atol, rtol=rtol)
    if gradgrad:
        assert disttorch.autograd.gradgradcheck(fn, inputs, atol=atol, rtol=rtol)


def check_complex_grad(fn, *arrays, atol: float = 1e-5, rtol: float = 1e-3, gradgrad: bool = False):
    """gradcheck ``fn`` at complex128 ``arrays`` through real and imaginary parts (PyTorch's convention).

    ``gradcheck`` compares real Jacobians, so ``fn`` is checked as the real function
    ``(re, im, ...) -> view_as_real(fn(complex(re, im), ...))``: a complex backward that misses a
    conjugation gives wrong real gradients there.
    """
    def realified(*parts):
        zs = [disttorch.complex(parts[i], parts[i + 1]) for i in range(0, len(parts), 2)]
        out = fn(*zs)
        return disttorch.view_as_real(out) if out.dtype.is_complex else out

    inputs = tuple(t64(np.ascontiguousarray(p)) for a in arrays for p in (np.real(a), np.imag(a)))
    assert disttorch.autograd.gradcheck(realified, inputs, atol=atol, rtol=rtol)
    if gradgrad:
        assert disttorch.autograd.gradgradcheck(realified, inputs, atol=atol, rtol=rtol)


def flat_args(obj, out=None) -> list:
    """The non-None leaves of nested tuples/lists (a model's arguments or outputs, as ONNX sees them), in order."""
    out = [] if out is None else out
    if isinstance(obj, (tuple, list)):
        for o in obj:
            flat_args(o, out)
    elif obj is not None:
        out.append(obj)
    return out
