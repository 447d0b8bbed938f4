"""DDP's gradient buckets and how their all-reduces are issued (split from distributed.py).

How a bucket's all-reduce runs, and why (measured in benchmarks/ddp_scaling.py, 2 ranks on 2 cores, one BLAS
thread each): the all-reduce is started from the backward hook of the bucket's last gradient and waited for
only at the end of backward, so the rest of backward runs meanwhile. A plain ``dist.all_reduce`` first checks
its fingerprint (``DISTTORCH_CHECK_COLLECTIVES``), and where the backend has no free check (the mpi backend)
that is an extra 16-byte MPI all-reduce in the collective's work, in MPI's busy-polling wait. DDP's buckets
are the same calls in the same order on every rank once the ranks hold the same parameters, so the layout is
checked once at construction (``verify_same_layout``, as PyTorch's ``_verify_param_shape_across_processes``)
and the bucket all-reduces skip the per-call check (``bucket_all_reduce``); a backend whose check rides on
the collective's own messages (zmq) still checks each one. ``DISTTORCH_DDP_CHECK_BUCKETS=1`` when the DDP is
built restores the per-bucket check (to find a rank that issues other collectives during backward).

On a CUDA device a bucket is *deferred*: its gradients are copied in when the bucket's last one is ready, all of
them by one kernel launch (kernels/bucket.cu, with the 1 / world-size scale on the way), and copied back out
after the all-reduce by one more; a copy per gradient is a launch per gradient on a GPU. With
``fp16_compress_hook`` registered, a float32 device bucket is packed straight into a float16 *wire* buffer
(cast and scale in the same launch), the wire is all-reduced, and unpacked into the gradients: the hook's
semantics without its full-precision temporaries. Where the kernels do not apply (kernels off, a dtype they do
not take, a non-contiguous gradient) the same copies run as array operations. CPU buckets copy each gradient
as its hook fires, as before.
"""
from __future__ import annotations

import hashlib
import os
from typing import Any, List, Optional

import numpy as np

from ... import _internals as E
from ..._tensor import Tensor
from ...futures import Future
from ...kernels import launch as L
from ...ops import _fused

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
                 "future", "shadow", "prescaled", "xp", "deferred", "wire", "wire_divisor")

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
        self.xp = xp
        self.deferred = xp is not np  # device: packed all at once when complete (see the module docstring)
        self.wire: Optional[Tensor] = None  # float16 all-reduce buffer under fp16 compression
        self.wire_divisor = 1

    def set_compression(self, divisor: int) -> None:
        """``fp16_compress_hook`` was registered: all-reduce this bucket in float16, pre-divided by ``divisor``
        (device float32 buckets only: CPU buckets keep calling the hook)."""
        if self.deferred and self.buffer.dtype == np.float32:
            self.wire = E.wrap(self.xp.empty(self.buffer.size, dtype=np.float16))
            self.wire_divisor = divisor

    def pack(self, grads: list, divisor: int) -> None:
        """Copy ``grads`` (one array or None, a zero gradient, per parameter) into the bucket, or into its wire
        under compression, divided by ``divisor``."""
        if self.wire is not None:
            divisor = self.wire_divisor
        srcs = []
        for view, g in zip(self.views, grads):
            if g is None:
                view[...] = 0
                srcs.append(view)
            else:
                srcs.append(g)
        dest = self.buffer if self.wire is None else E.array(self.wire)
        if _fused_copy(self.xp, srcs, self.views, dest, True, 1.0 / divisor):
            return
        for view, a in zip(self.views, srcs):
            if a is view:
                if divisor != 1 and dest is self.buffer:
                    view /= divisor
            elif divisor != 1 and dest is self.buffer:
                self.xp.divide(a, divisor, out=view)
            else:
                view[...] = a
        if dest is not self.buffer:
            dest[...] = self.buffer / divisor

    def unpack(self, grads: Optional[list]) -> bool:
        """After the all-reduce: copy the result into ``grads`` (arrays) by one kernel launch and return True, or
        (``grads`` None, or the kernel does not apply) bring a compressed result into the bucket and return
        False, for the caller's copy per parameter."""
        src = self.buffer if self.wire is None else E.array(self.wire)
        if grads is not None and _fused_copy(self.xp, grads, self.views, src, False, 1.0):
            return True
        if src is not self.buffer and not _fused_copy(self.xp, [self.buffer], [self.buffer], src, False, 1.0):
            self.buffer[...] = src
        return False

    def grad_bucket(self, is_last: bool, buffer: Optional[Tensor] = None) -> GradBucket:
        return GradBucket(self.index, self.tensor if buffer is None else buffer, list(self.grad_views),
                          list(self.params), self.offsets, is_last)


def _fused_copy(xp, arrays: list, views: list, flat, pack: bool, scale: float) -> bool:
    """One bucket.cu launch copying ``arrays`` (shaped as ``views``, consecutive in ``flat``) into ``flat`` (pack)
    or out of it, times ``scale``; False, having copied nothing, where the kernel does not apply."""
    run = _fused.launcher(xp, flat, *arrays)
    if run is None or (flat.dtype == np.float32 and arrays[0].dtype != np.float32):
        return False
    for a, v in zip(arrays, views):
        if a.dtype != arrays[0].dtype or a.size != v.size:
            return False
    run(L.bucket_plan(arrays, flat, pack=pack, scale=scale))
    return True


def _is_real(dist) -> bool:
    """False for a stand-in of ``disttorch.distributed`` (unit tests), which gets the plain API calls."""
    return getattr(dist, "__name__", "") == "disttorch.distributed"


_API: list = []  # (runner, resolve_group, SUM), imported on first use: distributed is loaded after nn


def check_buckets() -> bool:
    """``DISTTORCH_DDP_CHECK_BUCKETS`` (read when a DDP is built): check every bucket all-reduce's fingerprint."""
    return os.environ.get("DISTTORCH_DDP_CHECK_BUCKETS", "0") not in ("0", "")


def bucket_all_reduce(dist, tensor: Tensor, group, check: bool = False):
    """``dist.all_reduce(tensor, group=group, async_op=True)`` (SUM) without the per-call fingerprint check
    unless ``check`` (see the module docstring); the collective timeout, the watchdog and its error reports
    stay."""
    if not _is_real(dist):
        return dist.all_reduce(tensor, group=group, async_op=True)
    if not _API:  # per call these imports cost ~5 us, a tenth of a small bucket's all-reduce
        from ...distributed import runner
        from ...distributed.groups import resolve_group
        from ...distributed.process_group import ReduceOp

        _API.append((runner, resolve_group, ReduceOp.SUM))
    R, resolve_group, SUM = _API[0]
    g = resolve_group(group, "all_reduce")
    if g is None:
        return None
    a = R.array_of(tensor, "tensor", g, "all_reduce")
    # R.backend_for spelled out for CPU buckets on a CPU backend; CUDA buckets there are staged through host memory
    pg = g._pg if a.__class__ is np.ndarray and "nccl" not in g._backend else R.backend_for(g, a)
    return R.run(g, "all_reduce", f"{R.signature(a)}, SUM", lambda: pg.allreduce([a], SUM),
                 lambda: E.bump_version(tensor), True, [tensor], verify=check)


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
