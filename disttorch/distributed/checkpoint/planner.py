"""Planner base classes (``torch.distributed.checkpoint.planner``), for code that subclasses or type-checks them.

disttorch's save and load follow one fixed plan (see :mod:`.default_planner`); a planner object other
than the default ones is refused with a TypeError that names it.
"""
from __future__ import annotations

__all__ = ["SavePlanner", "LoadPlanner", "SavePlan", "LoadPlan", "WriteItem", "ReadItem"]


class SavePlanner:
    """Decides what each rank writes."""


class LoadPlanner:
    """Decides what each rank reads."""


class SavePlan:
    """The items one rank writes (``items``: their fully qualified names)."""

    def __init__(self, items: list) -> None:
        self.items = items


class LoadPlan:
    """The items one rank reads (``items``: their fully qualified names)."""

    def __init__(self, items: list) -> None:
        self.items = items


class WriteItem:
    """One item to write (``fqn``)."""

    def __init__(self, fqn: str) -> None:
        self.fqn = fqn


class ReadItem:
    """One item to read (``fqn``)."""

    def __init__(self, fqn: str) -> None:
        self.fqn = fqn
