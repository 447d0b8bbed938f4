"""What save and load share: single-process detection, storage and planner arguments."""
from __future__ import annotations

import warnings

from .filesystem import FileSystemReader, FileSystemWriter

__all__ = ["use_distributed", "storage_for", "check_planner"]


def use_distributed(no_dist: bool, what: str) -> bool:
    """Whether to coordinate with the other ranks (a process group is initialised and ``no_dist`` is False)."""
    from ... import distributed as dist

    if no_dist or not dist.is_available() or not dist.is_initialized():
        warnings.warn(f"torch.distributed is disabled, unavailable or uninitialized, assuming the intent is to {what} "
                      "in a single process.", UserWarning, stacklevel=3)
        return False
    return True


def storage_for(storage, checkpoint_id, reader: bool):
    """The FileSystemReader/Writer to use, from ``storage`` or ``checkpoint_id`` (PyTorch's rules)."""
    cls = FileSystemReader if reader else FileSystemWriter
    if storage is not None:
        if not isinstance(storage, cls):
            kind = "storage_reader" if reader else "storage_writer"
            raise TypeError(f"disttorch.distributed.checkpoint supports {cls.__name__} as {kind}, got "
                            f"{type(storage).__name__}")
        if checkpoint_id is not None:
            storage.reset(checkpoint_id)
        return storage
    if not checkpoint_id:
        raise RuntimeError("`checkpoint_id` must be specified if storage_reader/storage_writer is None.")
    return cls(checkpoint_id)


def check_planner(planner, default_cls, what: str):
    if planner is None:
        return default_cls()
    if not isinstance(planner, default_cls):
        raise TypeError(f"distributed checkpoint {what}: only {default_cls.__name__} is supported as planner in "
                        f"disttorch, got {type(planner).__name__}")
    return planner
