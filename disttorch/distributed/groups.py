"""Process-group state: the group handles, the world (default group, registry, store) and group lookup.

This module sits just above the backend interface (``process_group.py``) and below everything that runs
collectives; it imports nothing else from the package, so every layer above may use it.

Internal API (used by ``runner``, ``collectives``, ``_objects`` and ``distributed_c10d``):
    ``world``: the one ``World`` of this process (default group, groups by name, store, rank, watchdog).
    ``resolve_group(group, op)``: the ``ProcessGroup`` for a ``group=`` argument, None off the group.
    ``not_initialized()``: the error PyTorch raises before ``init_process_group``.
    ``seconds(timeout)``: a ``timedelta`` or a number as seconds.

Public (re-exported by ``distributed_c10d``): ``ProcessGroup``, ``GroupMember``, ``group``.
"""
from __future__ import annotations

import warnings
from datetime import timedelta
from typing import Optional

from .process_group import ProcessGroup as BackendGroup

__all__ = ["ProcessGroup", "GroupMember", "group"]


class ProcessGroup:
    """A group of ranks, as ``torch.distributed.ProcessGroup``: what ``new_group`` returns and ``group=`` takes.

    ``rank()`` and ``size()`` are this process's rank in the group and the group's size.
    """

    def __init__(self, pg: BackendGroup, backend: str, name: str, ranks: list, timeout: float) -> None:
        self._pg = pg
        self._backend = backend
        self.group_name = name
        self._ranks = list(ranks)  # global rank of each group rank
        self._rank_of = {r: i for i, r in enumerate(self._ranks)}
        self._timeout = float(timeout)
        self._seq = 0  # collectives entered (fingerprint sequence number)
        self._last = ""  # fingerprint of the last one

    def rank(self) -> int:
        return self._pg.rank

    def size(self) -> int:
        return self._pg.size

    def name(self) -> str:
        return self._backend

    @property
    def group_desc(self) -> str:
        return self.group_name

    def __repr__(self) -> str:
        return f"ProcessGroup(name={self.group_name!r}, backend={self._backend!r}, ranks={self._ranks})"


class World:
    """What this process knows about its job once ``init_process_group`` ran (one instance: ``world``)."""

    def __init__(self) -> None:
        self.default: Optional[ProcessGroup] = None
        self.groups: dict = {}  # name -> ProcessGroup (this process's memberships)
        self.count = 0  # groups created so far, members or not (names stay equal on all ranks)
        self.aux: dict = {}  # backend name -> full-world backend group, for new_group(backend=other)
        self.store = None
        self.own_store = None  # the store init_process_group created (closed on destroy)
        self.rank = -1
        self.check = True
        self.watchdog = None  # the _watchdog.Watchdog of a multi-rank job (started and stopped by runner)
        self.generation = 0


world = World()


class _WorldMeta(type):
    @property
    def WORLD(cls) -> Optional[ProcessGroup]:  # noqa: N802 - PyTorch's name
        return world.default


class GroupMember(metaclass=_WorldMeta):
    """``GroupMember.WORLD`` is the default group; ``new_group`` returns ``NON_GROUP_MEMBER`` on ranks outside."""

    NON_GROUP_MEMBER = -100


class group(metaclass=_WorldMeta):  # noqa: N801 - PyTorch's name
    """``group.WORLD``: the default process group."""


def not_initialized() -> ValueError:
    """The error for a call that needs the default group before ``init_process_group``."""
    return ValueError("Default process group has not been initialized, please make sure to call "
                      "init_process_group.")


def resolve_group(group, op: str) -> Optional[ProcessGroup]:
    """The group handle for ``group=`` (None: the default group); None when this rank is not a member.

    Args:
        group: None, a ``ProcessGroup`` or ``GroupMember.NON_GROUP_MEMBER``.
        op: the calling function's name for warnings and errors ("" for queries, which do not warn).
    """
    if group is None:
        g = world.default
        if g is None:
            raise not_initialized()
        return g
    if isinstance(group, ProcessGroup):
        return group
    if group == GroupMember.NON_GROUP_MEMBER:
        if op:
            warnings.warn(f"Running {op} on global rank {world.rank} which does not belong to the given group.",
                          stacklevel=3)
        return None
    raise TypeError(f"{op}: group must be a ProcessGroup returned by new_group (or None), got {type(group).__name__}")


def seconds(timeout) -> float:
    """``timeout`` (a ``timedelta`` or a number of seconds) in seconds."""
    if isinstance(timeout, timedelta):
        return timeout.total_seconds()
    return float(timeout)
