"""``disttorch.cuda.amp``: the deprecated CUDA aliases of ``disttorch.amp`` (they warn as PyTorch's do).

Without CUDA, ``autocast()`` and an enabled ``GradScaler()`` warn and disable themselves, as in PyTorch,
so scripts that call them with ``enabled=use_amp`` run unchanged on the CPU.
"""
from .autocast_mode import autocast, custom_bwd, custom_fwd  # noqa: F401
from .common import amp_definitely_not_available  # noqa: F401
from .grad_scaler import GradScaler  # noqa: F401

__all__ = ["amp_definitely_not_available", "autocast", "custom_bwd", "custom_fwd", "GradScaler"]
