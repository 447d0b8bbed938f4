"""``DistributedSampler``: each rank of a data-parallel job visits its own share of the dataset.

Index semantics are PyTorch's (``torch.utils.data.distributed``): the (optionally shuffled) index list is
padded by repeating its start (or truncated with ``drop_last``) to a multiple of ``num_replicas``, and rank
``r`` takes every ``num_replicas``-th index starting at ``r``. Shuffling draws ``randperm`` from a generator
seeded with ``seed + epoch``, so every rank computes the same permutation; call ``set_epoch`` each epoch.

For evaluation, ``pad=False`` (a disttorch extension; ``DistributedEvalSampler`` is the same with
``shuffle=False`` by default) never duplicates a sample: rank ``r`` takes ``indices[r::num_replicas]`` of
the unpadded list, so ranks may get lengths that differ by one and the union is exactly the dataset.
"""
from __future__ import annotations

import math
import os
from typing import Iterator, Optional, TypeVar

from ...ops.random import Generator, randperm
from .dataset import Dataset
from .sampler import Sampler

__all__ = ["DistributedSampler", "DistributedEvalSampler"]

T_co = TypeVar("T_co", covariant=True)


def _default_replicas_and_rank(num_replicas: Optional[int], rank: Optional[int]):
    if num_replicas is None or rank is None:
        from ... import distributed as dist

        if dist.is_available() and dist.is_initialized():
            num_replicas = dist.get_world_size() if num_replicas is None else num_replicas
            rank = dist.get_rank() if rank is None else rank
        elif "WORLD_SIZE" in os.environ and "RANK" in os.environ:
            # A launched worker that has not initialised a process group yet: use the launcher's contract.
            num_replicas = int(os.environ["WORLD_SIZE"]) if num_replicas is None else num_replicas
            rank = int(os.environ["RANK"]) if rank is None else rank
        else:
            raise RuntimeError("Requires distributed package to be available")
    return num_replicas, rank


class DistributedSampler(Sampler[T_co]):
    """Restrict data loading to this rank's subset of the dataset, as ``torch.utils.data.DistributedSampler``.

    Args:
        dataset: the dataset (only its length is used).
        num_replicas: number of ranks (default: the world size of the default process group).
        rank: this rank (default: the rank in the default process group).
        shuffle: permute the indices each epoch (seeded with ``seed + epoch``). Default: True.
        seed: base seed, identical on every rank. Default: 0.
        drop_last: drop the tail so every rank gets ``floor(len / num_replicas)`` samples instead of
            padding up to ``ceil(len / num_replicas)``. Default: False.
        pad: disttorch extension; False never repeats a sample (for evaluation), at the price of ranks
            whose lengths differ by one. Default: True (PyTorch's behaviour).

    Example:
        >>> sampler = DistributedSampler(dataset)
        >>> loader = DataLoader(dataset, batch_size=32, sampler=sampler)
        >>> for epoch in range(epochs):
        ...     sampler.set_epoch(epoch)
        ...     for batch in loader: ...
    """

    def __init__(self, dataset: Dataset, num_replicas: Optional[int] = None, rank: Optional[int] = None,
                 shuffle: bool = True, seed: int = 0, drop_last: bool = False, *, pad: bool = True) -> None:
        num_replicas, rank = _default_replicas_and_rank(num_replicas, rank)
        if num_replicas < 1:
            raise ValueError(f"Invalid num_replicas {num_replicas}, num_replicas should be a positive integer")
        if rank >= num_replicas or rank < 0:
            raise ValueError(f"Invalid rank {rank}, rank should be in the interval [0, {num_replicas - 1}]")
        self.dataset = dataset
        self.num_replicas = num_replicas
        self.rank = rank
        self.epoch = 0
        self.drop_last = drop_last
        self.pad = pad
        n = len(self.dataset)
        if not pad:
            # Every sample exactly once over all ranks: rank r gets indices r, r + R, r + 2R, ...
            self.num_samples = len(range(rank, n, num_replicas))
            self.total_size = n
        else:
            if self.drop_last and n % self.num_replicas != 0:
                # Split to the nearest length that is evenly divisible, so each rank gets the same amount.
                self.num_samples = math.ceil((n - self.num_replicas) / self.num_replicas)
            else:
                self.num_samples = math.ceil(n / self.num_replicas)
            self.total_size = self.num_samples * self.num_replicas
        self.shuffle = shuffle
        self.seed = seed

    def __iter__(self) -> Iterator[T_co]:
        n = len(self.dataset)
        if self.shuffle:
            g = Generator()
            g.manual_seed(self.seed + self.epoch)
            indices = randperm(n, generator=g).tolist()
        else:
            indices = list(range(n))
        if self.pad:
            if not self.drop_last:
                padding_size = self.total_size - len(indices)
                if padding_size <= len(indices):
                    indices += indices[:padding_size]
                else:
                    indices += (indices * math.ceil(padding_size / len(indices)))[:padding_size]
            else:
                indices = indices[:self.total_size]
            assert len(indices) == self.total_size
        indices = indices[self.rank:self.total_size:self.num_replicas]
        assert len(indices) == self.num_samples
        return iter(indices)

    def __len__(self) -> int:
        return self.num_samples

    def set_epoch(self, epoch: int) -> None:
        """Set the epoch: with ``shuffle=True`` it selects this epoch's permutation (same on every rank)."""
        self.epoch = epoch


class DistributedEvalSampler(DistributedSampler):
    """``DistributedSampler(..., shuffle=False, pad=False)``: every sample exactly once across ranks.

    Use it to evaluate on all ranks and sum the per-rank correct counts with ``all_reduce``.
    """

    def __init__(self, dataset: Dataset, num_replicas: Optional[int] = None, rank: Optional[int] = None,
                 shuffle: bool = False, seed: int = 0) -> None:
        super().__init__(dataset, num_replicas, rank, shuffle=shuffle, seed=seed, drop_last=False, pad=False)
