"""``disttorch.utils.data``: datasets, samplers, collation and the DataLoader, as ``torch.utils.data``.

``from disttorch.utils.data import DataLoader, TensorDataset`` works as in PyTorch. Worker processes
(``num_workers > 0``) are described in ``dataloader.py``; ``pin_memory=True`` pins batches when a CUDA device
is available.
"""
from __future__ import annotations

import importlib as _importlib

from ..._missing import not_implemented_getattr as _not_implemented_getattr
from ._collate import default_collate, default_convert
from ._worker import WorkerInfo, get_worker_info
from .dataloader import DataLoader, _DatasetKind  # noqa: F401  (PyTorch exposes it here)
from .dataset import (
    ChainDataset, ConcatDataset, Dataset, IterableDataset, StackDataset, Subset, TensorDataset, random_split,
)
from .sampler import (
    BatchSampler, RandomSampler, Sampler, SequentialSampler, SubsetRandomSampler, WeightedRandomSampler,
)

__all__ = ["BatchSampler", "ChainDataset", "ConcatDataset", "DataLoader", "Dataset", "DistributedSampler",
           "IterableDataset", "RandomSampler", "Sampler", "SequentialSampler", "StackDataset", "Subset",
           "SubsetRandomSampler", "TensorDataset", "WeightedRandomSampler", "WorkerInfo", "default_collate",
           "default_convert", "get_worker_info", "random_split"]

_missing = _not_implemented_getattr("disttorch.utils.data")


def __getattr__(name: str):
    # DistributedSampler lives in distributed.py, which arrives with the distributed issue.
    if name == "DistributedSampler":
        try:
            mod = _importlib.import_module(f"{__name__}.distributed")
        except ModuleNotFoundError as e:
            if e.name != f"{__name__}.distributed":
                raise
        else:
            globals()[name] = mod.DistributedSampler
            return mod.DistributedSampler
    return _missing(name)
