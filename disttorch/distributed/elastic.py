"""Resuming after a restart (``disttorch launch --max-restarts K``): a checkpoint helper for training scripts.

When a worker fails, the launcher restarts the whole group, and each worker sees
``TORCHELASTIC_RESTART_COUNT`` incremented. A script that saves a ``Checkpointer`` every epoch and loads it
at start picks up where the group left off:

    ckpt = elastic.Checkpointer("runs/job/checkpoint.pt")
    state = ckpt.load()                      # None on the first run
    start = 0 if state is None else state["epoch"]
    ...
    ckpt.save({"model": model.state_dict(), "epoch": epoch + 1})

Only rank 0 writes, atomically (``disttorch.save`` writes a temporary file and renames it), and every rank
waits at a barrier after the save, so a later ``load()`` on any rank sees the complete file. On several
nodes, ``path`` must be on a file system that all of them share.
"""
from __future__ import annotations

import os
from typing import Any, Optional

__all__ = ["Checkpointer", "restart_count"]


def restart_count() -> int:
    """How many times the launcher has restarted this worker group (``TORCHELASTIC_RESTART_COUNT``, 0 if unset)."""
    value = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") or "0"
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"TORCHELASTIC_RESTART_COUNT must be an integer, got {value!r}") from None


def _dist():
    from .. import distributed as dist

    return dist


def _initialized() -> bool:
    dist = _dist()
    return dist.is_available() and dist.is_initialized()


class Checkpointer:
    """Save and load one checkpoint file for a data-parallel job.

    Args:
        path: the checkpoint file (its directory is created on save).
        process_group: the group whose rank 0 writes and whose ranks synchronise (default: the world).
    """

    def __init__(self, path: str, process_group=None) -> None:
        self.path = os.fspath(path)
        self.process_group = process_group

    def _rank(self) -> int:
        if not _initialized():
            return int(os.environ.get("RANK", "0") or 0)
        dist = _dist()
        return dist.get_rank(self.process_group) if self.process_group is not None else dist.get_rank()

    def _barrier(self) -> None:
        if _initialized():
            dist = _dist()
            if self.process_group is not None:
                dist.barrier(group=self.process_group)
            else:
                dist.barrier()

    def exists(self) -> bool:
        """True when a checkpoint file is present."""
        return os.path.exists(self.path)

    def save(self, state: Any) -> None:
        """Rank 0 writes ``state`` atomically; every rank then waits until the file is complete."""
        from ..serialization import save

        if self._rank() == 0:
            directory = os.path.dirname(self.path)
            if directory:
                os.makedirs(directory, exist_ok=True)
            save(state, self.path)
        self._barrier()

    def load(self, map_location=None) -> Optional[Any]:
        """The last saved state on every rank, or None when no checkpoint exists yet."""
        from ..serialization import load

        if not os.path.exists(self.path):
            return None
        return load(self.path, map_location=map_location)
