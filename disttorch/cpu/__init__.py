"""``disttorch.cpu``: the CPU device module, as ``torch.cpu`` (one device, always available)."""
from __future__ import annotations

import contextlib

from . import amp  # noqa: F401

__all__ = ["amp", "current_device", "device_count", "is_available", "set_device", "synchronize", "stream",
           "current_stream", "is_initialized", "Stream", "Event", "StreamContext"]


def is_available() -> bool:
    """Always True."""
    return True


def is_initialized() -> bool:
    return True


def device_count() -> int:
    """One CPU device."""
    return 1


def current_device() -> str:
    """``"cpu"``, as PyTorch returns."""
    return "cpu"


def set_device(device) -> None:
    """Accepted and ignored, as in PyTorch."""


def synchronize(device=None) -> None:
    """CPU work is synchronous: returns at once."""


class Stream:
    """The CPU's (only, synchronous) stream."""

    def __init__(self, priority: int = -1) -> None:
        self.priority = priority

    def wait_stream(self, stream) -> None:
        pass

    def synchronize(self) -> None:
        pass


class Event:
    """A CPU event (records nothing: CPU work is synchronous)."""

    def query(self) -> bool:
        return True

    def record(self, stream=None) -> None:
        pass

    def synchronize(self) -> None:
        pass

    def wait(self, stream=None) -> None:
        pass


_default_stream = Stream()


def current_stream(device=None) -> Stream:
    return _default_stream


class StreamContext(contextlib.AbstractContextManager):
    def __init__(self, stream) -> None:
        self.stream = stream

    def __exit__(self, *exc) -> None:
        return None


def stream(stream) -> StreamContext:
    return StreamContext(stream)
