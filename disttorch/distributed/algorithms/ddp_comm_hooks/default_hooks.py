"""The built-in DDP communication hooks (``torch.distributed.algorithms.ddp_comm_hooks.default_hooks``).

A hook is ``hook(state, bucket) -> Future``: ``state`` is what ``register_comm_hook`` received (here: a
process group, or None for the world), ``bucket`` a ``GradBucket``; the future's value is the averaged
bucket buffer. The compression hooks halve the bytes on the wire by all-reducing a float16/bfloat16 copy
(pre-divided by the world size, so the sum cannot overflow where the average would not) and writing the
result back into the full-precision buffer.
"""
from __future__ import annotations

from typing import Any

from .... import _dtype as D
from ....futures import Future

__all__ = ["allreduce_hook", "fp16_compress_hook", "bf16_compress_hook"]


def _dist():
    from .... import distributed as dist

    return dist


def _group_size(process_group) -> int:
    dist = _dist()
    return dist.get_world_size(process_group) if process_group is not None else dist.get_world_size()


def _allreduce_fut(process_group, tensor) -> Future:
    """Average ``tensor`` over the group in place; the future's value is ``tensor``."""
    tensor.div_(_group_size(process_group))
    work = _dist().all_reduce(tensor, group=process_group, async_op=True)
    return Future._of_work(work, tensor)


def allreduce_hook(process_group: Any, bucket) -> Future:
    """Average the bucket with one all-reduce (what DDP does without a hook)."""
    return _allreduce_fut(process_group, bucket.buffer())


def _compress_hook(dtype, process_group, bucket) -> Future:
    buffer = bucket[0] if isinstance(bucket, tuple) else bucket.buffer()
    compressed = buffer.to(dtype).div_(_group_size(process_group))
    work = _dist().all_reduce(compressed, group=process_group, async_op=True)

    def decompress(fut):
        value = fut.value()
        buffer.copy_(value[0] if isinstance(value, (list, tuple)) else value)
        return buffer

    return Future._of_work(work, compressed).then(decompress)


def fp16_compress_hook(process_group: Any, bucket) -> Future:
    """All-reduce the bucket in float16 and write the average back in the bucket's dtype."""
    return _compress_hook(D.float16, process_group, bucket)


def bf16_compress_hook(process_group: Any, bucket) -> Future:
    """All-reduce the bucket in bfloat16 and write the average back in the bucket's dtype."""
    return _compress_hook(D.bfloat16, process_group, bucket)
