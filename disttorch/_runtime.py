"""Process-wide settings and small predicates: threads, printing, determinism, compile."""
from __future__ import annotations

import os

from ._tensor import Tensor

_threads = {"intra": None, "inter": 1}
_settings = {"deterministic": False, "matmul_precision": "highest"}


def set_num_threads(n: int) -> None:
    """Set the number of threads NumPy's BLAS uses for intra-op parallelism."""
    if int(n) < 1:
        raise RuntimeError(f"set_num_threads: number of threads must be positive, got {n}")
    _threads["intra"] = int(n)
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=int(n))
    except ImportError:  # pragma: no cover - threadpoolctl is a dependency
        pass


def get_num_threads() -> int:
    """Threads used for intra-op parallelism (BLAS)."""
    if _threads["intra"] is not None:
        return _threads["intra"]
    try:
        from threadpoolctl import threadpool_info

        nums = [i.get("num_threads") for i in threadpool_info() if i.get("user_api") == "blas"]
        if nums:
            return int(nums[0])
    except ImportError:  # pragma: no cover
        pass
    return os.cpu_count() or 1


def set_num_interop_threads(n: int) -> None:
    _threads["inter"] = int(n)


def get_num_interop_threads() -> int:
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


def compile(model=None, *, fullgraph: bool = False, dynamic=None, backend="inductor", mode=None, options=None,
            disable: bool = False):
    """The identity: returns ``model`` unchanged (also usable as ``@disttorch.compile(...)``)."""
    if model is None:
        return lambda m: m
    return model
