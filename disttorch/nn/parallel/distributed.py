"""``DistributedDataParallel``: data parallelism as a module wrapper plus gradient hooks (DESIGN rule 6).

At construction the parameters and buffers of rank 0 are broadcast (coalesced into one flat buffer per
dtype), and the parameters are split into *buckets* in reverse registration order (the order in which
backward produces their gradients): a small first bucket (1 MiB, so communication starts early), then
``bucket_cap_mb`` each. Every parameter gets a post-accumulate-grad hook that copies its ``.grad`` into its
slot of the bucket's flat buffer; when a bucket is complete, and every earlier bucket has been launched,
its all-reduce starts asynchronously (buckets launch in the same order on every rank), so communication
overlaps the rest of backward. Construction checks once that every rank has the same parameter shapes and
dtypes, so the bucket all-reduces skip the per-call fingerprint round trip that would otherwise make every
bucket a rendezvous of all ranks in the middle of backward (see _reducer.py, which holds the buckets).
The engine has no end-of-backward callback, so the reduction is finished by the hook of the last parameter
to become ready: it waits for every bucket's work, and the averaged gradients are copied back into
``.grad`` (or already are ``.grad``, with ``gradient_as_bucket_view``).

A parameter that gets no gradient leaves its bucket incomplete; the next forward then raises PyTorch's
"Expected to have finished reduction in the prior iteration" error naming the parameters, instead of
hanging. With ``find_unused_parameters=True`` (or ``static_graph=True``) the forward walks the autograd
graph from the outputs, and parameters it does not reach count as ready with zero gradients.
"""
from __future__ import annotations

import weakref
from contextlib import contextmanager
from typing import Callable, List, Optional

import numpy as np

from ... import _internals as E
from ..._tensor import Tensor
from ...autograd.function import AccumulateGrad
from ...autograd.grad_mode import is_grad_enabled
from ...distributed.algorithms.join import Join, Joinable, JoinHook
from ...futures import Future
from ..modules.module import Module
from . import _ddp_args as _args
from . import _reducer
from ._reducer import GradBucket, _Bucket, _compute_bucket_assignment_by_size

__all__ = ["DistributedDataParallel", "GradBucket"]

_MB = 1024 * 1024
_DEFAULT_FIRST_BUCKET_BYTES = 1 * _MB
_BROADCAST_BUCKET_BYTES = 250 * _MB


def _dist():
    from ... import distributed as dist

    return dist


def _tensors_in(obj, out: list) -> list:
    """Every Tensor inside a (nested) tuple/list/dict/dataclass-free output structure."""
    if isinstance(obj, Tensor):
        out.append(obj)
    elif isinstance(obj, (list, tuple)):
        for o in obj:
            _tensors_in(o, out)
    elif isinstance(obj, dict):
        for o in obj.values():
            _tensors_in(o, out)
    return out


def _reachable_leaves(outputs) -> set:
    """ids of the leaf tensors whose AccumulateGrad nodes are reachable from ``outputs``' grad_fns."""
    found, seen, stack = set(), set(), []
    for t in _tensors_in(outputs, []):
        if t.grad_fn is not None:
            stack.append(t.grad_fn)
        elif t._requires_grad:
            found.add(id(t))
    while stack:
        fn = stack.pop()
        if fn in seen:
            continue
        seen.add(fn)
        if fn.__class__ is AccumulateGrad:
            found.add(id(fn.variable))
            continue
        for nxt, _ in fn.next_functions:
            if nxt is not None and nxt not in seen:
                stack.append(nxt)
    return found


class _DDPJoinHook(JoinHook):
    def __init__(self, ddp: "DistributedDataParallel", divide_by_initial_world_size: bool) -> None:
        self.ddp = ddp
        ddp._divide_by_initial_world_size = divide_by_initial_world_size

    def main_hook(self) -> None:
        ddp = self.ddp
        if ddp._will_sync_module_buffers():
            ddp._sync_buffers(ddp._find_common_rank(ddp._rank, False))
        should_sync = ddp._check_global_requires_backward_grad_sync(is_joined_rank=True)
        ddp.require_forward_param_sync = should_sync
        if should_sync:
            ddp._match_all_reduce_for_bwd_pass()

    def post_hook(self, is_last_joiner: bool) -> None:
        ddp = self.ddp
        ddp._sync_module_states(ddp._find_common_rank(ddp._rank, is_last_joiner))


class DistributedDataParallel(Module, Joinable):
    """Synchronous data parallelism over the ranks of a process group (``torch.nn.parallel.DistributedDataParallel``).

    Each rank runs the wrapped module on its own batch; gradients are averaged across ranks during
    backward, so after ``optimizer.step()`` the parameters are identical on every rank.

    Args:
        module: the module to replicate; ``ddp.module`` is it, and ``state_dict`` keys are ``module.``-prefixed.
        device_ids, output_device: for GPU modules; with a CPU module they must be None or empty (PyTorch's
            ValueError otherwise).
        dim: accepted for compatibility.
        broadcast_buffers: deprecated in PyTorch 2.13 (FutureWarning when given): broadcast rank 0's buffers
            (e.g. BatchNorm running stats) before each forward, and at construction.
        forward_sync_buffers: the new name: broadcast rank 0's buffers before each forward (default True);
            buffers are then always synced at construction.
        init_sync: broadcast rank 0's parameters (and buffers) at construction.
        process_group: the group to average over (default: the world).
        bucket_cap_mb: bucket size in MiB (default 25; the first bucket is 1 MiB when this is left default).
        bucket_cap_mb_list: one size per bucket in MiB (the last one repeats).
        find_unused_parameters: detect parameters that the forward did not use (walks the autograd graph
            each iteration) and treat their gradients as zero.
        check_reduction: deprecated, ignored (as in PyTorch).
        gradient_as_bucket_view: ``.grad`` tensors become views of the bucket buffers (saves a copy each way).
        static_graph: the set of used parameters does not change between iterations; here it enables the
            unused-parameter detection of ``find_unused_parameters``.

    Example:
        >>> dist.init_process_group("zmq")
        >>> model = DistributedDataParallel(Net())
        >>> loss_fn(model(x), y).backward()   # gradients are averaged over the ranks here
        >>> optimizer.step()
    """

    def __init__(self, module: Module, device_ids=None, output_device=None, dim: int = 0, broadcast_buffers=None,
                 init_sync: bool = True, process_group=None, bucket_cap_mb: Optional[float] = None,
                 find_unused_parameters: bool = False, check_reduction: bool = False,
                 gradient_as_bucket_view: bool = False, static_graph: bool = False,
                 delay_all_reduce_named_params=None, param_to_hook_all_reduce=None, mixed_precision=None,
                 device_mesh=None, skip_all_reduce_unused_params: bool = False,
                 bucket_cap_mb_list: Optional[List[float]] = None, batched_grad_copy: bool = False,
                 forward_sync_buffers: Optional[bool] = None) -> None:
        Module.__init__(self)
        Joinable.__init__(self)
        # PyTorch 2.13's constructor checks, in its order and with its messages.
        if (delay_all_reduce_named_params is not None) != (param_to_hook_all_reduce is not None):
            raise ValueError("delay_all_reduce_named_params and param_to_hook_all_reduce need to be set at the same "
                             "time.")
        if process_group is not None and device_mesh is not None:
            raise RuntimeError("Cannot specify both process_group and device_mesh arguments.")
        dist = _dist()
        if not dist.is_initialized():
            raise ValueError("Default process group has not been initialized, please make sure to call "
                             "init_process_group.")
        all_params = list(module.parameters())
        named = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
        if not named:
            raise RuntimeError("DistributedDataParallel is not needed when a module doesn't have any parameter "
                               "that requires a gradient.")
        if device_ids is not None and len(device_ids) > 1:
            raise ValueError("device_ids can only be None or contain a single element.")
        device_ids, output_device = _args.device_args(all_params, device_ids, output_device)
        forward_sync_buffers, init_sync_buffers = _args.buffer_sync_flags(broadcast_buffers, forward_sync_buffers)
        if check_reduction:
            _args.warn_check_reduction()
        self.module = module
        self.device_ids = device_ids
        self.output_device = output_device
        self.dim = dim
        self.forward_sync_buffers = bool(forward_sync_buffers)
        self.broadcast_buffers = self.forward_sync_buffers  # the pre-2.13 attribute name
        self.batched_grad_copy = batched_grad_copy
        self.process_group = process_group
        self.find_unused_parameters = find_unused_parameters
        self.gradient_as_bucket_view = gradient_as_bucket_view
        self.static_graph = static_graph
        self.require_backward_grad_sync = True
        self.require_forward_param_sync = True
        self._dist = dist
        self._rank = dist.get_rank(process_group) if process_group is not None else dist.get_rank()
        self._world_size = dist.get_world_size(process_group) if process_group is not None else dist.get_world_size()
        self._detect_unused = find_unused_parameters or static_graph
        self._param_names = [n for n, _ in named]
        self._params = [p for _, p in named]
        self._buffers_list = [b for b in module.buffers() if b is not None]
        self._comm_hook: Optional[Callable] = None
        self._comm_state = None
        self._divide_by_initial_world_size = True
        self._check_buckets = _reducer.check_buckets()
        self._forward_work = None
        cap = 25 * _MB if bucket_cap_mb is None else int(bucket_cap_mb * _MB)
        limits = [_DEFAULT_FIRST_BUCKET_BYTES, cap] if bucket_cap_mb is None else [cap]
        if bucket_cap_mb_list:
            limits = [int(mb * _MB) for mb in bucket_cap_mb_list]
            cap = max(limits)
        self.bucket_bytes_cap = cap
        self._build_buckets(limits)
        if self._world_size > 1:
            _reducer.verify_same_layout(dist, self._params, process_group, self._rank)
        if init_sync and self._world_size > 1:
            self._sync_module_states(0, with_buffers=init_sync_buffers)
        self._reset_iteration()
        self._expect_hooks = False
        ref = weakref.ref(self)
        self._hook_handles = [p.register_post_accumulate_grad_hook(_GradReadyHook(ref, i))
                              for i, p in enumerate(self._params)]

    # ---- construction ----------------------------------------------------------------------------
    def _build_buckets(self, limits: List[int]) -> None:
        order = list(range(len(self._params)))[::-1]
        sizes = [E.array(self._params[i]).nbytes for i in order]
        keys = [str(E.array(self._params[i]).dtype) for i in order]
        assignment = _compute_bucket_assignment_by_size(sizes, keys, limits)
        self._buckets: List[_Bucket] = []
        self._param_slot = [(0, 0)] * len(self._params)  # param index -> (bucket, position in bucket)
        for b, positions in enumerate(assignment):
            ids = [order[k] for k in positions]
            self._buckets.append(_Bucket(b, ids, [self._params[i] for i in ids]))
            for j, i in enumerate(ids):
                self._param_slot[i] = (b, j)

    def _global_rank(self, group_rank: int) -> int:
        if self.process_group is None:
            return group_rank
        get = getattr(self._dist, "get_global_rank", None)
        return get(self.process_group, group_rank) if get is not None else group_rank

    def _broadcast_coalesced(self, tensors: List[Tensor], src_group_rank: int) -> None:
        """Broadcast ``tensors`` from group rank ``src`` with one flat buffer per dtype (<= 250 MiB each)."""
        src = self._global_rank(src_group_rank)
        groups: dict = {}
        for t in tensors:
            groups.setdefault(E.array(t).dtype, []).append(t)
        for dtype, ts in groups.items():
            chunk, nbytes = [], 0
            for t in ts + [None]:
                if t is not None and (not chunk or nbytes + E.array(t).nbytes <= _BROADCAST_BUCKET_BYTES):
                    chunk.append(t)
                    nbytes += E.array(t).nbytes
                    continue
                if chunk:
                    xp = E.array_module(chunk[0])
                    flat = xp.concatenate([E.array(c).reshape(-1) for c in chunk]) if len(chunk) > 1 \
                        else E.array(chunk[0]).reshape(-1).copy()
                    self._dist.broadcast(E.wrap(flat), src, group=self.process_group)
                    off = 0
                    for c in chunk:
                        arr = E.array(c)
                        arr[...] = flat[off:off + arr.size].reshape(arr.shape)
                        E.bump_version(c)
                        off += arr.size
                chunk, nbytes = ([t], E.array(t).nbytes) if t is not None else ([], 0)

    def _sync_module_states(self, src_group_rank: int, with_buffers: bool = True) -> None:
        """Make every rank's parameters (and buffers) equal to those of ``src_group_rank``."""
        tensors = [p for p in self.module.parameters()] + (self._buffers_list if with_buffers else [])
        if tensors:
            self._broadcast_coalesced(tensors, src_group_rank)

    def _sync_buffers(self, src_group_rank: int = 0) -> None:
        if self._buffers_list:
            self._broadcast_coalesced(self._buffers_list, src_group_rank)

    def _will_sync_module_buffers(self) -> bool:
        return (self.require_forward_param_sync and self.forward_sync_buffers and len(self._buffers_list) > 0
                and self._world_size > 1)

    # ---- forward ---------------------------------------------------------------------------------
    def forward(self, *inputs, **kwargs):
        grad_sync = is_grad_enabled() and self.require_backward_grad_sync
        if grad_sync:
            self._check_previous_reduction()
        self._forward_work = Join.notify_join_context(self)
        if self._will_sync_module_buffers():
            join = self._join_config.enable
            self._sync_buffers(self._find_common_rank(self._rank, True) if join else 0)
        if self._join_config.enable:
            self._check_global_requires_backward_grad_sync(is_joined_rank=False)
        output = self.module(*inputs, **kwargs)
        if grad_sync:
            self.require_forward_param_sync = True
            self._prepare_for_backward(output)
        else:
            self.require_forward_param_sync = False
            self._expect_hooks = False
        return output

    def _find_common_rank(self, input_rank: int, rank_cond: bool) -> int:
        t = E.wrap(np.array([input_rank if rank_cond else -1], dtype=np.int64))
        self._dist.all_reduce(t, op=self._dist.ReduceOp.MAX, group=self.process_group)
        r = int(E.array(t)[0])
        if r == -1:
            raise ValueError("BUG! Expected rank_cond to be true for at least one process.")
        return r

    def _check_global_requires_backward_grad_sync(self, is_joined_rank: bool) -> bool:
        flag = 1 if (not is_joined_rank and self.require_backward_grad_sync) else 0
        t = E.wrap(np.array([flag], dtype=np.int64))
        self._dist.all_reduce(t, group=self.process_group)
        return bool(E.array(t)[0])

    def _check_previous_reduction(self) -> None:
        if not (self._expect_hooks and self._hooks_fired):
            return
        missing = [i for i, m in enumerate(self._marked) if not m]
        self._expect_hooks = False
        self._hooks_fired = False
        idx = " ".join(str(i) for i in missing)
        names = ", ".join(self._param_names[i] for i in missing)
        raise RuntimeError(
            "Expected to have finished reduction in the prior iteration before starting a new one. This error "
            "indicates that your module has parameters that were not used in producing loss. You can enable "
            "unused parameter detection by passing the keyword argument `find_unused_parameters=True` to "
            "`disttorch.nn.parallel.DistributedDataParallel`, and by making sure all `forward` function outputs "
            "participate in calculating loss. If you already have done the above, then the distributed data "
            "parallel module wasn't able to locate the output tensors in the return value of your module's "
            "`forward` function.\n"
            f"Parameter indices which did not receive grad for rank {self._rank}: {idx}\n"
            f"Parameters which did not receive grad for rank {self._rank}: {names}")

    def _reset_iteration(self) -> None:
        self._marked = [False] * len(self._params)
        for b in self._buckets:
            b.pending = len(b.params)
            b.future = None
        self._next_bucket = 0
        self._hooks_fired = False
        self._unused: List[int] = []
        self._finalized = False
        # One rank with the built-in all-reduce on host buckets: the sum over ranks is each gradient itself and
        # the divisor is 1, so the backward moves nothing (a 1-rank MLP step copied 2.7 MB into the buckets and
        # back). Hooks still mark every parameter, and the reduction still finishes with the last one.
        solo = (self._world_size == 1 and self._comm_hook is None and not self.gradient_as_bucket_view
                and self._forward_work is None and not any(b.deferred for b in self._buckets))
        self._solo_left = len(self._params) if solo else -1

    def _prepare_for_backward(self, output) -> None:
        self._reset_iteration()
        self._expect_hooks = True
        if self._detect_unused:
            reached = _reachable_leaves(output)
            self._unused = [i for i, p in enumerate(self._params) if id(p) not in reached]

    # ---- backward: hooks, buckets, reduction -----------------------------------------------------
    def _on_grad_ready(self, i: int) -> None:
        if not self._expect_hooks:
            return
        if not self._hooks_fired:
            self._hooks_fired = True
            for u in self._unused:  # parameters the forward did not use count as ready with zero gradient
                self._mark_ready(u, used=False)
        if self._marked[i]:
            raise RuntimeError(
                f"Expected to mark a variable ready only once. This error is caused by one of the following reasons: "
                f"1) Use of a module parameter outside the `forward` function. 2) Reused parameters in multiple "
                f"reentrant backward passes. Parameter at index {i} with name {self._param_names[i]} has been marked "
                f"as ready twice. This means that multiple autograd engine hooks have fired for this particular "
                f"parameter during this iteration.")
        self._mark_ready(i, used=True)

    def _mark_ready(self, i: int, used: bool) -> None:
        self._marked[i] = True
        if self._solo_left > 0:  # one rank: nothing to average (see _reset_iteration)
            self._solo_left -= 1
            if self._solo_left == 0:
                self._expect_hooks = False
                self._finalized = True
            return
        b_idx, j = self._param_slot[i]
        bucket = self._buckets[b_idx]
        p = self._params[i]
        g = p._grad
        view = bucket.views[j]
        # The built-in all-reduce averages by dividing before the sum (as PyTorch); doing it while copying the
        # gradient into the bucket saves a pass over the bucket (~0.3 ms per 2.7 MB on one core).
        d = self._divisor() if self._comm_hook is None and view.dtype.kind == "f" and view.itemsize >= 4 else 1
        if bucket.deferred:
            pass  # a device bucket is packed in one go when complete (_pack)
        elif g is None:  # an unused parameter contributes zeros (or what it accumulated under no_sync)
            view[...] = 0
        elif g is not bucket.grad_views[j]:
            if d != 1:
                E.array_module(p).divide(E.array(g), d, out=view)
            else:
                view[...] = E.array(g)
            if self.gradient_as_bucket_view:
                p._grad = bucket.grad_views[j]
        elif d != 1:
            view /= d
        bucket.prescaled = d
        bucket.pending -= 1
        if bucket.pending == 0:
            if bucket.deferred:
                self._pack(bucket, d)
            while self._next_bucket < len(self._buckets) and self._buckets[self._next_bucket].pending == 0:
                self._launch(self._buckets[self._next_bucket])
                self._next_bucket += 1
            if self._next_bucket == len(self._buckets):
                self._finalize()

    def _pack(self, bucket: _Bucket, d: int) -> None:
        """Copy a complete device bucket's gradients in (one kernel launch where it applies)."""
        grads = []
        for j, i in enumerate(bucket.param_ids):
            g = self._params[i]._grad
            grads.append(None if g is None else bucket.views[j] if g is bucket.grad_views[j] else E.array(g))
        bucket.pack(grads, d)
        if self.gradient_as_bucket_view:
            for j, i in enumerate(bucket.param_ids):
                if self._params[i]._grad is not None:
                    self._params[i]._grad = bucket.grad_views[j]

    def _divisor(self) -> int:
        if self._divide_by_initial_world_size or self._forward_work is None:
            return self._world_size
        return max(self._forward_work.count(), 1)

    def _launch(self, bucket: _Bucket, buffer: Optional[Tensor] = None) -> Future:
        gb = bucket.grad_bucket(bucket.index == len(self._buckets) - 1, buffer)
        if bucket.wire is not None:  # fp16_compress_hook's all-reduce on the packed float16 wire (a joined rank: zeros)
            wire = bucket.wire if buffer is None else E.wrap(bucket.xp.zeros_like(E.array(bucket.wire)))
            fut = Future._of_work(_reducer.bucket_all_reduce(self._dist, wire, self._comm_state, self._check_buckets),
                                  wire)
        elif self._comm_hook is not None:
            fut = self._comm_hook(self._comm_state, gb)
        else:
            fut = self._builtin_allreduce(gb, bucket.prescaled if buffer is None else 1)
        if not hasattr(fut, "wait"):
            raise RuntimeError(f"DDP communication hook must return a Future, got {type(fut).__name__}")
        if buffer is None:
            bucket.future = fut
        return fut

    def _builtin_allreduce(self, gb: GradBucket, prescaled: int = 1) -> Future:
        buf = gb.buffer()
        d = self._divisor()
        if d != 1 and prescaled != d:
            buf.div_(d)
        work = _reducer.bucket_all_reduce(self._dist, buf, self.process_group, self._check_buckets)
        return Future._of_work(work, buf)

    def _finalize(self) -> None:
        self._expect_hooks = False
        self._finalized = True
        unused = set(self._unused)
        for bucket in self._buckets:
            result = bucket.future.wait()
            bucket.future = None
            if isinstance(result, (list, tuple)):
                result = result[0]
            if bucket.wire is None and result is not None and result is not bucket.tensor:
                bucket.buffer[...] = E.array(result).reshape(-1)
            if bucket.deferred and self._unpack(bucket):
                continue
            for j, i in enumerate(bucket.param_ids):
                p = self._params[i]
                if p._grad is None and i in unused:
                    continue  # as PyTorch: a parameter unused everywhere keeps grad None ...
                self._copy_back(p, bucket, j)
        if unused:
            self._fill_unused_used_elsewhere(unused)

    def _unpack(self, bucket: _Bucket) -> bool:
        """Copy a device bucket's result into every ``.grad`` by one kernel launch (True), or only bring a
        compressed result into the bucket for ``_copy_back`` (False)."""
        grads = [self._params[i]._grad for i in bucket.param_ids]
        direct = not self.gradient_as_bucket_view and all(g is not None for g in grads)
        if not bucket.unpack([E.array(g) for g in grads] if direct else None):
            return False
        for g in grads:
            E.bump_version(g)
        return True

    def _copy_back(self, p: Tensor, bucket: _Bucket, j: int) -> None:
        g = p._grad
        view = bucket.views[j]
        if self.gradient_as_bucket_view:
            if g is not bucket.grad_views[j]:
                p._grad = bucket.grad_views[j]
            E.bump_version(bucket.grad_views[j])
        elif g is None:
            p._grad = E.wrap(view.copy())
        else:
            E.array(g)[...] = view
            E.bump_version(g)

    def _fill_unused_used_elsewhere(self, unused: set) -> None:
        # ... unless another rank used it: a non-zero averaged gradient must reach .grad on every rank so
        # the optimizer steps agree. (An all-zero average from ranks that did use it is kept as None,
        # an approximation of PyTorch's global "used" bitmap that costs no extra collective.)
        for i in unused:
            p = self._params[i]
            if p._grad is not None:
                continue
            b_idx, j = self._param_slot[i]
            view = self._buckets[b_idx].views[j]
            if view.any():
                p._grad = self._buckets[b_idx].grad_views[j] if self.gradient_as_bucket_view else E.wrap(view.copy())

    def _match_all_reduce_for_bwd_pass(self) -> None:
        """A joined rank's side of one backward: all-reduce a zero buffer per bucket, in bucket order."""
        futures = []
        for bucket in self._buckets:
            if bucket.shadow is None or E.array(bucket.shadow).shape != bucket.buffer.shape:
                bucket.shadow = E.wrap(bucket.buffer.copy())
            E.array(bucket.shadow)[...] = 0
            futures.append(self._launch(bucket, bucket.shadow))
        for f in futures:
            f.wait()

    # ---- public API ------------------------------------------------------------------------------
    @contextmanager
    def no_sync(self):
        """Skip gradient synchronisation inside the block: gradients accumulate locally, and the first
        forward-backward outside the block all-reduces the accumulated sum.

        Example:
            >>> with ddp.no_sync():
            ...     for x in micro_batches[:-1]:
            ...         ddp(x).sum().backward()
            >>> ddp(micro_batches[-1]).sum().backward()   # synchronises here
        """
        old = self.require_backward_grad_sync
        self.require_backward_grad_sync = False
        try:
            yield
        finally:
            self.require_backward_grad_sync = old

    def register_comm_hook(self, state: object, hook: Callable) -> None:
        """Replace the gradient all-reduce with ``hook(state, bucket) -> Future`` whose value is the reduced
        bucket buffer (a tensor shaped like ``bucket.buffer()``, or a one-element list of it).

        Example:
            >>> from disttorch.distributed.algorithms.ddp_comm_hooks import default_hooks
            >>> ddp.register_comm_hook(None, default_hooks.fp16_compress_hook)
        """
        if not callable(hook):
            raise TypeError(f"register_comm_hook: hook must be callable, got {type(hook).__name__}")
        if self._comm_hook is not None:
            raise RuntimeError("register_comm_hook or register_builtin_comm_hook can only be called once.")
        if self._hooks_fired or self._finalized:
            raise RuntimeError("register_comm_hook must be called before the first backward pass.")
        self._comm_hook = hook
        self._comm_state = state
        from ...distributed.algorithms.ddp_comm_hooks import default_hooks

        if hook is default_hooks.fp16_compress_hook:  # device buckets take it over (see _reducer.py)
            for b in self._buckets:
                b.set_compression(default_hooks._group_size(state))

    def join(self, divide_by_initial_world_size: bool = True, enable: bool = True,
             throw_on_early_termination: bool = False) -> Join:
        """A ``Join`` context for uneven inputs: ranks that run out of batches shadow the gradient
        all-reduces with zeros until every rank is done; then all ranks take the model of the last one.

        Args:
            divide_by_initial_world_size: average over the initial world size (True) or over the ranks
                still training in that iteration (False).
            enable: False makes the context a no-op.
            throw_on_early_termination: raise on all ranks as soon as one runs out of data.
        """
        return Join([self], enable, throw_on_early_termination,
                    divide_by_initial_world_size=divide_by_initial_world_size)

    def join_hook(self, **kwargs) -> JoinHook:
        return _DDPJoinHook(self, kwargs.get("divide_by_initial_world_size", True))

    @property
    def join_device(self):
        return self._params[0].device

    @property
    def join_process_group(self):
        return self.process_group

    def _get_ddp_logging_data(self) -> dict:
        return {"world_size": self._world_size, "bucket_cap_bytes": self.bucket_bytes_cap,
                "num_buckets": len(self._buckets), "find_unused_parameters": self.find_unused_parameters,
                "gradient_as_bucket_view": self.gradient_as_bucket_view, "static_graph": self.static_graph}

    def _bucket_param_names(self) -> List[List[str]]:
        """The parameter names of each bucket, in reduction order (for tests and debugging)."""
        return [[self._param_names[i] for i in b.param_ids] for b in self._buckets]


class _GradReadyHook:
    """Post-accumulate-grad hook of parameter ``i`` (a weak reference, so the wrapper can be freed)."""

    __slots__ = ("ref", "i")

    def __init__(self, ref, i: int) -> None:
        self.ref, self.i = ref, i

    def __call__(self, param: Tensor) -> None:
        ddp = self.ref()
        if ddp is not None:
            ddp._on_grad_ready(self.i)
