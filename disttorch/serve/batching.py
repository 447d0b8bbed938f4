"""Running requests on the model replicas, one at a time or in dynamic batches.

:class:`Engine` owns N model replicas (``--workers N``), each run by its own thread, so N forward passes can
overlap (NumPy releases the GIL inside its kernels). Without batching, each request waits for a free replica.
With ``max_batch_size`` > 0, requests go to a queue; a batcher takes a free replica first, then collects
queued requests whose inputs agree on everything but dim 0, up to ``max_batch_size`` rows, waiting at most
``max_delay`` after the oldest request arrived, concatenates them along dim 0, runs them as one batch and
splits every output back by each request's row count. Taking the replica first means that while every replica
is busy, requests pile up and the next batch is larger: the batch size follows the load. A request larger than
``max_batch_size`` runs alone. When a batch fails, each of its requests is retried alone, so one bad request
(an out-of-range index, say) fails only itself.
"""
from __future__ import annotations

import asyncio
import collections
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import numpy as np


class ModelError(Exception):
    """The model raised, or returned outputs that cannot be split back into the batched requests."""


class _Item:
    __slots__ = ("arrays", "rows", "key", "future", "arrived")

    def __init__(self, arrays: list, future: asyncio.Future) -> None:
        self.arrays = arrays
        self.future = future
        self.arrived = time.monotonic()
        dims = {a.shape[0] if a.ndim else None for a in arrays}
        # Only requests whose inputs all share dim 0 can be stacked; others get a key of their own.
        self.rows = dims.pop() if len(dims) == 1 else None
        if self.rows is None:
            self.key = object()
        else:
            self.key = tuple((a.dtype.str, a.shape[1:]) for a in arrays)


class Engine:
    """Runs forward passes on a pool of replicas; ``await engine.infer(arrays)`` returns the output arrays.

    Args:
        models: the replicas (one per worker thread).
        run: ``run(model, arrays) -> list of arrays``, called on a worker thread.
        max_batch_size: rows per batch; 0 runs each request alone.
        max_delay: seconds a request may wait for others to join its batch.
        on_batch: called with the row count of each model run (metrics).
    """

    def __init__(self, models: list, run: Callable, max_batch_size: int = 0, max_delay: float = 0.005,
                 on_batch: Callable[[int], None] | None = None) -> None:
        self.models = models
        self.run = run
        self.max_batch_size = max_batch_size
        self.max_delay = max_delay
        self.on_batch = on_batch or (lambda n: None)
        self.executor = ThreadPoolExecutor(max_workers=len(models), thread_name_prefix="disttorch-serve")
        self._free: asyncio.Queue | None = None
        self._queue: asyncio.Queue | None = None
        self._batcher: asyncio.Task | None = None
        self._running: set = set()

    async def start(self) -> None:
        self._free = asyncio.Queue()
        for m in self.models:
            self._free.put_nowait(m)
        if self.max_batch_size > 0:
            self._queue = asyncio.Queue()
            self._batcher = asyncio.get_running_loop().create_task(self._batch_loop())

    async def stop(self) -> None:
        """Finish what was queued, then stop the batcher and the worker threads."""
        if self._batcher is not None:
            self._queue.put_nowait(None)
            await self._batcher
        if self._running:
            await asyncio.gather(*self._running, return_exceptions=True)
        self.executor.shutdown(wait=True)

    async def _call(self, model, arrays: list) -> list:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self.executor, self.run, model, arrays)
        except Exception as e:  # noqa: BLE001 - user model code: reported to the client as a 500
            raise ModelError(f"the model raised {type(e).__name__}: {e}") from e

    async def infer(self, arrays: list) -> list:
        if self._queue is None:
            model = await self._free.get()
            try:
                self.on_batch(arrays[0].shape[0] if arrays and arrays[0].ndim else 1)
                return await self._call(model, arrays)
            finally:
                self._free.put_nowait(model)
        fut = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Item(arrays, fut))
        return await fut

    async def _batch_loop(self) -> None:
        pending: collections.deque = collections.deque()  # requests that did not fit the last batch
        stopping = False
        while True:
            if stopping and not pending:
                return
            model = await self._free.get()
            if pending:
                first = pending.popleft()
            else:
                first = await self._queue.get()
                if first is None:
                    self._free.put_nowait(model)
                    return
            batch, rows = [first], first.rows
            if first.rows is not None and first.rows < self.max_batch_size:
                rest: collections.deque = collections.deque()
                while pending and rows < self.max_batch_size:  # older requests first
                    item = pending.popleft()
                    if item.key == first.key and rows + item.rows <= self.max_batch_size:
                        batch.append(item)
                        rows += item.rows
                    else:
                        rest.append(item)
                pending.extendleft(reversed(rest))
                deadline = first.arrived + self.max_delay
                while rows < self.max_batch_size and not stopping:
                    timeout = deadline - time.monotonic()
                    try:
                        item = self._queue.get_nowait() if timeout <= 0 else await asyncio.wait_for(
                            self._queue.get(), timeout)
                    except (asyncio.QueueEmpty, asyncio.TimeoutError):
                        break
                    if item is None:
                        stopping = True
                    elif item.key == first.key and rows + item.rows <= self.max_batch_size:
                        batch.append(item)
                        rows += item.rows
                    else:
                        pending.append(item)
            task = asyncio.get_running_loop().create_task(self._run_batch(model, batch))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _run_batch(self, model, batch: list) -> None:
        try:
            if len(batch) == 1:
                await self._run_one(model, batch[0])
                return
            n = len(batch[0].arrays)
            stacked = [np.concatenate([it.arrays[i] for it in batch]) for i in range(n)]
            total = sum(it.rows for it in batch)
            self.on_batch(total)
            try:
                outs = await self._call(model, stacked)
                bad = [i for i, o in enumerate(outs) if o.ndim == 0 or o.shape[0] != total]
                if bad:
                    raise ModelError(f"model output {bad[0]} has shape {list(outs[bad[0]].shape)}, not {total} rows "
                                     f"for a batch of {total} rows: this model cannot be batched along dim 0; run "
                                     "the server without --max-batch-size")
            except ModelError:
                for it in batch:  # retry alone: a request that fails the batch fails only itself
                    await self._run_one(model, it)
                return
            start = 0
            for it in batch:
                if not it.future.done():
                    it.future.set_result([o[start:start + it.rows] for o in outs])
                start += it.rows
        finally:
            self._free.put_nowait(model)

    async def _run_one(self, model, item: _Item) -> None:
        self.on_batch(item.rows if item.rows is not None else 1)
        try:
            result = await self._call(model, item.arrays)
        except ModelError as e:
            if not item.future.done():
                item.future.set_exception(e)
            return
        if not item.future.done():
            item.future.set_result(result)
