"""Resampling: ``interpolate`` (nearest, nearest-exact, linear, bilinear, bicubic, trilinear, area, antialias),
its deprecated aliases, and ``pixel_shuffle`` / ``pixel_unshuffle``.

Every mode is separable: per spatial axis, output ``i`` is a weighted sum of a few input taps whose indices
and weights follow PyTorch's coordinate rules (``UpSample.h``). The taps run through pad.py's fixed-linear-map
machinery, so backward (the adjoint scatter) and double backward come with it.
"""
from __future__ import annotations

import math
import numbers
import warnings

import numpy as np  # host-side index and weight tables

from .. import _tensor as T
from ..autograd.op import Op
from ._helpers import tensor_arg
from .pad import LinearNode, linear_apply, simplify_taps, tap_maps

__all__ = ["pixel_shuffle", "pixel_unshuffle"]
FUNCTIONAL = ("interpolate", "upsample", "upsample_nearest", "upsample_bilinear", "pixel_shuffle", "pixel_unshuffle")


class UpsampleNearest1DBackward0(LinearNode):
    op_name = "upsample_nearest1d"


class UpsampleNearest2DBackward0(LinearNode):
    op_name = "upsample_nearest2d"


class UpsampleNearest3DBackward0(LinearNode):
    op_name = "upsample_nearest3d"


class UpsampleNearestExact1DBackward0(LinearNode):
    op_name = "_upsample_nearest_exact1d"


class UpsampleNearestExact2DBackward0(LinearNode):
    op_name = "_upsample_nearest_exact2d"


class UpsampleNearestExact3DBackward0(LinearNode):
    op_name = "_upsample_nearest_exact3d"


class UpsampleLinear1DBackward0(LinearNode):
    op_name = "upsample_linear1d"


class UpsampleBilinear2DBackward0(LinearNode):
    op_name = "upsample_bilinear2d"


class UpsampleBicubic2DBackward0(LinearNode):
    op_name = "upsample_bicubic2d"


class UpsampleTrilinear3DBackward0(LinearNode):
    op_name = "upsample_trilinear3d"


class UpsampleBilinear2DAaBackward0(LinearNode):
    op_name = "_upsample_bilinear2d_aa"


class UpsampleBicubic2DAaBackward0(LinearNode):
    op_name = "_upsample_bicubic2d_aa"


class UpsampleBackwardBackward0(LinearNode):
    """The adjoint of an upsampling, recorded when its backward is differentiated (base of the per-op ones)."""

    op_name = "upsample_backward"


_NODES = {("nearest", 1): UpsampleNearest1DBackward0, ("nearest", 2): UpsampleNearest2DBackward0,
          ("nearest", 3): UpsampleNearest3DBackward0, ("nearest-exact", 1): UpsampleNearestExact1DBackward0,
          ("nearest-exact", 2): UpsampleNearestExact2DBackward0, ("nearest-exact", 3): UpsampleNearestExact3DBackward0,
          ("linear", 1): UpsampleLinear1DBackward0, ("bilinear", 2): UpsampleBilinear2DBackward0,
          ("bicubic", 2): UpsampleBicubic2DBackward0, ("trilinear", 3): UpsampleTrilinear3DBackward0,
          ("bilinear-aa", 2): UpsampleBilinear2DAaBackward0, ("bicubic-aa", 2): UpsampleBicubic2DAaBackward0}


def _adjoint(cls) -> type:
    """``cls``'s backward as a recorded op, named as PyTorch's: ``UpsampleNearest2DBackwardBackward0``, whose
    op is ``upsample_nearest2d_backward``."""
    name = cls.__name__.replace("Backward0", "BackwardBackward0")
    return type(name, (UpsampleBackwardBackward0,), {"op_name": cls.op_name + "_backward", "__module__": __name__,
                                                     "__qualname__": name, "__doc__": f"The adjoint of {cls.op_name}."})


_ADJOINTS = {cls: _adjoint(cls) for cls in _NODES.values()}
_NEEDS = {"linear": 3, "bilinear": 4, "trilinear": 5}
_TORCH_NAMES = {"int64": "Long", "int32": "Int", "int16": "Short", "int8": "Char", "uint8": "Byte", "bool": "Bool"}


# ---- per-axis taps (PyTorch's UpSample.h coordinate rules) -------------------------------------------
def _scale(n_in: int, n_out: int, align: bool, scale) -> float:
    """``area_pixel_compute_scale``: source step per output step."""
    if align:
        return (n_in - 1) / (n_out - 1) if n_out > 1 else 0.0
    return 1.0 / scale if scale is not None and scale > 0 else n_in / n_out


def _nearest_taps(n_in: int, n_out: int, scale, exact: bool):
    i = np.arange(n_out)
    s = np.float32(1.0 / scale if scale is not None and scale > 0 else n_in / n_out)  # float math, as PyTorch
    if exact:
        src = np.floor(((i + 0.5) * np.float64(s)).astype(np.float32))
    elif n_out == n_in:
        src = i
    elif n_out == 2 * n_in:
        src = i >> 1
    else:
        src = np.floor(i.astype(np.float32) * s)
    return np.minimum(src.astype(np.int64), n_in - 1)[:, None], None


def _linear_taps(n_in: int, n_out: int, align: bool, scale):
    s = _scale(n_in, n_out, align, scale)
    i = np.arange(n_out, dtype=np.float64)
    src = s * i if align else np.maximum(s * (i + 0.5) - 0.5, 0.0)
    i0 = np.minimum(src.astype(np.int64), n_in - 1)
    lam = src - i0
    i1 = np.minimum(i0 + 1, n_in - 1)
    return np.stack([i0, i1], 1), np.stack([1.0 - lam, lam], 1)


def _cubic1(x, a):
    return ((a + 2) * x - (a + 3)) * x * x + 1


def _cubic2(x, a):
    return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a


def _cubic_taps(n_in: int, n_out: int, align: bool, scale):
    s = _scale(n_in, n_out, align, scale)
    i = np.arange(n_out, dtype=np.float64)
    src = s * i if align else s * (i + 0.5) - 0.5
    i0 = np.floor(src)
    t = src - i0
    a = -0.75
    w = np.stack([_cubic2(t + 1, a), _cubic1(t, a), _cubic1(1 - t, a), _cubic2(2 - t, a)], 1)
    idx = np.clip(i0.astype(np.int64)[:, None] + np.arange(-1, 3), 0, n_in - 1)
    return idx, w


def _aa_filter(x, cubic: bool):
    x = np.abs(x)
    if not cubic:
        return np.maximum(1.0 - x, 0.0)
    a = -0.5  # PIL's choice, which PyTorch's antialiased bicubic follows
    return np.where(x < 1, _cubic1(x, a), np.where(x < 2, _cubic2(x, a), 0.0))


def _aa_taps(n_in: int, n_out: int, align: bool, scale, cubic: bool):
    s = _scale(n_in, n_out, align, scale)
    half = 2.0 if cubic else 1.0
    support = half * s if s >= 1.0 else half
    width = int(math.ceil(support)) * 2 + 1
    inv = 1.0 / s if s >= 1.0 else 1.0
    center = s * (np.arange(n_out) + 0.5)
    xmin = np.maximum(np.trunc(center - support + 0.5).astype(np.int64), 0)
    xsize = np.minimum(np.trunc(center + support + 0.5).astype(np.int64), n_in) - xmin
    j = np.arange(width)
    w = _aa_filter((j + xmin[:, None] - center[:, None] + 0.5) * inv, cubic)
    w = np.where(j < xsize[:, None], w, 0.0)
    total = w.sum(1, keepdims=True)
    w = np.where(total != 0, w / np.where(total != 0, total, 1), w)
    return np.minimum(xmin[:, None] + j, n_in - 1), w


def _taps(mode: str, n_in: int, n_out: int, align: bool, scale, antialias: bool):
    if mode in ("nearest", "nearest-exact"):
        return _nearest_taps(n_in, n_out, scale, mode == "nearest-exact")
    if antialias:
        return _aa_taps(n_in, n_out, align, scale, mode == "bicubic")
    if mode == "bicubic":
        return _cubic_taps(n_in, n_out, align, scale)
    return _linear_taps(n_in, n_out, align, scale)


# ---- interpolate ------------------------------------------------------------------------------------------
def _is_int(v) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool) or (
        isinstance(v, T.Tensor) and v.ndim == 0 and not v.dtype.is_floating_point)


def _size_error(sizes_in, sizes_out) -> RuntimeError:
    names = "DHW"[3 - len(sizes_in):]
    a = ", ".join(f"{n}: {v}" for n, v in zip(names, sizes_in))
    b = ", ".join(f"{n}: {v}" for n, v in zip(names, sizes_out))
    sep = " and " if len(sizes_in) == 1 else " "
    return RuntimeError(f"Input and output sizes should be greater than 0, but got input ({a}){sep}output ({b})")


def _output_sizes(x, size, scale_factor, mode: str, recompute_scale_factor):
    dim = x.ndim - 2
    spatial = list(x.shape[2:])
    if size is not None and scale_factor is not None:
        raise ValueError("only one of size or scale_factor should be defined")
    scales = None
    if size is not None:
        if isinstance(size, (list, tuple, T.Tensor)) and not (isinstance(size, T.Tensor) and size.ndim == 0):
            given, size = size, list(size)
            if len(size) != dim:
                raise ValueError(f"Input and output must have the same number of spatial dimensions, but got input "
                                 f"with spatial dimensions of {spatial} and output size of {given}. Please provide "
                                 f"input tensor in (N, C, d1, d2, ...,dK) format and output size in (o1, o2, ...,oK) "
                                 f"format.")
            if not all(_is_int(v) for v in size):
                raise TypeError(f"expected size to be one of int or Tuple[int] or Tuple[int, int] or "
                                f"Tuple[int, int, int], but got size with types {[type(v) for v in size]}")
            out = [int(v) for v in size]
        else:
            if not _is_int(size):
                raise TypeError(f"expected size to be one of int or Tuple[int] or Tuple[int, int] or "
                                f"Tuple[int, int, int], but got size with types {[type(size)]}")
            out = [int(size)] * dim
    elif scale_factor is not None:
        if isinstance(scale_factor, (list, tuple)):
            if len(scale_factor) != dim:
                raise ValueError(f"Input and scale_factor must have the same number of spatial dimensions, but got "
                                 f"input with spatial dimensions of {spatial} and scale_factor of shape "
                                 f"{scale_factor}. Please provide input tensor in (N, C, d1, d2, ...,dK) format and "
                                 f"scale_factor in (s1, s2, ...,sK) format.")
            scales = [float(s) for s in scale_factor]
        else:
            scales = [float(scale_factor)] * dim
        out = [int(n * s) for n, s in zip(spatial, scales)]  # C++ truncates the double product
    else:
        raise ValueError("either size or scale_factor should be defined")
    if recompute_scale_factor and size is not None:
        raise ValueError("recompute_scale_factor is not meaningful with an explicit size.")
    if mode == "area" and size is None:
        recompute_scale_factor = True
    if recompute_scale_factor and scales is not None:
        out = [math.floor(float(n) * s) for n, s in zip(spatial, scales)]
        scales = None
    return out, scales


def interpolate(input, size=None, scale_factor=None, mode: str = "nearest", align_corners=None,
                recompute_scale_factor=None, antialias: bool = False):
    """Resample the spatial dims of ``input`` ((N, C, W), (N, C, H, W) or (N, C, D, H, W)).

    Args:
        input: the batched tensor.
        size: output spatial size (int or one int per spatial dim).
        scale_factor: multiplier for the spatial size (float or one per dim); exclusive with ``size``.
        mode: ``'nearest'``, ``'nearest-exact'``, ``'linear'``, ``'bilinear'``, ``'bicubic'``, ``'trilinear'``
            or ``'area'``.
        align_corners: for the linear and cubic modes, map corner pixel centres onto each other.
        recompute_scale_factor: derive the scale from the computed output size instead of ``scale_factor``.
        antialias: low-pass filter when downsampling (bilinear and bicubic on 4-D input).

    Example:
        >>> interpolate(disttorch.tensor([[[1., 2.]]]), scale_factor=2, mode="linear")
        tensor([[[1.0000, 1.2500, 1.7500, 2.0000]]])
    """
    x = tensor_arg(input, "interpolate")
    if mode in ("nearest", "area", "nearest-exact"):
        if align_corners is not None:
            raise ValueError("align_corners option can only be set with the interpolating modes: "
                             "linear | bilinear | bicubic | trilinear")
    elif align_corners is None:
        align_corners = False
    nd = x.ndim
    if nd < 3:
        raise NotImplementedError(f"Input Error: Only 3D, 4D and 5D input Tensors supported (got {nd}D) for the "
                                  f"modes: nearest | linear | bilinear | bicubic | trilinear | area | nearest-exact "
                                  f"(got {mode})")
    out, scales = _output_sizes(x, size, scale_factor, mode, recompute_scale_factor)
    if antialias and not (mode in ("bilinear", "bicubic") and nd == 4):
        raise ValueError("Anti-alias option is restricted to bilinear and bicubic modes and requires a 4-D tensor "
                         "as input")
    dim = nd - 2
    if mode in _NEEDS and _NEEDS[mode] != nd:
        raise NotImplementedError(f"Got {nd}D input, but {mode} mode needs {_NEEDS[mode]}D input")
    if nd > 5 or mode not in ("nearest", "nearest-exact", "area", "linear", "bilinear", "trilinear") and not (
            mode == "bicubic" and nd == 4):
        raise NotImplementedError(f"Input Error: Only 3D, 4D and 5D input Tensors supported (got {nd}D) for the "
                                  f"modes: nearest | linear | bilinear | bicubic | trilinear | area | nearest-exact "
                                  f"(got {mode})")
    if mode == "area":
        from .pool_adaptive import adaptive_avg_pool_nd

        return adaptive_avg_pool_nd(x, out, f"adaptive_avg_pool{dim}d")
    spatial = list(x.shape[2:])
    if any(v <= 0 for v in out) or any(v <= 0 for v in spatial):
        raise _size_error(spatial, out)
    if mode not in ("nearest", "nearest-exact") and not x.dtype.is_floating_point:
        op = {"linear": "upsample_linear1d", "bilinear": "upsample_bilinear2d", "bicubic": "upsample_bicubic2d",
              "trilinear": "upsample_trilinear3d"}[mode]
        raise RuntimeError(f'"{op}_out_frame" not implemented for '
                           f"'{_TORCH_NAMES.get(x._data.dtype.name, x._data.dtype.name)}'")
    if x.dtype.is_complex:
        raise RuntimeError(f"interpolate: complex input is not supported for mode '{mode}'")
    plans = []
    for i in range(dim):
        sc = scales[i] if scales is not None else None
        idx, w = _taps(mode, spatial[i], out[i], bool(align_corners), sc, antialias)
        plan = simplify_taps(idx, w, spatial[i])
        if plan is not None:
            plans.append((2 + i, plan[0], plan[1], spatial[i]))
    fwd, adj = tap_maps(plans)
    key = (mode + "-aa" if antialias else mode, dim)
    cls = _NODES[key]
    return linear_apply(x, fwd, adj, cls, _ADJOINTS[cls])


def upsample(input, size=None, scale_factor=None, mode: str = "nearest", align_corners=None):
    """Deprecated alias of ``interpolate`` (warns, as PyTorch does)."""
    warnings.warn("nn.functional.upsample is deprecated. Use nn.functional.interpolate instead.", stacklevel=2)
    return interpolate(input, size, scale_factor, mode, align_corners)


def upsample_nearest(input, size=None, scale_factor=None):
    """Deprecated: ``interpolate(input, size, scale_factor, mode='nearest')``."""
    warnings.warn("nn.functional.upsample_nearest is deprecated. Use nn.functional.interpolate instead.",
                  stacklevel=2)
    return interpolate(input, size, scale_factor, mode="nearest")


def upsample_bilinear(input, size=None, scale_factor=None):
    """Deprecated: ``interpolate(input, size, scale_factor, mode='bilinear', align_corners=True)``."""
    warnings.warn("nn.functional.upsample_bilinear is deprecated. Use nn.functional.interpolate instead.",
                  stacklevel=2)
    return interpolate(input, size, scale_factor, mode="bilinear", align_corners=True)


# ---- pixel shuffle ----------------------------------------------------------------------------------------
def _shuffle(a, r: int):
    if r == 1:
        return a.copy()
    *lead, c, h, w = a.shape
    oc = c // (r * r)
    b = a.reshape(tuple(lead) + (oc, r, r, h, w))
    n = len(lead)
    b = b.transpose(tuple(range(n)) + (n, n + 3, n + 1, n + 4, n + 2))
    return b.reshape(tuple(lead) + (oc, h * r, w * r))


def _unshuffle(a, r: int):
    if r == 1:
        return a.copy()
    *lead, c, h, w = a.shape
    b = a.reshape(tuple(lead) + (c, h // r, r, w // r, r))
    n = len(lead)
    b = b.transpose(tuple(range(n)) + (n, n + 2, n + 4, n + 1, n + 3))
    return b.reshape(tuple(lead) + (c * r * r, h // r, w // r))


class PixelShuffleBackward0(Op):
    op_name = "pixel_shuffle"

    def forward(self, xp, a, r=1):
        self.r = r
        return _shuffle(a, r)

    def backward(self, g):
        return pixel_unshuffle(g, self.r)


class PixelUnshuffleBackward0(Op):
    op_name = "pixel_unshuffle"

    def forward(self, xp, a, r=1):
        self.r = r
        return _unshuffle(a, r)

    def backward(self, g):
        return pixel_shuffle(g, self.r)


def _check_factor(x, r, op: str, what: str) -> int:
    if not _is_int(r):
        raise TypeError(f"{op}(): argument '{what}' (position 2) must be int, not {type(r).__name__}")
    r = int(r)
    if x.ndim < 3:
        raise RuntimeError(f"{op} expects input to have at least 3 dimensions, but got input with {x.ndim} "
                           f"dimension(s)")
    if r <= 0:
        raise RuntimeError(f"{op} expects a positive {what}, but got {r}")
    return r


def pixel_shuffle(input, upscale_factor: int):
    """Rearrange (*, C*r*r, H, W) into (*, C, H*r, W*r).

    Example:
        >>> pixel_shuffle(disttorch.arange(4.).reshape(1, 4, 1, 1), 2)
        tensor([[[[0., 1.],
                  [2., 3.]]]])
    """
    x = tensor_arg(input, "pixel_shuffle")
    r = _check_factor(x, upscale_factor, "pixel_shuffle", "upscale_factor")
    c = x._data.shape[-3]
    if c % (r * r):
        raise RuntimeError(f"pixel_shuffle expects its input's 'channel' dimension to be divisible by the square of "
                           f"upscale_factor, but input.size(-3)={c} is not divisible by {r * r}")
    return PixelShuffleBackward0.apply(x, r=r)


def pixel_unshuffle(input, downscale_factor: int):
    """Rearrange (*, C, H*r, W*r) into (*, C*r*r, H, W), the inverse of ``pixel_shuffle``."""
    x = tensor_arg(input, "pixel_unshuffle")
    r = _check_factor(x, downscale_factor, "pixel_unshuffle", "downscale_factor")
    h, w = x._data.shape[-2:]
    if h % r:
        raise RuntimeError(f"pixel_unshuffle expects height to be divisible by downscale_factor, but "
                           f"input.size(-2)={h} is not divisible by {r}")
    if w % r:
        raise RuntimeError(f"pixel_unshuffle expects width to be divisible by downscale_factor, but "
                           f"input.size(-1)={w} is not divisible by {r}")
    return PixelUnshuffleBackward0.apply(x, r=r)
