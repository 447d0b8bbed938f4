"""DataLoader worker processes, as ``torch.utils.data._utils.worker``.

A worker receives ``(task_idx, indices)`` on its own index queue, fetches and collates the samples and
puts ``(task_idx, batch)`` on the shared result queue. ``None`` on the index queue ends it; a
``_ResumeIteration`` starts a new epoch (persistent workers). A worker also ends when its parent
process is gone: it polls ``os.getppid()`` between queue reads, which time out every
``MP_STATUS_CHECK_INTERVAL`` seconds, so no worker outlives the loader that started it.
"""
from __future__ import annotations

import os
import queue
import random
import sys
import traceback
from dataclasses import dataclass
from typing import Optional

import numpy as np

MP_STATUS_CHECK_INTERVAL = 5.0  # seconds between liveness checks (worker: parent alive; main: workers alive)

_worker_info: Optional["WorkerInfo"] = None


class WorkerInfo:
    """What a worker knows about itself: ``id``, ``num_workers``, ``seed`` and its copy of ``dataset``."""

    id: int
    num_workers: int
    seed: int
    dataset: object
    __initialized = False

    def __init__(self, **kwargs) -> None:
        for k, v in kwargs.items():
            setattr(self, k, v)
        self.__keys = tuple(kwargs.keys())
        self.__initialized = True

    def __setattr__(self, key, val):
        if self.__initialized:
            raise RuntimeError(f"Cannot assign attributes to {self.__class__.__name__} objects")
        return super().__setattr__(key, val)

    def __repr__(self) -> str:
        items = ", ".join(f"{k}={getattr(self, k)}" for k in self.__keys)
        return f"{self.__class__.__name__}({items})"


def get_worker_info() -> Optional[WorkerInfo]:
    """In a DataLoader worker process: its :class:`WorkerInfo`; in the main process: ``None``.

    Use it in ``IterableDataset.__iter__`` or ``worker_init_fn`` to shard the data per worker::

        info = get_worker_info()
        start = 0 if info is None else info.id   # then yield every info.num_workers-th item
    """
    return _worker_info


@dataclass(frozen=True)
class _IterableDatasetStopIteration:
    """Sent by a worker whose iterable dataset is exhausted."""

    worker_id: int


@dataclass(frozen=True)
class _ResumeIteration:
    """Sent to persistent workers at the start of a new epoch (and echoed back)."""

    seed: Optional[int] = None


class KeyErrorMessage(str):
    """KeyError's str() is the repr of its argument; this keeps the multi-line message readable."""

    def __repr__(self) -> str:
        return self


class ExceptionWrapper:
    """An exception caught in a worker, carried to the main process with its traceback text."""

    def __init__(self, exc_info=None, where: str = "in background") -> None:
        if exc_info is None:
            exc_info = sys.exc_info()
        self.exc_type = exc_info[0]
        self.exc_msg = "".join(traceback.format_exception(*exc_info))
        self.where = where

    def reraise(self):
        """Raise an exception of the original type whose message names the worker and quotes the traceback."""
        msg = f"Caught {self.exc_type.__name__} {self.where}.\nOriginal {self.exc_msg}"
        if self.exc_type is KeyError:
            msg = KeyErrorMessage(msg)
        elif getattr(self.exc_type, "message", None):
            raise self.exc_type(message=msg)
        try:
            exception = self.exc_type(msg)
        except Exception:
            # The exception type needs other constructor arguments: fall back to RuntimeError.
            raise RuntimeError(msg) from None
        try:
            raise exception
        finally:
            # The traceback refers to this frame: drop the local so that no reference cycle keeps the
            # failed DataLoader iterator (and its worker processes) alive until the next gc run.
            del exception


def _generate_state(base_seed: int, worker_id: int) -> np.ndarray:
    # PyTorch derives NumPy's worker seed with NumPy's SeedSequence hash over these words: distinct per
    # worker and per epoch, and unrelated to the disttorch seed (base_seed + worker_id).
    return np.random.SeedSequence([worker_id, base_seed & 0xFFFFFFFF, base_seed >> 32]).generate_state(4)


def _worker_loop(dataset_kind, dataset, index_queue, data_queue, done_event, auto_collation, collate_fn, drop_last,
                 base_seed: int, init_fn, worker_id: int, num_workers: int, persistent_workers: bool) -> None:
    from ... import manual_seed, set_num_threads
    from .dataloader import _DatasetKind

    global _worker_info
    try:
        set_num_threads(1)  # as PyTorch: parallelism comes from the workers, not from BLAS threads in each
        seed = base_seed + worker_id
        random.seed(seed)
        manual_seed(seed)
        np.random.seed(_generate_state(base_seed, worker_id))
        _worker_info = WorkerInfo(id=worker_id, num_workers=num_workers, seed=seed, dataset=dataset)

        where = f"in DataLoader worker process {worker_id}"

        def make_fetcher():
            try:
                return _DatasetKind.create_fetcher(dataset_kind, dataset, auto_collation, collate_fn, drop_last), None
            except Exception:
                return None, ExceptionWrapper(where=where)

        # A failed worker_init_fn fails every batch this worker is given; a failed fetcher (e.g. iter() of
        # an IterableDataset) fails this epoch's batches.
        init_exception = fetch_exception = fetcher = None
        try:
            if init_fn is not None:
                init_fn(worker_id)
        except Exception:
            init_exception = ExceptionWrapper(where=where)
        if init_exception is None:
            fetcher, fetch_exception = make_fetcher()

        iteration_end = False
        parent = os.getppid()
        while os.getppid() == parent:  # a dead parent re-parents us: then stop
            try:
                r = index_queue.get(timeout=MP_STATUS_CHECK_INTERVAL)
            except queue.Empty:
                continue
            if isinstance(r, _ResumeIteration):
                data_queue.put((r, None))
                iteration_end = False
                if init_exception is None:
                    fetcher, fetch_exception = make_fetcher()
                continue
            if r is None:
                break
            if done_event.is_set() or iteration_end:
                continue  # drain: the main process no longer wants data from this epoch
            idx, index = r
            if init_exception is not None or fetch_exception is not None:
                data = init_exception or fetch_exception
            else:
                try:
                    data = fetcher.fetch(index)
                except Exception as e:
                    if isinstance(e, StopIteration) and dataset_kind == _DatasetKind.Iterable:
                        data = _IterableDatasetStopIteration(worker_id)
                        iteration_end = True
                    else:
                        data = ExceptionWrapper(where=where)
            # Pickling happens in the queue's feeder thread; a batch that cannot be pickled is answered
            # with the error by the result queue (dataloader._ResultQueue).
            data_queue.put((idx, data))
            del data, idx, index, r
    except KeyboardInterrupt:
        pass
    if done_event.is_set():
        data_queue.cancel_join_thread()
        data_queue.close()
