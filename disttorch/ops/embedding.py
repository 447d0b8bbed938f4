"""Lookup-table ops with ``torch.nn.functional`` semantics: embedding, embedding_bag and one_hot.

``embedding`` gathers rows of ``weight``; its backward scatters the output gradient into a dense
(num_embeddings, embedding_dim) gradient with one ``xp.add.at`` over the flattened indices (duplicates
accumulate). ``sparse=True`` is accepted but gives a dense gradient: disttorch has no sparse tensors, and
optimizers update a dense gradient to the same values (rows not looked up get zero gradient).
"""
from __future__ import annotations

import math

import numpy as np  # dtype constants only

from .. import _compiled as _C
from .. import _dtype as D
from .. import _tensor as T
from .._internals import bump_version
from ..autograd.op import Op
from ..cuda import _checks
from ._helpers import quiet, tensor_arg

__all__ = []

FUNCTIONAL = ("embedding", "embedding_bag", "one_hot")

_F32 = np.dtype(np.float32)
_LOW = (np.dtype(np.float16), D.bfloat16.np)
_INDEX_KINDS = (np.dtype(np.int64), np.dtype(np.int32))


def _indices(input, op: str, arg: str = "indices"):
    idx = tensor_arg(input, op, "input")
    if idx._data.dtype not in _INDEX_KINDS:
        raise RuntimeError(f"{op}: Expected tensor for argument #1 '{arg}' to have one of the following scalar types: "
                           f"Long, Int; but got {idx.dtype} instead (while checking arguments for {op})")
    return idx


def _check_range(xp, flat, n: int, op: str):
    """``flat`` checked to lie in [0, n): at once on the CPU; on a device without a host sync (reported at the next
    synchronisation, disttorch.cuda._checks) and returned clipped into range meanwhile."""
    if xp is not np:
        return _checks.defer_range(xp, flat, 0, n, lambda: _range_error(flat, n, op))
    if flat.size and (int(flat.min()) < 0 or int(flat.max()) >= n):
        raise _range_error(flat, n, op)
    return flat


def _scatter_rows_compiled(out, flat, work) -> bool:
    """``np.add.at(out, flat, work)`` through the compiled kernel (NumPy's order of sums, one pass; ``np.add.at``
    took 1.16 ms against 19 us for the benchmark Transformer's 1024 x 128 rows); False, having done nothing,
    where it does not apply."""
    if work.dtype not in _C.FLOAT or flat.dtype.kind not in "iu" or flat.ndim != 1 or work.ndim != 2:
        return False
    k = _C.get("pointwise")
    if k is None:
        return False
    if not k.scatter_add_rows(out, flat, np.ascontiguousarray(work)):
        raise _range_error(flat, out.shape[0], "embedding_backward")  # the indices changed since the forward
    return True


def _range_error(flat, n: int, op: str) -> IndexError:
    bad = int(flat.min()) if int(flat.min()) < 0 else int(flat.max())
    return IndexError(f"{op}: index out of range in self (index {bad} for a weight of {n} rows)")


def _padding(padding_idx, n: int) -> int:
    """PyTorch's padding_idx normalisation (AssertionError when out of range); -1 means none."""
    if padding_idx is None:
        return -1
    if padding_idx > 0:
        assert padding_idx < n, "Padding_idx must be within num_embeddings"
    elif padding_idx < 0:
        assert padding_idx >= -n, "Padding_idx must be within num_embeddings"
        padding_idx = n + padding_idx
    return int(padding_idx)


def _renorm_(weight, flat, max_norm: float, norm_type: float) -> None:
    """Rescale, in place and outside autograd, the looked-up rows whose ``norm_type``-norm exceeds ``max_norm``."""
    xp = weight._xp
    w = weight._data
    rows = xp.unique(flat)
    sub = w[rows]
    work = sub.astype(_F32) if sub.dtype in _LOW else sub
    a = xp.abs(work)
    with quiet(xp):
        if norm_type == math.inf:
            norm = a.max(axis=1)
        elif norm_type == -math.inf:
            norm = a.min(axis=1)
        elif norm_type == 0:
            norm = (a != 0).sum(axis=1).astype(work.dtype)
        else:
            norm = (a ** norm_type).sum(axis=1) ** (1.0 / norm_type)
        scale = xp.where(norm > max_norm, max_norm / (norm + 1e-7), 1.0)
    w[rows] = (work * scale[:, None]).astype(w.dtype)
    bump_version(weight)


class EmbeddingBackward0(Op):
    """Rows of the weight at integer indices: inputs (weight, indices); the gradient scatters into the rows."""

    op_name = "embedding"

    def forward(self, xp, w, idx, flat=None, pad=-1, freq=False):
        if self.next_functions:
            self.flat, self.num_weights, self.padding_idx, self.freq = flat, w.shape[0], pad, freq
        return xp.take(w, flat.reshape(idx.shape), axis=0)  # flat: the indices, clipped on a device

    def _scaled(self, xp, g2, dtype):
        """The per-occurrence gradient rows, divided by their index's frequency under scale_grad_by_freq."""
        if not self.freq:
            return g2
        flat = self.flat
        inv = (1.0 / xp.bincount(flat, minlength=self.num_weights)[flat]).astype(dtype)[:, None]
        return g2 * (T._wrap(inv) if isinstance(g2, T.Tensor) else inv)

    def backward_arrays(self, xp, g):
        flat, n, pad = self.flat, self.num_weights, self.padding_idx
        gd = self._scaled(xp, g.reshape(flat.shape[0], g.shape[-1]), g.dtype)
        work = gd.astype(_F32) if gd.dtype in _LOW else gd
        out = xp.zeros((n, g.shape[-1]), dtype=work.dtype)
        if not (xp is np and work.size >= _C.MIN_ELEMENTS and _scatter_rows_compiled(out, flat, work)):
            xp.add.at(out, flat, work)
        if pad >= 0:
            out[pad] = 0
        return out if out.dtype == gd.dtype else out.astype(gd.dtype), None

    def backward(self, g):
        """A differentiable scatter (create_graph)."""
        flat, n, pad = self.flat, self.num_weights, self.padding_idx
        dim = g._data.shape[-1]
        xp = g._xp
        g2 = self._scaled(xp, g.reshape(flat.shape[0], dim), g._data.dtype)
        if pad >= 0:
            g2 = g2 * T._wrap((flat != pad).astype(g._data.dtype)[:, None])
        return T._wrap(xp.zeros((n, dim), dtype=g._data.dtype)).index_add(0, T._wrap(flat), g2), None


def embedding(input, weight, padding_idx=None, max_norm=None, norm_type: float = 2.0,
              scale_grad_by_freq: bool = False, sparse: bool = False):
    """Rows of ``weight`` (num_embeddings, embedding_dim) at the integer ``input`` indices.

    Args:
        padding_idx: a row that gets no gradient (negative counts from the end).
        max_norm: looked-up rows with a larger ``norm_type``-norm are rescaled to it, in place in ``weight``.
        scale_grad_by_freq: divide each row's gradient by its index's frequency in the batch.
        sparse: accepted for compatibility; the gradient is dense (same optimizer updates).

    Example:
        >>> embedding(disttorch.tensor([[0, 2]]), disttorch.eye(3)).shape
        disttorch.Size([1, 2, 3])
    """
    idx = _indices(input, "embedding")
    w = tensor_arg(weight, "embedding", "weight")
    if w.ndim != 2:
        raise RuntimeError(f"embedding: 'weight' must be 2-D, got a {w.ndim}-D tensor of shape {list(w.shape)}")
    n = w._data.shape[0]
    pad = _padding(padding_idx, n)
    xp = w._xp
    flat = idx._data.reshape(-1)
    flat = _check_range(xp, flat, n, "embedding")
    if max_norm is not None:
        _renorm_(w, flat, max_norm, norm_type)
    return EmbeddingBackward0.apply(w, idx, flat=flat, pad=pad, freq=bool(scale_grad_by_freq))


def embedding_bag(input, weight, offsets=None, max_norm=None, norm_type: float = 2, scale_grad_by_freq: bool = False,
                  mode: str = "mean", sparse: bool = False, per_sample_weights=None, include_last_offset: bool = False,
                  padding_idx=None):
    """Sums, means or maxima of bags of embeddings without materialising the per-index rows' graph twice.

    ``input`` is 2-D (each row a bag) or 1-D with ``offsets`` giving each bag's start. Indices equal to
    ``padding_idx`` are left out of their bag; empty bags give zeros.
    """
    idx = _indices(input, "embedding_bag")
    w = tensor_arg(weight, "embedding_bag", "weight")
    if mode not in ("sum", "mean", "max"):
        raise ValueError("mode has to be one of sum, mean or max")
    if per_sample_weights is not None and mode != "sum":
        raise NotImplementedError(f"embedding_bag: per_sample_weights was not None. per_sample_weights is only "
                                  f"supported for mode='sum' (got mode='{mode}'). Please open a feature request on "
                                  "GitHub.")
    xp = idx._xp
    if idx.ndim == 2:
        if offsets is not None:
            raise ValueError("if input is 2D, then offsets has to be None, as input is treated is a mini-batch of "
                             "fixed length sequences. However, found offsets of type Tensor")
        nb, length = idx._data.shape
        bag = xp.repeat(xp.arange(nb), length)
        flat_idx = idx.reshape(-1)
        if per_sample_weights is not None:
            per_sample_weights = per_sample_weights.reshape(-1)
    elif idx.ndim == 1:
        if offsets is None:
            raise ValueError("offsets has to be a 1D Tensor but got None")
        off = offsets._data if isinstance(offsets, T.Tensor) else xp.asarray(offsets)
        if off.ndim != 1:
            raise ValueError("offsets has to be a 1D Tensor")
        if off.shape[0]:
            if xp is not np:  # no host sync on the device: reported at the next synchronisation
                _checks.defer(off[0] != 0, lambda off=off: _offsets_error(off))
            elif int(off[0]) != 0:
                raise _offsets_error(off)
        nb = off.shape[0] - 1 if include_last_offset else off.shape[0]
        bag = xp.searchsorted(off, xp.arange(idx._data.shape[0]), side="right") - 1
        flat_idx = idx
    else:
        raise ValueError(f"input has to be 1D or 2D Tensor, but got Tensor of dimension {idx.ndim}")
    emb = embedding(flat_idx, w, padding_idx, max_norm, norm_type, scale_grad_by_freq, sparse)
    pad = _padding(padding_idx, w._data.shape[0])
    keep = xp.ones(bag.shape, dtype=bool) if pad < 0 else flat_idx._data != pad
    keep &= (bag >= 0) & (bag < nb)
    sel = xp.nonzero(keep)[0]
    if sel.size != keep.size:
        emb = emb[T._wrap(sel)]
        bag = bag[sel]
        if per_sample_weights is not None:
            per_sample_weights = per_sample_weights[T._wrap(sel)]
    dim = w._data.shape[1]
    if per_sample_weights is not None:
        emb = emb * per_sample_weights.unsqueeze(-1)
    zeros = T._wrap(xp.zeros((nb, dim), dtype=w._data.dtype))
    bag_t = T._wrap(bag)
    if mode == "max":
        idx2 = T._wrap(xp.broadcast_to(bag[:, None], emb._data.shape).copy())
        out = zeros.scatter_reduce(0, idx2, emb, "amax", include_self=False)
        return out
    out = zeros.index_add(0, bag_t, emb)
    if mode == "mean":
        counts = xp.bincount(bag, minlength=nb).astype(w._data.dtype)
        out = out / T._wrap(xp.maximum(counts, 1)[:, None])
    return out


def _offsets_error(off) -> ValueError:
    return ValueError("offsets[0] has to be 0, i.e., the first sequence in the mini-batch has to start from "
                      f"position 0. However, got {int(off[0])}")


def one_hot(tensor, num_classes: int = -1):
    """int64 one-hot encoding: ``tensor.shape + (num_classes,)``; ``num_classes=-1`` infers ``max + 1``."""
    x = tensor_arg(tensor, "one_hot", "tensor")
    a = x._data
    if a.dtype != np.int64:
        raise RuntimeError("one_hot is only applicable to index tensor of type LongTensor.")
    xp = x._xp
    if num_classes == -1:
        if a.size == 0:
            raise RuntimeError("Can not infer total number of classes from empty tensor.")
        num_classes = int(a.max()) + 1  # the output's shape depends on the data: a host sync, as on CUDA
    if a.size and xp is not np:  # no host sync on the device: reported at the next synchronisation
        _checks.defer((a.min() < 0) | (a.max() >= num_classes), lambda: _one_hot_error(a, num_classes))
    elif a.size:
        err = _one_hot_error(a, num_classes)
        if err is not None:
            raise err
    return T._wrap((a[..., None] == xp.arange(num_classes)).astype(np.int64))


def _one_hot_error(a, num_classes: int):
    if int(a.min()) < 0:
        return RuntimeError("Class values must be non-negative.")
    if int(a.max()) >= num_classes:
        return RuntimeError("Class values must be smaller than num_classes.")
    return None
