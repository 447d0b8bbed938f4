"""Variable-length sequence helpers, as `torch.nn.utils.rnn`."""
from __future__ import annotations

from typing import Sequence

from ... import _tensor as T
from ...ops.creation import full
from ...ops.join import stack

__all__ = ["pad_sequence"]


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
            fill = full((extra,) + trailing, padding_value, dtype=s.dtype)
            parts = [s, fill] if padding_side == "right" else [fill, s]
            from ...ops.join import cat
            s = cat(parts, 0)
        padded.append(s)
    return stack(padded, 0 if batch_first else 1)
