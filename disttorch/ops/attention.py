"""Attention functionals: scaled_dot_product_attention and multi_head_attention_forward.

Both are compositions of differentiable Tensor ops (one batched matmul for the scores, softmax, one
batched matmul with the values), so autograd and double backward come from those ops. Semantics follow
PyTorch's math backend: boolean masks mark the positions that take part, float masks are added to the
scores, and a query row whose scores are all masked gives zeros (PyTorch's ``_safe_softmax``).
"""
from __future__ import annotations

import math
import warnings

import numpy as np  # mask bookkeeping for the causal-mask cache

from .. import _dtype as D
from .. import _parallel as P
from .. import _tensor as T
from ..amp import _state as _amp
from ..autograd import op as _op
from ..autograd.op import Op
from .dropout import dropout
from .linear import linear
from ._helpers import quiet, tensor_arg
from ._kept import attach_kept
from .join import cat, stack
from .pointwise_binary import where
from .softmax import softmax

__all__: list = []
FUNCTIONAL = ("scaled_dot_product_attention", "multi_head_attention_forward")

_NEG_INF = float("-inf")
_FUSED_DT = (np.dtype(np.float32), np.dtype(np.float64))
_CAUSAL: dict = {}  # (L, S) -> bool array, True above the diagonal (the positions a causal query may not see)
# Set by disttorch.nn.attention.sdpa_kernel while the MATH backend is disabled: it raises as PyTorch's CPU
# backend selection does for inputs no enabled backend takes.
_SDPA_CHECK = None


def _causal_block(xp, L: int, S: int):
    """Bool (L, S) array, True where ``tril(ones(L, S))`` is 0."""
    if xp is np:
        m = _CAUSAL.get((L, S))
        if m is None:
            if len(_CAUSAL) > 64:
                _CAUSAL.clear()
            m = _CAUSAL[(L, S)] = ~np.tri(L, S, dtype=bool)
        return m
    return ~xp.tri(L, S, dtype=bool)


def _qkT(q, k):
    """``q @ k^T`` over the last two dims. NumPy's stacked matmul has no BLAS path for a transposed operand
    (about 3x slower), so a batched key is transposed into a contiguous copy first."""
    kt = k.transpose(-2, -1)
    if k._data.ndim > 2 and k._xp is np:
        kt = kt.contiguous()
    return q.matmul(kt)


def _check_sdpa(q, k, v, attn_mask, is_causal: bool, op: str) -> None:
    if not (q._data.dtype == k._data.dtype == v._data.dtype):
        raise RuntimeError(f"{op}: Expected query, key, and value to have the same dtype, but got query.dtype: "
                           f"{q.dtype} key.dtype: {k.dtype} and value.dtype: {v.dtype} instead.")
    if not q.dtype.is_floating_point:
        raise RuntimeError(f"{op}: expected floating point query, key and value, got {q.dtype}")
    if min(q._data.ndim, k._data.ndim, v._data.ndim) < 2:
        raise RuntimeError(f"{op}: expected query, key and value to have at least 2 dimensions, got shapes "
                           f"{list(q.shape)}, {list(k.shape)} and {list(v.shape)}")
    if q._data.shape[-1] != k._data.shape[-1] or k._data.shape[-2] != v._data.shape[-2]:
        raise RuntimeError(f"{op}: query {list(q.shape)} and key {list(k.shape)} must share the last dimension and "
                           f"key and value {list(v.shape)} the sequence dimension (-2)")
    if attn_mask is not None:
        if is_causal:
            raise RuntimeError(f"{op}: Explicit attn_mask should not be set when is_causal=True")
        if attn_mask._data.dtype.kind != "b" and attn_mask._data.dtype != q._data.dtype:
            raise RuntimeError(f"{op}: Expected attn_mask dtype to be bool or float or to match query dtype, but got "
                               f"attn_mask.dtype: {attn_mask.dtype} and query.dtype: {q.dtype} instead.")


def _repeat_heads(q, k, v, op: str):
    if q._data.ndim < 3 or k._data.ndim < 3:
        return k, v
    hq, hk, hv = q._data.shape[-3], k._data.shape[-3], v._data.shape[-3]
    if hk == hq and hv == hq:
        return k, v
    if hk == 0 or hv == 0 or hq % hk or hq % hv:
        raise RuntimeError(f"{op}: number of heads in key ({hk}) and value ({hv}) must divide the number of heads in "
                           f"query ({hq}) when enable_gqa=True")
    return (k if hk == hq else k.repeat_interleave(hq // hk, -3)), (v if hv == hq else v.repeat_interleave(hq // hv, -3))


def scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p: float = 0.0, is_causal: bool = False,
                                 scale: float | None = None, enable_gqa: bool = False):
    """``softmax(query @ key^T * scale + bias) @ value`` over the last two dims (PyTorch's math backend).

    ``attn_mask`` is a bool mask (True = take part) or a float bias, broadcastable to ``(..., L, S)``;
    ``is_causal`` masks with ``tril(ones(L, S))``; ``scale`` defaults to ``1 / sqrt(E)``; ``enable_gqa``
    repeats key/value heads (dim -3) to the number of query heads. Fully masked query rows give zeros.
    """
    op = "scaled_dot_product_attention"
    if attn_mask is not None and type(attn_mask) is not T.Tensor and hasattr(type(attn_mask), "_sdpa_dispatch"):
        # A bias object (nn.attention.bias.CausalBias) picks the computation, as its __torch_function__ does in PyTorch.
        return attn_mask._sdpa_dispatch(query, key, value, dropout_p, is_causal, scale, enable_gqa)
    q, k, v = tensor_arg(query, op, "query"), tensor_arg(key, op, "key"), tensor_arg(value, op, "value")
    if attn_mask is not None:
        attn_mask = tensor_arg(attn_mask, op, "attn_mask")
    if _amp.STATE.active and _amp.enabled_for(q):
        return _sdpa_autocast(q, k, v, attn_mask, dropout_p, is_causal, scale, enable_gqa)
    _check_sdpa(q, k, v, attn_mask, is_causal, op)
    if _SDPA_CHECK is not None:
        _SDPA_CHECK(q, k, v, attn_mask, dropout_p, is_causal, enable_gqa)
    if enable_gqa:
        k, v = _repeat_heads(q, k, v, op)
    L, E = q._data.shape[-2:]
    S = k._data.shape[-2]
    sf = 1.0 / math.sqrt(E) if scale is None else float(scale)
    # Scale whichever of query and the scores is smaller (PyTorch's math backend scales before the matmul too).
    # While an observer traces (ONNX export), always the query: a traced graph must not depend on the sizes.
    if E <= S or _op.OBSERVERS:
        s = _qkT(q * sf, k)
    else:
        s = _qkT(q, k) * sf
    dead = None
    if is_causal:
        if _op.OBSERVERS:  # traced (ONNX): built from reported ops, so the mask's size can follow dynamic axes
            from .compare import logical_not
            from .creation import ones
            from .rearrange import tril

            s = s.masked_fill(logical_not(tril(ones(L, S, dtype=D.bool, device=q.device))), _NEG_INF)
        else:
            s = s.masked_fill(T._wrap(_causal_block(q._xp, L, S)), _NEG_INF)
    elif attn_mask is not None:
        m = attn_mask._data
        xp = attn_mask._xp
        if m.dtype.kind == "b":
            s = where(attn_mask, s, _NEG_INF)
            dead = ~m.any(axis=-1, keepdims=True) if m.shape[-1] else xp.ones(m.shape, dtype=bool)
        else:
            s = s + attn_mask
            dead = xp.isneginf(m).all(axis=-1, keepdims=True)
        dead = T._wrap(dead) if bool(dead.any()) else None
    if dead is not None:
        # A fully masked row: softmax of zeros keeps it finite (no NaN gradients), then the row is zeroed.
        p = softmax(s.masked_fill(dead, 0.0), -1).masked_fill(dead, 0.0)
    else:
        p = softmax(s, -1)
    if dropout_p > 0.0:
        p = dropout(p, dropout_p)
    return p.matmul(v)


def _sdpa_autocast(q, k, v, attn_mask, dropout_p, is_causal, scale, enable_gqa):
    """sdpa under autocast: inputs rounded to the autocast dtype, attention computed in float32, the output
    rounded once (PyTorch's CPU kernel also accumulates in float32; it rounds the softmax numerators to the
    low dtype before the product with ``value``, so a few outputs differ from it by one unit in the last place)."""
    q, k, v, attn_mask = _amp.cast_lower(q, k, v, attn_mask)
    low = q.dtype
    if not (low.is_floating_point and low.itemsize == 2):  # float64 inputs are not autocast
        with _amp.suspended():
            return scaled_dot_product_attention(q, k, v, attn_mask, dropout_p, is_causal, scale, enable_gqa)
    f32 = D.float32
    if attn_mask is not None and attn_mask.dtype.is_floating_point:
        attn_mask = attn_mask.to(f32)
    with _amp.suspended():
        out = scaled_dot_product_attention(q.to(f32), k.to(f32), v.to(f32), attn_mask, dropout_p, is_causal, scale,
                                           enable_gqa)
    return out.to(low)


# ---- fused unmasked self-attention -----------------------------------------------------------------------
# Packed projections are (L, N, 3E) (sequence first) or (N, L, 3E) (batch first: no copy of a transposed
# batch_first input). Per layout: the permutation of the (B0, B1, 3, H, D) view to (3, N, H, L, D), of the
# (B0, B1, H, D) output to (N, H, L, D) and of a (B0, B1, H) array to (N, H, L); ``bf`` indexes these tables.
_PERM5 = ((2, 1, 3, 0, 4), (2, 0, 3, 1, 4))
_PERM4 = ((1, 2, 0, 3), (0, 2, 1, 3))
_PERM3 = ((1, 2, 0), (0, 2, 1))


def _heads(a, H: int, bf: int):
    """(q, k, v) as (n, H, L, D) views of a packed in-projection array."""
    B0, B1, E3 = a.shape
    x = a.reshape(B0, B1, 3, H, E3 // (3 * H)).transpose(_PERM5[bf])
    return x[0], x[1], x[2]


def _sa_forward(xp, a, H: int, sf: float, o, bf: int):
    """Attention of the packed projection ``a``, written into ``o`` ((B0, B1, H, D)); returns what the backward needs.

    The probabilities are kept transposed, ``P^T`` as (n, H, S, L): softmax then reduces over axis -2, which
    NumPy vectorises across rows (a reduction over short last-axis rows is several times slower), and every
    product is a BLAS GEMM on contiguous operands (NumPy's stacked matmul is slow on strided or transposed
    second operands).
    """
    q, k, v = _heads(a, H, bf)
    n, _, L, D = q.shape
    qt = xp.multiply(q.swapaxes(-1, -2), sf, out=xp.empty((n, H, D, L), dtype=a.dtype))
    kc, vc = xp.ascontiguousarray(k), xp.ascontiguousarray(v)
    pt = xp.matmul(kc, qt)  # scores^T
    with quiet(xp):
        pt -= pt.max(axis=-2, keepdims=True)
        xp.exp(pt, out=pt)
        pt *= 1.0 / pt.sum(axis=-2, keepdims=True)
    xp.matmul(pt.swapaxes(-1, -2), vc, out=o.transpose(_PERM4[bf]))
    return pt, kc, vc


def _sa_backward(xp, a, gd, o, saved, sf: float, out, bf: int) -> None:
    """Gradient for the packed projection ``a`` given ``gd`` = dO (shaped as ``o``), written into ``out``
    ((B0, B1, 3, H, D)). The softmax backward uses ``sum_s P dP = sum_d O dO`` (a (B0, B1, H) reduction)."""
    pt, kc, vc = saved
    go = xp.ascontiguousarray(gd.transpose(_PERM4[bf]))
    n, H, L, D = go.shape
    ov = out.transpose(_PERM5[bf])
    xp.matmul(pt, go, out=ov[2])  # dV = P^T dO
    got = xp.multiply(go.swapaxes(-1, -2), sf, out=xp.empty((n, H, D, L), dtype=a.dtype))
    dpt = xp.matmul(vc, got)  # sf * dP^T
    delta = xp.matmul(o * gd, xp.ones(D, dtype=a.dtype))
    delta *= sf
    with quiet(xp):
        dpt -= delta.transpose(_PERM3[bf])[:, :, None, :]
        dpt *= pt  # dS^T, the scale of the scores folded in
    xp.matmul(dpt.swapaxes(-1, -2), kc, out=ov[0])  # dQ = dS K
    xp.matmul(dpt, xp.ascontiguousarray(_heads(a, H, bf)[0]), out=ov[1])  # dK = dS^T Q


# Several batch entries split over the intra-op pool, one piece per thread with BLAS at one thread: the entries
# are independent, so the result is bitwise that of one piece. Measured on the 2-core build machine (batch 16,
# 4 heads of 32, sequence 64: 8 M multiply-adds per product), two threads against one: forward 0.95-1.07 ->
# 0.72 ms, backward 1.04-1.06 -> 0.71 ms. A pool region costs ~80 us of thread hand-offs, so smaller products
# stay whole.
_SPLIT_MACS = 1 << 21


def _batch(x, bf: int, s: int, e: int):
    """Batch entries ``s:e`` of a (B0, B1, ...) array (the batch is axis 0 with ``bf``, else axis 1)."""
    return x[s:e] if bf else x[:, s:e]


def _sa_pieces(xp, a, bf: int) -> list:
    """The batch ranges the attention of ``a`` runs in: one per pool thread when worth it, else the whole."""
    B0, B1, E3 = a.shape
    n, L = (B0, B1) if bf else (B1, B0)
    if xp is np and P.ENABLED and P.threads() > 1 and n > 1 and n * L * L * (E3 // 3) >= _SPLIT_MACS:
        return P.split(n, min(n, P.threads()))
    return [(0, n)]


class SelfAttentionBackward0(Op):
    """``softmax(q k^T * sf) v`` of a packed projection (L, N, 3E) or, with ``bf``, (N, L, 3E): one input."""

    op_name = "_native_multi_head_attention"

    def forward(self, xp, a, num_heads=1, bf=0):
        B0, B1, E3 = a.shape
        E = E3 // 3
        D = E // num_heads
        sf = 1.0 / math.sqrt(D)
        o = xp.empty((B0, B1, num_heads, D), dtype=a.dtype)
        pieces = _sa_pieces(xp, a, bf)  # one piece runs on the caller, as run_tasks runs a single task
        saved = P.run_tasks([lambda s=s, e=e: _sa_forward(xp, _batch(a, bf, s, e), num_heads, sf, _batch(o, bf, s, e),
                                                          bf) for s, e in pieces], blas=True)
        if self.next_functions:
            self.sf, self.oshape, self.bf = sf, o.shape, bf
            self.save(0)
            self.kept = (o, pieces, saved)
        return o.reshape(B0 * B1, E)

    def backward_arrays(self, xp, g):
        qkv, (o, pieces, saved) = self.saved_tensors
        a, bf, sf = qkv._data, self.bf, self.sf
        out = xp.empty(o.shape[:2] + (3,) + o.shape[2:], dtype=a.dtype)
        gd = g.reshape(o.shape)
        P.run_tasks([lambda s=s, e=e, k=k: _sa_backward(xp, _batch(a, bf, s, e), _batch(gd, bf, s, e),
                                                        _batch(o, bf, s, e), k, sf, _batch(out, bf, s, e), bf)
                     for (s, e), k in zip(pieces, saved)], blas=True)
        return out.reshape(a.shape)

    def backward(self, g):
        """The same gradient with Tensor ops (create_graph: differentiable in ``g`` and ``qkv``)."""
        qkv = self.saved_tensors[0]
        B0, B1, H, D = self.oshape
        sf, bf = self.sf, self.bf
        x = qkv.reshape(B0, B1, 3, H, D).permute(_PERM5[bf])
        q, k, v = x[0], x[1], x[2]
        p = (q.matmul(k.transpose(-1, -2)) * sf).softmax(-1)
        go = g.reshape(B0, B1, H, D).permute(_PERM4[bf])
        dp = go.matmul(v.transpose(-1, -2))
        ds = p * (dp - (p * dp).sum(-1, keepdim=True)) * sf
        d = stack([ds.matmul(k), ds.transpose(-1, -2).matmul(q), p.transpose(-1, -2).matmul(go)])
        inv = (3, 1, 0, 2, 4) if not bf else (1, 3, 0, 2, 4)
        return d.permute(inv).reshape(qkv._data.shape)


def _self_attention(qkv, num_heads: int, bf: int = 0):
    """Unmasked multi-head self-attention on a packed projection, (L, N, 3E) or with ``bf`` (N, L, 3E);
    returns the heads' outputs as (L * N, E) (resp. (N * L, E)).

    One op instead of the composed chunk/reshape/transpose/matmul/softmax chain: fewer copies, no ``cat``
    in the backward.
    """
    r = SelfAttentionBackward0.apply(qkv, num_heads=num_heads, bf=bf)
    return attach_kept(r, SelfAttentionBackward0) if r._requires_grad else r


# ---- multi-head attention ------------------------------------------------------------------------------
def _expect(cond: bool, msg: str) -> None:
    # PyTorch states these checks as asserts; raise AssertionError explicitly so they survive ``python -O``.
    if not cond:
        raise AssertionError(msg)


def _canonical_mask(mask, mask_name: str, other_type, other_name: str, target_type, check_other: bool = True):
    """``F._canonical_mask``: a bool mask (True = masked out) becomes a float mask of ``target_type`` with -inf
    there; float masks pass through. Warns, as PyTorch does, when ``other_type`` (the other mask's dtype) differs."""
    if mask is None:
        return None
    mask = tensor_arg(mask, "multi_head_attention_forward", mask_name)
    dt = mask.dtype
    _expect(dt.is_floating_point or dt is D.bool, f"only bool and floating types of {mask_name} are supported")
    if check_other and other_type is not None and dt != other_type:
        warnings.warn(f"Support for mismatched {mask_name} and {other_name} is deprecated. Use same type for both "
                      "instead.", stacklevel=3)
    if dt.is_floating_point:
        return mask
    arr = mask._data
    res = mask._xp.zeros(arr.shape, dtype=target_type.np)
    res[arr] = _NEG_INF
    out = T._wrap(res)
    if _op.OBSERVERS:  # tracers (ONNX) see the conversion, which runs on arrays
        _op.notify_untimed("_canonical_mask", (mask,), {}, (out,))
    return out


def _none_or_dtype(input):
    """``F._none_or_dtype``: the dtype of a tensor, or None."""
    if input is None:
        return None
    if isinstance(input, T.Tensor):
        return input.dtype
    raise RuntimeError("input to _none_or_dtype() must be None or torch.Tensor")


def _pad_last(t):
    """``F.pad(t, (0, 1))``: one zero column appended on the last dim."""
    shape = tuple(t._data.shape)
    return cat([t, T._wrap(t._xp.zeros(shape[:-1] + (1,), dtype=t._data.dtype))], -1)


def _shape_check(query, key, value, key_padding_mask, attn_mask, num_heads: int) -> bool:
    qd = query.dim()
    if qd == 3:
        _expect(key.dim() == 3 and value.dim() == 3, "For batched (3-D) `query`, expected `key` and `value` to be 3-D "
                f"but found {key.dim()}-D and {value.dim()}-D tensors respectively")
        if key_padding_mask is not None:
            _expect(key_padding_mask.dim() == 2, "For batched (3-D) `query`, expected `key_padding_mask` to be `None` "
                    f"or 2-D but found {key_padding_mask.dim()}-D tensor instead")
        if attn_mask is not None:
            _expect(attn_mask.dim() in (2, 3), "For batched (3-D) `query`, expected `attn_mask` to be `None`, 2-D or "
                    f"3-D but found {attn_mask.dim()}-D tensor instead")
        return True
    if qd == 2:
        _expect(key.dim() == 2 and value.dim() == 2, "For unbatched (2-D) `query`, expected `key` and `value` to be "
                f"2-D but found {key.dim()}-D and {value.dim()}-D tensors respectively")
        if key_padding_mask is not None:
            _expect(key_padding_mask.dim() == 1, "For unbatched (2-D) `query`, expected `key_padding_mask` to be "
                    f"`None` or 1-D but found {key_padding_mask.dim()}-D tensor instead")
        if attn_mask is not None:
            _expect(attn_mask.dim() in (2, 3), "For unbatched (2-D) `query`, expected `attn_mask` to be `None`, 2-D "
                    f"or 3-D but found {attn_mask.dim()}-D tensor instead")
            if attn_mask.dim() == 3:
                expected = (num_heads, query.shape[0], key.shape[0])
                _expect(tuple(attn_mask.shape) == expected,
                        f"Expected `attn_mask` shape to be {expected} but got {tuple(attn_mask.shape)}")
        return False
    raise AssertionError(f"query should be unbatched 2D or batched 3D tensor but received {qd}-D query tensor")


def _in_projection(query, key, value, in_proj_weight, in_proj_bias, use_separate, q_w, k_w, v_w):
    if not use_separate:
        _expect(in_proj_weight is not None, "use_separate_proj_weight is False but in_proj_weight is None")
        if query is key and key is value:  # self-attention: one matmul for q, k and v
            qkv = linear(query, in_proj_weight, in_proj_bias)
            return qkv.chunk(3, -1)
        w_q, w_k, w_v = in_proj_weight.chunk(3)
        b_q, b_k, b_v = (None, None, None) if in_proj_bias is None else in_proj_bias.chunk(3)
    else:
        _expect(q_w is not None, "use_separate_proj_weight is True but q_proj_weight is None")
        _expect(k_w is not None, "use_separate_proj_weight is True but k_proj_weight is None")
        _expect(v_w is not None, "use_separate_proj_weight is True but v_proj_weight is None")
        w_q, w_k, w_v = q_w, k_w, v_w
        b_q, b_k, b_v = (None, None, None) if in_proj_bias is None else in_proj_bias.chunk(3)
    return linear(query, w_q, b_q), linear(key, w_k, b_k), linear(value, w_v, b_v)


def multi_head_attention_forward(query, key, value, embed_dim_to_check: int, num_heads: int, in_proj_weight,
                                 in_proj_bias, bias_k, bias_v, add_zero_attn: bool, dropout_p: float, out_proj_weight,
                                 out_proj_bias, training: bool = True, key_padding_mask=None, need_weights: bool = True,
                                 attn_mask=None, use_separate_proj_weight: bool = False, q_proj_weight=None,
                                 k_proj_weight=None, v_proj_weight=None, static_k=None, static_v=None,
                                 average_attn_weights: bool = True, is_causal: bool = False):
    """Multi-head attention on sequence-first ``(L, N, E)`` (or unbatched ``(L, E)``) inputs.

    Returns ``(attn_output, attn_weights)``: the weights are averaged over heads (``average_attn_weights``),
    per head, or None when ``need_weights`` is False. Bool masks mark positions to *ignore* (True = masked).
    """
    op = "multi_head_attention_forward"
    query, key, value = (tensor_arg(t, op, n) for t, n in ((query, "query"), (key, "key"), (value, "value")))
    is_batched = _shape_check(query, key, value, key_padding_mask, attn_mask, num_heads)
    if not is_batched:
        same_kv = key is value
        same_qk = query is key
        query = query.unsqueeze(1)
        key = query if same_qk else key.unsqueeze(1)
        value = key if same_kv else value.unsqueeze(1)
        if key_padding_mask is not None:
            key_padding_mask = key_padding_mask.unsqueeze(0)
    tgt_len, bsz, embed_dim = query.shape
    src_len = key.shape[0]
    target = query.dtype
    key_padding_mask = _canonical_mask(key_padding_mask, "key_padding_mask", None, "", target, check_other=False)
    if is_causal and attn_mask is None:
        raise RuntimeError("Need attn_mask if specifying the is_causal hint. You may use the Transformer module method "
                           "`generate_square_subsequent_mask` to create this mask.")
    if is_causal and key_padding_mask is None and not need_weights:
        attn_mask = None  # the hint alone drives SDPA's causal path
    else:
        attn_mask = _canonical_mask(attn_mask, "attn_mask", None, "", target, check_other=False)
        if key_padding_mask is not None:
            is_causal = False
    _expect(embed_dim == embed_dim_to_check,
            f"was expecting embedding dimension of {embed_dim_to_check}, but got {embed_dim}")
    head_dim = embed_dim // num_heads
    _expect(head_dim * num_heads == embed_dim, f"embed_dim {embed_dim} not divisible by num_heads {num_heads}")
    if use_separate_proj_weight:
        _expect(tuple(key.shape[:2]) == tuple(value.shape[:2]),
                f"key's sequence and batch dims {tuple(key.shape[:2])} do not match value's {tuple(value.shape[:2])}")
    else:
        _expect(tuple(key.shape) == tuple(value.shape),
                f"key shape {tuple(key.shape)} does not match value shape {tuple(value.shape)}")
    if not training:
        dropout_p = 0.0
    if (not need_weights and attn_mask is None and key_padding_mask is None and not is_causal and dropout_p <= 0.0
            and bias_k is None and bias_v is None and not add_zero_attn and static_k is None and static_v is None
            and not use_separate_proj_weight and query is key and key is value and in_proj_weight is not None
            and tuple(in_proj_weight.shape) == (3 * embed_dim, embed_dim) and query._data.dtype in _FUSED_DT
            and not _amp.STATE.active):  # under autocast the projections are half precision: composed path
        xb = query.transpose(0, 1)
        bf = int(bsz > 1 and xb._data.flags.c_contiguous)  # a transposed batch_first input: work batch first
        out = _self_attention(linear(xb if bf else query, in_proj_weight, in_proj_bias), num_heads, bf)
        out = linear(out, out_proj_weight, out_proj_bias)
        out = out.reshape(bsz, tgt_len, out.shape[1]).transpose(0, 1) if bf else \
            out.reshape(tgt_len, bsz, out.shape[1])
        return (out if is_batched else out.squeeze(1)), None
    q, k, v = _in_projection(query, key, value, in_proj_weight, in_proj_bias, use_separate_proj_weight,
                             q_proj_weight, k_proj_weight, v_proj_weight)
    if attn_mask is not None:
        if attn_mask.dim() == 2:
            if tuple(attn_mask.shape) != (tgt_len, src_len):
                raise RuntimeError(f"The shape of the 2D attn_mask is {tuple(attn_mask.shape)}, but should be "
                                   f"{(tgt_len, src_len)}.")
            attn_mask = attn_mask.unsqueeze(0)
        elif attn_mask.dim() == 3:
            if tuple(attn_mask.shape) != (bsz * num_heads, tgt_len, src_len):
                raise RuntimeError(f"The shape of the 3D attn_mask is {tuple(attn_mask.shape)}, but should be "
                                   f"{(bsz * num_heads, tgt_len, src_len)}.")
        else:
            raise RuntimeError(f"attn_mask's dimension {attn_mask.dim()} is not supported")
    if bias_k is not None and bias_v is not None:
        _expect(static_k is None, "bias cannot be added to static key.")
        _expect(static_v is None, "bias cannot be added to static value.")
        k = cat([k, bias_k.repeat(1, bsz, 1)])
        v = cat([v, bias_v.repeat(1, bsz, 1)])
        if attn_mask is not None:
            attn_mask = _pad_last(attn_mask)
        if key_padding_mask is not None:
            key_padding_mask = _pad_last(key_padding_mask)
    else:
        _expect(bias_k is None and bias_v is None, "bias_k and bias_v must be given together")
    bh = bsz * num_heads
    q = q.reshape(tgt_len, bh, head_dim).transpose(0, 1)
    if static_k is None:
        k = k.reshape(k.shape[0], bh, head_dim).transpose(0, 1)
    else:
        _expect(static_k.size(0) == bh, f"expecting static_k.size(0) of {bh}, but got {static_k.size(0)}")
        _expect(static_k.size(2) == head_dim, f"expecting static_k.size(2) of {head_dim}, but got {static_k.size(2)}")
        k = static_k
    if static_v is None:
        v = v.reshape(v.shape[0], bh, head_dim).transpose(0, 1)
    else:
        _expect(static_v.size(0) == bh, f"expecting static_v.size(0) of {bh}, but got {static_v.size(0)}")
        _expect(static_v.size(2) == head_dim, f"expecting static_v.size(2) of {head_dim}, but got {static_v.size(2)}")
        v = static_v
    if add_zero_attn:
        zeros = q._xp.zeros
        k = cat([k, T._wrap(zeros((bh, 1, head_dim), dtype=k._data.dtype))], 1)
        v = cat([v, T._wrap(zeros((bh, 1, head_dim), dtype=v._data.dtype))], 1)
        if attn_mask is not None:
            attn_mask = _pad_last(attn_mask)
        if key_padding_mask is not None:
            key_padding_mask = _pad_last(key_padding_mask)
    src_len = k.shape[1]
    if key_padding_mask is not None:
        _expect(tuple(key_padding_mask.shape) == (bsz, src_len),
                f"expecting key_padding_mask shape of {(bsz, src_len)}, but got {tuple(key_padding_mask.shape)}")
        kpm = key_padding_mask.reshape(bsz, 1, 1, src_len).expand(bsz, num_heads, 1, src_len).reshape(bh, 1, src_len)
        attn_mask = kpm if attn_mask is None else attn_mask + kpm

    if need_weights:
        scaled = q * math.sqrt(1.0 / float(head_dim))
        w = _qkT(scaled, k)
        if attn_mask is not None:
            w = w + attn_mask
        w = softmax(w, -1)
        if dropout_p > 0.0:
            w = dropout(w, dropout_p)
        out = w.matmul(v).transpose(0, 1).reshape(tgt_len * bsz, embed_dim)
        out = linear(out, out_proj_weight, out_proj_bias)
        out = out.reshape(tgt_len, bsz, out.shape[1])
        w = w.reshape(bsz, num_heads, tgt_len, src_len)
        if average_attn_weights:
            w = w.mean(1)
        if not is_batched:
            out, w = out.squeeze(1), w.squeeze(0)
        return out, w

    if attn_mask is not None:
        if attn_mask.shape[0] == 1 and attn_mask.dim() == 3:
            attn_mask = attn_mask.unsqueeze(0)
        else:
            attn_mask = attn_mask.reshape(bsz, num_heads, -1, src_len)
    q = q.reshape(bsz, num_heads, tgt_len, head_dim)
    k = k.reshape(bsz, num_heads, src_len, head_dim)
    v = v.reshape(bsz, num_heads, src_len, head_dim)
    out = scaled_dot_product_attention(q, k, v, attn_mask, dropout_p, is_causal)
    out = out.permute(2, 0, 1, 3).reshape(bsz * tgt_len, embed_dim)
    out = linear(out, out_proj_weight, out_proj_bias)
    out = out.reshape(tgt_len, bsz, out.shape[1])
    if not is_batched:
        out = out.squeeze(1)
    return out, None
