"""``assert_close``: PyTorch's comparison of tensors, numbers, sequences and mappings, with its messages.

Tensors are compared after checking shape, device and dtype (``check_device``/``check_dtype``); values
match when ``|actual - expected| <= atol + rtol * |expected|`` (NaNs only with ``equal_nan``), with
PyTorch's default tolerances per dtype when neither ``rtol`` nor ``atol`` is given.
"""
from __future__ import annotations

import collections.abc
import warnings
from typing import Any, Callable, Optional, Union

import numpy as np

from .. import _dtype as D
from .. import _internals as E
from .._tensor import Tensor

__all__ = ["assert_close", "assert_allclose"]

# (rtol, atol) per dtype; integers and bool compare exactly.
_DTYPE_PRECISIONS = {
    D.float16: (0.001, 1e-5),
    D.bfloat16: (0.016, 1e-5),
    D.float32: (1.3e-6, 1e-5),
    D.float64: (1e-7, 1e-7),
    D.complex64: (1.3e-6, 1e-5),
    D.complex128: (1e-7, 1e-7),
}

_Msg = Optional[Union[str, Callable[[str], str]]]


class _Failure(Exception):
    """A comparison failure: the exception type to raise, its message, and where in a nested input it occurred."""

    def __init__(self, kind: type, msg: str, id: tuple = ()) -> None:  # noqa: A002 - PyTorch's name
        super().__init__(msg)
        self.kind, self.msg, self.id = kind, msg, id

    def to_error(self, msg: _Msg):
        text = self.msg
        if self.kind is AssertionError and msg is not None:
            text = msg if isinstance(msg, str) else msg(text)
        if self.id:
            text += f"\n\nThe failure occurred for item {''.join(f'[{i!r}]' for i in self.id)}"
        return self.kind(text)


def _default_tolerances(*dtypes) -> tuple:
    rtols, atols = zip(*[_DTYPE_PRECISIONS.get(d, (0.0, 0.0)) for d in dtypes])
    return max(rtols), max(atols)


def _tolerances(*dtypes, rtol, atol, id: tuple) -> tuple:  # noqa: A002
    if (rtol is None) ^ (atol is None):
        raise _Failure(ValueError, "Both 'rtol' and 'atol' must be either specified or omitted, "
                                   f"but got no {'rtol' if rtol is None else 'atol'}.", id)
    if rtol is not None:
        return rtol, atol
    return _default_tolerances(*dtypes)


def _mismatch_msg(default_identifier: str, extra: Optional[str], abs_diff, abs_idx, atol, rel_diff, rel_idx,
                  rtol) -> str:
    equality = rtol == 0 and atol == 0

    def diff_msg(kind: str, diff, idx, tol) -> str:
        m = f"{kind.title()} difference: {diff}" if idx is None else f"Greatest {kind} difference: {diff} at index {idx}"
        if not equality:
            m += f" (up to {tol} allowed)"
        return m + "\n"

    msg = f"{default_identifier} are not {'equal' if equality else 'close'}!\n\n"
    if extra:
        msg += f"{extra.strip()}\n"
    msg += diff_msg("absolute", abs_diff, abs_idx, atol)
    msg += diff_msg("relative", rel_diff, rel_idx, rtol)
    return msg.strip()


def _item(a: np.ndarray):
    return a.reshape(()).item()


def _compare_tensors(actual: Tensor, expected: Tensor, *, rtol, atol, equal_nan: bool, check_device: bool,
                     check_dtype: bool, check_stride: bool, id: tuple) -> None:  # noqa: A002
    def attr_fail(name, a, e):
        raise _Failure(AssertionError, f"The values for attribute '{name}' do not match: {a} != {e}.", id)

    if actual.shape != expected.shape:
        attr_fail("shape", actual.shape, expected.shape)
    if check_device and actual.device != expected.device:
        attr_fail("device", actual.device, expected.device)
    if check_dtype and actual.dtype is not expected.dtype:
        attr_fail("dtype", actual.dtype, expected.dtype)
    if check_stride and actual.stride() != expected.stride():
        attr_fail("stride()", actual.stride(), expected.stride())
    rtol, atol = _tolerances(actual.dtype, expected.dtype, rtol=rtol, atol=atol, id=id)
    a, e = E.to_host(E.array(actual)), E.to_host(E.array(expected))
    if a.dtype != e.dtype:
        common = D.promote_types(actual.dtype, expected.dtype).np
        a, e = a.astype(common), e.astype(common)
    if a.dtype == np.bool_:
        matches = a == e
    else:
        matches = np.isclose(a, e, rtol=rtol, atol=atol, equal_nan=equal_nan)
    if bool(np.all(matches)):
        return
    if a.ndim == 0:
        av, ev = _item(a), _item(e)
        abs_diff = abs(av - ev)
        rel_diff = float("inf") if ev == 0 else abs_diff / abs(ev)
        raise _Failure(AssertionError, _mismatch_msg("Scalars", f"Expected {ev} but got {av}.", abs_diff, None, atol,
                                                     rel_diff, None, rtol), id)
    total = matches.size
    mismatches = total - int(matches.sum())
    extra = f"Mismatched elements: {mismatches} / {total} ({mismatches / total:.1%})"
    af, ef, mf = a.reshape(-1), e.reshape(-1), matches.reshape(-1)
    if a.dtype.kind in "biu":
        af, ef = af.astype(np.int64), ef.astype(np.int64)
    with np.errstate(all="ignore"):
        abs_d = np.abs(af - ef)
        abs_d[mf] = 0
        ai = int(np.argmax(abs_d))
        if a.dtype.kind in "biu":  # PyTorch divides integer differences into the default float dtype
            rel_d = abs_d.astype(np.float32) / np.abs(ef).astype(np.float32)
        else:
            rel_d = abs_d / np.abs(ef)
        rel_d[mf] = 0
        ri = int(np.argmax(rel_d))

    def unravel(i: int) -> tuple:
        return tuple(int(v) for v in np.unravel_index(i, a.shape))

    raise _Failure(AssertionError, _mismatch_msg("Tensor-likes", extra, abs_d[ai].item(), unravel(ai), atol,
                                                 rel_d[ri].item(), unravel(ri), rtol), id)


_NUMBER = (bool, int, float, complex)


def _compare_numbers(actual, expected, *, rtol, atol, equal_nan: bool, check_dtype: bool, id: tuple) -> None:  # noqa: A002
    if check_dtype and type(actual) is not type(expected):
        raise _Failure(AssertionError, f"The (d)types do not match: {type(actual)} != {type(expected)}.", id)
    kinds = {bool: D.bool, int: D.int64, float: D.float64, complex: D.complex128}
    rtol, atol = _tolerances(kinds[type(actual)], kinds[type(expected)], rtol=rtol, atol=atol, id=id)
    if actual == expected:
        return
    if equal_nan and actual != actual and expected != expected:
        return
    abs_diff = abs(actual - expected)
    if isinstance(abs_diff, float) and abs_diff <= atol + rtol * abs(expected):
        return
    rel_diff = float("inf") if expected == 0 else abs_diff / abs(expected)
    raise _Failure(AssertionError, _mismatch_msg("Scalars", f"Expected {expected} but got {actual}.", abs_diff, None,
                                                 atol, rel_diff, None, rtol), id)


def _compare(actual, expected, id: tuple, opts: dict) -> None:  # noqa: A002
    if actual is None and expected is None:
        return
    if isinstance(actual, Tensor) and isinstance(expected, Tensor):
        return _compare_tensors(actual, expected, id=id, **opts)
    if isinstance(actual, np.ndarray) and isinstance(expected, np.ndarray):
        from ..ops.creation import as_tensor

        return _compare_tensors(as_tensor(actual), as_tensor(expected), id=id, **opts)
    if isinstance(actual, _NUMBER) and isinstance(expected, _NUMBER):
        return _compare_numbers(actual, expected, rtol=opts["rtol"], atol=opts["atol"],
                                equal_nan=opts["equal_nan"], check_dtype=True, id=id)
    if isinstance(actual, collections.abc.Mapping) and isinstance(expected, collections.abc.Mapping):
        ak, ek = set(actual.keys()), set(expected.keys())
        if ak != ek:
            missing, extra = sorted(map(repr, ek - ak)), sorted(map(repr, ak - ek))
            raise _Failure(AssertionError, "The keys of the mappings do not match:\n"
                                           f"Missing keys in the actual mapping: [{', '.join(missing)}]\n"
                                           f"Additional keys in the actual mapping: [{', '.join(extra)}]", id)
        for k in expected:
            _compare(actual[k], expected[k], id + (k,), opts)
        return
    if (isinstance(actual, collections.abc.Sequence) and not isinstance(actual, (str, bytes))
            and isinstance(expected, collections.abc.Sequence) and not isinstance(expected, (str, bytes))):
        if len(actual) != len(expected):
            raise _Failure(AssertionError, f"The length of the sequences mismatch: {len(actual)} != {len(expected)}",
                           id)
        for i, (a, e) in enumerate(zip(actual, expected)):
            _compare(a, e, id + (i,), opts)
        return
    raise _Failure(TypeError, f"No comparison pair was able to handle inputs of type {type(actual)} and "
                              f"{type(expected)}.", id)


def assert_close(actual: Any, expected: Any, *, allow_subclasses: bool = True, rtol: Optional[float] = None,
                 atol: Optional[float] = None, equal_nan: bool = False, check_device: bool = True,
                 check_dtype: bool = True, check_layout: bool = True, check_stride: bool = False,
                 msg: _Msg = None) -> None:
    """Assert that ``actual`` and ``expected`` are close, as ``torch.testing.assert_close``.

    Tensors (and NumPy arrays compared with NumPy arrays) must have the same shape, and by default the same
    device and dtype; their values are close when ``|actual - expected| <= atol + rtol * |expected|``.
    Without ``rtol``/``atol`` the defaults depend on the dtype: float16 (1e-3, 1e-5), bfloat16 (1.6e-2,
    1e-5), float32 (1.3e-6, 1e-5), float64 (1e-7, 1e-7), complex64 (1.3e-6, 1e-5), complex128 (1e-7, 1e-7);
    integers and bool must be equal. Python numbers compare as float64/int64; sequences and mappings are
    compared element by element.

    Args:
        actual: the value to check.
        expected: the reference.
        rtol, atol: relative and absolute tolerance (give both or neither).
        equal_nan: NaNs in the same places count as equal.
        check_device, check_dtype: require equal devices / dtypes (otherwise values are compared after promotion).
        check_stride: require equal strides.
        msg: a message replacing the default, or a callable that receives the default and returns the message.

    Raises:
        AssertionError: the values (or shapes, dtypes, devices, lengths, keys) differ, with PyTorch's message.
        ValueError: only one of ``rtol``/``atol`` was given.
        TypeError: the inputs are of types that cannot be compared.
    """
    opts = dict(rtol=rtol, atol=atol, equal_nan=equal_nan, check_device=check_device, check_dtype=check_dtype,
                check_stride=check_stride)
    try:
        _compare(actual, expected, (), opts)
    except _Failure as f:
        raise f.to_error(msg) from None


def assert_allclose(actual: Any, expected: Any, rtol: Optional[float] = None, atol: Optional[float] = None,
                    equal_nan: bool = True, msg: str = "") -> None:
    """Deprecated (as in PyTorch): use :func:`assert_close`."""
    warnings.warn("`torch.testing.assert_allclose()` is deprecated since 1.12 and will be removed in a future "
                  "release. Please use `torch.testing.assert_close()` instead.", FutureWarning, stacklevel=2)
    from ..ops.creation import as_tensor

    actual = actual if isinstance(actual, Tensor) else as_tensor(actual)
    expected = expected if isinstance(expected, Tensor) else as_tensor(expected, dtype=actual.dtype)
    if rtol is None and atol is None:
        rtol, atol = _default_tolerances(actual.dtype, expected.dtype)
    assert_close(actual, expected, rtol=rtol, atol=atol, equal_nan=equal_nan, check_device=True, check_dtype=False,
                 check_stride=False, msg=msg or None)
