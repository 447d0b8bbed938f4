"""The interface every communication backend implements (mpi, zmq, nccl), on raw arrays.

``disttorch.distributed`` (the torch.distributed API in ``distributed_c10d.py``) unwraps tensors to
their arrays, checks arguments and fingerprints, and calls one of these methods; a backend only moves
and reduces bytes. Arrays are C-contiguous NumPy arrays (CuPy arrays for nccl) and results are written
in place into the output arrays given. Every method returns a ``Work``; a backend may finish the work
before returning (then it returns ``Work.completed()``) or hand it to a communication thread.

Backends register by name in ``BACKENDS`` (module path, class name) and are imported only when a group
of that backend is created, so ``import disttorch`` never imports mpi4py or zmq.

``BLOCKING`` (a thread-local ``.on`` flag) is what ``blocking_call`` sets and ``in_blocking_call`` reads; the
collective runner sets it directly on its hot path.
"""
from __future__ import annotations

import enum
import threading
from typing import Callable, Optional, Sequence

import numpy as np

__all__ = ["ReduceOp", "Work", "ProcessGroup", "BACKENDS", "backend_class", "blocking_call", "in_blocking_call",
           "BLOCKING", "fingerprint_bytes", "mismatch_error"]

# Set while the API launches a collective it will wait for at once (async_op=False): a backend may then run the
# whole operation on the caller's thread instead of handing it to a communication thread (no thread hop).
class _Blocking(threading.local):
    on = False  # a class default: reading a thread's unset attribute would raise and catch (~0.35 us a call)


BLOCKING = _Blocking()


class blocking_call:
    """Context: the collectives launched inside are waited for at once by the caller (``async_op=False``)."""

    __slots__ = ("_prev",)

    def __enter__(self) -> "blocking_call":
        self._prev = BLOCKING.on
        BLOCKING.on = True
        return self

    def __exit__(self, *exc) -> None:
        BLOCKING.on = self._prev


def in_blocking_call() -> bool:
    """Whether the caller will wait for the collective being launched at once (see :class:`blocking_call`)."""
    return BLOCKING.on


def fingerprint_bytes(fingerprint: str) -> np.ndarray:
    """A fingerprint as the 512 zero-padded bytes that ranks all-gather to name a mismatch."""
    raw = np.zeros(512, np.uint8)
    enc = fingerprint.encode()[:512]
    raw[:len(enc)] = np.frombuffer(enc, np.uint8)
    return raw


def mismatch_error(texts, rank: int, global_ranks: Sequence[int]) -> RuntimeError:
    """The error every rank raises when the fingerprints differ: ``texts`` holds each group rank's
    ``fingerprint_bytes`` (any sequence of byte arrays), ``rank`` is this process's group rank."""
    calls = [bytes(t).rstrip(b"\0").decode(errors="replace") for t in texts]
    other = next((r for r, c in enumerate(calls) if c != calls[0]), 0)
    lines = "\n".join(f"  rank {global_ranks[r]}: {c}" for r, c in enumerate(calls))
    return RuntimeError(f"Mismatched collective calls (this is rank {global_ranks[rank]}, calling {calls[rank]}): "
                        f"rank {global_ranks[0]} called {calls[0]} but rank {global_ranks[other]} called "
                        f"{calls[other]}. All calls:\n{lines}")


class ReduceOp(enum.Enum):
    """Reduction operations, as ``torch.distributed.ReduceOp``."""

    SUM = "sum"
    AVG = "avg"
    PRODUCT = "product"
    MIN = "min"
    MAX = "max"
    BAND = "band"
    BOR = "bor"
    BXOR = "bxor"
    PREMUL_SUM = "premul_sum"

    def __repr__(self) -> str:
        return f"<RedOpType.{self.name}: {list(ReduceOp).index(self)}>"

    # Members are singletons compared by identity: hash them so too (Enum's hash is Python code, and backends
    # look (dtype, op) up on every collective).
    __hash__ = object.__hash__


# ufunc that combines two partial results for each op (AVG sums, then the API divides by the group size)
REDUCE_UFUNCS = {ReduceOp.SUM: np.add, ReduceOp.AVG: np.add, ReduceOp.PRODUCT: np.multiply, ReduceOp.MIN: np.minimum,
                 ReduceOp.MAX: np.maximum, ReduceOp.BAND: np.bitwise_and, ReduceOp.BOR: np.bitwise_or,
                 ReduceOp.BXOR: np.bitwise_xor}


class Work:
    """A handle on an asynchronous collective: ``wait()``, ``is_completed()``, as ``torch.distributed.Work``.

    Backends create one with ``Work()`` and call ``_finish(exc=None)`` from whatever thread completes the
    operation; ``then`` callbacks run in that thread after completion.
    """

    def __init__(self, description: str = "") -> None:
        self._done = threading.Event()
        self._exc: Optional[BaseException] = None
        self._callbacks: list = []
        self._lock = threading.Lock()
        self.description = description
        self._result = None

    @classmethod
    def completed(cls, result=None, description: str = "") -> "Work":
        w = cls(description)
        w._result = result
        w._done.set()
        return w

    def _finish(self, exc: Optional[BaseException] = None, result=None) -> None:
        with self._lock:
            self._exc = exc
            self._result = result
            self._done.set()
            callbacks, self._callbacks = self._callbacks, []
        for cb in callbacks:
            cb(self)

    def then(self, callback: Callable[["Work"], None]) -> None:
        """Run ``callback(work)`` when the work completes (immediately if it already has)."""
        with self._lock:
            if not self._done.is_set():
                self._callbacks.append(callback)
                return
        callback(self)

    def is_completed(self) -> bool:
        return self._done.is_set()

    def is_success(self) -> bool:
        return self._done.is_set() and self._exc is None

    def exception(self) -> Optional[BaseException]:
        return self._exc

    def result(self):
        return self._result

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Block until done; raise the backend's error if it failed, RuntimeError on timeout (seconds)."""
        if not self._done.wait(timeout):
            raise RuntimeError(f"{self.description or 'collective'} did not complete within {timeout} s")
        if self._exc is not None:
            raise self._exc
        return True


class ProcessGroup:
    """A set of ranks that communicate. Subclasses implement the array-level collectives below.

    Attributes:
        rank: this process's rank within the group.
        size: number of ranks in the group.
        global_ranks: the global rank of each group rank (``global_ranks[r]``).
    """

    name = "base"

    def __init__(self, rank: int, size: int, global_ranks: Optional[Sequence[int]] = None) -> None:
        self.rank, self.size = rank, size
        self.global_ranks = list(global_ranks) if global_ranks is not None else list(range(size))

    @classmethod
    def create(cls, store, rank: int, world_size: int, timeout: float, options: dict) -> "ProcessGroup":
        """Build the default (world) group. ``store`` is the rendezvous Store (``store.py``), already
        connected; ``timeout`` is the collective timeout in seconds; ``options`` holds backend settings
        (e.g. ``{"interface": "127.0.0.1"}``)."""
        raise NotImplementedError

    def verify(self, fingerprint: str) -> None:
        """Check that every rank is about to run the same collective; raise RuntimeError naming the ranks
        and both calls otherwise (on every rank). ``fingerprint`` is ``"seq=12 all_reduce(float32[4, 3], SUM)"``.

        This default costs one 16-byte allgather (and a second, larger one only on mismatch); a backend may
        override it to carry the digest inside its own messages instead.
        """
        import hashlib

        digest = np.frombuffer(hashlib.blake2b(fingerprint.encode(), digest_size=16).digest(), dtype=np.uint8).copy()
        outs = [np.empty(16, np.uint8) for _ in range(self.size)]
        self.allgather(outs, digest).wait()
        if all((o == outs[0]).all() for o in outs):
            return
        texts = [np.empty(512, np.uint8) for _ in range(self.size)]
        self.allgather(texts, fingerprint_bytes(fingerprint)).wait()
        raise mismatch_error(texts, self.rank, self.global_ranks)

    # --- collectives: arrays in/out, results in place -------------------------------------------------
    def allreduce(self, arrays: list, op: ReduceOp) -> Work:
        """Reduce each array elementwise over all ranks; every rank gets the result (AVG: the sum)."""
        raise NotImplementedError

    def broadcast(self, arrays: list, src: int) -> Work:
        """Copy each array of group rank ``src`` into the same array on every rank."""
        raise NotImplementedError

    def reduce(self, array: np.ndarray, dst: int, op: ReduceOp) -> Work:
        """Reduce into ``array`` on group rank ``dst`` (other ranks' arrays are left unspecified but unchanged here)."""
        raise NotImplementedError

    def allgather(self, outputs: list, array: np.ndarray) -> Work:
        """``outputs[r]`` (one array per rank) receives rank r's ``array``."""
        raise NotImplementedError

    def reduce_scatter(self, output: np.ndarray, inputs: list, op: ReduceOp) -> Work:
        """``output`` on rank r receives the reduction over ranks of their ``inputs[r]``."""
        raise NotImplementedError

    def gather(self, outputs: Optional[list], array: np.ndarray, dst: int) -> Work:
        """On ``dst``, ``outputs[r]`` receives rank r's ``array``; other ranks pass ``outputs=None``."""
        raise NotImplementedError

    def scatter(self, output: np.ndarray, inputs: Optional[list], src: int) -> Work:
        """Rank r's ``output`` receives ``inputs[r]`` of rank ``src``; other ranks pass ``inputs=None``."""
        raise NotImplementedError

    def alltoall(self, outputs: list, inputs: list) -> Work:
        """``outputs[r]`` receives rank r's ``inputs[self.rank]``."""
        raise NotImplementedError

    def barrier(self) -> Work:
        raise NotImplementedError

    def send(self, array: np.ndarray, dst: int, tag: int = 0) -> Work:
        raise NotImplementedError

    def recv(self, array: np.ndarray, src: Optional[int], tag: int = 0) -> Work:
        """Receive into ``array``; ``src=None`` receives from any rank; ``work.result()`` is the sender's rank."""
        raise NotImplementedError

    # --- groups and lifetime ---------------------------------------------------------------------------
    def new_subgroup(self, ranks: Sequence[int]) -> Optional["ProcessGroup"]:
        """A group of the given group ranks (collective over this whole group); None on ranks not in it."""
        raise NotImplementedError

    def shutdown(self) -> None:
        """Release sockets, threads and communicators."""


# name -> (module, class): imported on first use only. A "cpu:X,cuda:nccl" group is built from two of these
# (backends/_nccl_dispatch.py).
BACKENDS = {
    "mpi": ("disttorch.distributed.backends.mpi", "MPIProcessGroup"),
    "zmq": ("disttorch.distributed.backends.zmq", "ZMQProcessGroup"),
    "nccl": ("disttorch.distributed.backends.nccl", "NCCLProcessGroup"),
}

# planned backends (name -> the error to raise while their module is missing); none today
_PLANNED: dict = {}


def backend_class(name: str):
    """The ProcessGroup class registered under ``name`` (imports its module).

    Raises:
        ValueError: ``name`` is not a backend.
        RuntimeError: ``name`` is a planned backend whose module is not there yet.
    """
    import importlib
    import importlib.util

    if name in _PLANNED and importlib.util.find_spec(BACKENDS[name][0]) is None:
        raise RuntimeError(_PLANNED[name])
    try:
        module, cls = BACKENDS[name]
    except KeyError:
        raise ValueError(f"Invalid backend: '{name}'; disttorch has {sorted(BACKENDS)}") from None
    return getattr(importlib.import_module(module), cls)
