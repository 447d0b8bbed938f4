"""The ``torch.nn.functional`` softmax family: ``softmax``/``log_softmax``/``softmin`` with PyTorch's implicit-dim
form (``dim=None`` picks a dim with a deprecation warning) and ``gumbel_softmax`` (split from activation.py, which
re-exports them)."""
from __future__ import annotations

import warnings

from .. import _tensor as T
from ._helpers import tensor_arg
from .softmax import log_softmax as _log_softmax
from .softmax import softmax as _softmax

__all__: list = []  # reached through activation.py and nn.functional, not as torch.* names


def _get_softmax_dim(name: str, ndim: int, stacklevel: int) -> int:
    warnings.warn(f"Implicit dimension choice for {name} has been deprecated. Change the call to include dim=X "
                  "as an argument.", UserWarning, stacklevel=stacklevel)
    return 0 if ndim in (0, 1, 3) else 1


def softmax(input, dim: int | None = None, _stacklevel: int = 3, dtype=None):
    """``exp(x) / sum(exp(x))`` along ``dim`` (``dim=None`` picks one with a deprecation warning, as PyTorch)."""
    x = tensor_arg(input, "softmax")
    if dim is None:
        dim = _get_softmax_dim("softmax", x.ndim, _stacklevel)
    return _softmax(x, dim, dtype)


def log_softmax(input, dim: int | None = None, _stacklevel: int = 3, dtype=None):
    """``log(softmax(x))`` along ``dim``, computed stably."""
    x = tensor_arg(input, "log_softmax")
    if dim is None:
        dim = _get_softmax_dim("log_softmax", x.ndim, _stacklevel)
    return _log_softmax(x, dim, dtype)


def softmin(input, dim: int | None = None, _stacklevel: int = 3, dtype=None):
    """``softmax(-input)`` along ``dim``."""
    x = tensor_arg(input, "softmin")
    if dim is None:
        dim = _get_softmax_dim("softmin", x.ndim, _stacklevel)
    return _softmax(-x, dim, dtype)


def gumbel_softmax(logits, tau: float = 1.0, hard: bool = False, eps: float = 1e-10, dim: int = -1):
    """Samples from the Gumbel-softmax distribution (straight-through one-hot when ``hard``)."""
    x = tensor_arg(logits, "gumbel_softmax")
    if eps != 1e-10:
        warnings.warn("`eps` parameter is deprecated and has no effect.", stacklevel=2)
    g = T._wrap(x._xp.empty_like(x._data)).exponential_().log()
    y = _softmax((x - g) / tau, dim)
    if not hard:
        return y
    d = T._wrap_dim(dim, y.ndim, "gumbel_softmax")
    index = y.argmax(d, keepdim=True)
    y_hard = T._wrap(y._xp.zeros_like(y._data)).scatter_(d, index, 1.0)
    return y_hard - y.detach() + y
