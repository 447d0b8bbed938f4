"""``make_tensor``: random test tensors, as ``torch.testing.make_tensor`` (drawn from disttorch's generator)."""
from __future__ import annotations

import collections.abc
import math
import warnings
from typing import Optional

from .. import _dtype as D

__all__ = ["make_tensor"]

_INTEGRAL = (D.uint8, D.int8, D.int16, D.int32, D.int64)
_FLOATING = (D.float16, D.bfloat16, D.float32, D.float64)
_COMPLEX = (D.complex64, D.complex128)


def make_tensor(*shape, dtype: D.dtype, device, low: Optional[float] = None, high: Optional[float] = None,
                requires_grad: bool = False, noncontiguous: bool = False, exclude_zero: bool = False,
                memory_format=None):
    """A tensor of ``shape`` filled with uniform random values in ``[low, high)``, as ``torch.testing.make_tensor``.

    Defaults: ``[-9, 9)`` for floating and complex dtypes, ``[-9, 10)`` for integers (clamped to the dtype's
    range), ``{False, True}`` for bool.

    Args:
        shape: sizes, or one sequence of sizes.
        dtype, device: of the result (both required, as in PyTorch).
        low, high: the value interval.
        requires_grad: for floating/complex dtypes only.
        noncontiguous: return a non-contiguous view (every other element of a twice-as-wide tensor).
        exclude_zero: replace zeros by 1 (integers) or the dtype's smallest normal number (floats).
    """
    from .. import ops

    def modify_low_high(low, high, *, lowest_inclusive, highest_exclusive, default_low, default_high):
        low = default_low if low is None else low
        high = default_high if high is None else high
        if any(isinstance(v, float) and math.isnan(v) for v in (low, high)):
            raise ValueError(f"`low` and `high` cannot be NaN, but got low={low} and high={high}")
        if low == high and dtype in _FLOATING + _COMPLEX:
            warnings.warn("Passing `low==high` to `torch.testing.make_tensor` for floating or complex types is "
                          "deprecated since 2.1 and will be removed in 2.3. Use `torch.full(...)` instead.",
                          FutureWarning, stacklevel=3)
        elif low >= high:
            raise ValueError(f"`low` must be less than `high`, but got {low} >= {high}")
        elif high < lowest_inclusive or low >= highest_exclusive:
            raise ValueError(f"The value interval specified by `low` and `high` is [{low}, {high}), but {dtype} only "
                             f"supports [{lowest_inclusive}, {highest_exclusive})")
        low = min(max(low, lowest_inclusive), highest_exclusive)
        high = min(max(high, lowest_inclusive), highest_exclusive)
        if dtype is D.bool or dtype in _INTEGRAL:
            return math.ceil(low), math.ceil(high)
        return low, high

    if len(shape) == 1 and isinstance(shape[0], collections.abc.Sequence):
        shape = shape[0]
    shape = tuple(shape)
    if noncontiguous and memory_format is not None:
        raise ValueError(f"The parameters `noncontiguous` and `memory_format` are mutually exclusive, but got "
                         f"noncontiguous={noncontiguous} and memory_format={memory_format}")
    if requires_grad and (dtype is D.bool or dtype in _INTEGRAL):
        raise ValueError(f"`requires_grad=True` is not supported for boolean and integral dtypes, but got "
                         f"dtype={dtype}")
    noncontiguous = noncontiguous and math.prod(shape) > 1
    if noncontiguous:
        shape = (*shape[:-1], 2 * shape[-1])
    if dtype is D.bool:
        low, high = modify_low_high(low, high, lowest_inclusive=0, highest_exclusive=2, default_low=0, default_high=2)
        result = ops.randint(low, high, shape, device=device, dtype=dtype)
    elif dtype in _INTEGRAL:
        info = D.iinfo(dtype)
        low, high = modify_low_high(low, high, lowest_inclusive=info.min,
                                    highest_exclusive=info.max + (1 if dtype is not D.int64 else 0),
                                    default_low=-9, default_high=10)
        result = ops.randint(low, high, shape, device=device, dtype=dtype)
    elif dtype in _FLOATING or dtype in _COMPLEX:
        info = D.finfo(dtype)
        low, high = modify_low_high(low, high, lowest_inclusive=info.min, highest_exclusive=info.max,
                                    default_low=-9, default_high=9)
        real = dtype.to_real() if dtype in _COMPLEX else dtype

        def uniform():
            t = ops.empty(shape, dtype=real, device=device)
            if high - low >= D.finfo(real).max:  # the width would overflow: draw half-width and double
                return t.uniform_(low / 2, high / 2).mul_(2)
            return t.uniform_(low, high)

        result = uniform() if dtype not in _COMPLEX else ops.complex(uniform(), uniform())
    else:
        raise TypeError(f"The requested dtype '{dtype}' is not supported by torch.testing.make_tensor().")
    if noncontiguous:
        result = result[..., 1::2]
    if exclude_zero:
        result[result == 0] = 1 if (dtype is D.bool or dtype in _INTEGRAL) else D.finfo(dtype).tiny
    if dtype in _FLOATING or dtype in _COMPLEX:
        result.requires_grad = requires_grad
    return result
