"""``disttorch.backends.mkldnn``: oneDNN's flags (disttorch computes with NumPy; the flags are remembered)."""
from __future__ import annotations

from ._flags import FlagModule, install, temporarily

enabled = False
deterministic = False
allow_tf32 = None
fp32_precision = "none"
VERBOSE_OFF, VERBOSE_ON, VERBOSE_ON_CREATION = 0, 1, 2


def is_available() -> bool:
    """False: disttorch does not use oneDNN (MKL-DNN)."""
    return False


def is_acl_available() -> bool:
    return False


def set_flags(_enabled=None, _deterministic=None, _allow_tf32=None, _fp32_precision="none"):
    """Set the flags given (None leaves one unchanged); returns the previous values."""
    import sys

    mod = sys.modules[__name__]
    orig = (mod.enabled, mod.deterministic, mod.allow_tf32, mod.fp32_precision)
    if _enabled is not None:
        mod.enabled = _enabled
    if _deterministic is not None:
        mod.deterministic = _deterministic
    if _allow_tf32 is not None:
        mod.allow_tf32 = _allow_tf32
    if _fp32_precision is not None:
        mod.fp32_precision = _fp32_precision
    return orig


def flags(enabled=False, deterministic=False, allow_tf32=True, fp32_precision="none"):
    """Context manager that sets the flags for the block and restores them after."""
    import sys

    return temporarily(sys.modules[__name__], enabled=enabled, deterministic=deterministic, allow_tf32=allow_tf32,
                       fp32_precision=fp32_precision)


class verbose:
    """On-demand oneDNN verbosing (nothing to report without oneDNN)."""

    def __init__(self, level: int) -> None:
        self.level = level

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> bool:
        return False


class MkldnnModule(FlagModule):
    _BOOL_FLAGS = {"enabled": "set_enabled_mkldnn", "deterministic": "set_deterministic_mkldnn"}


install(__name__, MkldnnModule)
