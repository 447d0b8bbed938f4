"""``disttorch.backends.opt_einsum``: the opt_einsum contraction-order flags.

disttorch does not use the opt_einsum package; as in PyTorch without it, ``is_available()`` is False,
``enabled`` is False and ``strategy`` None (assignments are accepted and remembered).
"""
from __future__ import annotations

from typing import Optional

from ._flags import FlagModule, install, temporarily

enabled = False
strategy: Optional[str] = None


def is_available() -> bool:
    """False: the opt_einsum package is not used by disttorch."""
    return False


def get_opt_einsum():
    """The opt_einsum module if available: None."""
    return None


def set_flags(_enabled=None, _strategy=None):
    """Set the flags given; returns the previous values."""
    import sys

    mod = sys.modules[__name__]
    orig = (mod.enabled, mod.strategy)
    if _enabled is not None:
        mod.enabled = _enabled
    if _strategy is not None:
        mod.strategy = _strategy
    return orig


def flags(enabled=None, strategy=None):
    """Context manager that sets the flags for the block and restores them after."""
    import sys

    mod = sys.modules[__name__]
    return temporarily(mod, enabled=mod.enabled if enabled is None else enabled,
                       strategy=mod.strategy if strategy is None else strategy)


class OptEinsumModule(FlagModule):
    _BOOL_FLAGS = {"enabled": "set_enabled_opt_einsum"}


install(__name__, OptEinsumModule)
