"""``disttorch.random``: seeding and state of the default generator, as ``torch.random``.

The generator itself and the sampling functions live in ``disttorch/ops/random.py``; see its
docstring for how disttorch's random streams relate to PyTorch's (same seed, same sequence, but not
the same numbers as PyTorch).
"""
from __future__ import annotations

from .ops.random import (  # noqa: F401
    Generator, default_generator, fork_rng, get_rng_state, initial_seed, manual_seed, seed, set_rng_state,
)

__all__ = ["manual_seed", "seed", "initial_seed", "get_rng_state", "set_rng_state", "fork_rng", "default_generator",
           "Generator"]
