"""``disttorch.backends.mps``: Apple's Metal backend, which disttorch does not have."""
from __future__ import annotations


def is_available() -> bool:
    """False: disttorch has no MPS device."""
    return False


def is_built() -> bool:
    """False: disttorch is not built with MPS support."""
    return False


def is_macos_or_newer(major: int, minor: int) -> bool:
    """False without MPS, as in PyTorch."""
    return False


def is_macos13_or_newer(minor: int = 0) -> bool:
    """False without MPS, as in PyTorch."""
    return False
