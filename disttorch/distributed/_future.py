"""A small ``torch.futures.Future``: what ``Work.get_future()`` returns and DDP communication hooks pass on."""
from __future__ import annotations

import threading
from typing import Any, Callable, Optional


class Future:
    """The result of an asynchronous operation: ``wait()``, ``value()``, ``done()``, ``then(callback)``,
    ``set_result``, ``set_exception``, as ``torch.futures.Future``."""

    def __init__(self, *, devices=None) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._value: Any = None
        self._exc: Optional[BaseException] = None
        self._callbacks: list = []
        self._work = None

    @classmethod
    def _of_work(cls, work) -> "Future":
        fut = cls()
        fut._work = work

        def done(w):
            exc = w.exception()
            if exc is not None:
                fut.set_exception(exc)
            else:
                fut.set_result(w.result())
        work.then(done)
        return fut

    def done(self) -> bool:
        return self._event.is_set()

    def wait(self) -> Any:
        """Block until the result is set; raise the exception if one was set."""
        if self._work is not None:
            self._work.wait()  # applies the collective timeout
        self._event.wait()
        if self._exc is not None:
            raise self._exc
        return self._value

    def value(self) -> Any:
        if self._exc is not None:
            raise self._exc
        return self._value

    def set_result(self, result: Any) -> None:
        self._complete(result, None)

    def set_exception(self, exc: BaseException) -> None:
        self._complete(None, exc)

    def _complete(self, value, exc) -> None:
        with self._lock:
            if self._event.is_set():
                raise RuntimeError("Future can only be marked completed once")
            self._value, self._exc = value, exc
            self._event.set()
            callbacks, self._callbacks = self._callbacks, []
        for cb in callbacks:
            cb(self)

    def add_done_callback(self, callback: Callable[["Future"], None]) -> None:
        with self._lock:
            if not self._event.is_set():
                self._callbacks.append(callback)
                return
        callback(self)

    def then(self, callback: Callable[["Future"], Any]) -> "Future":
        """A new Future holding ``callback(self)`` once this one completes."""
        nxt = Future()

        def run(fut):
            try:
                nxt.set_result(callback(fut))
            except BaseException as e:  # noqa: BLE001 - handed to whoever waits on the chained future
                nxt.set_exception(e)
        self.add_done_callback(run)
        return nxt
