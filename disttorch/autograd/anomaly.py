"""Anomaly detection: forward tracebacks on graph nodes and NaN/Inf checks in backward."""
from __future__ import annotations

import os
import threading
import traceback
import warnings

__all__ = ["detect_anomaly", "set_detect_anomaly", "is_anomaly_enabled"]


class _State(threading.local):
    def __init__(self) -> None:
        self.enabled = False
        self.check_nan = True


STATE = _State()


def is_anomaly_enabled() -> bool:
    return STATE.enabled


_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


def capture_trace() -> str:
    """The stack of the forward call that is creating a graph node (outside disttorch's own frames)."""
    frames = traceback.extract_stack()
    while frames and frames[-1].filename.startswith(_PACKAGE):  # the engine's own frames, however deep
        frames.pop()
    return "".join(traceback.format_list(frames))


class detect_anomaly:
    """Record forward tracebacks and raise when backward produces NaN (or Inf).

    Example:
        >>> with disttorch.autograd.detect_anomaly():
        ...     loss.backward()   # RuntimeError names the op and shows where it was created
    """

    def __init__(self, check_nan: bool = True) -> None:
        self.prev = (STATE.enabled, STATE.check_nan)
        self.check_nan = check_nan
        warnings.warn("Anomaly Detection has been enabled. This mode will increase the runtime "
                      "and should only be enabled for debugging.", stacklevel=2)

    def __enter__(self) -> None:
        STATE.enabled, STATE.check_nan = True, self.check_nan

    def __exit__(self, *exc) -> None:
        STATE.enabled, STATE.check_nan = self.prev

    def __call__(self, func):
        import functools

        @functools.wraps(func)
        def wrapper(*a, **k):
            with self.__class__(self.check_nan):
                return func(*a, **k)
        return wrapper


class set_detect_anomaly:
    """Switch anomaly detection on or off; works as a function or a context manager."""

    def __init__(self, mode: bool, check_nan: bool = True) -> None:
        self.prev = (STATE.enabled, STATE.check_nan)
        STATE.enabled, STATE.check_nan = bool(mode), check_nan

    def __enter__(self) -> None:
        pass

    def __exit__(self, *exc) -> None:
        STATE.enabled, STATE.check_nan = self.prev


def check_outputs(node, grads) -> None:
    """Raise if any gradient a node produced holds NaN or Inf, naming the forward op."""
    for i, g in enumerate(grads):
        if g is None:
            continue
        arr = g._data
        if arr.dtype.kind not in "fc":
            continue
        xp = g._xp
        bad = "nan" if bool(xp.isnan(arr).any()) else ("inf" if bool(xp.isinf(arr).any()) else None)
        if bad:
            trace = getattr(node, "_trace", None) or "(no forward trace recorded)\n"
            raise RuntimeError(
                f"Function '{node.name()}' returned {bad} values in its {i}th output.\n"
                f"Traceback of forward call that caused the error:\n{trace}")
