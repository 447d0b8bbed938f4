"""Causal attention biases for scaled_dot_product_attention (``torch.nn.attention.bias``).

``causal_upper_left(L, S)`` is the usual causal mask ``tril(ones(L, S))``; ``causal_lower_right(L, S)``
aligns the triangle to the bottom-right corner (each query sees the keys up to its position counted
from the end), as used for decoding with a KV cache. Passed as ``attn_mask`` to
``F.scaled_dot_product_attention`` they choose the computation as PyTorch's ``CausalBias`` does: upper
left (or a square mask) runs the ``is_causal=True`` path, lower right the materialized boolean mask.

Example:
    >>> from disttorch.nn.attention.bias import causal_lower_right
    >>> bias = causal_lower_right(4, 12)
    >>> out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
"""
from __future__ import annotations

import warnings
from enum import IntEnum, auto

from ... import _dtype as D
from ..._tensor import Tensor
from ..parameter import _share

__all__ = ["causal_upper_left", "causal_lower_right", "CausalVariant", "CausalBias"]


class CausalVariant(IntEnum):
    """Which causal triangle: ``UPPER_LEFT`` (``tril(ones(L, S))``) or ``LOWER_RIGHT`` (``tril(..., S - L)``)."""

    UPPER_LEFT = auto()
    LOWER_RIGHT = auto()


def _mask(variant: CausalVariant, seq_len_q: int, seq_len_kv: int, device=None) -> Tensor:
    from ... import ops

    ones = ops.ones(seq_len_q, seq_len_kv, dtype=D.bool, device=device)
    diagonal = 0 if variant == CausalVariant.UPPER_LEFT else seq_len_kv - seq_len_q
    return ops.tril(ones, diagonal=diagonal)


class CausalBias(Tensor):
    """A causal bias for scaled_dot_product_attention; build it with :func:`causal_upper_left` or
    :func:`causal_lower_right`.

    Its tensor value is the boolean mask (True: the query may attend to the key); operations on it give
    plain tensors. ``variant``, ``seq_len_q`` and ``seq_len_kv`` describe it.
    """

    def __new__(cls, variant: CausalVariant, seq_len_q: int, seq_len_kv: int):
        if not isinstance(variant, CausalVariant):
            raise AssertionError(f"variant must be a CausalVariant, got {type(variant).__name__}")
        return _share(cls, _mask(variant, seq_len_q, seq_len_kv), False, "CausalBias")

    def __init__(self, variant: CausalVariant, seq_len_q: int, seq_len_kv: int) -> None:
        self.variant = variant
        self.seq_len_q = seq_len_q
        self.seq_len_kv = seq_len_kv
        if seq_len_q > seq_len_kv and variant == CausalVariant.LOWER_RIGHT:
            warnings.warn("Lower right causal bias will produce NaNs in the output when seq_len_q > seq_len_kv!",
                          stacklevel=3)

    def _materialize(self, device=None) -> Tensor:
        """The boolean mask as a plain tensor (on ``device``, default CPU)."""
        return _mask(self.variant, self.seq_len_q, self.seq_len_kv, device)

    def _sdpa_dispatch(self, query, key, value, dropout_p: float = 0.0, is_causal: bool = False, scale=None,
                       enable_gqa: bool = False) -> Tensor:
        from ...ops.attention import scaled_dot_product_attention as sdpa

        if is_causal:
            raise ValueError("CausalBias should not be used with causal=True")
        if self.seq_len_q == self.seq_len_kv or self.variant == CausalVariant.UPPER_LEFT:
            return sdpa(query, key, value, attn_mask=None, dropout_p=dropout_p, is_causal=True, scale=scale,
                        enable_gqa=enable_gqa)
        if self.variant == CausalVariant.LOWER_RIGHT:
            return sdpa(query, key, value, attn_mask=self._materialize(query.device), dropout_p=dropout_p,
                        is_causal=False, scale=scale, enable_gqa=enable_gqa)
        raise ValueError(f"CausalBias.variant must be a CausalVariant type, but found: {self.variant}")

    def __repr__(self) -> str:
        return repr(self._materialize())

    def __reduce_ex__(self, protocol):
        return (CausalBias, (self.variant, self.seq_len_q, self.seq_len_kv))


def causal_upper_left(*size) -> CausalBias:
    """The upper-left causal bias of shape ``(seq_len_q, seq_len_kv)`` (``tril(ones(size))``)."""
    if len(size) != 2:
        raise AssertionError("causal_upper_left only supports 2D tensors")
    seq_len_q, seq_len_kv = size
    return CausalBias(CausalVariant.UPPER_LEFT, seq_len_q, seq_len_kv)


def causal_lower_right(*size) -> CausalBias:
    """The lower-right causal bias of shape ``(seq_len_q, seq_len_kv)`` (``tril(ones(size), S - L)``)."""
    if len(size) != 2:
        raise AssertionError("causal_lower_right only supports 2D tensors")
    seq_len_q, seq_len_kv = size
    return CausalBias(CausalVariant.LOWER_RIGHT, seq_len_q, seq_len_kv)
