"""``disttorch.cuda.Stream``/``Event`` and the stream context, as PyTorch's, over ``cupy.cuda.Stream``/``Event``.

Without CUDA, constructing a Stream or Event and asking for the current/default stream raise as PyTorch's CPU
build does; ``stream(None)`` is a no-op context there too.
"""
from __future__ import annotations


def _cp(what: str):
    from . import _require

    return _require(what)


class Stream:
    """A CUDA stream (wraps ``cupy.cuda.Stream``; ``priority`` < 0 asks for a high-priority stream)."""

    def __init__(self, device=None, priority: int = 0, *, _cupy_stream=None) -> None:
        cp = _cp("torch.cuda.Stream")
        if _cupy_stream is None:
            from . import _device_index

            with cp.cuda.Device(_device_index(device)):
                # priority is passed only when asked for: older CuPy releases lack the keyword
                _cupy_stream = cp.cuda.Stream(priority=priority) if priority else cp.cuda.Stream()
        self.cupy_stream = _cupy_stream

    @property
    def cuda_stream(self) -> int:
        """The raw ``cudaStream_t`` as an int."""
        return int(self.cupy_stream.ptr)

    def query(self) -> bool:
        """True when all work queued on the stream has finished."""
        return bool(self.cupy_stream.done)

    def synchronize(self) -> None:
        """Wait for all work queued on the stream."""
        self.cupy_stream.synchronize()

    def record_event(self, event: "Event | None" = None) -> "Event":
        """Record ``event`` (a new one if None) on this stream and return it."""
        event = Event() if event is None else event
        event.record(self)
        return event

    def wait_event(self, event: "Event") -> None:
        """Make later work on this stream wait for ``event``."""
        self.cupy_stream.wait_event(event.cupy_event)

    def wait_stream(self, stream: "Stream") -> None:
        """Make later work on this stream wait for the work queued so far on ``stream``."""
        self.wait_event(stream.record_event())

    def __eq__(self, other) -> bool:
        return isinstance(other, Stream) and self.cuda_stream == other.cuda_stream

    def __hash__(self) -> int:
        return hash(self.cuda_stream)

    def __repr__(self) -> str:
        return f"<disttorch.cuda.Stream cuda_stream={self.cuda_stream:#x}>"


class Event:
    """A CUDA event (wraps ``cupy.cuda.Event``)."""

    def __init__(self, enable_timing: bool = False, blocking: bool = False, interprocess: bool = False) -> None:
        cp = _cp("torch.cuda.Event")
        self.cupy_event = cp.cuda.Event(block=blocking, disable_timing=not enable_timing, interprocess=interprocess)

    def record(self, stream: "Stream | None" = None) -> None:
        """Record the event on ``stream`` (the current stream if None)."""
        self.cupy_event.record(None if stream is None else stream.cupy_stream)

    def wait(self, stream: "Stream | None" = None) -> None:
        """Make later work on ``stream`` (the current stream if None) wait for this event."""
        (current_stream() if stream is None else stream).wait_event(self)

    def query(self) -> bool:
        """True when the work recorded before the event has finished."""
        return bool(self.cupy_event.done)

    def synchronize(self) -> None:
        """Wait for the event."""
        self.cupy_event.synchronize()

    def elapsed_time(self, end_event: "Event") -> float:
        """Milliseconds between this event and ``end_event`` (both recorded, both with ``enable_timing=True``)."""
        return float(_cp("Event.elapsed_time").cuda.get_elapsed_time(self.cupy_event, end_event.cupy_event))


def current_stream(device=None) -> Stream:
    """The current stream of a GPU."""
    cp = _cp("current_stream")
    from . import _device_index

    with cp.cuda.Device(_device_index(device)):
        return Stream(_cupy_stream=cp.cuda.get_current_stream())


def default_stream(device=None) -> Stream:
    """The default (null) stream of a GPU."""
    cp = _cp("default_stream")
    return Stream(_cupy_stream=cp.cuda.Stream.null)


class stream:
    """Context manager making ``stream`` current, as ``torch.cuda.stream`` (``None``: a no-op)."""

    def __init__(self, stream: "Stream | None") -> None:
        self.stream = stream

    def __enter__(self) -> "Stream | None":
        if self.stream is not None:
            self.stream.cupy_stream.__enter__()
        return self.stream

    def __exit__(self, *exc) -> bool:
        if self.stream is not None:
            self.stream.cupy_stream.__exit__(*exc)
        return False
