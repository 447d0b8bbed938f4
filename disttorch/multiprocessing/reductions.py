"""How tensors cross processes: ``ForkingPickler`` reductions, as ``torch.multiprocessing.reductions``.

``init_reductions()`` (run when ``disttorch.multiprocessing`` is imported) registers :func:`reduce_tensor`
for ``Tensor`` and ``nn.Parameter`` with multiprocessing's ``ForkingPickler``, which pickles everything
sent through ``Queue``, ``SimpleQueue``, ``Pipe``, ``Pool`` and the arguments of ``spawn``/``forkserver``
processes. As in PyTorch, a CPU tensor is first moved to shared memory in place (``share_memory_()``)
and only a handle travels: the receiver maps the same memory, so its in-place writes are seen by the
sender and the other way round. With the ``file_descriptor`` strategy the handle carries a descriptor,
so the sender must still be alive when the receiver unpickles (as in PyTorch).

This pickling is only for processes the job started itself (their pipes and sockets are private, and
multiprocessing authenticates its connections); nothing here reads bytes from files or other hosts.
Other picklers (``pickle.dumps``, ``copy``) still copy tensors by value.
"""
from __future__ import annotations

import multiprocessing
import multiprocessing.resource_sharer  # noqa: F401 - loaded before any fork (PyTorch does the same)
import os
from multiprocessing.reduction import ForkingPickler

import numpy as np

from .. import _internals as E
from . import _segments as S

__all__ = ["ForkingPickler", "fd_id", "init_reductions", "rebuild_tensor", "reduce_tensor"]

fd_id = S.fd_id


def _handle(seg: S.SharedSegment) -> tuple:
    if seg.strategy == "file_descriptor":
        return ("fd", (multiprocessing.reduction.DupFd(seg.fd), os.getpid()))
    S.add_message_ref(seg)  # keeps the file alive until the receiver has mapped it (PyTorch's _shared_incref)
    return ("fs", seg.name)


def reduce_tensor(tensor):
    """Reduce a tensor for ``ForkingPickler``: move it to shared memory and send a handle to that memory.

    Raises:
        RuntimeError: for a non-leaf tensor that requires grad (autograd does not cross processes).
    """
    from .._dtype import _FROM_NP
    from . import get_sharing_strategy

    if tensor._requires_grad and tensor.grad_fn is not None:
        raise RuntimeError("Cowardly refusing to serialize non-leaf tensor which requires_grad, since autograd does "
                           "not support crossing process boundaries.  If you just want to transfer the data, call "
                           "detach() on the tensor before serializing (e.g., putting it on the queue).")
    state = getattr(tensor, "__dict__", None) or None
    arr = tensor._data
    if not isinstance(arr, np.ndarray):
        # A CUDA tensor: copied through host memory (no CUDA IPC in disttorch yet).
        return (_rebuild_device_copy, (type(tensor), E.to_host(arr), tensor.device.index, tensor._requires_grad, state))
    S.share_tensors((tensor,), get_sharing_strategy())
    arr = tensor._data
    seg = S.segment_of(arr)
    offset = arr.__array_interface__["data"][0] - seg.addr - seg.offset if arr.size else 0
    return (rebuild_tensor, (type(tensor), _handle(seg), _FROM_NP[arr.dtype].name, arr.shape, arr.strides, offset,
                             tensor._requires_grad, state))


def rebuild_tensor(cls, handle, dtype_name, shape, strides, offset, requires_grad, state):
    """The receiving side of :func:`reduce_tensor`: map the segment (once per process) and wrap it."""
    from .._dtype import _NAMES
    from .._tensor import _rebuild
    from ..nn.parameter import Parameter, _rebuild_parameter

    if dtype_name not in _NAMES:
        raise RuntimeError(f"shared tensor: unknown dtype {dtype_name!r}")
    kind, ref = handle
    if kind == "fd":
        dup_fd, sender = ref
        try:
            seg = S.attach_fd(dup_fd)
        except OSError as e:
            raise RuntimeError(f"shared tensor: could not receive the memory of a tensor sent by process {sender} "
                               f"({e}): with the 'file_descriptor' sharing strategy the sender must stay alive until "
                               "the receiver has unpickled it (keep it waiting, e.g. on an Event), or call "
                               "torch.multiprocessing.set_sharing_strategy('file_system') in the sender") from e
    elif kind == "fs":
        seg = S.attach_named(ref)
    else:
        raise RuntimeError(f"shared tensor: unknown handle kind {kind!r}")
    # np.ndarray checks that shape, strides and offset stay inside the segment.
    arr = np.ndarray(tuple(shape), _NAMES[dtype_name].np, buffer=seg.array(), offset=seg.offset + offset,
                     strides=tuple(strides))
    if isinstance(cls, type) and issubclass(cls, Parameter):
        return _rebuild_parameter(cls, arr, requires_grad, state)
    return _rebuild(cls, arr, requires_grad, state)


def _rebuild_device_copy(cls, host, index, requires_grad, state):
    from .._tensor import _rebuild, _wrap
    from ..autograd.grad_mode import no_grad

    with no_grad():
        arr = _wrap(host).cuda(index)._data
    return _rebuild(cls, arr, requires_grad, state)


def init_reductions() -> None:
    """Register the tensor reductions with ``ForkingPickler`` (idempotent)."""
    from .._tensor import Tensor
    from ..nn.parameter import Parameter

    ForkingPickler.register(Tensor, reduce_tensor)
    ForkingPickler.register(Parameter, reduce_tensor)
