"""``disttorch.backends.mha``: the fast-path switch of ``nn.MultiheadAttention`` (remembered; no effect)."""
from __future__ import annotations

_fastpath = [True]


def get_fastpath_enabled() -> bool:
    """Whether the MultiheadAttention inference fast path may be used (default True)."""
    return _fastpath[0]


def set_fastpath_enabled(value: bool) -> None:
    """Allow or forbid the MultiheadAttention inference fast path."""
    _fastpath[0] = bool(value)
