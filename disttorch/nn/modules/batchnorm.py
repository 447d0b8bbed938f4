"""Batch normalisation layers (``torch.nn.modules.batchnorm``): ``BatchNorm1d``, ``BatchNorm2d``, ``BatchNorm3d``,
``SyncBatchNorm``.

``_NormBase`` owns the affine parameters and the running-statistics buffers (shared with the instance-norm
layers); ``_BatchNorm.forward`` picks the averaging factor and the statistics exactly as PyTorch does and
makes one ``F.batch_norm`` call.
"""
from __future__ import annotations

import numpy as np

from ... import _dtype as D
from ... import _internals as E
from ..._tensor import Tensor
from ...autograd.function import Function
from ...autograd.grad_mode import no_grad
from ...ops.creation import empty, ones, tensor, zeros
from .. import functional as F
from .. import init
from ..parameter import Parameter
from .module import Module

__all__ = ["BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "SyncBatchNorm"]


class _NormBase(Module):
    """Common base of the batch and instance norm layers: parameters, buffers, repr, checkpoint upgrade."""

    _version = 2
    __constants__ = ["track_running_stats", "momentum", "eps", "num_features", "affine"]
    num_features: int
    eps: float
    momentum: float | None
    affine: bool
    track_running_stats: bool

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1, affine: bool = True,
                 track_running_stats: bool = True, device=None, dtype=None) -> None:
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.momentum = momentum
        self.affine = affine
        self.track_running_stats = track_running_stats
        if self.affine:
            self.weight = Parameter(empty(num_features, device=device, dtype=dtype))
            self.bias = Parameter(empty(num_features, device=device, dtype=dtype))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if self.track_running_stats:
            self.register_buffer("running_mean", zeros(num_features, device=device, dtype=dtype))
            self.register_buffer("running_var", ones(num_features, device=device, dtype=dtype))
            self.register_buffer("num_batches_tracked", tensor(0, dtype=D.long, device=device))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)
        self.reset_parameters()

    def reset_running_stats(self) -> None:
        """Zero the running mean and the batch count, fill the running variance with ones."""
        if self.track_running_stats:
            self.running_mean.zero_()
            self.running_var.fill_(1)
            self.num_batches_tracked.zero_()

    def reset_parameters(self) -> None:
        """Reset the running statistics; weight to ones and bias to zeros."""
        self.reset_running_stats()
        if self.affine:
            init.ones_(self.weight)
            init.zeros_(self.bias)

    def _check_input_dim(self, input: Tensor) -> None:
        raise NotImplementedError

    def extra_repr(self) -> str:
        return ("{num_features}, eps={eps}, momentum={momentum}, affine={affine}, "
                "track_running_stats={track_running_stats}".format(**self.__dict__))

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs) -> None:
        version = local_metadata.get("version", None)
        if (version is None or version < 2) and self.track_running_stats:
            # Version 2 added num_batches_tracked; older checkpoints load with the current count (0 if fresh).
            key = prefix + "num_batches_tracked"
            if key not in state_dict:
                state_dict[key] = (self.num_batches_tracked if self.num_batches_tracked is not None
                                   else tensor(0, dtype=D.long))
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)


class _BatchNorm(_NormBase):
    """Batch norm over the channel dim 1: batch statistics in training, running statistics in eval."""

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1, affine: bool = True,
                 track_running_stats: bool = True, device=None, dtype=None) -> None:
        super().__init__(num_features, eps, momentum, affine, track_running_stats, device=device, dtype=dtype)

    def forward(self, input: Tensor) -> Tensor:
        self._check_input_dim(input)
        factor = 0.0 if self.momentum is None else self.momentum
        training = self.training
        if training and self.track_running_stats and self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)
            if self.momentum is None:  # cumulative moving average
                factor = 1.0 / float(self.num_batches_tracked)
        # Batch statistics in training, and in eval too when no running statistics are kept.
        bn_training = training or (self.running_mean is None and self.running_var is None)
        use_buffers = not training or self.track_running_stats
        return F.batch_norm(input, self.running_mean if use_buffers else None,
                            self.running_var if use_buffers else None, self.weight, self.bias, bn_training,
                            factor, self.eps)


class BatchNorm1d(_BatchNorm):
    r"""Batch normalisation over a 2-d ``(N, C)`` or 3-d ``(N, C, L)`` input.

    Args:
        num_features: ``C``, the number of features/channels.
        eps: added to the variance for numerical stability. Default: 1e-5.
        momentum: weight of the new batch statistics in the running averages; None for a cumulative
            (simple) average over all batches seen. Default: 0.1.
        affine: learnable per-channel weight and bias. Default: True.
        track_running_stats: keep running mean/variance for eval mode; when False, batch statistics are
            used in both modes. Default: True.

    Example:
        >>> m = nn.BatchNorm1d(3)
        >>> m(disttorch.randn(8, 3)).shape
        torch.Size([8, 3])
    """

    def _check_input_dim(self, input: Tensor) -> None:
        if input.dim() != 2 and input.dim() != 3:
            raise ValueError(f"expected 2D or 3D input (got {input.dim()}D input)")


class BatchNorm2d(_BatchNorm):
    r"""Batch normalisation over a 4-d ``(N, C, H, W)`` input (arguments as :class:`BatchNorm1d`).

    Example:
        >>> m = nn.BatchNorm2d(3, affine=False)
        >>> m(disttorch.randn(2, 3, 4, 4)).shape
        torch.Size([2, 3, 4, 4])
    """

    def _check_input_dim(self, input: Tensor) -> None:
        if input.dim() != 4:
            raise ValueError(f"expected 4D input (got {input.dim()}D input)")


class BatchNorm3d(_BatchNorm):
    r"""Batch normalisation over a 5-d ``(N, C, D, H, W)`` input (arguments as :class:`BatchNorm1d`)."""

    def _check_input_dim(self, input: Tensor) -> None:
        if input.dim() != 5:
            raise ValueError(f"expected 5D input (got {input.dim()}D input)")


def _dist():
    from ... import distributed as dist

    return dist


def _all_reduce_f64(values, process_group):
    """Sum a float64 array over the group (one collective) and return it."""
    t = E.wrap(values)
    _dist().all_reduce(t, group=process_group)
    return E.array(t)


class _SyncBatchNormFunction(Function):
    """Batch norm whose statistics and input gradient span every rank of ``process_group``.

    Forward all-reduces one packed float64 vector ``[sum_c, sum_of_squares_c, count]``; backward
    all-reduces ``[sum(dy)_c, sum(dy * (x - mean))_c]``. The weight and bias gradients stay local: DDP
    averages them with the other parameters.
    """

    @staticmethod
    def forward(ctx, input, weight, bias, running_mean, running_var, eps, momentum, process_group, world_size):
        x = E.array(input)
        xp = E.array_module(input)
        n, c = x.shape[0], x.shape[1]
        x3 = x.reshape(n, c, -1)
        wd = np.float32 if x.dtype in (D.float16.np, D.bfloat16.np) else x.dtype
        x64 = x3.astype(np.float64, copy=False)
        packed = xp.empty(2 * c + 1, dtype=np.float64)
        packed[:c] = x64.sum((0, 2))
        packed[c:2 * c] = xp.einsum("ncs,ncs->c", x64, x64)
        packed[2 * c] = x3.shape[0] * x3.shape[2]
        packed = _all_reduce_f64(packed, process_group)
        count = float(packed[2 * c])
        if count <= 1:
            raise ValueError(f"Expected more than 1 value per channel when training, got {int(count)} over all "
                             f"ranks for input size {list(x.shape)}")
        mean64 = packed[:c] / count
        var64 = xp.maximum(packed[c:2 * c] / count - mean64 * mean64, 0.0)
        invstd64 = 1.0 / xp.sqrt(var64 + eps)
        mean, invstd = mean64.astype(wd)[None, :, None], invstd64.astype(wd)[None, :, None]
        xhat = (x3.astype(wd, copy=False) - mean) * invstd
        y = xhat
        if weight is not None:
            y = y * E.array(weight).astype(wd)[None, :, None]
        if bias is not None:
            y = y + E.array(bias).astype(wd)[None, :, None]
        if running_mean is not None:
            rm = E.array(running_mean)
            rm[...] = (1 - momentum) * rm + momentum * mean64.astype(rm.dtype)
            E.bump_version(running_mean)
        if running_var is not None:
            rv = E.array(running_var)
            rv[...] = (1 - momentum) * rv + momentum * (var64 * (count / (count - 1))).astype(rv.dtype)
            E.bump_version(running_var)
        ctx.stats = (x3, mean, invstd, count, wd, x.shape)
        ctx.weight = weight
        ctx.process_group = process_group
        return E.wrap(y.astype(x.dtype, copy=False).reshape(x.shape))

    @staticmethod
    def backward(ctx, grad_output):
        x3, mean, invstd, count, wd, shape = ctx.stats
        xp = E.array_module(grad_output)
        g = E.array(grad_output).reshape(x3.shape).astype(wd, copy=False)
        xmu = x3.astype(wd, copy=False) - mean
        sum_dy = g.sum((0, 2))
        sum_dy_xmu = xp.einsum("ncs,ncs->c", g, xmu)
        weight = ctx.weight
        need_in, need_w, need_b = ctx.needs_input_grad[:3]
        grad_input = grad_weight = grad_bias = None
        if need_w:
            grad_weight = E.wrap((sum_dy_xmu * invstd[0, :, 0]).astype(E.array(weight).dtype))
        if need_b:
            grad_bias = E.wrap(sum_dy.astype(E.array(weight).dtype if weight is not None else wd))
        if need_in:
            c = sum_dy.shape[0]
            packed = xp.empty(2 * c, dtype=np.float64)
            packed[:c] = sum_dy
            packed[c:] = sum_dy_xmu
            packed = _all_reduce_f64(packed, ctx.process_group)
            mean_dy = (packed[:c] / count).astype(wd)[None, :, None]
            mean_dy_xmu = (packed[c:] / count).astype(wd)[None, :, None]
            scale = invstd if weight is None else invstd * E.array(weight).astype(wd)[None, :, None]
            gi = (g - mean_dy - xmu * (invstd * invstd) * mean_dy_xmu) * scale
            grad_input = E.wrap(gi.astype(E.array(grad_output).dtype, copy=False).reshape(shape))
        return grad_input, grad_weight, grad_bias, None, None, None, None, None, None


class SyncBatchNorm(_BatchNorm):
    r"""Batch normalisation whose training statistics span all ranks of a process group (``torch.nn.SyncBatchNorm``).

    In training, with an initialised process group of more than one rank, the mean and variance are
    those of the batch concatenated over the ranks (one all-reduce forward, one backward); otherwise it
    is plain batch norm. Eval mode uses the running statistics. Accepts any ``(N, C, ...)`` input.

    Args:
        num_features, eps, momentum, affine, track_running_stats: as :class:`BatchNorm1d`.
        process_group: the ranks to synchronise over (default: the world).

    Example:
        >>> model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        >>> ddp = nn.parallel.DistributedDataParallel(model)
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1, affine: bool = True,
                 track_running_stats: bool = True, process_group=None, device=None, dtype=None) -> None:
        super().__init__(num_features, eps, momentum, affine, track_running_stats, device=device, dtype=dtype)
        self.process_group = process_group

    def _check_input_dim(self, input: Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {input.dim()}D input)")

    def _check_non_zero_input_channels(self, input: Tensor) -> None:
        if input.size(1) == 0:
            raise ValueError("SyncBatchNorm number of input channels should be non-zero")

    def forward(self, input: Tensor) -> Tensor:
        self._check_input_dim(input)
        self._check_non_zero_input_channels(input)
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats and self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)
            factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        bn_training = self.training or (self.running_mean is None and self.running_var is None)
        use_buffers = not self.training or self.track_running_stats
        running_mean = self.running_mean if use_buffers else None
        running_var = self.running_var if use_buffers else None
        need_sync = bn_training and self.training
        world_size = 1
        if need_sync:
            dist = _dist()
            need_sync = dist.is_available() and dist.is_initialized()
            if need_sync:
                pg = self.process_group
                world_size = dist.get_world_size(pg) if pg is not None else dist.get_world_size()
                need_sync = world_size > 1
        if not need_sync:
            return F.batch_norm(input, running_mean, running_var, self.weight, self.bias, bn_training, factor,
                                self.eps)
        return _SyncBatchNormFunction.apply(input, self.weight, self.bias, running_mean, running_var, self.eps,
                                            factor, self.process_group, world_size)

    @classmethod
    def convert_sync_batchnorm(cls, module: Module, process_group=None) -> Module:
        """Replace every ``BatchNorm*d`` layer in ``module`` (recursively) by a ``SyncBatchNorm`` sharing its
        parameters and running statistics; returns the converted module (``module`` itself if it is not a
        batch norm layer)."""
        module_output = module
        if isinstance(module, _BatchNorm) and not isinstance(module, SyncBatchNorm):
            module_output = SyncBatchNorm(module.num_features, module.eps, module.momentum, module.affine,
                                          module.track_running_stats, process_group)
            if module.affine:
                with no_grad():
                    module_output.weight = module.weight
                    module_output.bias = module.bias
            module_output.running_mean = module.running_mean
            module_output.running_var = module.running_var
            module_output.num_batches_tracked = module.num_batches_tracked
            module_output.training = module.training
            if hasattr(module, "qconfig"):
                module_output.qconfig = module.qconfig
        for name, child in module.named_children():
            module_output.add_module(name, cls.convert_sync_batchnorm(child, process_group))
        del module
        return module_output
