"""``disttorch.amp``: automatic mixed precision, as ``torch.amp``.

``autocast`` runs a region's matrix products and convolutions in bfloat16/float16 (see
:mod:`disttorch.amp.autocast_mode`); ``GradScaler`` does dynamic loss scaling (see
:mod:`disttorch.amp.grad_scaler`).
"""
from .autocast_mode import autocast, custom_bwd, custom_fwd, is_autocast_available  # noqa: F401
from .grad_scaler import GradScaler  # noqa: F401

__all__ = ["autocast", "custom_bwd", "custom_fwd", "is_autocast_available", "GradScaler"]
