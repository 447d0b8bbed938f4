"""Variable-length sequence helpers, as `torch.nn.utils.rnn`.

A ``PackedSequence`` stores a batch of sequences sorted by decreasing length, time step by time step:
``data`` holds, for each step ``t``, the rows of the ``batch_sizes[t]`` sequences still running. Packing
and unpacking are each one differentiable gather (``index_select``) over a flattened view, so gradients
flow back to the padded input.
"""
from __future__ import annotations

from typing import NamedTuple, Sequence

import numpy as np

from ... import _internals as E
from ... import _tensor as T
from ...ops.creation import full
from ...ops.join import cat, stack

__all__ = ["PackedSequence", "invert_permutation", "pack_padded_sequence", "pad_packed_sequence", "pad_sequence",
           "unpad_sequence", "pack_sequence", "unpack_sequence"]

_I64 = np.dtype(np.int64)


def _index(xp, arr) -> T.Tensor:
    return E.wrap(xp.asarray(arr, dtype=_I64))


def invert_permutation(permutation: T.Tensor | None) -> T.Tensor | None:
    """The inverse of a permutation tensor (None stays None)."""
    if permutation is None:
        return None
    xp = E.array_module(permutation)
    p = E.array(permutation)
    out = xp.empty_like(p)
    out[p] = xp.arange(p.shape[0], dtype=p.dtype)
    return E.wrap(out)


class PackedSequence_(NamedTuple):
    data: T.Tensor
    batch_sizes: T.Tensor
    sorted_indices: T.Tensor | None
    unsorted_indices: T.Tensor | None


class PackedSequence(PackedSequence_):
    """Data and per-step batch sizes of a packed batch of variable-length sequences.

    Build one with ``pack_padded_sequence`` or ``pack_sequence``, never by hand. ``batch_sizes`` is a
    CPU int64 tensor; ``sorted_indices`` maps packed batch positions to the caller's batch order.
    """

    def __new__(cls, data, batch_sizes=None, sorted_indices=None, unsorted_indices=None):
        if unsorted_indices is None:
            unsorted_indices = invert_permutation(sorted_indices)
        if batch_sizes is None:  # legacy form: PackedSequence((data, batch_sizes))
            data, batch_sizes = data
        if batch_sizes.device.type != "cpu":
            raise ValueError("batch_sizes should always be on CPU. Instances of PackedSequence should never be "
                             "created manually. They should be instantiated by functions like pack_sequence and "
                             "pack_padded_sequences in nn.utils.rnn. "
                             "https://pytorch.org/docs/stable/nn.html#torch.nn.utils.rnn.pack_sequence")
        return super().__new__(cls, data, batch_sizes, sorted_indices, unsorted_indices)

    def to(self, *args, **kwargs) -> "PackedSequence":
        """Move/cast ``data`` (indices follow it to its device); returns self when nothing changes."""
        data = self.data.to(*args, **kwargs)
        if data is self.data:
            return self
        dev = data.device
        s = None if self.sorted_indices is None else self.sorted_indices.to(dev)
        u = None if self.unsorted_indices is None else self.unsorted_indices.to(dev)
        return type(self)(data, self.batch_sizes, s, u)

    def cuda(self, *args, **kwargs) -> "PackedSequence":
        return self.to(*args, device="cuda", **kwargs) if not args else self.to(*args, **kwargs)

    def cpu(self, *args, **kwargs) -> "PackedSequence":
        return self.to("cpu")

    def double(self) -> "PackedSequence":
        return self.to(dtype=_dt("float64"))

    def float(self) -> "PackedSequence":
        return self.to(dtype=_dt("float32"))

    def half(self) -> "PackedSequence":
        return self.to(dtype=_dt("float16"))

    def long(self) -> "PackedSequence":
        return self.to(dtype=_dt("int64"))

    def int(self) -> "PackedSequence":
        return self.to(dtype=_dt("int32"))

    def short(self) -> "PackedSequence":
        return self.to(dtype=_dt("int16"))

    def char(self) -> "PackedSequence":
        return self.to(dtype=_dt("int8"))

    def byte(self) -> "PackedSequence":
        return self.to(dtype=_dt("uint8"))

    @property
    def is_cuda(self) -> bool:
        return self.data.is_cuda

    def is_pinned(self) -> bool:
        return False


def _dt(name: str):
    from ... import _dtype as D

    return getattr(D, name)


def _packed_sequence_init(data, batch_sizes, sorted_indices, unsorted_indices) -> PackedSequence:
    return PackedSequence(data, batch_sizes, sorted_indices, unsorted_indices)


def _lengths_array(lengths) -> np.ndarray:
    if isinstance(lengths, T.Tensor):
        if lengths.dim() != 1:
            raise RuntimeError(f"'lengths' argument should be a 1D CPU int64 tensor, but got {lengths.dim()}D "
                               f"{lengths.device} {lengths.dtype} tensor")
        return E.to_host(E.array(lengths)).astype(_I64)
    return np.asarray(lengths, dtype=_I64).reshape(-1)


def pack_padded_sequence(input: T.Tensor, lengths, batch_first: bool = False,
                         enforce_sorted: bool = True) -> PackedSequence:
    """Pack a padded batch ``(T, B, *)`` (or ``(B, T, *)``) of sequences with the given lengths.

    With ``enforce_sorted`` the lengths must decrease; otherwise the batch is sorted here and the
    permutation is kept in ``sorted_indices``.

    Example:
        >>> x = disttorch.randn(4, 2, 3)
        >>> pack_padded_sequence(x, [4, 2]).batch_sizes
        tensor([2, 2, 1, 1])
    """
    lens = _lengths_array(lengths)
    x = input
    xp = E.array_module(x)
    bdim = 0 if batch_first else 1
    if x.dim() < 2:
        raise RuntimeError(f"pack_padded_sequence: expected a padded input of at least 2 dimensions, got "
                           f"{x.dim()}-D tensor of shape {list(x.shape)}")
    batch = x.shape[bdim]
    if lens.shape[0] != batch:
        raise RuntimeError(f"Expected `len(lengths)` to be equal to batch_size, but got {lens.shape[0]} "
                           f"(batch_size={batch})")
    sorted_indices = None
    if enforce_sorted:
        if lens.shape[0] > 1 and (np.diff(lens) > 0).any():
            raise RuntimeError("`lengths` array must be sorted in decreasing order when `enforce_sorted` is True. "
                               "You can pass `enforce_sorted=False` to pack_padded_sequence and/or pack_sequence "
                               "to sidestep this requirement if you do not need ONNX exportability.")
    else:
        order = np.argsort(-lens, kind="stable")
        lens = lens[order]
        sorted_indices = _index(xp, order)
        x = x.index_select(bdim, sorted_indices)
    if batch and lens.min() <= 0:
        raise RuntimeError("Length of all samples has to be greater than 0, but found an element in 'lengths' "
                           "that is <= 0")
    steps = int(lens[0]) if batch else 0
    tdim = 1 - bdim
    if steps > x.shape[tdim]:
        raise RuntimeError(f"pack_padded_sequence: the longest length {steps} exceeds the padded input's time "
                           f"dimension ({x.shape[tdim]}, input shape {list(x.shape)})")
    # Row-major nonzero of the (step, batch) activity mask lists rows in packed order.
    t_idx, b_idx = np.nonzero(np.arange(steps)[:, None] < lens[None, :])
    flat = b_idx * x.shape[1] + t_idx if batch_first else t_idx * batch + b_idx
    trail = tuple(x.shape[2:])
    data = x.reshape((-1,) + trail).index_select(0, _index(xp, flat))
    batch_sizes = E.wrap((np.arange(steps)[:, None] < lens[None, :]).sum(1).astype(_I64))
    return _packed_sequence_init(data, batch_sizes, sorted_indices, None)


def pad_packed_sequence(sequence: PackedSequence, batch_first: bool = False, padding_value: float = 0.0,
                        total_length: int | None = None) -> tuple:
    """Unpack a ``PackedSequence`` into a padded tensor and the int64 tensor of lengths.

    Example:
        >>> padded, lengths = pad_packed_sequence(packed, batch_first=True)
    """
    data, bsz_t = sequence.data, sequence.batch_sizes
    bsz = E.to_host(E.array(bsz_t)).astype(_I64)
    steps = bsz.shape[0]
    if total_length is not None:
        if total_length < steps:
            raise ValueError("Expected total_length to be at least the length of the longest sequence in input, "
                             f"but got total_length={total_length} and max sequence length being {steps}")
        steps = total_length
    batch = int(bsz[0]) if bsz.shape[0] else 0
    n = data.shape[0]
    xp = E.array_module(data)
    offs = np.cumsum(bsz) - bsz
    active = np.arange(batch)[None, :] < bsz[:, None]
    idx = np.full((steps, batch), n, dtype=_I64)
    idx[:bsz.shape[0]] = np.where(active, offs[:, None] + np.arange(batch)[None, :], n)
    if batch_first:
        idx = idx.T
    trail = tuple(data.shape[1:])
    src = cat([data, full((1,) + trail, padding_value, dtype=data.dtype, device=data.device)], 0)
    padded = src.index_select(0, _index(xp, idx.reshape(-1))).reshape(idx.shape + trail)
    lengths = active.sum(0).astype(_I64)
    if sequence.unsorted_indices is not None:
        u = sequence.unsorted_indices
        padded = padded.index_select(0 if batch_first else 1, u)
        lengths = lengths[E.to_host(E.array(u))]
    return padded, E.wrap(lengths)


def pad_sequence(sequences: Sequence[T.Tensor], batch_first: bool = False, padding_value: float = 0.0,
                 padding_side: str = "right") -> T.Tensor:
    """Stack tensors of shape (L_i, *) into (max L, B, *) (or (B, max L, *)), padding with ``padding_value``.

    Differentiable with respect to each sequence.

    Example:
        >>> a, b = disttorch.ones(3, 2), disttorch.ones(1, 2)
        >>> nn.utils.rnn.pad_sequence([a, b], batch_first=True).shape
        disttorch.Size([2, 3, 2])
    """
    if padding_side not in ("left", "right"):
        raise ValueError(f"Expected padding_side to be one of left or right, but got {padding_side}.")
    if isinstance(sequences, T.Tensor):
        sequences = sequences.unbind(0)
    sequences = list(sequences)
    if not sequences:
        raise RuntimeError("received an empty list of sequences")
    trailing = tuple(sequences[0].shape[1:])
    for s in sequences:
        if tuple(s.shape[1:]) != trailing:
            raise RuntimeError(f"pad_sequence: all sequences must have the same trailing shape {trailing}, got "
                               f"{tuple(s.shape)}")
    max_len = max(s.shape[0] for s in sequences)
    padded = []
    for s in sequences:
        extra = max_len - s.shape[0]
        if extra:
            fill = full((extra,) + trailing, padding_value, dtype=s.dtype, device=s.device)
            s = cat([s, fill] if padding_side == "right" else [fill, s], 0)
        padded.append(s)
    return stack(padded, 0 if batch_first else 1)


def unpad_sequence(padded_sequences: T.Tensor, lengths, batch_first: bool = False) -> list:
    """Split a padded batch back into a list of tensors of the given lengths (inverse of ``pad_sequence``)."""
    lens = _lengths_array(lengths)
    x = padded_sequences if batch_first else padded_sequences.transpose(0, 1)
    return [x[i, :int(n)] for i, n in enumerate(lens)]


def pack_sequence(sequences: Sequence[T.Tensor], enforce_sorted: bool = True) -> PackedSequence:
    """Pack a list of tensors of shapes (L_i, *), as ``pack_padded_sequence(pad_sequence(...))``."""
    lengths = [s.size(0) for s in sequences]
    return pack_padded_sequence(pad_sequence(sequences), lengths, enforce_sorted=enforce_sorted)


def unpack_sequence(packed_sequences: PackedSequence) -> list:
    """The list of tensors a ``PackedSequence`` holds, in the caller's original batch order."""
    padded, lengths = pad_packed_sequence(packed_sequences, batch_first=True)
    return unpad_sequence(padded, lengths, batch_first=True)
