"""Control over ``scaled_dot_product_attention``'s backends (``disttorch.nn.attention``), as ``torch.nn.attention``.

``sdpa_kernel(backends)`` enables only the given backends inside its block and restores the previous
set on exit (nesting as PyTorch's). On the CPU, PyTorch runs either its flash kernel or the math
kernel, which compute the same attention; disttorch always computes with its math implementation
but keeps PyTorch's rules for what is allowed: with MATH disabled, inputs the CPU flash kernel cannot
take (dropout, non-4-D inputs, broadcast batch or heads, different head dims) raise "No available
kernel", and with both MATH and FLASH_ATTENTION disabled every call raises "No viable backend".

Example:
    >>> from disttorch.nn.attention import SDPBackend, sdpa_kernel
    >>> with sdpa_kernel(SDPBackend.MATH):
    ...     out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
"""
from __future__ import annotations

import contextlib
import enum
import warnings
from collections.abc import Iterable

__all__ = ["SDPBackend", "sdpa_kernel", "WARN_FOR_UNFUSED_KERNELS"]

# PyTorch warns about unfused kernels for bias subclasses when this is True; disttorch has no fused kernels.
WARN_FOR_UNFUSED_KERNELS = False


class SDPBackend(enum.IntEnum):
    """The backends of scaled_dot_product_attention (PyTorch's values)."""

    ERROR = -1
    MATH = 0
    FLASH_ATTENTION = 1
    EFFICIENT_ATTENTION = 2
    CUDNN_ATTENTION = 3
    OVERRIDEABLE = 4

    def __str__(self) -> str:
        return f"SDPBackend.{self.name}"


_ALL = (SDPBackend.CUDNN_ATTENTION, SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH,
        SDPBackend.OVERRIDEABLE)
_enabled: set = set(_ALL)
_priority: list = [1, 2, 0, 3, 4]  # PyTorch's default order: flash, efficient, math, cudnn, overrideable


def _cur_sdpa_kernel_backends(with_priority: bool = False) -> list:
    """The enabled backends (in priority order when ``with_priority``)."""
    backends = [b for b in _ALL if b in _enabled]
    if with_priority:
        backends.sort(key=lambda b: _priority.index(int(b)))
    return backends


def _sdpa_kernel(backends: Iterable, set_priority: bool = False) -> None:
    from ...ops import attention as _ops_attention

    backends = list(backends)
    _enabled.clear()
    _enabled.update(b for b in _ALL if b in backends)
    if set_priority:
        order = [int(b) for b in backends]
        order += [p for p in _priority if p not in order]
        _priority[:] = order
    # The check costs nothing while MATH is enabled: then every input has a backend on the CPU.
    _ops_attention._SDPA_CHECK = None if SDPBackend.MATH in _enabled else _check_cpu_backend


def _flash_cpu_problem(q, k, v, dropout_p: float, enable_gqa: bool) -> str | None:
    """Why PyTorch's CPU flash kernel would refuse these inputs (None if it would take them)."""
    if dropout_p > 0.0:
        return "Both fused kernels do not support non-zero dropout."
    if not (q.dim() == k.dim() == v.dim() == 4):
        return ("All fused kernels requires query, key and value to be 4 dimensional, but got Query dim: "
                f"{q.dim()}, Key dim: {k.dim()}, Value dim: {v.dim()} instead.")
    if not (q.shape[0] == k.shape[0] == v.shape[0]):
        return ("For dense inputs, both fused kernels require query, key and value to have the same batch_size. "
                f"Query.sizes(): {list(q.shape)}, Key.sizes(): {list(k.shape)}, Value.sizes(): {list(v.shape)} "
                "instead. To broadcast dense inputs, try using unsqueeze and expand_to before passing them into the "
                "kernel.")
    if not enable_gqa and not (q.shape[1] == k.shape[1] == v.shape[1]):
        return ("For dense input, both fused kernels require query, key and value to have the same num_heads. "
                f"Query.sizes(): {list(q.shape)}, Key sizes(): {list(k.shape)}, Value sizes(): {list(v.shape)} "
                "instead. To broadcast dense inputs, try using unsqueeze and expand_to before passing them into the "
                "kernel.")
    if not (q.shape[-1] == k.shape[-1] == v.shape[-1]):
        return ("Flash attention requires q,k,v to have the same last dimension. Got Query.size(-1): "
                f"{q.shape[-1]}, Key.size(-1): {k.shape[-1]}, Value.size(-1): {v.shape[-1]} instead.")
    return None


def _check_cpu_backend(q, k, v, attn_mask, dropout_p: float, is_causal: bool, enable_gqa: bool) -> None:
    """Raise as PyTorch's CPU backend selection does when MATH is disabled and flash cannot run."""
    if SDPBackend.MATH in _enabled:
        return
    if SDPBackend.FLASH_ATTENTION not in _enabled:
        raise RuntimeError("No viable backend for scaled_dot_product_attention was found. This is likely due to "
                           "turning off both the math kernel and the fused kernels.")
    problem = _flash_cpu_problem(q, k, v, dropout_p, enable_gqa)
    if problem is not None:
        warnings.warn("Flash attention kernel not used because:", UserWarning, stacklevel=3)
        warnings.warn(problem, UserWarning, stacklevel=3)
        raise RuntimeError("No available kernel.  Aborting execution.")


@contextlib.contextmanager
def sdpa_kernel(backends, set_priority: bool = False):
    """Enable only ``backends`` for scaled_dot_product_attention inside the block (and restore on exit).

    Args:
        backends: an ``SDPBackend`` or a list of them.
        set_priority: interpret the list order as the backends' priority.

    Example:
        >>> with sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.MATH]):
        ...     y = F.scaled_dot_product_attention(q, k, v)
    """
    if not isinstance(backends, (list, SDPBackend)):
        raise AssertionError(f"Backend must be an instance of SDPBackend or a list of SDPBackend instances, got "
                             f"{type(backends).__name__}")
    if isinstance(backends, SDPBackend):
        backends = [backends]
    for b in backends:
        if not isinstance(b, SDPBackend):
            raise AssertionError(f"Backend must be an instance of SDPBackend or a list of SDPBackend instances, got a "
                                 f"list containing {b!r} ({type(b).__name__})")
    backends = list(dict.fromkeys(backends))
    previous = _cur_sdpa_kernel_backends(with_priority=set_priority)
    previous_priority = list(_priority)
    try:
        _sdpa_kernel(backends, set_priority)
        yield {}
    finally:
        _sdpa_kernel(previous, False)
        _priority[:] = previous_priority


def __getattr__(name: str):
    # ``torch.nn.attention.bias`` / ``.flex_attention`` are submodules; load them on first attribute use too.
    if name in ("bias", "flex_attention"):
        import importlib

        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module '{__name__}' has no attribute '{name}'")
