"""Base classes of checkpoint storage (``torch.distributed.checkpoint.storage``).

disttorch's save and load drive :class:`~.filesystem.FileSystemWriter` and
:class:`~.filesystem.FileSystemReader`; these bases exist so that type checks and subclassing code
written for PyTorch import. A custom storage subclass is not driven by disttorch's save/load (they
raise a TypeError naming it).
"""
from __future__ import annotations

import os

__all__ = ["StorageWriter", "StorageReader", "WriteResult"]


class StorageWriter:
    """Where a checkpoint is written."""

    def reset(self, checkpoint_id: str | os.PathLike | None = None) -> None:
        """Point the writer at another checkpoint."""
        raise NotImplementedError

    @classmethod
    def validate_checkpoint_id(cls, checkpoint_id: str | os.PathLike) -> bool:
        """Whether ``checkpoint_id`` names a checkpoint this writer can write."""
        return False


class StorageReader:
    """Where a checkpoint is read from."""

    def reset(self, checkpoint_id: str | os.PathLike | None = None) -> None:
        """Point the reader at another checkpoint."""
        raise NotImplementedError

    @classmethod
    def validate_checkpoint_id(cls, checkpoint_id: str | os.PathLike) -> bool:
        """Whether ``checkpoint_id`` names a checkpoint this reader can read."""
        return False


class WriteResult:
    """What one rank wrote: ``{fqn: file name}`` (kept for API compatibility)."""

    def __init__(self, index: dict) -> None:
        self.index = index
