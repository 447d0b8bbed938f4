"""Object collectives: ``broadcast_object_list``, ``all_gather_object``, ``gather_object``,
``scatter_object_list``, ``send_object_list`` / ``recv_object_list``.

Objects travel in disttorch's checkpoint format (``disttorch.serialization``: msgpack with type tags for
tuples, sets, dtypes, tensors...), never pickle: receiving runs no code, and an object of a class is rebuilt
only when that class is allowlisted with ``disttorch.serialization.add_safe_globals`` (as ``disttorch.load``
requires). Lengths go first (an int64 tensor), then the bytes as uint8 tensors through the tensor
collectives, so fingerprints and timeouts apply here too. On a pure ``backend="nccl"`` group those CPU tensors are
staged through the current CUDA device (``_staging.host_tensors_on_device``), as PyTorch moves them there.
"""
from __future__ import annotations

import io
from typing import Any, Optional

import numpy as np

from .. import _internals as E
from .. import serialization as S
from .collectives import all_gather, broadcast, gather, irecv, recv, scatter, send
from ._staging import host_tensors_on_device
from .groups import resolve_group
from .runner import group_peer

__all__ = ["broadcast_object_list", "all_gather_object", "gather_object", "scatter_object_list", "send_object_list",
           "recv_object_list"]


def _encode(obj: Any, op: str) -> np.ndarray:
    out = io.BytesIO()
    try:
        S.save(obj, out)
    except TypeError as e:
        raise TypeError(f"{op}: cannot serialise an object of type {type(obj).__name__}: "
                        f"{str(e).removeprefix('disttorch.save: ')}") from None
    return np.frombuffer(out.getvalue(), np.uint8)


def _decode(data: np.ndarray, op: str, rank: int) -> Any:
    f = io.BytesIO(data.tobytes())
    f.name = f"{op} (the object from rank {rank})"
    return S.load(f)


def _t(arr: np.ndarray):
    return E.wrap(arr)


def _padded(payload: np.ndarray, size: int) -> np.ndarray:
    buf = np.zeros(size, np.uint8)
    buf[:payload.size] = payload
    return buf


@host_tensors_on_device()
def broadcast_object_list(object_list: list, src: Optional[int] = None, group=None, device=None,
                          group_src: Optional[int] = None) -> None:
    """Replace ``object_list``'s entries on every rank by those of global rank ``src`` (default 0).

    Example:
        >>> objs = [{"epoch": 3}, (1, 2)] if dist.get_rank() == 0 else [None, None]
        >>> dist.broadcast_object_list(objs, src=0)
    """
    op = "broadcast_object_list"
    g = resolve_group(group, op)
    if g is None:
        return
    root = group_peer(g, src, group_src, op, "src", default=g._ranks[0] if group_src is None else None)
    n = len(object_list)
    if g._pg.rank == root:
        payloads = [_encode(o, op) for o in object_list]
        sizes = np.array([p.size for p in payloads], np.int64)
    else:
        sizes = np.zeros(n, np.int64)
    broadcast(_t(sizes), group=g, group_src=root)
    total = int(sizes.sum())
    data = np.concatenate(payloads) if g._pg.rank == root and n else np.empty(total, np.uint8)
    if total:
        broadcast(_t(data), group=g, group_src=root)
    if g._pg.rank != root:
        offsets = np.concatenate([[0], np.cumsum(sizes)])
        for i in range(n):
            object_list[i] = _decode(data[offsets[i]:offsets[i + 1]], op, g._ranks[root])


@host_tensors_on_device()
def all_gather_object(object_list: list, obj: Any, group=None) -> None:
    """``object_list[r]`` receives rank r's ``obj`` on every rank (``object_list`` has one slot per rank)."""
    op = "all_gather_object"
    g = resolve_group(group, op)
    if g is None:
        return
    n = g._pg.size
    if len(object_list) != n:
        raise ValueError(f"{op}: object_list has {len(object_list)} entries but the group has {n} ranks")
    payload = _encode(obj, op)
    sizes = [_t(np.zeros(1, np.int64)) for _ in range(n)]
    all_gather(sizes, _t(np.array([payload.size], np.int64)), group=g)
    lens = [int(E.array(s)[0]) for s in sizes]
    width = max(lens)
    outs = [_t(np.empty(width, np.uint8)) for _ in range(n)]
    all_gather(outs, _t(_padded(payload, width)), group=g)
    for r in range(n):
        object_list[r] = _decode(E.array(outs[r])[:lens[r]], op, g._ranks[r])


@host_tensors_on_device()
def gather_object(obj: Any, object_gather_list: Optional[list] = None, dst: Optional[int] = None, group=None,
                  group_dst: Optional[int] = None) -> None:
    """On global rank ``dst`` (default 0), ``object_gather_list[r]`` receives rank r's ``obj``."""
    op = "gather_object"
    g = resolve_group(group, op)
    if g is None:
        return
    root = group_peer(g, dst, group_dst, op, "dst", default=g._ranks[0] if group_dst is None else None)
    n, me = g._pg.size, g._pg.rank
    if me == root:
        if object_gather_list is None or len(object_gather_list) != n:
            raise ValueError(f"{op}: object_gather_list must have one entry per rank ({n}) on the destination rank")
    elif object_gather_list:
        raise ValueError("Argument ``object_gather_list`` must NOT be specified on non-destination ranks.")
    payload = _encode(obj, op)
    sizes = [_t(np.zeros(1, np.int64)) for _ in range(n)]
    all_gather(sizes, _t(np.array([payload.size], np.int64)), group=g)
    lens = [int(E.array(s)[0]) for s in sizes]
    width = max(lens)
    outs = [_t(np.empty(width, np.uint8)) for _ in range(n)] if me == root else None
    gather(_t(_padded(payload, width)), outs, group=g, group_dst=root)
    if me == root:
        for r in range(n):
            object_gather_list[r] = _decode(E.array(outs[r])[:lens[r]], op, g._ranks[r])


@host_tensors_on_device()
def scatter_object_list(scatter_object_output_list: list, scatter_object_input_list: Optional[list] = None,
                        src: Optional[int] = None, group=None, group_src: Optional[int] = None) -> None:
    """Rank r's ``scatter_object_output_list[0]`` receives ``scatter_object_input_list[r]`` of global rank ``src``
    (default 0)."""
    op = "scatter_object_list"
    if not isinstance(scatter_object_output_list, list) or len(scatter_object_output_list) < 1:
        raise ValueError("Expected argument scatter_object_output_list to be a list of size at least 1.")
    g = resolve_group(group, op)
    if g is None:
        return
    root = group_peer(g, src, group_src, op, "src", default=g._ranks[0] if group_src is None else None)
    n, me = g._pg.size, g._pg.rank
    width = np.zeros(1, np.int64)
    if me == root:
        if scatter_object_input_list is None or len(scatter_object_input_list) != n:
            raise ValueError(f"{op}: scatter_object_input_list must have one entry per rank ({n}) on the source rank")
        payloads = [_encode(o, op) for o in scatter_object_input_list]
        width[0] = max(p.size for p in payloads)
    broadcast(_t(width), group=g, group_src=root)
    w = int(width[0])
    data, size = _t(np.empty(w, np.uint8)), _t(np.zeros(1, np.int64))
    ins = [_t(_padded(p, w)) for p in payloads] if me == root else None
    scatter(data, ins, group=g, group_src=root)
    sizes = [_t(np.array([p.size], np.int64)) for p in payloads] if me == root else None
    scatter(size, sizes, group=g, group_src=root)
    scatter_object_output_list[0] = _decode(E.array(data)[:int(E.array(size)[0])], op, g._ranks[root])


@host_tensors_on_device()
def send_object_list(object_list: list, dst: Optional[int] = None, group=None, device=None,
                     group_dst: Optional[int] = None) -> None:
    """Send the objects of ``object_list`` to global rank ``dst`` (which calls ``recv_object_list``)."""
    op = "send_object_list"
    g = resolve_group(group, op)
    if g is None:
        return
    peer = group_peer(g, dst, group_dst, op, "dst")
    payloads = [_encode(o, op) for o in object_list]
    sizes = np.array([p.size for p in payloads], np.int64)
    send(_t(sizes), group=g, group_dst=peer)
    if sizes.sum():
        send(_t(np.concatenate(payloads)), group=g, group_dst=peer)


@host_tensors_on_device()
def recv_object_list(object_list: list, src: Optional[int] = None, group=None, device=None,
                     group_src: Optional[int] = None) -> int:
    """Fill ``object_list`` with the objects sent by global rank ``src`` (None: any rank); returns the sender."""
    op = "recv_object_list"
    g = resolve_group(group, op)
    if g is None:
        return -1
    sizes = np.zeros(len(object_list), np.int64)
    if src is None and group_src is None:
        sender = recv(_t(sizes), group=g)
    else:
        peer = group_peer(g, src, group_src, op, "src")
        irecv(_t(sizes), group=g, group_src=peer).wait()
        sender = g._ranks[peer]
    total = int(sizes.sum())
    data = np.empty(total, np.uint8)
    if total:
        recv(_t(data), src=sender, group=g)
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    for i in range(len(object_list)):
        object_list[i] = _decode(data[offsets[i]:offsets[i + 1]], op, sender)
    return sender
