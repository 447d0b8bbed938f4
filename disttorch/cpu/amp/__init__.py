"""``disttorch.cpu.amp``: the deprecated CPU aliases of ``disttorch.amp`` (they warn as PyTorch's do)."""
from .autocast_mode import autocast  # noqa: F401
from .grad_scaler import GradScaler  # noqa: F401

__all__ = ["autocast", "GradScaler"]
