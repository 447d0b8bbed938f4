"""Tensor printing: ``repr(t)`` and ``str(t)`` in PyTorch's format (``torch/_tensor_str.py``).

The output matches PyTorch's character for character (dtypes print as ``disttorch.float64``):
a common column width, fixed-point with ``precision`` digits, integer mode for float tensors whose
values are all integers (``tensor([1., 2.])``), scientific mode when the nonzero finite magnitudes
span more than 1000x, exceed 1e8 or go below 1e-4, lines broken at ``linewidth`` and ``...``
summaries above ``threshold`` elements.

The formatter works on host NumPy arrays. A large (or CUDA) tensor is first cut down, on its
own device, to the ``2 * edgeitems`` rows kept along each dimension, so printing a huge tensor
copies only what is shown.
"""
from __future__ import annotations

import contextlib
import math

import numpy as np

from . import _dtype as D
from ._device import to_host

__all__ = ["get_printoptions", "printoptions", "set_printoptions", "tensor_repr"]


class _PrinterOptions:
    __slots__ = ("edgeitems", "linewidth", "precision", "sci_mode", "threshold")

    def __init__(self) -> None:
        self.precision = 4
        self.threshold = 1000
        self.edgeitems = 3
        self.linewidth = 80
        self.sci_mode = None


PRINT_OPTS = _PrinterOptions()

_PROFILES = {
    "default": (4, 1000, 3, 80),
    "short": (2, 1000, 2, 80),
    "full": (4, math.inf, 3, 80),
}


def set_printoptions(precision: int | None = None, threshold: float | None = None, edgeitems: int | None = None,
                     linewidth: int | None = None, profile: str | None = None, sci_mode: bool | None = None) -> None:
    """Set options for printing tensors, as ``torch.set_printoptions``.

    Args:
        precision: digits after the decimal point (default 4).
        threshold: number of elements above which the output is summarised with ``...`` (default 1000).
        edgeitems: items kept at each end of every dimension when summarising (default 3).
        linewidth: characters per line before breaking (default 80).
        profile: ``'default'``, ``'short'`` or ``'full'``: a preset the other arguments override.
        sci_mode: force scientific notation on (True) or off (False); None (the default, and what
            every call that omits it restores) lets the formatter choose.

    Example:
        >>> disttorch.set_printoptions(precision=2)
        >>> disttorch.tensor([1.12345])
        tensor([1.12])
        >>> disttorch.set_printoptions(profile='default')
    """
    if profile is not None:
        if profile not in _PROFILES:
            raise ValueError(f"set_printoptions: unknown profile {profile!r}; expected 'default', 'short' or 'full'")
        PRINT_OPTS.precision, PRINT_OPTS.threshold, PRINT_OPTS.edgeitems, PRINT_OPTS.linewidth = _PROFILES[profile]
    if precision is not None:
        PRINT_OPTS.precision = precision
    if threshold is not None:
        PRINT_OPTS.threshold = threshold
    if edgeitems is not None:
        PRINT_OPTS.edgeitems = edgeitems
    if linewidth is not None:
        PRINT_OPTS.linewidth = linewidth
    # As in PyTorch: sci_mode is reset whenever it is not given.
    PRINT_OPTS.sci_mode = sci_mode


def get_printoptions() -> dict:
    """The current print options as a dict that ``set_printoptions(**opts)`` accepts."""
    return {name: getattr(PRINT_OPTS, name) for name in _PrinterOptions.__slots__}


@contextlib.contextmanager
def printoptions(**kwargs):
    """Context manager that sets print options (as ``set_printoptions``) and restores them on exit."""
    old = get_printoptions()
    set_printoptions(**kwargs)
    try:
        yield
    finally:
        set_printoptions(**old)


class _Formatter:
    """Chooses one number format and column width for all the values of a (summarised) array."""

    def __init__(self, arr: np.ndarray) -> None:
        self.floating_dtype = arr.dtype.kind == "f"
        self.int_mode = True
        self.sci_mode = False
        self.max_width = 1
        flat = arr.reshape(-1)
        if not self.floating_dtype:
            for value in flat.tolist():
                self.max_width = max(self.max_width, len(f"{value}"))
            return
        vals = flat[np.isfinite(flat) & (flat != 0)]
        if vals.size == 0:
            return
        absv = np.abs(vals.astype(np.float64))
        vmin, vmax = float(absv.min()), float(absv.max())
        self.int_mode = bool(np.all(vals == np.ceil(vals)))
        if PRINT_OPTS.sci_mode is None:
            self.sci_mode = vmax / vmin > 1000.0 or vmax > 1.0e8 or vmin < 1.0e-4
        else:
            self.sci_mode = bool(PRINT_OPTS.sci_mode)
        values = vals.tolist()
        prec = PRINT_OPTS.precision
        if self.sci_mode:
            spec, extra = f".{prec}e", 0
        elif self.int_mode:
            spec, extra = ".0f", 1  # room for the trailing "." that marks a float
        else:
            spec, extra = f".{prec}f", 0
        width = max(len(format(v, spec)) for v in values) + extra
        self.max_width = max(self.max_width, width)

    def width(self) -> int:
        return self.max_width

    def format(self, value) -> str:
        if self.floating_dtype:
            if self.sci_mode:
                ret = format(value, f"{self.max_width}.{PRINT_OPTS.precision}e")
            elif self.int_mode:
                ret = format(value, ".0f")
                if not (math.isinf(value) or math.isnan(value)):
                    ret += "."
            else:
                ret = format(value, f".{PRINT_OPTS.precision}f")
        else:
            ret = f"{value}"
        return (self.max_width - len(ret)) * " " + ret


def _complex_str(val, f1: _Formatter, f2: _Formatter) -> str:
    real_str = f1.format(val.real)
    imag_str = (f2.format(val.imag) + "j").lstrip()
    # The sign of the imaginary part (including -0.0) joins the two halves.
    if imag_str[0] == "+" or imag_str[0] == "-":
        return real_str + imag_str
    return real_str + "+" + imag_str


def _vector_str(arr: np.ndarray, n: int, indent: int, summarize: bool, f1: _Formatter, f2) -> str:
    element_length = f1.width() + 2
    if f2 is not None:
        element_length += f2.width() + 1
    elements_per_line = max(1, math.floor((PRINT_OPTS.linewidth - indent) / element_length))
    fmt = f1.format if f2 is None else (lambda v: _complex_str(v, f1, f2))
    edge = PRINT_OPTS.edgeitems
    if summarize and not edge:
        data = ["..."]
    elif summarize and n > 2 * edge:
        values = arr.tolist()
        data = [fmt(v) for v in values[:edge]] + [" ..."] + [fmt(v) for v in values[edge:]]
    else:
        data = [fmt(v) for v in arr.tolist()]
    lines = [", ".join(data[i:i + elements_per_line]) for i in range(0, len(data), elements_per_line)]
    return "[" + (",\n" + " " * (indent + 1)).join(lines) + "]"


def _nd_str(arr: np.ndarray, shape: tuple, indent: int, summarize: bool, f1: _Formatter, f2) -> str:
    """Print ``arr``, the summarised data of a tensor of ``shape`` (equal to it when not summarising)."""
    dim = len(shape)
    if dim == 0:
        value = arr.item()
        return f1.format(value) if f2 is None else _complex_str(value, f1, f2)
    if dim == 1:
        return _vector_str(arr, shape[0], indent, summarize, f1, f2)
    edge = PRINT_OPTS.edgeitems
    inner = shape[1:]
    if summarize and shape[0] > 2 * edge:
        slices = ([_nd_str(arr[i], inner, indent + 1, summarize, f1, f2) for i in range(edge)] + ["..."]
                  + [_nd_str(arr[i], inner, indent + 1, summarize, f1, f2) for i in range(edge, 2 * edge)])
    else:
        slices = [_nd_str(arr[i], inner, indent + 1, summarize, f1, f2) for i in range(shape[0])]
    return "[" + ("," + "\n" * (dim - 1) + " " * (indent + 1)).join(slices) + "]"


def _summarized(xp, arr, edge: int):
    """The elements a summary shows: the first and last ``edge`` entries of every long dimension."""
    for d, n in enumerate(arr.shape):
        if n > 2 * edge:
            head = (slice(None),) * d
            arr = xp.concatenate((arr[head + (slice(0, edge),)], arr[head + (slice(n - edge, n),)]), axis=d)
    return arr


def _printable(arr) -> np.ndarray:
    """``arr`` on the host in a dtype Python's formatting handles (half and bfloat16 go to float32)."""
    arr = to_host(arr)
    if arr.dtype.kind == "V" or arr.dtype == np.float16:
        arr = arr.astype(np.float32)
    return arr


def _tensor_str(t, data, indent: int) -> str:
    if data.size == 0:
        return "[]"
    summarize = data.size > PRINT_OPTS.threshold
    edge = PRINT_OPTS.edgeitems
    shape = tuple(data.shape)
    if summarize and not edge and shape:
        return "[...]"  # edgeitems=0 keeps no element of any dimension
    host = _printable(_summarized(t._xp, data, edge) if summarize else data)
    if host.dtype.kind == "c":
        f1, f2 = _Formatter(host.real), _Formatter(host.imag)
    else:
        f1, f2 = _Formatter(host), None
    return _nd_str(host, shape, indent, summarize, f1, f2)


def _add_suffixes(tensor_str: str, suffixes: list, indent: int) -> str:
    parts = [tensor_str]
    last_line_len = len(tensor_str) - tensor_str.rfind("\n") + 1
    for suffix in suffixes:
        if last_line_len + len(suffix) + 2 > PRINT_OPTS.linewidth:
            parts.append(",\n" + " " * indent + suffix)
            last_line_len = indent + len(suffix)
        else:
            parts.append(", " + suffix)
            last_line_len += len(suffix) + 2
    parts.append(")")
    return "".join(parts)


def _is_parameter_class(cls) -> bool:
    return cls.__name__ == "Parameter" and cls.__module__.startswith("disttorch.nn")


def tensor_repr(t, *, tensor_contents: str | None = None) -> str:
    """The string ``repr(t)`` and ``str(t)`` return, exactly as PyTorch formats it.

    Args:
        t: the tensor.
        tensor_contents: text to print in place of the values (as PyTorch's ``tensor_contents``).

    Example:
        >>> tensor_repr(disttorch.tensor([1.5, 2.0], dtype=disttorch.float64))
        'tensor([1.5000, 2.0000], dtype=disttorch.float64)'
    """
    from ._tensor import Tensor

    cls = type(t)
    is_plain = cls is Tensor or _is_parameter_class(cls)
    prefix = "tensor(" if is_plain else f"{cls.__name__}("
    indent = len(prefix)
    suffixes = []
    dev = t.device
    if dev.type != "cpu":
        suffixes.append(f"device='{dev}'")
    dtype = t.dtype
    default = D.get_default_dtype()
    data = t._data
    if data.size == 0:
        if data.ndim != 1:
            suffixes.append("size=" + str(tuple(data.shape)))
        if dtype is not default:
            suffixes.append(f"dtype={dtype}")
        tensor_str = "[]" if tensor_contents is None else tensor_contents
    else:
        if not PRINT_OPTS.edgeitems:
            suffixes.append("size=" + str(tuple(data.shape)))
        if dtype not in (default, default.to_complex(), D.int64, D.bool):
            suffixes.append(f"dtype={dtype}")
        tensor_str = _tensor_str(t, data, indent) if tensor_contents is None else tensor_contents
    if t.grad_fn is not None:
        suffixes.append(f"grad_fn=<{type(t.grad_fn).__name__}>")
    elif t._requires_grad:
        suffixes.append("requires_grad=True")
    out = _add_suffixes(prefix + tensor_str, suffixes, indent)
    if not is_plain and any(_is_parameter_class(c) for c in cls.__mro__):
        out = f"Parameter({out})"
    return out
