"""Random sampling: Generator, manual_seed, rand/randn/randint/randperm/normal/bernoulli/multinomial."""
from __future__ import annotations

__all__ = []


class RandomMethods:
    __slots__ = ()
