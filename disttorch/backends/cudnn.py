"""``disttorch.backends.cudnn``: cuDNN's flags (cuDNN is not used by disttorch; the flags are remembered).

Example:
    >>> import disttorch.backends.cudnn as cudnn
    >>> cudnn.benchmark = True
"""
from __future__ import annotations

from typing import Optional

from ._flags import FlagModule, install, temporarily

enabled = True
benchmark = False
benchmark_limit: Optional[int] = None
deterministic = False
allow_tf32 = True
fp32_precision = "none"
depthwise_kernel = "auto"


def is_available() -> bool:
    """False: disttorch's CUDA path uses CuPy kernels, not cuDNN."""
    return False


def version() -> Optional[int]:
    """cuDNN's version, None when cuDNN is not available (as in PyTorch)."""
    return None


def is_acceptable(tensor) -> bool:
    """Whether cuDNN would run on ``tensor``: never in disttorch."""
    return False


def set_flags(_enabled=None, _benchmark=None, _benchmark_limit=None, _deterministic=None, _allow_tf32=None,
              _fp32_precision="none"):
    """Set the flags given (None leaves one unchanged); returns the previous values as a tuple."""
    import sys

    mod = sys.modules[__name__]
    orig = (mod.enabled, mod.benchmark, mod.benchmark_limit, mod.deterministic, mod.allow_tf32, mod.fp32_precision)
    for name, value in (("enabled", _enabled), ("benchmark", _benchmark), ("deterministic", _deterministic),
                        ("allow_tf32", _allow_tf32)):
        if value is not None:
            setattr(mod, name, value)
    if _fp32_precision is not None:
        mod.fp32_precision = _fp32_precision
    return orig


def flags(enabled=False, benchmark=False, benchmark_limit=10, deterministic=False, allow_tf32=True,
          fp32_precision="none"):
    """Context manager that sets the cuDNN flags for the block and restores them after."""
    import sys

    return temporarily(sys.modules[__name__], enabled=enabled, benchmark=benchmark, deterministic=deterministic,
                       allow_tf32=allow_tf32, fp32_precision=fp32_precision)


class CudnnModule(FlagModule):
    _BOOL_FLAGS = {"enabled": "set_enabled_cudnn", "benchmark": "set_benchmark_cudnn",
                   "deterministic": "set_deterministic_cudnn", "allow_tf32": "set_allow_tf32_cudnn"}


install(__name__, CudnnModule)
