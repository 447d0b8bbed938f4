"""Differentiable collectives, as ``torch.distributed.nn.functional``.

Unlike ``dist.all_reduce`` (in place, outside autograd), these return new tensors and record a node whose
backward runs the adjoint collective: all_reduce(SUM/AVG) <-> all_reduce, all_gather <-> reduce_scatter,
broadcast <-> reduce to the source, all_to_all <-> all_to_all. Every rank must run backward, since the
backward is a collective too.

Example:
    >>> from disttorch.distributed.nn.functional import all_gather
    >>> feats = all_gather(local_feats)          # a tuple, one tensor per rank, gradients flow back
"""
from __future__ import annotations

from ... import _internals as E
from ...autograd.function import Function
from .. import distributed_c10d as c10d
from ..collectives import all_gather as _all_gather
from ..collectives import all_reduce as _all_reduce
from ..collectives import all_to_all as _all_to_all
from ..collectives import broadcast as _broadcast
from ..collectives import reduce as _reduce
from ..collectives import reduce_scatter as _reduce_scatter
from ..process_group import ReduceOp
from ..runner import check_tensor

__all__ = ["all_reduce", "all_gather", "broadcast", "reduce_scatter", "all_to_all"]


def _fresh(t):
    """A contiguous copy of ``t`` outside the graph."""
    return E.wrap(E.array(t).copy(order="C"))


class _AllReduce(Function):
    @staticmethod
    def forward(ctx, op, group, tensor):
        ctx.op, ctx.group = op, group
        out = _fresh(tensor)
        _all_reduce(out, op=op, group=group)
        return out

    @staticmethod
    def backward(ctx, grad):
        if ctx.op not in (ReduceOp.SUM, ReduceOp.AVG):
            raise RuntimeError(f"all_reduce: backward is only defined for ReduceOp.SUM and ReduceOp.AVG, not "
                               f"{ctx.op.name}")
        return None, None, _AllReduce.apply(ctx.op, ctx.group, grad)


class _AllGather(Function):
    @staticmethod
    def forward(ctx, group, tensor):
        ctx.group = group
        n = c10d.get_world_size(group)
        outs = [E.wrap(E.array_module(tensor).empty(E.array(tensor).shape, E.array(tensor).dtype)) for _ in range(n)]
        _all_gather(outs, tensor, group=group)
        return tuple(outs)

    @staticmethod
    def backward(ctx, *grads):
        return (None, _ReduceScatter.apply(ReduceOp.SUM, ctx.group, *grads))


class _ReduceScatter(Function):
    @staticmethod
    def forward(ctx, op, group, *inputs):
        ctx.op, ctx.group = op, group
        first = inputs[0]
        out = E.wrap(E.array_module(first).empty(E.array(first).shape, E.array(first).dtype))
        _reduce_scatter(out, [_fresh(x) for x in inputs], op=op, group=group)
        return out

    @staticmethod
    def backward(ctx, grad):
        if ctx.op not in (ReduceOp.SUM, ReduceOp.AVG):
            raise RuntimeError(f"reduce_scatter: backward is only defined for ReduceOp.SUM and ReduceOp.AVG, not "
                               f"{ctx.op.name}")
        grads = _AllGather.apply(ctx.group, grad.contiguous())
        if ctx.op is ReduceOp.AVG:
            n = len(grads)
            grads = tuple(g / n for g in grads)
        return (None, None) + tuple(grads)


class _Broadcast(Function):
    @staticmethod
    def forward(ctx, src, group, tensor):
        ctx.src, ctx.group = src, group
        out = _fresh(tensor)
        _broadcast(out, src=src, group=group)
        return out

    @staticmethod
    def backward(ctx, grad):
        gx = _fresh(grad)
        _reduce(gx, dst=ctx.src, op=ReduceOp.SUM, group=ctx.group)
        if c10d.get_rank() != ctx.src:
            E.array(gx)[...] = 0
        return None, None, gx


class _AllToAll(Function):
    @staticmethod
    def forward(ctx, group, out_shapes, *inputs):
        ctx.group = group
        ctx.in_shapes = [tuple(x.shape) for x in inputs]
        first = inputs[0]
        outs = [E.wrap(E.array_module(first).empty(s, E.array(first).dtype)) for s in out_shapes]
        _all_to_all(outs, [_fresh(x) for x in inputs], group=group)
        return tuple(outs)

    @staticmethod
    def backward(ctx, *grads):
        return (None, None) + tuple(_AllToAll.apply(ctx.group, ctx.in_shapes, *[g.contiguous() for g in grads]))


def all_reduce(tensor, op: ReduceOp = ReduceOp.SUM, group=None):
    """The reduction of ``tensor`` over all ranks, as a new tensor; backward all-reduces the gradient
    (SUM and AVG)."""
    check_tensor(tensor, "tensor")
    return _AllReduce.apply(op, group, tensor)


def all_gather(tensor, group=None) -> tuple:
    """A tuple with every rank's ``tensor``; backward reduce-scatters the gradients (sum over ranks)."""
    check_tensor(tensor, "tensor")
    return _AllGather.apply(group, tensor)


def broadcast(tensor, src: int, group=None):
    """Global rank ``src``'s ``tensor`` on every rank; backward sums the gradients onto ``src`` (zeros elsewhere)."""
    check_tensor(tensor, "tensor")
    return _Broadcast.apply(src, group, tensor)


def reduce_scatter(output, input_list: list, op: ReduceOp = ReduceOp.SUM, group=None):
    """The reduction over ranks of their ``input_list[rank]``, as a new tensor shaped like ``output``; backward
    all-gathers the gradient."""
    check_tensor(output, "output")
    if len(input_list) != c10d.get_world_size(group):
        raise ValueError(f"reduce_scatter: input_list has {len(input_list)} tensors but the group has "
                         f"{c10d.get_world_size(group)} ranks")
    for i, x in enumerate(input_list):
        check_tensor(x, f"input_list[{i}]")
        if tuple(x.shape) != tuple(output.shape):
            raise RuntimeError(f"reduce_scatter: input_list[{i}] has shape {list(x.shape)} but output has "
                               f"{list(output.shape)}")
    return _ReduceScatter.apply(op, group, *input_list)


def all_to_all(output_tensor_list: list, input_tensor_list: list, group=None) -> tuple:
    """Rank r's ``input_tensor_list[self]`` as entry r of the result (shaped like ``output_tensor_list[r]``);
    backward sends the gradients back."""
    shapes = [tuple(t.shape) for t in output_tensor_list]
    return _AllToAll.apply(group, shapes, *input_tensor_list)
