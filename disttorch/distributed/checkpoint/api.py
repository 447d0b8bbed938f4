"""``CheckpointException``: what a failed distributed save or load raises on every rank (as PyTorch's DCP api)."""
from __future__ import annotations

import traceback as tb

__all__ = ["CheckpointException"]


class CheckpointException(BaseException):
    """A save or load failed on one or more ranks; ``failures`` maps each failed rank to what went wrong.

    As in PyTorch it derives from BaseException, and every rank raises it (a failure on one rank is sent
    to the others), so no rank is left waiting in a collective. A failure from another rank arrives as
    a ``RemoteCheckpointError`` carrying that rank's message and traceback text.
    """

    def __init__(self, msg: str, failures: dict) -> None:
        super().__init__(msg, failures)
        self._failures = failures

    @property
    def failures(self) -> dict:
        """``{rank: (exception, traceback frames or None)}``."""
        return self._failures

    def __str__(self) -> str:
        out = f"CheckpointException ranks:{self._failures.keys()}\n"
        for rank, (exc, trace) in self._failures.items():
            out += f"Traceback (most recent call last): (RANK {rank})\n"
            if trace is not None:
                out += "".join(tb.format_list(trace))
            out += "".join(tb.format_exception_only(type(exc), value=exc))
        return out


class RemoteCheckpointError(Exception):
    """The failure of another rank, rebuilt from its message (exceptions never cross processes as objects)."""
