"""The collective steps of a distributed save or load, with failures sent to every rank.

Each step runs a local function on every rank and exchanges the results (or the failure) with object
collectives, so a rank that fails makes every rank raise :class:`CheckpointException` instead of
leaving the others waiting. Without a process group the same code runs as a world of one.
"""
from __future__ import annotations

import traceback
from typing import Any, Callable

from .api import CheckpointException, RemoteCheckpointError

__all__ = ["Coordinator"]


class Coordinator:
    """Rank, world size and failure-propagating collectives for one save or load."""

    def __init__(self, process_group=None, use_dist: bool = True) -> None:
        self.use_dist = use_dist
        self.group = process_group
        if use_dist:
            from ... import distributed as dist

            self.rank = dist.get_rank(process_group)
            self.world_size = dist.get_world_size(process_group)
            self.global_rank = dist.get_rank()
        else:
            self.rank, self.world_size, self.global_rank = 0, 1, 0

    @property
    def is_coordinator(self) -> bool:
        return self.rank == 0

    def _coordinator_global_rank(self) -> int:
        from ... import distributed as dist

        return 0 if self.group is None else dist.get_global_rank(self.group, 0)

    def all_gather(self, obj: Any) -> list:
        if not self.use_dist:
            return [obj]
        from ... import distributed as dist

        out: list = [None] * self.world_size
        dist.all_gather_object(out, obj, group=self.group)
        return out

    def broadcast(self, obj: Any) -> Any:
        if not self.use_dist:
            return obj
        from ... import distributed as dist

        box = [obj]
        dist.broadcast_object_list(box, src=self._coordinator_global_rank(), group=self.group)
        return box[0]

    def step(self, what: str, fn: Callable[[], Any]) -> list:
        """Run ``fn`` here, gather every rank's result; raise CheckpointException everywhere if any failed."""
        local_exc = None
        try:
            result, failure = fn(), None
        except Exception as e:  # sent to the other ranks, re-raised below on every rank
            local_exc = e
            result = None
            failure = f"{type(e).__name__}: {e}\n" + "".join(traceback.format_tb(e.__traceback__))
        gathered = self.all_gather([result, failure])
        failures = {}
        for r, (_, f) in enumerate(gathered):
            if f is None:
                continue
            if r == self.rank and local_exc is not None:
                failures[r] = (local_exc, traceback.extract_tb(local_exc.__traceback__))
            else:
                failures[r] = (RemoteCheckpointError(f"{what} failed on rank {r}: {f}"), None)
        if failures:
            raise CheckpointException(f"distributed checkpoint {what} failed on ranks {sorted(failures)}", failures) \
                from local_exc
        return [res for res, _ in gathered]
