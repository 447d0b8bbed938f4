"""DDP's gradient buckets and how their all-reduces are issued (split from distributed.py).

How a bucket's all-reduce runs, and why (measured in benchmarks/ddp_scaling.py, 2 ranks on 2 cores, one BLAS
thread each): the all-reduce is started from the backward hook of the bucket's last gradient and waited for
only at the end of backward, so the rest of backward runs meanwhile. A plain ``dist.all_reduce`` first checks
its fingerprint (``DISTTORCH_CHECK_COLLECTIVES``), and where the backend has no free check (the mpi backend)
that is a blocking 16-byte all-reduce: a rendezvous with every other rank in the middle of backward, on the
compute thread, in MPI's busy-polling wait. DDP's buckets are the same calls in the same order on every rank
once the ranks hold the same parameters, so the layout is checked once at construction
(``verify_same_layout``, as PyTorch's ``_verify_param_shape_across_processes``) and the bucket all-reduces
skip the per-call round trip (``bucket_all_reduce``); a backend whose check rides on the collective's own
messages (zmq) still checks each one. ``DISTTORCH_DDP_CHECK_BUCKETS=1`` restores the per-bucket check (to
find a rank that issues other collectives during backward).
"""
from __future__ import annotations

import hashlib
import os
from typing import Any, List, Optional

import numpy as np

from ... import _internals as E
from ..._tensor import Tensor
from ...futures import Future

__all__ = ["GradBucket"]


def _compute_bucket_assignment_by_size(sizes: List[int], keys: List[Any], limits: List[int]) -> List[List[int]]:
    """Split tensors (given in the order they should fill buckets) into buckets of at least ``limits[k]``
    bytes, the k-th bucket of each key using ``limits[min(k, len(limits) - 1)]``; tensors of different
    keys (dtypes) never share a bucket. Returns lists of positions, ordered by their first position."""
    open_buckets: dict = {}
    count: dict = {}
    result = []
    for i, (nbytes, key) in enumerate(zip(sizes, keys)):
        b = open_buckets.setdefault(key, [[], 0])
        b[0].append(i)
        b[1] += nbytes
        limit = limits[min(count.get(key, 0), len(limits) - 1)]
        if b[1] >= limit:
            result.append(b[0])
            del open_buckets[key]
            count[key] = count.get(key, 0) + 1
    result.extend(b[0] for b in open_buckets.values() if b[0])
    result.sort(key=lambda idx: idx[0])
    return result


class GradBucket:
    """One bucket of gradients as a comm hook sees it (``torch.distributed.GradBucket``)."""

    def __init__(self, index: int, buffer: Tensor, gradients: List[Tensor], parameters: List[Tensor],
                 offsets: List[int], is_last: bool) -> None:
        self._index, self._buffer, self._gradients = index, buffer, gradients
        self._parameters, self._offsets, self._is_last = parameters, offsets, is_last

    def index(self) -> int:
        """The bucket's index (0 is the first bucket to be reduced)."""
        return self._index

    def buffer(self) -> Tensor:
        """The flattened 1-d gradients of the bucket's parameters."""
        return self._buffer

    def gradients(self) -> List[Tensor]:
        """One view of ``buffer()`` per parameter, shaped like the parameter."""
        return self._gradients

    def parameters(self) -> List[Tensor]:
        """The bucket's parameters, in the order of ``gradients()``."""
        return self._parameters

    def offsets(self) -> List[int]:
        return list(self._offsets)

    def is_last(self) -> bool:
        """True for the last bucket of the iteration."""
        return self._is_last

    def set_buffer(self, buffer: Tensor) -> None:
        self._buffer = buffer


class _Bucket:
    """Flat gradient storage for a group of parameters of one dtype."""

    __slots__ = ("index", "param_ids", "params", "offsets", "buffer", "tensor", "views", "grad_views", "pending",
                 "future", "shadow", "prescaled")

    def __init__(self, index: int, param_ids: List[int], params: List[Tensor]) -> None:
        self.index = index
        self.param_ids = param_ids
        self.params = params
        xp = E.array_module(params[0])
        self.offsets, total = [], 0
        for p in params:
            self.offsets.append(total)
            total += E.array(p).size
        self.buffer = xp.zeros(total, dtype=E.array(params[0]).dtype)
        self.tensor = E.wrap(self.buffer)
        self.views = [self.buffer[o:o + p.numel()].reshape(p.shape) for o, p in zip(self.offsets, params)]
        self.grad_views = [E.view_of(self.tensor, v) for v in self.views]
        self.pending = len(params)
        self.future: Optional[Future] = None
        self.shadow: Optional[Tensor] = None
        self.prescaled = 1  # the divisor the gradients were divided by while copied in (1: not divided)

    def grad_bucket(self, is_last: bool, buffer: Optional[Tensor] = None) -> GradBucket:
        return GradBucket(self.index, self.tensor if buffer is None else buffer, list(self.grad_views),
                          list(self.params), self.offsets, is_last)


def _is_real(dist) -> bool:
    """False for a stand-in of ``disttorch.distributed`` (unit tests), which gets the plain API calls."""
    return getattr(dist, "__name__", "") == "disttorch.distributed"


def bucket_all_reduce(dist, tensor: Tensor, group):
    """``dist.all_reduce(tensor, group=group, async_op=True)`` (SUM) without the per-call fingerprint round
    trip (see the module docstring); the collective timeout, the watchdog and its error reports stay."""
    if not _is_real(dist):
        return dist.all_reduce(tensor, group=group, async_op=True)
    from ...distributed import runner as R
    from ...distributed.groups import resolve_group
    from ...distributed.process_group import ReduceOp

    g = resolve_group(group, "all_reduce")
    if g is None:
        return None
    a = R.array_of(tensor, "tensor", g, "all_reduce")
    # R.backend_for spelled out for CPU buckets on a CPU backend; CUDA buckets there are staged through host memory
    pg = g._pg if a.__class__ is np.ndarray and "nccl" not in g._backend else R.backend_for(g, a)
    return R.run(g, "all_reduce", f"{R.signature(a)}, SUM", lambda: pg.allreduce([a], ReduceOp.SUM),
                 lambda: E.bump_version(tensor), True, [tensor],
                 verify=os.environ.get("DISTTORCH_DDP_CHECK_BUCKETS", "0") not in ("0", ""))


def _layout_digest(params: List[Tensor]) -> int:
    text = ";".join(f"{E.array(p).dtype}{tuple(p.shape)}" for p in params)
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little") >> 2


def verify_same_layout(dist, params: List[Tensor], group, rank: int) -> None:
    """Raise on every rank unless all ranks hold the same number of parameters with the same shapes and dtypes
    (PyTorch's check at DDP construction): one 32-byte all-reduce; only a mismatch gathers the details."""
    if not _is_real(dist):
        return
    from ...distributed._staging import host_tensors_on_device

    h, n = _layout_digest(params), len(params)
    mine = np.array([h, -h, n, -n], dtype=np.int64)
    t = E.wrap(mine.copy())
    with host_tensors_on_device():  # on a pure nccl group these CPU tensors go through the device
        dist.all_reduce(t, op=dist.ReduceOp.MAX, group=group)
    if (E.array(t) == mine).all():
        return
    world = dist.get_world_size(group)
    gathered = [E.wrap(np.zeros(2, np.int64)) for _ in range(world)]
    with host_tensors_on_device():
        dist.all_gather(gathered, E.wrap(np.array([n, h], np.int64)), group=group)
    rows = [tuple(int(v) for v in E.array(x)) for x in gathered]
    other = next((r for r, (m, _) in enumerate(rows) if m != n), None)
    if other is not None:
        raise RuntimeError(f"DDP expects same model across all ranks, but Rank {rank} has {n} params, while rank "
                           f"{other} has inconsistent {rows[other][0]} params.")
    other = next(r for r, (_, d) in enumerate(rows) if d != h)
    shapes = ", ".join(f"{tuple(p.shape)}:{E.array(p).dtype}" for p in params[:8])
    raise RuntimeError(f"DDP expects same model across all ranks, but the parameters of rank {rank} and rank "
                       f"{other} differ in shape or dtype (rank {rank} has {n} params: {shapes}"
                       f"{', ...' if n > 8 else ''}).")
