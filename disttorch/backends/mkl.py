"""``disttorch.backends.mkl``."""
from __future__ import annotations

VERBOSE_OFF, VERBOSE_ON = 0, 1


def is_available() -> bool:
    """False: disttorch does not link Intel MKL itself (NumPy's BLAS may be any library)."""
    return False


class verbose:
    """On-demand MKL verbosing (nothing to report)."""

    def __init__(self, enable: int) -> None:
        self.enable = enable

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> bool:
        return False
