"""FlexAttention (``torch.nn.attention.flex_attention``): attention with a user ``score_mod`` and a ``BlockMask``.

``score_mod(score, b, h, q_idx, kv_idx)`` rewrites each attention score and ``mask_mod(b, h, q_idx,
kv_idx)`` says which query/key pairs take part. PyTorch calls them through vmap on 0-d tensors;
disttorch calls them once with broadcasting index tensors (``b``: (B,1,1,1), ``h``: (1,H,1,1),
``q_idx``: (1,1,L,1), ``kv_idx``: (1,1,1,S)), which gives the same result for the usual element-wise
functions (arithmetic, comparisons, ``torch.where``, indexing a bias table with the indices). The
attention itself is PyTorch's unfused math: it materializes the (B, H, L, S) scores. Unlike PyTorch
2.13 on the CPU, backward works (gradients reach query, key, value and tensors captured by
``score_mod``).

Example:
    >>> def causal(b, h, q_idx, kv_idx):
    ...     return q_idx >= kv_idx
    >>> block_mask = create_block_mask(causal, None, None, T, T, device="cpu")
    >>> out = flex_attention(q, k, v, block_mask=block_mask)
"""
from __future__ import annotations

import inspect
import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ... import _dtype as D
from ... import _internals as E
from ... import _tensor as T

__all__ = ["BlockMask", "flex_attention", "AuxOutput", "AuxRequest", "FlexKernelOptions", "create_block_mask",
           "create_mask", "or_masks", "and_masks", "noop_mask"]

FlexKernelOptions = dict


@dataclass
class AuxRequest:
    """Which auxiliary outputs ``flex_attention(..., return_aux=...)`` should return."""

    lse: bool = False
    max_scores: bool = False


@dataclass
class AuxOutput:
    """The auxiliary outputs: ``lse`` (logsumexp of the scores per query) and ``max_scores``."""

    lse: object = None
    max_scores: object = None


def noop_mask(batch, head, token_q, token_kv):
    """The mask_mod that keeps every pair."""
    return batch.new_ones((), dtype=D.bool)


def and_masks(*mask_mods: Callable) -> Callable:
    """A mask_mod keeping the pairs that every given mask_mod keeps."""
    if not all(callable(m) for m in mask_mods):
        raise RuntimeError(f"All inputs should be callable mask_mods: {mask_mods}")

    def and_mask(b, h, q_idx, kv_idx):
        result = noop_mask(b, h, q_idx, kv_idx)
        for m in mask_mods:
            result = result & m(b, h, q_idx, kv_idx)
        return result

    return and_mask


def or_masks(*mask_mods: Callable) -> Callable:
    """A mask_mod keeping the pairs that any given mask_mod keeps."""
    if not all(callable(m) for m in mask_mods):
        raise RuntimeError(f"All inputs should be callable mask_mods: {mask_mods}")

    def or_mask(b, h, q_idx, kv_idx):
        result = ~noop_mask(b, h, q_idx, kv_idx)  # all False
        for m in mask_mods:
            result = result | m(b, h, q_idx, kv_idx)
        return result

    return or_mask


def _indices(B: int, H: int, L: int, S: int, device=None) -> tuple:
    from ... import ops

    def idx(n, axis):
        shape = [1, 1, 1, 1]
        shape[axis] = n
        return ops.arange(n, device=device).reshape(shape)

    return idx(B, 0), idx(H, 1), idx(L, 2), idx(S, 3)


def _n_params(fn) -> int:
    try:
        return len(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        return 4


def create_mask(mod_fn: Callable, B: int | None, H: int | None, Q_LEN: int, KV_LEN: int, device=None):
    """The dense boolean mask (B, H, Q_LEN, KV_LEN) of a mask_mod (or of a score_mod: where it is not -inf)."""
    from ... import ops

    B, H = B or 1, H or 1
    b, h, q, kv = _indices(B, H, Q_LEN, KV_LEN)
    if _n_params(mod_fn) == 5:
        out = mod_fn(ops.zeros(B, H, Q_LEN, KV_LEN), b, h, q, kv)
        mask = ~ops.isneginf(out)
    else:
        mask = mod_fn(b, h, q, kv)
    if not isinstance(mask, T.Tensor):
        mask = ops.tensor(bool(mask))
    return mask.to(D.bool).expand(B, H, Q_LEN, KV_LEN).contiguous()


class BlockMask:
    """Which (query, key) pairs take part, as built by :func:`create_block_mask`.

    disttorch keeps the dense boolean mask; the block view (``to_dense``, ``sparsity``) is derived from
    it with ``BLOCK_SIZE`` as PyTorch reports it.
    """

    def __init__(self, mask, mask_mod: Callable, BLOCK_SIZE=(128, 128)) -> None:
        self._mask = mask
        self.mask_mod = mask_mod
        self.BLOCK_SIZE = (BLOCK_SIZE, BLOCK_SIZE) if isinstance(BLOCK_SIZE, int) else tuple(BLOCK_SIZE)
        self.seq_lengths = (int(mask.shape[-2]), int(mask.shape[-1]))

    @property
    def shape(self) -> tuple:
        return tuple(int(s) for s in self._mask.shape)

    def numel(self) -> int:
        return int(np.prod(self.shape))

    def _blocks(self) -> np.ndarray:
        m = self._mask.cpu().numpy()
        bq, bk = self.BLOCK_SIZE
        nq, nk = -(-m.shape[2] // bq), -(-m.shape[3] // bk)
        out = np.zeros(m.shape[:2] + (nq, nk), np.int32)
        for i in range(nq):
            for j in range(nk):
                out[:, :, i, j] = m[:, :, i * bq:(i + 1) * bq, j * bk:(j + 1) * bk].any(axis=(2, 3))
        return out

    def to_dense(self):
        """The block-level mask (B, H, Q blocks, KV blocks): 1 where a block has any kept pair."""
        return E.wrap(self._blocks())

    def sparsity(self) -> float:
        """The percentage of blocks that are not computed (PyTorch's formula)."""
        computed = int(self._blocks().sum()) * self.BLOCK_SIZE[0] * self.BLOCK_SIZE[1]
        return 100 * (1 - computed / self.numel())

    def to(self, device) -> BlockMask:
        return BlockMask(self._mask.to(device), self.mask_mod, self.BLOCK_SIZE)

    def to_string(self, grid_size=(20, 20), limit: int = 4) -> str:
        blocks = self._blocks()
        out = []
        for b in range(min(blocks.shape[0], limit)):
            for h in range(min(blocks.shape[1], limit)):
                out.append(f"({b}, {h})")
                for row in blocks[b, h][:grid_size[0]]:
                    out.append("".join("██" if x else "  " for x in row[:grid_size[1]]))
        return "\n".join(out)

    def __repr__(self) -> str:
        return f"BlockMask(shape={self.shape}, sparsity={self.sparsity():.2f}%, \n{self.to_string()}\n)"


def create_block_mask(mask_mod: Callable, B: int | None, H: int | None, Q_LEN: int, KV_LEN: int, device=None,
                      BLOCK_SIZE=128, _compile: bool = False, **_options) -> BlockMask:
    """Evaluate ``mask_mod`` over every (b, h, q_idx, kv_idx) and wrap the result (B/H None: shared by all).

    Example:
        >>> block_mask = create_block_mask(lambda b, h, q, kv: q >= kv, None, None, 128, 128, device="cpu")
    """
    return BlockMask(create_mask(mask_mod, B, H, Q_LEN, KV_LEN, device), mask_mod, BLOCK_SIZE)


def flex_attention(query, key, value, score_mod: Callable | None = None, block_mask: BlockMask | None = None,
                   scale: float | None = None, enable_gqa: bool = False, return_lse: bool = False,
                   kernel_options: dict | None = None, *, return_aux: AuxRequest | None = None):
    """Attention of (B, H, L, E) queries over (B, H, S, E) keys with a score_mod and/or a BlockMask.

    Args:
        query, key, value: 4-D tensors (value may have its own last dim).
        score_mod: ``score_mod(score, b, h, q_idx, kv_idx) -> score``, applied to every scaled score.
        block_mask: from :func:`create_block_mask`; masked pairs do not take part.
        scale: the score scale (default ``1/sqrt(E)``).
        enable_gqa: allow fewer key/value heads than query heads (grouped-query attention).
        return_lse: also return the logsumexp of each query's scores (-inf for fully masked queries).
        kernel_options: accepted and ignored (no kernels to tune).
        return_aux: an :class:`AuxRequest`; then ``(out, AuxOutput)`` is returned.

    Returns:
        The (B, H, L, Ev) output (0 for fully masked queries), and the lse or AuxOutput when asked.
    """
    from ... import ops
    from ...ops._helpers import tensor_arg

    op = "flex_attention"
    q, k, v = tensor_arg(query, op, "query"), tensor_arg(key, op, "key"), tensor_arg(value, op, "value")
    if not (q.dim() == k.dim() == v.dim() == 4):
        raise NotImplementedError(f"NYI: query, key, and value must be 4D tensors, got {q.dim()}, {k.dim()} and "
                                  f"{v.dim()} dims")
    B, Hq, L, E = q.shape
    Hkv, S = k.shape[1], k.shape[2]
    if v.shape[1] != Hkv or v.shape[2] != S:
        raise ValueError(f"Expect key and value to have the same number of heads and sequence length, got key "
                         f"{list(k.shape)} and value {list(v.shape)}")
    if Hq != Hkv:
        if not enable_gqa:
            raise ValueError(f"Expect query and key/value to have the same number of heads but got Hq={Hq} and "
                             f"Hkv={Hkv}. Try setting enable_gqa=True for GQA.")
        if Hq % Hkv:
            raise ValueError(f"Expect number of query heads to be a multiple of kv heads for GQA but got Hq={Hq} and "
                             f"Hkv={Hkv}.")
        k, v = k.repeat_interleave(Hq // Hkv, dim=1), v.repeat_interleave(Hq // Hkv, dim=1)
    if block_mask is not None and block_mask.seq_lengths != (L, S):
        raise ValueError(f"block_mask was created for block_mask.shape={block_mask.shape} but got q_len={L} and "
                         f"kv_len={S}. Create a new block mask with the lengths in use.")
    sf = 1.0 / math.sqrt(E) if scale is None else float(scale)
    scores = (q @ k.transpose(-2, -1)) * sf
    if score_mod is not None:
        b, h, qi, ki = _indices(max(B, k.shape[0]), Hq, L, S, q.device)
        scores = score_mod(scores, b, h, qi, ki)
        if tuple(scores.shape) != (max(B, k.shape[0]), Hq, L, S):
            scores = scores.expand(max(B, k.shape[0]), Hq, L, S)
    if block_mask is not None:
        scores = scores.masked_fill(~block_mask._mask.to(q.device), float("-inf"))
    dead = ops.isneginf(scores.detach()).all(-1, keepdim=True)
    any_dead = bool(dead.any())
    safe = scores.masked_fill(dead, 0.0) if any_dead else scores
    probs = safe.softmax(-1)
    if any_dead:
        probs = probs.masked_fill(dead, 0.0)
    out = probs @ v
    want_lse = return_lse or (return_aux is not None and return_aux.lse)
    lse = None
    if want_lse:
        lse = safe.logsumexp(-1)
        if any_dead:
            lse = lse.masked_fill(dead.squeeze(-1), float("-inf"))
        if lse.dtype != D.float64:
            lse = lse.float()
    if return_aux is not None:
        max_scores = scores.amax(-1) if return_aux.max_scores else None
        return out, AuxOutput(lse=lse, max_scores=max_scores)
    return (out, lse) if return_lse else out
