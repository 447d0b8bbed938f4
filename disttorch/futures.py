"""``disttorch.futures``: a minimal ``torch.futures.Future`` for asynchronous results (DDP comm hooks).

A ``Future`` completes with ``set_result`` / ``set_exception``; ``wait()`` blocks and returns the value
(or raises), ``then(fn)`` chains a future completed with ``fn(self)``. A future may also be *lazy*: it is
built around a waiter (for example a collective's ``Work.wait``) that ``wait()``, ``value()`` or a
``done()`` that finds the work finished runs in the caller's thread; callbacks then run there too, so
comm-hook code never runs on a backend's communication thread.

Internal API: ``Future._of_work(work)``, the one way to turn a collective's ``Work`` into a future
(``Work.get_future()``, DDP's all-reduce and the built-in comm hooks use it).
"""
from __future__ import annotations

import threading
from typing import Any, Callable, Generic, List, Optional, TypeVar

__all__ = ["Future", "collect_all", "wait_all"]

T = TypeVar("T")
S = TypeVar("S")

_UNSET = object()


class Future(Generic[T]):
    """The result of an asynchronous computation, as ``torch.futures.Future``.

    Example:
        >>> fut = Future()
        >>> chained = fut.then(lambda f: f.value() + 1)
        >>> fut.set_result(1)
        >>> chained.wait()
        2
    """

    def __init__(self, *, devices=None) -> None:
        self._lock = threading.Lock()
        self._event = threading.Event()
        self._result: Any = _UNSET
        self._exc: Optional[BaseException] = None
        self._callbacks: list = []
        self._waiter: Optional[Callable[[], None]] = None
        self._ready: Optional[Callable[[], bool]] = None  # a lazy future: True once the waiter would not block

    @classmethod
    def _lazy(cls, waiter: Callable[[], Any], ready: Optional[Callable[[], bool]] = None) -> "Future":
        """A future whose ``wait()`` runs ``waiter()`` and completes with what it returns (or raises);
        ``ready()`` says when running the waiter would not block (``done()`` then completes the future)."""
        fut = cls()

        def run():
            try:
                value = waiter()
            except BaseException as e:  # noqa: BLE001 - stored and re-raised by wait()
                fut.set_exception(e)
            else:
                fut.set_result(value)

        fut._waiter = run
        fut._ready = ready
        return fut

    @classmethod
    def _of_work(cls, work, value: Any = _UNSET) -> "Future":
        """The future of a collective's ``work`` (``Work.get_future()``, DDP's all-reduce, comm hooks): completed
        with ``value``, by default ``work.result()`` (a collective's output tensors), or with the work's
        exception, in the thread that waits. ``wait()`` goes through ``work.wait()``, so the collective
        timeout applies."""
        def waiter():
            work.wait()
            return work.result() if value is _UNSET else value
        return cls._lazy(waiter, work.is_completed)

    def done(self) -> bool:
        """True when the result or an exception is set (a lazy future whose work has finished completes here)."""
        if not self._event.is_set() and self._ready is not None and self._ready():
            self._drive()
        return self._event.is_set()

    def _drive(self) -> None:
        waiter = self._waiter
        if waiter is not None and not self._event.is_set():
            self._waiter = None
            waiter()

    def wait(self) -> T:
        """Block until the future completes; return its value or raise its exception."""
        self._drive()
        self._event.wait()
        if self._exc is not None:
            raise self._exc
        return self._result

    def value(self) -> T:
        """The value of a completed future (raises its exception; waits if a lazy future is pending)."""
        if not self._event.is_set():
            self._drive()
            if not self._event.is_set():
                raise RuntimeError("Future.value: the future has not completed yet")
        if self._exc is not None:
            raise self._exc
        return self._result

    def set_result(self, result: T) -> None:
        """Complete the future with ``result`` and run the callbacks."""
        self._complete(result, None)

    def set_exception(self, result: BaseException) -> None:
        """Complete the future with an exception that ``wait()``/``value()`` re-raise."""
        if not isinstance(result, BaseException):
            raise TypeError(f"set_exception expects an exception, got {type(result).__name__}")
        self._complete(None, result)

    def _complete(self, result, exc) -> None:
        with self._lock:
            if self._event.is_set():
                raise RuntimeError("Future can only be marked completed once")
            self._result, self._exc = result, exc
            self._event.set()
            callbacks, self._callbacks = self._callbacks, []
        for cb in callbacks:
            cb(self)

    def add_done_callback(self, callback: Callable[["Future[T]"], None]) -> None:
        """Run ``callback(self)`` when the future completes (now, if it already has)."""
        with self._lock:
            if not self._event.is_set():
                self._callbacks.append(callback)
                return
        callback(self)

    def then(self, callback: Callable[["Future[T]"], S]) -> "Future[S]":
        """A new future completed with ``callback(self)`` once this one completes."""
        child: Future = Future()

        def run(parent):
            try:
                child.set_result(callback(parent))
            except BaseException as e:  # noqa: BLE001 - surfaces through child.wait()
                child.set_exception(e)

        if self._waiter is not None:
            child._waiter = self._drive_for_child
            child._ready = self.done
        self.add_done_callback(run)
        return child

    def _drive_for_child(self) -> None:
        self._drive()

    def __repr__(self) -> str:
        state = "done" if self.done() else "pending"
        return f"<disttorch.futures.Future ({state})>"


def collect_all(futures: List[Future]) -> Future:
    """A future completed with the list of ``futures`` once all of them complete."""
    futures = list(futures)

    def waiter():
        for f in futures:
            f._drive()
            f._event.wait()
        return futures

    return Future._lazy(waiter, lambda: all(f.done() for f in futures))


def wait_all(futures: List[Future]) -> list:
    """Wait for every future; return their values (raises the first exception)."""
    return [f.wait() for f in futures]
