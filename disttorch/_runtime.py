"""Process-wide settings and small predicates: threads, printing, determinism, compile."""
from __future__ import annotations

import os

from . import _parallel
from ._tensor import Tensor

_threads = {"intra": None, "inter": 1}
_settings = {"deterministic": False, "matmul_precision": "highest"}


def _tune_malloc() -> bool:
    """Keep freed activation memory in the heap instead of returning it to the OS after every step.

    A training step frees and re-allocates the same large arrays each iteration. With glibc's defaults, arrays
    above the (dynamic) mmap threshold are mmapped and unmapped every time, and the heap top is trimmed, which
    cost thousands of page faults per step (measured: 9-13 ms of a 60 ms Transformer step). Allocating from a
    retained heap is what PyTorch's CPU allocator effectively gets. Costs: up to ~256 MB of freed memory stays
    mapped in the process. Opt out with ``DISTTORCH_MALLOC_TUNING=0``.
    """
    if os.environ.get("DISTTORCH_MALLOC_TUNING", "1") == "0" or not os.uname().sysname == "Linux":
        return False
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_top_pad, m_mmap_threshold = -1, -2, -3
        ok = libc.mallopt(m_mmap_threshold, 32 << 20) and libc.mallopt(m_trim_threshold, 256 << 20) \
            and libc.mallopt(m_top_pad, 64 << 20)
        return bool(ok)
    except (OSError, AttributeError):  # not glibc (e.g. musl): leave the allocator alone
        return False


MALLOC_TUNED = _tune_malloc()


def set_num_threads(n: int) -> None:
    """Set the number of threads used for intra-op parallelism on CPU, as ``torch.set_num_threads``.

    It sizes disttorch's kernel thread pool (element-wise, reduction, convolution, pooling, normalisation and
    optimizer kernels on large arrays; see ``disttorch/_parallel.py``) and BLAS (through threadpoolctl)
    together. The default is ``OMP_NUM_THREADS`` when set, else the CPUs this process may run on.

    Args:
        n: threads per process, the calling thread included (1 runs every kernel single-threaded).
    """
    if int(n) < 1:
        raise RuntimeError(f"set_num_threads expects a positive integer (got {n})")
    _threads["intra"] = int(n)
    _parallel.set_threads(int(n))
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=int(n))
    except ImportError:  # pragma: no cover - threadpoolctl is a dependency
        pass


def get_num_threads() -> int:
    """Threads used for intra-op parallelism on CPU (the kernel pool and BLAS), as ``torch.get_num_threads``."""
    return _parallel.threads()


def set_num_interop_threads(n: int) -> None:
    """Set the inter-op thread count, as ``torch.set_num_interop_threads``.

    disttorch runs ops one after another on the calling thread, so this is recorded (and reported by
    ``get_num_interop_threads``) but starts no threads. As in PyTorch it must be a positive integer.
    """
    if int(n) < 1:
        raise RuntimeError(f"set_num_interop_threads expects a positive integer (got {n})")
    _threads["inter"] = int(n)


def get_num_interop_threads() -> int:
    """The inter-op thread count set by ``set_num_interop_threads`` (default 1)."""
    return _threads["inter"]


def is_tensor(obj) -> bool:
    """True if ``obj`` is a disttorch Tensor."""
    return isinstance(obj, Tensor)


def is_storage(obj) -> bool:
    return False


def is_floating_point(input) -> bool:
    return input.dtype.is_floating_point


def is_complex(input) -> bool:
    return input.dtype.is_complex


def is_nonzero(input) -> bool:
    if input.numel() != 1:
        raise RuntimeError("Boolean value of Tensor with more than one value is ambiguous")
    return bool(input.item())


def numel(input) -> int:
    return input.numel()


def set_printoptions(precision=None, threshold=None, edgeitems=None, linewidth=None, profile=None,
                     sci_mode=None) -> None:
    """Printing options, as ``torch.set_printoptions``."""
    from ._tensor_str import set_printoptions as _set

    _set(precision=precision, threshold=threshold, edgeitems=edgeitems, linewidth=linewidth, profile=profile,
         sci_mode=sci_mode)


def use_deterministic_algorithms(mode: bool, *, warn_only: bool = False) -> None:
    """Accepted for compatibility: every disttorch CPU op is already deterministic."""
    _settings["deterministic"] = bool(mode)


def are_deterministic_algorithms_enabled() -> bool:
    return _settings["deterministic"]


def set_float32_matmul_precision(precision: str) -> None:
    if precision not in ("highest", "high", "medium"):
        raise RuntimeError(f"set_float32_matmul_precision: invalid precision {precision!r}")
    _settings["matmul_precision"] = precision


def get_float32_matmul_precision() -> str:
    return _settings["matmul_precision"]


_compile_warned = [False]


def compile(model=None, *, fullgraph: bool = False, dynamic=None, backend="inductor", mode=None, options=None,
            disable: bool = False):
    """Return ``model`` unchanged (also usable as ``@disttorch.compile(...)``): disttorch has no graph compiler.

    The first call in a process that would compile warns once (``disable=True`` does not warn).
    """
    if model is None:
        return lambda m: compile(m, fullgraph=fullgraph, dynamic=dynamic, backend=backend, mode=mode, options=options,
                                 disable=disable)
    if not disable and not _compile_warned[0]:
        import warnings

        _compile_warned[0] = True
        warnings.warn("disttorch.compile: disttorch has no graph compiler; the model or function is returned "
                      "unchanged and runs eagerly (this warning is shown once per process)", UserWarning, stacklevel=2)
    return model
