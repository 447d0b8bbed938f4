"""``torch.cpu.amp.autocast``: deprecated alias of ``torch.amp.autocast("cpu", ...)``."""
from __future__ import annotations

import warnings

from ... import _dtype as D
from ...amp import autocast_mode as _am

__all__ = ["autocast"]


class autocast(_am.autocast):
    """``autocast("cpu", ...)`` with PyTorch's FutureWarning: use ``disttorch.amp.autocast("cpu", ...)``."""

    def __init__(self, enabled: bool = True, dtype: D.dtype = D.bfloat16, cache_enabled: bool = True) -> None:
        warnings.warn("`torch.cpu.amp.autocast(args...)` is deprecated. Please use `torch.amp.autocast('cpu', "
                      "args...)` instead.", FutureWarning, stacklevel=2)
        super().__init__("cpu", enabled=enabled, dtype=dtype, cache_enabled=cache_enabled)
