"""Tensor collectives and point-to-point ops of ``torch.distributed`` (re-exported by ``distributed_c10d``).

Each function checks its arguments, describes the call for the fingerprint (only what must agree across
ranks: shapes and dtypes of the per-rank data, the reduce op, the root) and hands arrays to the backend
through the runner (``runner.run``, ``runner.run_p2p``). Outputs are written in place and their version
counters bumped.

Internal API: the public functions below (``_objects`` and ``distributed.nn`` build on them).
"""
from __future__ import annotations

import itertools
from typing import Optional

from numpy import ndarray as _ndarray

from .._internals import bump_version
from . import runner as R
from .groups import ProcessGroup, resolve_group, world
from .process_group import ReduceOp, Work
from .runner import array_of, contiguous, copy_back, signature

__all__ = ["all_reduce", "broadcast", "reduce", "all_gather", "all_gather_into_tensor", "reduce_scatter",
           "reduce_scatter_tensor", "gather", "scatter", "all_to_all", "all_to_all_single", "barrier",
           "monitored_barrier", "send", "recv", "isend", "irecv", "P2POp", "batch_isend_irecv"]

_SUM = ReduceOp.SUM
_AVG = ReduceOp.AVG
_OP_NAMES = {id(op): op.name for op in ReduceOp}  # Enum.name is a Python-level property: ~0.2 us per call


def all_reduce(tensor, op: ReduceOp = _SUM, group=None, async_op: bool = False) -> Optional[Work]:
    """Reduce ``tensor`` over all ranks of ``group``, in place on every rank (``op``: SUM, AVG, PRODUCT, MIN,
    MAX; BAND/BOR/BXOR on integers). Returns a Work with ``async_op=True``, else None.

    Example:
        >>> t = disttorch.tensor([float(dist.get_rank())])
        >>> dist.all_reduce(t)      # every rank now holds 0 + 1 + ... + (world_size - 1)
    """
    g = resolve_group(group, "all_reduce")
    if g is None:
        return None
    a = array_of(tensor, "tensor", g, "all_reduce")
    R.check_reduce_op(op, a, "all_reduce")
    buf = contiguous(a)
    # R.backend_for spelled out for the common case (a CPU tensor on a CPU backend), this being the hottest call
    pg = g._pg if a.__class__ is _ndarray and "nccl" not in g._backend else R.backend_for(g, a)

    def finish():  # copy_back for one tensor, spelled out: this runs once per all_reduce
        if op is _AVG:
            R.divide(buf, pg.size)
        if buf is not a:
            a[...] = buf
        bump_version(tensor)

    return R.run(g, "all_reduce", f"{signature(a)}, {_OP_NAMES[id(op)]}", lambda: pg.allreduce([buf], op), finish,
                 async_op, [tensor])


def broadcast(tensor, src: Optional[int] = None, group=None, async_op: bool = False,
              group_src: Optional[int] = None) -> Optional[Work]:
    """Copy ``tensor`` of global rank ``src`` into ``tensor`` on every rank of ``group``."""
    g = resolve_group(group, "broadcast")
    if g is None:
        return None
    a = array_of(tensor, "tensor", g, "broadcast")
    root = R.group_peer(g, src, group_src, "broadcast", "src")
    buf = contiguous(a)

    def finish():
        copy_back((tensor,), (a,), (buf,))

    pg = R.backend_for(g, a)
    return R.run(g, "broadcast", f"{signature(a)}, src={g._ranks[root]}", lambda: pg.broadcast([buf], root), finish,
                async_op)


def reduce(tensor, dst: Optional[int] = None, op: ReduceOp = _SUM, group=None, async_op: bool = False,
           group_dst: Optional[int] = None) -> Optional[Work]:
    """Reduce ``tensor`` over all ranks into ``tensor`` of global rank ``dst`` (other ranks' tensors unchanged)."""
    g = resolve_group(group, "reduce")
    if g is None:
        return None
    a = array_of(tensor, "tensor", g, "reduce")
    R.check_reduce_op(op, a, "reduce")
    root = R.group_peer(g, dst, group_dst, "reduce", "dst")
    pg = R.backend_for(g, a)
    buf = contiguous(a)
    if pg.rank != root and buf is a:  # the backend may use it as scratch; PyTorch leaves it unchanged here
        buf = a.copy()

    def finish():
        if pg.rank == root:
            if op is _AVG:
                R.divide(buf, pg.size)
            copy_back((tensor,), (a,), (buf,))

    return R.run(g, "reduce", f"{signature(a)}, {op.name}, dst={g._ranks[root]}", lambda: pg.reduce(buf, root, op), finish,
                async_op)


def all_gather(tensor_list: list, tensor, group=None, async_op: bool = False) -> Optional[Work]:
    """``tensor_list[r]`` receives rank r's ``tensor`` on every rank (all the same shape and dtype)."""
    g = resolve_group(group, "all_gather")
    if g is None:
        return None
    a = array_of(tensor, "tensor", g, "all_gather")
    outs = R.tensor_list(tensor_list, "tensor_list", g, "all_gather", like=a)
    bufs = [contiguous(o) for o in outs]
    src = contiguous(a)

    def finish():
        copy_back(tensor_list, outs, bufs)

    pg = R.backend_for(g, a)
    return R.run(g, "all_gather", signature(a), lambda: pg.allgather(bufs, src), finish, async_op)


def all_gather_into_tensor(output_tensor, input_tensor, group=None, async_op: bool = False) -> Optional[Work]:
    """Gather every rank's ``input_tensor`` into ``output_tensor``, concatenated along dim 0 (shape
    ``(world_size * n, ...)``) or stacked (shape ``(world_size, n, ...)``)."""
    g = resolve_group(group, "all_gather_into_tensor")
    if g is None:
        return None
    out = array_of(output_tensor, "output_tensor", g, "all_gather_into_tensor")
    a = array_of(input_tensor, "input_tensor", g, "all_gather_into_tensor")
    R.same_dtype(out, a, "output and input", "all_gather_into_tensor")
    size = g._pg.size
    if out.size != size * a.size:
        raise ValueError(f"all_gather_into_tensor: output tensor size must be equal to world_size times input tensor "
                         f"size: output {list(out.shape)}, input {list(a.shape)}, world_size {size} (rank {world.rank})")
    obuf = contiguous(out)
    flat = obuf.reshape(-1)
    n = a.size
    parts = [flat[r * n:(r + 1) * n].reshape(a.shape) for r in range(size)]
    src = contiguous(a)

    def finish():
        copy_back((output_tensor,), (out,), (obuf,))

    pg = R.backend_for(g, a)
    return R.run(g, "all_gather_into_tensor", signature(a), lambda: pg.allgather(parts, src), finish, async_op)


def reduce_scatter(output, input_list: list, op: ReduceOp = _SUM, group=None, async_op: bool = False):
    """``output`` on rank r receives the reduction over ranks of their ``input_list[r]``."""
    g = resolve_group(group, "reduce_scatter")
    if g is None:
        return None
    out = array_of(output, "output", g, "reduce_scatter")
    R.check_reduce_op(op, out, "reduce_scatter")
    ins = [contiguous(x) for x in R.tensor_list(input_list, "input_list", g, "reduce_scatter", like=out)]
    return _reduce_scatter(g, "reduce_scatter", output, out, ins, op, async_op)


def _reduce_scatter(g: ProcessGroup, name: str, output, out, ins: list, op: ReduceOp, async_op: bool):
    obuf = contiguous(out)
    pg = R.backend_for(g, out)

    def finish():
        if op is _AVG:
            R.divide(obuf, pg.size)
        copy_back((output,), (out,), (obuf,))

    return R.run(g, name, f"{signature(out)}, {op.name}", lambda: pg.reduce_scatter(obuf, ins, op), finish, async_op)


def reduce_scatter_tensor(output, input, op: ReduceOp = _SUM, group=None, async_op: bool = False):  # noqa: A002
    """Reduce ``input`` (``world_size`` chunks along dim 0, or stacked) over ranks; rank r gets chunk r."""
    g = resolve_group(group, "reduce_scatter_tensor")
    if g is None:
        return None
    out = array_of(output, "output", g, "reduce_scatter_tensor")
    a = array_of(input, "input", g, "reduce_scatter_tensor")
    R.same_dtype(out, a, "output and input", "reduce_scatter_tensor")
    R.check_reduce_op(op, out, "reduce_scatter_tensor")
    size = g._pg.size
    if a.size != size * out.size:
        raise ValueError(f"reduce_scatter_tensor: input tensor size must be equal to world_size times output tensor "
                         f"size: input {list(a.shape)}, output {list(out.shape)}, world_size {size} (rank {world.rank})")
    flat = contiguous(a).reshape(-1)
    n = out.size
    ins = [flat[r * n:(r + 1) * n].reshape(out.shape) for r in range(size)]
    return _reduce_scatter(g, "reduce_scatter_tensor", output, out, ins, op, async_op)


def gather(tensor, gather_list: Optional[list] = None, dst: Optional[int] = None, group=None, async_op: bool = False,
           group_dst: Optional[int] = None) -> Optional[Work]:
    """On global rank ``dst`` (default 0), ``gather_list[r]`` receives rank r's ``tensor``."""
    g = resolve_group(group, "gather")
    if g is None:
        return None
    a = array_of(tensor, "tensor", g, "gather")
    root = R.group_peer(g, dst, group_dst, "gather", "dst", default=g._ranks[0] if group_dst is None else None)
    pg = R.backend_for(g, a)
    if pg.rank == root:
        if not gather_list:
            raise ValueError("Argument ``gather_list`` must be specified on destination rank.")
        outs = R.tensor_list(gather_list, "gather_list", g, "gather", like=a)
        bufs = [contiguous(o) for o in outs]
    else:
        if gather_list:
            raise ValueError("Argument ``gather_list`` must NOT be specified on non-destination ranks.")
        outs = bufs = None
    src = contiguous(a)

    def finish():
        if outs is not None:
            copy_back(gather_list, outs, bufs)

    return R.run(g, "gather", f"{signature(a)}, dst={g._ranks[root]}", lambda: pg.gather(bufs, src, root), finish, async_op)


def scatter(tensor, scatter_list: Optional[list] = None, src: Optional[int] = None, group=None, async_op: bool = False,
            group_src: Optional[int] = None) -> Optional[Work]:
    """Rank r's ``tensor`` receives ``scatter_list[r]`` of global rank ``src`` (default 0)."""
    g = resolve_group(group, "scatter")
    if g is None:
        return None
    a = array_of(tensor, "tensor", g, "scatter")
    root = R.group_peer(g, src, group_src, "scatter", "src", default=g._ranks[0] if group_src is None else None)
    pg = R.backend_for(g, a)
    if pg.rank == root:
        if not scatter_list:
            raise ValueError("Argument ``scatter_list`` must be specified on source rank.")
        ins = [contiguous(x) for x in R.tensor_list(scatter_list, "scatter_list", g, "scatter", like=a)]
    else:
        if scatter_list:
            raise ValueError("Argument ``scatter_list`` must NOT be specified on non-source ranks.")
        ins = None
    buf = contiguous(a)

    def finish():
        copy_back((tensor,), (a,), (buf,))

    return R.run(g, "scatter", f"{signature(a)}, src={g._ranks[root]}", lambda: pg.scatter(buf, ins, root), finish,
                async_op)


def all_to_all(output_tensor_list: list, input_tensor_list: list, group=None, async_op: bool = False):
    """``output_tensor_list[r]`` receives rank r's ``input_tensor_list[self]`` (shapes may differ per pair)."""
    g = resolve_group(group, "all_to_all")
    if g is None:
        return None
    outs = R.tensor_list(output_tensor_list, "output_tensor_list", g, "all_to_all")
    ins = R.tensor_list(input_tensor_list, "input_tensor_list", g, "all_to_all")
    dt = ins[0].dtype if ins else None
    for i, x in enumerate(outs + ins):
        if x.dtype != dt:
            raise RuntimeError(f"all_to_all: all tensors must have one dtype; got {R.dtype_name(dt)} and "
                               f"{R.dtype_name(x.dtype)} (rank {world.rank})")
    me = g._pg.rank
    if outs[me].shape != ins[me].shape:
        raise RuntimeError(f"all_to_all: output_tensor_list[{me}] has shape {list(outs[me].shape)} but this rank "
                           f"sends itself input_tensor_list[{me}] of shape {list(ins[me].shape)} (rank {world.rank})")
    obufs = [contiguous(o) for o in outs]
    ibufs = [contiguous(x) for x in ins]

    def finish():
        copy_back(output_tensor_list, outs, obufs)

    pg = g._pg if dt is None else R.backend_for(g, ins[0])
    return R.run(g, "all_to_all", f"{R.dtype_name(dt)} x{len(ins)}", lambda: pg.alltoall(obufs, ibufs), finish,
                async_op)


def _splits(sizes, n: int, dim0: int, what: str, op: str) -> list:
    if sizes is None or len(sizes) == 0:
        if dim0 % n:
            raise ValueError(f"{op}: {what} dim 0 ({dim0}) must be divisible by the group size ({n}) when no split "
                             f"sizes are given (rank {world.rank})")
        return [dim0 // n] * n
    sizes = [int(s) for s in sizes]
    if len(sizes) != n or any(s < 0 for s in sizes) or sum(sizes) != dim0:
        raise ValueError(f"{op}: {what} split sizes {sizes} must be {n} non-negative numbers summing to dim 0 of the "
                         f"{what} ({dim0}) (rank {world.rank})")
    return sizes


def all_to_all_single(output, input, output_split_sizes=None, input_split_sizes=None, group=None,  # noqa: A002
                      async_op: bool = False) -> Optional[Work]:
    """Split ``input`` along dim 0 (``input_split_sizes``, default equal), send chunk r to rank r, and
    concatenate the received chunks into ``output`` (``output_split_sizes`` rows from each rank)."""
    g = resolve_group(group, "all_to_all_single")
    if g is None:
        return None
    out = array_of(output, "output", g, "all_to_all_single")
    a = array_of(input, "input", g, "all_to_all_single")
    R.same_dtype(out, a, "output and input", "all_to_all_single")
    if out.ndim == 0 or a.ndim == 0 or out.shape[1:] != a.shape[1:]:
        raise ValueError(f"all_to_all_single: output {list(out.shape)} and input {list(a.shape)} must have at least "
                         f"one dimension and equal sizes beyond dim 0 (rank {world.rank})")
    n = g._pg.size
    osz = _splits(output_split_sizes, n, out.shape[0], "output", "all_to_all_single")
    isz = _splits(input_split_sizes, n, a.shape[0], "input", "all_to_all_single")
    obuf, ibuf = contiguous(out), contiguous(a)
    oo = list(itertools.accumulate([0] + osz))
    io = list(itertools.accumulate([0] + isz))
    outs = [obuf[oo[r]:oo[r + 1]] for r in range(n)]
    ins = [ibuf[io[r]:io[r + 1]] for r in range(n)]

    def finish():
        copy_back((output,), (out,), (obuf,))

    pg = R.backend_for(g, a)
    return R.run(g, "all_to_all_single", f"{R.dtype_name(a.dtype)}[*, {', '.join(map(str, a.shape[1:]))}]",
                lambda: pg.alltoall(outs, ins), finish, async_op)


def barrier(group=None, async_op: bool = False, device_ids=None) -> Optional[Work]:
    """Block until every rank of ``group`` has reached the barrier."""
    g = resolve_group(group, "barrier")
    if g is None:
        return None
    return R.run(g, "barrier", "", g._pg.barrier, None, async_op)


def monitored_barrier(group=None, timeout=None, wait_all_ranks: bool = False) -> None:
    """A barrier that raises after ``timeout`` naming the ranks that did not arrive."""
    g = resolve_group(group, "monitored_barrier")
    if g is None:
        return None
    if timeout is None:
        return barrier(group)
    saved = g._timeout
    g._timeout = timeout.total_seconds() if hasattr(timeout, "total_seconds") else float(timeout)
    try:
        barrier(group)
    finally:
        g._timeout = saved
    return None


# ------------------------------------------------------------------------------------------------------------
# point to point
# ------------------------------------------------------------------------------------------------------------
def _p2p_args(tensor, peer, group_peer, group, op: str, what: str):
    g = resolve_group(group, op)
    if g is None:
        return None, None, None
    a = array_of(tensor, "tensor", g, op)
    r = R.group_peer(g, peer, group_peer, op, what)
    if r == g._pg.rank:
        raise ValueError(f"Invalid {'destination' if what == 'dst' else 'source'} rank: should not be the same as the "
                         f"rank of the current process ({op})")
    return g, a, r


def isend(tensor, dst: Optional[int] = None, group=None, tag: int = 0, group_dst: Optional[int] = None):
    """Send ``tensor`` to global rank ``dst`` asynchronously; returns a Work (None off the group)."""
    g, a, r = _p2p_args(tensor, dst, group_dst, group, "isend", "dst")
    if g is None:
        return None
    buf = contiguous(a)
    pg = R.backend_for(g, a)
    return R.run_p2p(g, f"isend({signature(a)} to rank {g._ranks[r]}, tag {tag})", lambda: pg.send(buf, r, tag), None)


def irecv(tensor, src: Optional[int] = None, group=None, tag: int = 0, group_src: Optional[int] = None):
    """Receive into ``tensor`` from global rank ``src`` (None: any rank) asynchronously; returns a Work."""
    g = resolve_group(group, "irecv")
    if g is None:
        return None
    a = array_of(tensor, "tensor", g, "irecv")
    r = None if src is None and group_src is None else R.group_peer(g, src, group_src, "irecv", "src")
    if r is not None and r == g._pg.rank:
        raise ValueError("Invalid source rank: should not be the same as the rank of the current process (irecv)")
    buf = contiguous(a)

    def finish():
        copy_back((tensor,), (a,), (buf,))

    peer = "any rank" if r is None else f"rank {g._ranks[r]}"
    pg = R.backend_for(g, a)
    return R.run_p2p(g, f"irecv({signature(a)} from {peer}, tag {tag})", lambda: pg.recv(buf, r, tag), finish)


def send(tensor, dst: Optional[int] = None, group=None, tag: int = 0, group_dst: Optional[int] = None) -> None:
    """Send ``tensor`` to global rank ``dst``; returns when the data has left (or been buffered)."""
    w = isend(tensor, dst, group, tag, group_dst)
    if w is not None:
        w.wait()


def recv(tensor, src: Optional[int] = None, group=None, tag: int = 0, group_src: Optional[int] = None) -> int:
    """Receive into ``tensor`` from global rank ``src`` (None: any); returns the sender's global rank (-1 off the
    group)."""
    w = irecv(tensor, src, group, tag, group_src)
    if w is None:
        return -1
    w.wait()
    g = resolve_group(group, "")
    sender = w.result()
    if sender is None:
        return src if src is not None else g._ranks[group_src]
    return g._ranks[int(sender)]


class P2POp:
    """One point-to-point operation for ``batch_isend_irecv``: ``P2POp(dist.isend, tensor, peer)``."""

    def __init__(self, op, tensor, peer: Optional[int] = None, group=None, tag: int = 0,
                 group_peer: Optional[int] = None) -> None:
        if op not in (isend, irecv):
            raise ValueError("Invalid ``op``. Expected ``op`` to be of type ``torch.distributed.isend`` or "
                             "``torch.distributed.irecv``.")
        R.check_tensor(tensor, "tensor")
        self.op, self.tensor, self.peer, self.group, self.tag, self.group_peer = op, tensor, peer, group, tag, group_peer

    def __repr__(self) -> str:
        return f"P2POp({self.op.__name__}, peer={self.peer}, shape={list(self.tensor.shape)}, tag={self.tag})"


def batch_isend_irecv(p2p_op_list: list) -> list:
    """Start every P2POp of the list; returns their Works (wait on each)."""
    if not isinstance(p2p_op_list, (list, tuple)) or not all(isinstance(p, P2POp) for p in p2p_op_list):
        raise ValueError("Invalid ``p2p_op_list``. Each op is expected to to be of type ``torch.distributed.P2POp``.")
    # Sends first: a backend that runs operations in order on one thread must not sit in a receive while
    # the send its peer waits for is queued behind it. Matching is per (peer, tag) and in order either way.
    works = []
    for p in sorted(p2p_op_list, key=lambda p: p.op is not isend):
        if p.op is isend:
            w = isend(p.tensor, p.peer, p.group, p.tag, p.group_peer)
        else:
            w = irecv(p.tensor, p.peer, p.group, p.tag, p.group_peer)
        if w is not None:
            works.append(w)
    return works
