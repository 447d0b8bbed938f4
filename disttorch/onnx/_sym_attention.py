"""ONNX nodes of the fused self-attention op (``_native_multi_head_attention``: unmasked attention over a packed
q/k/v projection, which nn.MultiheadAttention uses on its fast path)."""
from __future__ import annotations

import math

import numpy as np

from ._registry import register


@register("_native_multi_head_attention")
def _self_attention(e):
    heads = int(e.arg(1, e.attr("num_heads", 1)))
    bf = int(e.arg(2, e.attr("bf", 0)))
    e3 = e.shape(0)[2]
    emb = e3 // 3
    d = emb // heads
    dt = e.odtype()
    # (B0, B1, 3, H, D) -> (3, N, H, L, D); B0, B1 = (L, N), or (N, L) with bf; 0 keeps a (dynamic) input dim
    x = e.node("Reshape", [e.x(0), e.g.ints([0, 0, 3, heads, d])])
    x = e.node("Transpose", [x], perm=[2, 0, 3, 1, 4] if bf else [2, 1, 3, 0, 4])
    q, k, v = (e.node("Gather", [x, e.g.const(np.asarray(i, np.int64))], axis=0) for i in range(3))
    s = e.node("Mul", [e.node("MatMul", [q, e.node("Transpose", [k], perm=[0, 1, 3, 2])]),
                       e.scalar(1.0 / math.sqrt(d), dt)])
    o = e.node("MatMul", [e.node("Softmax", [s], axis=-1), v])  # (N, H, L, D)
    o = e.node("Transpose", [o], perm=[0, 2, 1, 3] if bf else [2, 0, 1, 3])
    e.node("Reshape", [o, e.g.ints([-1, emb])], [e.out()])


@register("_canonical_mask")
def _canonical_mask(e):
    """A bool attention mask (True: masked out) as the float mask of -inf/0 that the attention adds."""
    dt = e.odtype()
    e.node("Where", [e.x(0), e.scalar(-np.inf, dt), e.scalar(0, dt)], [e.out()])
