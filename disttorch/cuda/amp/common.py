"""``torch.cuda.amp.common``."""
from __future__ import annotations

__all__ = ["amp_definitely_not_available"]


def amp_definitely_not_available() -> bool:
    """True when CUDA is not available (no torch_xla in disttorch)."""
    from ... import cuda

    return not cuda.is_available()
