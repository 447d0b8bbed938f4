"""Launch plans for the kernels in this package, and the thin CuPy call that runs a plan.

Each ``*_plan`` function is pure: from the arrays (only their shape, dtype, layout and, for the multi-tensor
kernels, their device address are read) and the options it computes a ``LaunchPlan``: the source file, the
entry point for the dtype, the grid, the block, the dynamic shared memory and the argument tuple with every
scalar as the exact C type of the kernel's parameter (CuPy passes NumPy scalars by value at their width).
Host-side tables (the multi-tensor address and chunk tables) are NumPy arrays in the plan; ``launch`` copies
them to the device. Nothing here imports CuPy until ``launch`` runs. The ops build plans where
``disttorch.ops._fused.launcher`` says a kernel applies; on a real GPU the first launch of each entry point is
checked against its NumPy emulator (``disttorch.ops._kernel_check``; see docs/gpu.md).
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np

__all__ = ["LaunchPlan", "dtype_suffix", "softmax_plan", "softmax_backward_plan", "layer_norm_plan",
           "layer_norm_backward_input_plan", "layer_norm_backward_affine_plan", "activation_plan",
           "activation_backward_plan", "adam_plan", "dropout_plan", "dropout_backward_plan", "bucket_plan",
           "cross_entropy_plan", "cross_entropy_backward_plan", "im2col_plan", "col2im_plan", "launch"]

_SUFFIX = {"float32": "f32", "float16": "f16", "bfloat16": "bf16"}
MAX_BLOCK = 1024  # threads per block on every CUDA architecture
MAX_GRID_X = 2 ** 31 - 1
ELEMENTWISE_BLOCK = 256
# Grid-stride kernels need no more blocks than a GPU keeps resident (132 SMs x 2048 threads / 256 on an H100
# is about 1000); 65536 keeps every SM busy on any current part while bounding the launch.
MAX_STRIDE_GRID = 65536
ADAM_CHUNK = 65536  # elements per block of the multi-tensor kernels
_ACTIVATIONS = ("gelu", "gelu_tanh", "silu")
_NULL = np.uint64(0)


@dataclasses.dataclass(frozen=True)
class LaunchPlan:
    """Everything a kernel launch needs.

    Attributes:
        source: the ``.cu`` file in ``disttorch.kernels``.
        name: the ``extern "C"`` entry point.
        grid: blocks (x, y, z); ``grid[0] == 0`` means there is nothing to do.
        block: threads per block (x, y, z).
        shared_mem: dynamic shared memory in bytes.
        args: the kernel arguments, in order.
    """
    source: str
    name: str
    grid: tuple[int, int, int]
    block: tuple[int, int, int]
    shared_mem: int
    args: tuple


def dtype_suffix(dtype, op: str) -> str:
    """The entry-point suffix (``f32``, ``f16``, ``bf16``) for ``dtype``, or a TypeError naming ``op``."""
    name = np.dtype(dtype).name
    if name not in _SUFFIX:
        raise TypeError(f"disttorch.kernels: {op} has no CUDA kernel for dtype {name}; "
                        f"supported: {', '.join(_SUFFIX)}")
    return _SUFFIX[name]


def _check_same(op: str, ref, *others) -> None:
    for what, a in others:
        if tuple(a.shape) != tuple(ref.shape) or a.dtype != ref.dtype:
            raise ValueError(f"disttorch.kernels: {op}: {what} has shape {tuple(a.shape)} and dtype {a.dtype}, "
                             f"expected shape {tuple(ref.shape)} and dtype {ref.dtype}")


def _check_contiguous(op: str, **arrays) -> None:
    for what, a in arrays.items():
        if a is not None and not a.flags.c_contiguous:
            raise ValueError(f"disttorch.kernels: {op}: {what} must be C-contiguous (shape {tuple(a.shape)}, "
                             f"strides {a.strides}); pass an ascontiguousarray copy")


def _row_block(cols: int) -> int:
    """Threads for a one-block-per-row kernel: a multiple of the warp size covering ``cols``, at most 1024."""
    return min(MAX_BLOCK, max(32, -(-cols // 32) * 32))


def _rows_grid(op: str, rows: int) -> tuple[int, int, int]:
    if rows > MAX_GRID_X:
        raise ValueError(f"disttorch.kernels: {op}: {rows} rows exceed the grid limit {MAX_GRID_X}")
    return (rows, 1, 1)


def _stride_grid(n: int) -> tuple[int, int, int]:
    return (min(-(-n // ELEMENTWISE_BLOCK), MAX_STRIDE_GRID), 1, 1)


def _rows_cols(x) -> tuple[int, int]:
    if x.ndim == 0:
        return 1, 1
    cols = int(x.shape[-1])
    return (int(x.size) // cols if cols else math.prod(x.shape[:-1])), cols


def softmax_plan(x, out, log: bool = False) -> LaunchPlan:
    """``softmax`` (or ``log_softmax`` when ``log``) of ``x`` over its last dim into ``out``."""
    op = "log_softmax" if log else "softmax"
    _check_same(op, x, ("out", out))
    _check_contiguous(op, x=x, out=out)
    rows, cols = _rows_cols(x)
    name = f"{op}_forward_{dtype_suffix(x.dtype, op)}"
    return LaunchPlan("softmax.cu", name, _rows_grid(op, rows), (_row_block(cols), 1, 1), 0,
                      (x, out, np.int64(rows), np.int64(cols)))


def softmax_backward_plan(grad, y, out, log: bool = False) -> LaunchPlan:
    """The input gradient of ``softmax``/``log_softmax`` from the output gradient ``grad`` and the forward output ``y``."""
    op = "log_softmax_backward" if log else "softmax_backward"
    _check_same(op, grad, ("y", y), ("out", out))
    _check_contiguous(op, grad=grad, y=y, out=out)
    rows, cols = _rows_cols(grad)
    name = f"{op}_{dtype_suffix(grad.dtype, op)}"
    return LaunchPlan("softmax.cu", name, _rows_grid(op, rows), (_row_block(cols), 1, 1), 0,
                      (grad, y, out, np.int64(rows), np.int64(cols)))


def _ln_dims(op: str, x, normalized_numel: int) -> tuple[int, int]:
    d = int(normalized_numel)
    if d <= 0 or (x.size and _trailing(tuple(x.shape), d) == 0):
        raise ValueError(f"disttorch.kernels: {op}: normalized size {d} is not a product of the trailing dims of "
                         f"shape {tuple(x.shape)}")
    return int(x.size) // d, d


def _trailing(shape, d: int) -> int:
    """How many trailing dims multiply to ``d`` (0 when none do)."""
    prod = 1
    for k, s in enumerate(reversed(shape), 1):
        prod *= s
        if prod == d:
            return k
        if prod > d:
            break
    return 0


def _check_stats(op: str, rows: int, **stats) -> None:
    for what, a in stats.items():
        if a.dtype != np.float32 or a.size != rows:
            raise ValueError(f"disttorch.kernels: {op}: {what} must be float32 with {rows} elements (one per row), "
                             f"got dtype {a.dtype} and {a.size} elements")


def _check_affine(op: str, d: int, dtype, **params) -> None:
    for what, a in params.items():
        if a is not None and (a.size != d or a.dtype != dtype):
            raise ValueError(f"disttorch.kernels: {op}: {what} must have {d} elements of dtype {dtype}, "
                             f"got {a.size} of {a.dtype}")


def layer_norm_plan(x, weight, bias, out, mean, rstd, normalized_numel: int, eps: float = 1e-5) -> LaunchPlan:
    """Layer norm forward over the trailing ``normalized_numel`` elements, saving float32 ``mean``/``rstd`` per row.

    ``weight``/``bias`` may be None (passed as null pointers).
    """
    op = "layer_norm"
    _check_same(op, x, ("out", out))
    _check_contiguous(op, x=x, out=out, weight=weight, bias=bias)
    rows, d = _ln_dims(op, x, normalized_numel)
    _check_stats(op, rows, mean=mean, rstd=rstd)
    _check_affine(op, d, x.dtype, weight=weight, bias=bias)
    name = f"layer_norm_forward_{dtype_suffix(x.dtype, op)}"
    return LaunchPlan("layer_norm.cu", name, _rows_grid(op, rows), (_row_block(d), 1, 1), 0,
                      (x, _NULL if weight is None else weight, _NULL if bias is None else bias, out, mean, rstd,
                       np.int64(rows), np.int64(d), np.float32(eps)))


def layer_norm_backward_input_plan(grad, x, mean, rstd, weight, out, normalized_numel: int) -> LaunchPlan:
    """The input gradient of layer norm (one block per row), from the forward's saved ``mean``/``rstd``."""
    op = "layer_norm_backward_input"
    _check_same(op, x, ("grad", grad), ("out", out))
    _check_contiguous(op, grad=grad, x=x, out=out, weight=weight)
    rows, d = _ln_dims(op, x, normalized_numel)
    _check_stats(op, rows, mean=mean, rstd=rstd)
    _check_affine(op, d, x.dtype, weight=weight)
    name = f"{op}_{dtype_suffix(x.dtype, op)}"
    return LaunchPlan("layer_norm.cu", name, _rows_grid(op, rows), (_row_block(d), 1, 1), 0,
                      (grad, x, mean, rstd, _NULL if weight is None else weight, out, np.int64(rows), np.int64(d)))


def layer_norm_backward_affine_plan(grad, x, mean, rstd, grad_weight, grad_bias, normalized_numel: int) -> LaunchPlan:
    """The weight and bias gradients of layer norm (one thread per normalized element); either may be None."""
    op = "layer_norm_backward_affine"
    _check_same(op, x, ("grad", grad))
    _check_contiguous(op, grad=grad, x=x)
    rows, d = _ln_dims(op, x, normalized_numel)
    _check_stats(op, rows, mean=mean, rstd=rstd)
    _check_affine(op, d, x.dtype, grad_weight=grad_weight, grad_bias=grad_bias)
    if grad_weight is None and grad_bias is None:
        raise ValueError(f"disttorch.kernels: {op}: neither grad_weight nor grad_bias was given")
    name = f"{op}_{dtype_suffix(x.dtype, op)}"
    return LaunchPlan("layer_norm.cu", name, (-(-d // ELEMENTWISE_BLOCK), 1, 1), (ELEMENTWISE_BLOCK, 1, 1), 0,
                      (grad, x, mean, rstd, _NULL if grad_weight is None else grad_weight,
                       _NULL if grad_bias is None else grad_bias, np.int64(rows), np.int64(d)))


def _activation_name(kind: str, approximate: str) -> str:
    if kind not in ("gelu", "silu"):
        raise ValueError(f"disttorch.kernels: no activation kernel {kind!r}; have gelu, silu")
    if approximate not in ("none", "tanh") or (kind == "silu" and approximate != "none"):
        raise ValueError(f"disttorch.kernels: {kind}: approximate={approximate!r} is not supported")
    return "gelu_tanh" if approximate == "tanh" else kind


def activation_plan(kind: str, x, out, approximate: str = "none") -> LaunchPlan:
    """``gelu`` (``approximate`` 'none' or 'tanh') or ``silu`` of ``x`` into ``out``, element-wise."""
    name = _activation_name(kind, approximate)
    _check_same(kind, x, ("out", out))
    _check_contiguous(kind, x=x, out=out)
    n = int(x.size)
    return LaunchPlan("activation.cu", f"{name}_forward_{dtype_suffix(x.dtype, kind)}", _stride_grid(n),
                      (ELEMENTWISE_BLOCK, 1, 1), 0, (x, out, np.int64(n)))


def activation_backward_plan(kind: str, grad, x, out, approximate: str = "none") -> LaunchPlan:
    """``grad * f'(x)`` for ``f`` = ``gelu``/``silu``, element-wise into ``out``."""
    name = _activation_name(kind, approximate)
    _check_same(kind, x, ("grad", grad), ("out", out))
    _check_contiguous(kind, grad=grad, x=x, out=out)
    n = int(x.size)
    return LaunchPlan("activation.cu", f"{name}_backward_{dtype_suffix(x.dtype, kind)}", _stride_grid(n),
                      (ELEMENTWISE_BLOCK, 1, 1), 0, (grad, x, out, np.int64(n)))


def _address(a) -> int:
    """The device (CuPy) or host (NumPy) address of ``a``'s first element."""
    if isinstance(a, np.ndarray):
        return int(a.ctypes.data)
    return int(a.data.ptr)


def _chunk_table(numels: Sequence[int], chunk: int) -> tuple[np.ndarray, np.ndarray]:
    """(block -> tensor index, block -> first element) covering every element in ``chunk``-sized pieces."""
    tensor = [t for t, n in enumerate(numels) for _ in range(-(-n // chunk))]
    start = [c * chunk for n in numels for c in range(-(-n // chunk))]
    return np.asarray(tensor, dtype=np.int32), np.asarray(start, dtype=np.int64)


def adam_plan(params, grads, exp_avgs, exp_avg_sqs, step: float, lr: float, betas=(0.9, 0.999), eps: float = 1e-8,
              weight_decay: float = 0.0, decoupled_weight_decay: bool = False, maximize: bool = False,
              chunk: int = ADAM_CHUNK) -> LaunchPlan:
    """One Adam (or AdamW with ``decoupled_weight_decay``) step over lists of tensors, in place (amsgrad off).

    ``step`` is the count after this step's increment (1 on the first), as ``optim._functional.adam_update``.
    All tensors share one dtype; each list's i-th entries share one shape.
    """
    op = "adam"
    groups = (params, grads, exp_avgs, exp_avg_sqs)
    if not params or len({len(g) for g in groups}) != 1:
        raise ValueError(f"disttorch.kernels: {op}: params, grads, exp_avgs and exp_avg_sqs must be non-empty lists "
                         f"of one length, got lengths {[len(g) for g in groups]}")
    suffix = dtype_suffix(params[0].dtype, op)
    for i, p in enumerate(params):
        _check_same(f"{op} (tensor {i})", p, *((w, g[i]) for w, g in zip(("grad", "exp_avg", "exp_avg_sq"), groups[1:])))
        _check_contiguous(f"{op} (tensor {i})", param=p, grad=grads[i], exp_avg=exp_avgs[i], exp_avg_sq=exp_avg_sqs[i])
        if p.dtype != params[0].dtype:
            raise ValueError(f"disttorch.kernels: {op}: tensor {i} has dtype {p.dtype}, tensor 0 has {params[0].dtype};"
                             f" group tensors by dtype")
    beta1, beta2 = betas
    decay, l2 = 1.0, 0.0  # AdamW: param *= 1 - lr * weight_decay; Adam: grad += weight_decay * param
    if weight_decay != 0:
        if decoupled_weight_decay:
            decay = 1 - lr * weight_decay
        else:
            l2 = weight_decay
    numels = [int(p.size) for p in params]
    block_tensor, block_start = _chunk_table(numels, chunk)
    ptrs = np.asarray([_address(a) for g in groups for a in g], dtype=np.uint64)
    args = (ptrs, np.asarray(numels, dtype=np.int64), block_tensor, block_start, np.int32(len(params)), np.int64(chunk),
            np.float32(1.0 - beta1), np.float32(1.0 - beta2), np.float32(eps), np.float32(l2), np.float32(decay),
            np.float32(-lr / (1 - beta1 ** step)), np.float32((1 - beta2 ** step) ** 0.5), np.int32(bool(maximize)))
    return LaunchPlan("adam.cu", f"adam_multi_tensor_{suffix}", (len(block_tensor), 1, 1), (ELEMENTWISE_BLOCK, 1, 1), 0,
                      args)


def _check_p(op: str, p: float) -> None:
    if not 0.0 <= p < 1.0:
        raise ValueError(f"disttorch.kernels: {op}: p must be in [0, 1), got {p} (p = 1 zeroes the input; "
                         f"no kernel needed)")


def dropout_plan(x, out, mask, p: float, seed: int, offset: int) -> LaunchPlan:
    """Dropout of ``x`` into ``out`` with the Philox mask of ``(seed, offset)``, saving the uint8 keep ``mask``.

    The mask equals ``disttorch.kernels.philox.dropout_keep_mask(x.size, p, seed, offset)``.
    """
    op = "dropout"
    _check_p(op, p)
    _check_same(op, x, ("out", out))
    _check_contiguous(op, x=x, out=out, mask=mask)
    if mask.dtype != np.uint8 or mask.size != x.size:
        raise ValueError(f"disttorch.kernels: {op}: mask must be uint8 with {x.size} elements, got {mask.dtype} "
                         f"with {mask.size}")
    for what, v in (("seed", seed), ("offset", offset)):
        if not 0 <= v < 2 ** 64:
            raise ValueError(f"disttorch.kernels: {op}: {what} must fit in 64 unsigned bits, got {v}")
    n = int(x.size)
    return LaunchPlan("dropout.cu", f"dropout_forward_{dtype_suffix(x.dtype, op)}", _stride_grid(-(-n // 4)),
                      (ELEMENTWISE_BLOCK, 1, 1), 0,
                      (x, out, mask, np.int64(n), np.float32(1.0 - p), np.float32(1.0 / (1.0 - p)), np.uint64(seed),
                       np.uint64(offset)))


def dropout_backward_plan(grad, mask, out, p: float) -> LaunchPlan:
    """``grad * mask / (1 - p)`` into ``out``."""
    op = "dropout_backward"
    _check_p(op, p)
    _check_same(op, grad, ("out", out))
    _check_contiguous(op, grad=grad, mask=mask, out=out)
    if mask.dtype != np.uint8 or mask.size != grad.size:
        raise ValueError(f"disttorch.kernels: {op}: mask must be uint8 with {grad.size} elements, got {mask.dtype} "
                         f"with {mask.size}")
    n = int(grad.size)
    return LaunchPlan("dropout.cu", f"dropout_backward_{dtype_suffix(grad.dtype, op)}", _stride_grid(n),
                      (ELEMENTWISE_BLOCK, 1, 1), 0, (grad, mask, out, np.int64(n), np.float32(1.0 / (1.0 - p))))


_BUCKET_PAIRS = {("f32", "f32"), ("f32", "f16"), ("f32", "bf16"), ("f16", "f16"), ("bf16", "bf16")}


def bucket_plan(grads, bucket, pack: bool = True, scale: float = 1.0, chunk: int = ADAM_CHUNK) -> LaunchPlan:
    """Copy ``grads`` into consecutive slices of the flat ``bucket`` (``pack``) or back out of it, times ``scale``.

    The bucket may be float16/bfloat16 for float32 gradients (the cast happens in the copy).
    """
    op = "bucket_pack" if pack else "bucket_unpack"
    if not grads:
        raise ValueError(f"disttorch.kernels: {op}: no gradients given")
    _check_contiguous(op, bucket=bucket)
    bsuf = dtype_suffix(bucket.dtype, op)
    gsuf = dtype_suffix(grads[0].dtype, op)
    for i, g in enumerate(grads):
        _check_contiguous(op, **{f"grads[{i}]": g})
        if g.dtype != grads[0].dtype:
            raise ValueError(f"disttorch.kernels: {op}: grads[{i}] has dtype {g.dtype}, grads[0] has {grads[0].dtype}")
    if (gsuf, bsuf) not in _BUCKET_PAIRS:
        raise TypeError(f"disttorch.kernels: {op}: no kernel for {np.dtype(grads[0].dtype).name} gradients in a "
                        f"{np.dtype(bucket.dtype).name} bucket; supported (grad, bucket): {sorted(_BUCKET_PAIRS)}")
    numels = [int(g.size) for g in grads]
    offsets = np.cumsum([0] + numels[:-1], dtype=np.int64)
    if sum(numels) > bucket.size:
        raise ValueError(f"disttorch.kernels: {op}: the gradients hold {sum(numels)} elements, the bucket "
                         f"{bucket.size}")
    block_tensor, block_start = _chunk_table(numels, chunk)
    args = (np.asarray([_address(g) for g in grads], dtype=np.uint64), offsets, np.asarray(numels, dtype=np.int64),
            block_tensor, block_start, bucket, np.int64(chunk), np.float32(scale))
    return LaunchPlan("bucket.cu", f"{op}_{gsuf}_{bsuf}", (len(block_tensor), 1, 1), (ELEMENTWISE_BLOCK, 1, 1), 0,
                      args)


def _check_vector(op: str, what: str, a, dtype, sizes: tuple[int, ...]) -> None:
    if a.dtype != dtype or a.size not in sizes or not a.flags.c_contiguous:
        want = " or ".join(str(s) for s in sizes)
        raise ValueError(f"disttorch.kernels: {op}: {what} must be a contiguous {np.dtype(dtype).name} array of "
                         f"{want} elements, got {a.dtype} with {a.size} elements")


def _ce_common(op: str, x, target, weight, label_smoothing: float) -> tuple[int, int]:
    if x.ndim != 2:
        raise ValueError(f"disttorch.kernels: {op}: logits must be 2-d (rows, classes), got shape {tuple(x.shape)}; "
                         f"move the class dim last and flatten the others")
    _check_contiguous(op, x=x)
    rows, cols = int(x.shape[0]), int(x.shape[1])
    if cols == 0 and rows:
        raise ValueError(f"disttorch.kernels: {op}: logits of shape {tuple(x.shape)} have no classes")
    _check_vector(op, "target", target, np.int64, (rows,))
    if weight is not None:
        _check_vector(op, "weight", weight, np.float32, (cols,))
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"disttorch.kernels: {op}: label_smoothing must be in [0, 1], got {label_smoothing}")
    return rows, cols


def cross_entropy_plan(x, target, weight, loss, lse, bad=None, ignore_index: int = -100,
                       label_smoothing: float = 0.0) -> LaunchPlan:
    """Per-row softmax cross entropy of logits ``x`` (rows, C) against int64 class indices ``target``.

    Writes float32 ``loss`` (``reduction='none'``) and the float32 log-sum-exp ``lse`` of each row (saved for the
    backward). ``weight`` (float32, C) may be None. An out-of-range target gives a nan loss and sets the int32
    flag ``bad[0]`` to 1 when ``bad`` is given: no host synchronisation in the launch.
    """
    op = "cross_entropy"
    rows, cols = _ce_common(op, x, target, weight, label_smoothing)
    _check_vector(op, "loss", loss, np.float32, (rows,))
    _check_vector(op, "lse", lse, np.float32, (rows,))
    if bad is not None:
        _check_vector(op, "bad", bad, np.int32, (1,))
    name = f"cross_entropy_forward_{dtype_suffix(x.dtype, op)}"
    return LaunchPlan("cross_entropy.cu", name, _rows_grid(op, rows), (_row_block(cols), 1, 1), 0,
                      (x, target, _NULL if weight is None else weight, loss, lse, _NULL if bad is None else bad,
                       np.int64(rows), np.int64(cols), np.int64(ignore_index), np.float32(label_smoothing)))


def cross_entropy_backward_plan(x, target, weight, lse, grad_loss, grad_x, ignore_index: int = -100,
                                label_smoothing: float = 0.0) -> LaunchPlan:
    """The logits' gradient of ``cross_entropy_plan``'s per-row loss, into ``grad_x`` (shape and dtype of ``x``).

    ``grad_loss`` is float32 with one element per row, or a single element used for every row (a 'sum' or
    'mean' reduction's gradient, already divided by the total weight for 'mean').
    """
    op = "cross_entropy_backward"
    rows, cols = _ce_common(op, x, target, weight, label_smoothing)
    _check_same(op, x, ("grad_x", grad_x))
    _check_contiguous(op, grad_x=grad_x)
    _check_vector(op, "lse", lse, np.float32, (rows,))
    _check_vector(op, "grad_loss", grad_loss, np.float32, (rows, 1))
    stride = 1 if grad_loss.size == rows and rows != 1 else 0
    name = f"{op}_{dtype_suffix(x.dtype, op)}"
    return LaunchPlan("cross_entropy.cu", name, _rows_grid(op, rows), (_row_block(cols), 1, 1), 0,
                      (x, target, _NULL if weight is None else weight, lse, grad_loss, np.int64(stride), grad_x,
                       np.int64(rows), np.int64(cols), np.int64(ignore_index), np.float32(label_smoothing)))


def _pair(op: str, what: str, v, low: int) -> tuple[int, int]:
    pair = (v, v) if isinstance(v, (int, np.integer)) else tuple(v)
    if len(pair) != 2 or any(int(p) < low for p in pair):
        raise ValueError(f"disttorch.kernels: {op}: {what} must be an int or a pair of ints >= {low}, got {v!r}")
    return int(pair[0]), int(pair[1])


def _conv2d_geom(op: str, image, cols, kernel_size, dilation, padding, stride) -> tuple:
    """(n, c, h, w, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow) as int64 scalars, checking both arrays' shapes."""
    if image.ndim != 4:
        raise ValueError(f"disttorch.kernels: {op}: the image must be 4-d (N, C, H, W), got shape "
                         f"{tuple(image.shape)}")
    _check_contiguous(op, image=image, cols=cols)
    if cols.dtype != image.dtype:
        raise ValueError(f"disttorch.kernels: {op}: cols has dtype {cols.dtype}, the image {image.dtype}")
    (kh, kw), (dh, dw) = _pair(op, "kernel_size", kernel_size, 1), _pair(op, "dilation", dilation, 1)
    (ph, pw), (sh, sw) = _pair(op, "padding", padding, 0), _pair(op, "stride", stride, 1)
    n, c, h, w = (int(s) for s in image.shape)
    oh, ow = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1, (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    if oh < 1 or ow < 1:
        raise ValueError(f"disttorch.kernels: {op}: a {kh}x{kw} kernel (dilation {dh}x{dw}, padding {ph}x{pw}) does "
                         f"not fit the {h}x{w} image")
    want = (n, c * kh * kw, oh * ow)
    if tuple(cols.shape) != want:
        raise ValueError(f"disttorch.kernels: {op}: cols has shape {tuple(cols.shape)}, expected {want} for image "
                         f"{tuple(image.shape)}")
    return tuple(np.int64(v) for v in (n, c, h, w, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow))


def im2col_plan(x, cols, kernel_size, dilation=1, padding=0, stride=1) -> LaunchPlan:
    """``F.unfold``: the sliding blocks of ``x`` (N, C, H, W) into ``cols`` (N, C*kH*kW, OH*OW)."""
    op = "im2col"
    geom = _conv2d_geom(op, x, cols, kernel_size, dilation, padding, stride)
    return LaunchPlan("im2col.cu", f"im2col_{dtype_suffix(x.dtype, op)}", _stride_grid(int(cols.size)),
                      (ELEMENTWISE_BLOCK, 1, 1), 0, (x, cols) + geom)


def col2im_plan(cols, x, kernel_size, dilation=1, padding=0, stride=1) -> LaunchPlan:
    """``F.fold``: ``cols`` (N, C*kH*kW, OH*OW) summed back into ``x`` (N, C, H, W), one thread per element of ``x``
    (a gather: no atomics, deterministic)."""
    op = "col2im"
    geom = _conv2d_geom(op, x, cols, kernel_size, dilation, padding, stride)
    return LaunchPlan("im2col.cu", f"col2im_{dtype_suffix(x.dtype, op)}", _stride_grid(int(x.size)),
                      (ELEMENTWISE_BLOCK, 1, 1), 0, (cols, x) + geom)


def launch(plan: LaunchPlan, device_id: int | None = None) -> None:
    """Run ``plan`` with CuPy on the current stream of GPU ``device_id`` (default: the current device).

    Host tables (NumPy arrays in ``plan.args``) are copied to the device first; CuPy's memory pool orders their
    release after the kernel on the same stream. A plan with an empty grid launches nothing.
    """
    if plan.grid[0] == 0:
        return
    import cupy

    from . import load

    dev = cupy.cuda.Device().id if device_id is None else device_id
    with cupy.cuda.Device(dev):
        fn = load(plan.source, dev).get_function(plan.name)
        args = tuple(cupy.asarray(a) if isinstance(a, np.ndarray) else a for a in plan.args)
        fn(plan.grid, plan.block, args, shared_mem=plan.shared_mem)
