"""``weight_norm``, ``spectral_norm`` and ``orthogonal`` as parametrizations (``torch.nn.utils.parametrizations``).

Each registers a parametrization (see :mod:`disttorch.nn.utils.parametrize`) with PyTorch's state-dict
layout: ``parametrizations.weight.original0/original1`` (g and v) for weight_norm,
``parametrizations.weight.original`` plus ``...0._u``/``...0._v`` for spectral_norm and
``...original``/``...0.base`` for orthogonal, so state dicts written by PyTorch load here and back.
All three are compositions of differentiable tensor ops, so gradients reach the originals.
"""
from __future__ import annotations

import enum
import math

import numpy as np

from ... import _internals as E
from ..._tensor import Tensor
from ...autograd.function import Function
from ...autograd.grad_mode import no_grad
from ..modules.module import Module
from . import parametrize

__all__ = ["orthogonal", "spectral_norm", "weight_norm"]


# ---- weight_norm -------------------------------------------------------------------------------------
def _norm_except_dim(v: Tensor, dim: int) -> Tensor:
    """The 2-norm of ``v`` over every dim but ``dim``, keeping dims (``dim == -1``: the norm of everything)."""
    if dim == -1:
        return v.norm()
    d = dim % v.dim()
    others = [i for i in range(v.dim()) if i != d]
    if not others:
        return v.abs()
    return v.norm(2, dim=others, keepdim=True)


class _WeightNorm(Module):
    def __init__(self, dim: int | None = 0) -> None:
        super().__init__()
        self.dim = -1 if dim is None else dim

    def forward(self, weight_g: Tensor, weight_v: Tensor) -> Tensor:
        return weight_v * (weight_g / _norm_except_dim(weight_v, self.dim))

    def right_inverse(self, weight: Tensor) -> tuple:
        return _norm_except_dim(weight, self.dim), weight


def weight_norm(module: Module, name: str = "weight", dim: int = 0) -> Module:
    """Reparametrize ``module.<name>`` as ``g * v / ||v||`` (weight normalization).

    The magnitude ``g`` is ``parametrizations.<name>.original0`` and the direction ``v`` is
    ``original1``; the norm is taken over every dim except ``dim`` (``None``: over the whole tensor).
    State dicts of the older ``nn.utils.weight_norm`` (``<name>_g``, ``<name>_v``) load too.

    Example:
        >>> conv = weight_norm(nn.Conv2d(3, 16, 3))
        >>> sorted(conv.state_dict())
        ['bias', 'parametrizations.weight.original0', 'parametrizations.weight.original1']
    """
    parametrize.register_parametrization(module, name, _WeightNorm(dim), unsafe=True)

    def _weight_norm_compat_hook(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                 error_msgs) -> None:
        g_key, v_key = f"{prefix}{name}_g", f"{prefix}{name}_v"
        if g_key in state_dict and v_key in state_dict:
            state_dict[f"{prefix}parametrizations.{name}.original0"] = state_dict.pop(g_key)
            state_dict[f"{prefix}parametrizations.{name}.original1"] = state_dict.pop(v_key)

    module._register_load_state_dict_pre_hook(_weight_norm_compat_hook)
    return module


# ---- spectral_norm -----------------------------------------------------------------------------------
class _SpectralNorm(Module):
    def __init__(self, weight: Tensor, n_power_iterations: int = 1, dim: int = 0, eps: float = 1e-12) -> None:
        super().__init__()
        ndim = weight.ndim
        if dim >= ndim or dim < -ndim:
            raise IndexError(f"Dimension out of range (expected to be in range of [-{ndim}, {ndim - 1}] but got {dim})")
        if n_power_iterations <= 0:
            raise ValueError(f"Expected n_power_iterations to be positive, but got "
                             f"n_power_iterations={n_power_iterations}")
        self.dim = dim if dim >= 0 else dim + ndim
        self.eps = eps
        if ndim > 1:
            from ..functional import normalize

            self.n_power_iterations = n_power_iterations
            weight_mat = self._reshape_weight_to_matrix(weight)
            h, w = weight_mat.shape
            u = weight_mat.new_empty(h).normal_(0, 1)
            v = weight_mat.new_empty(w).normal_(0, 1)
            self.register_buffer("_u", normalize(u, dim=0, eps=self.eps))
            self.register_buffer("_v", normalize(v, dim=0, eps=self.eps))
            self._power_method(weight_mat, 15)

    def _reshape_weight_to_matrix(self, weight: Tensor) -> Tensor:
        if self.dim != 0:
            weight = weight.permute(self.dim, *(d for d in range(weight.dim()) if d != self.dim))
        return weight.flatten(1)

    def _power_method(self, weight_mat: Tensor, n_power_iterations: int) -> None:
        from ..functional import normalize

        # u and v are updated in place (they are buffers, and the state dict holds references to them).
        with no_grad():
            for _ in range(n_power_iterations):
                self._u.copy_(normalize(weight_mat.mv(self._v), dim=0, eps=self.eps))
                self._v.copy_(normalize(weight_mat.mH.mv(self._u), dim=0, eps=self.eps))

    def forward(self, weight: Tensor) -> Tensor:
        from ..functional import normalize

        if weight.ndim == 1:
            return normalize(weight, dim=0, eps=self.eps)
        weight_mat = self._reshape_weight_to_matrix(weight)
        if self.training:
            self._power_method(weight_mat, self.n_power_iterations)
        u, v = self._u.clone(), self._v.clone()
        sigma = u.vdot(weight_mat.mv(v))
        return weight / sigma

    def right_inverse(self, value: Tensor) -> Tensor:
        return value


def spectral_norm(module: Module, name: str = "weight", n_power_iterations: int = 1, eps: float = 1e-12,
                  dim: int | None = None) -> Module:
    """Divide ``module.<name>`` by its spectral norm, estimated by power iteration (one step per training forward).

    Args:
        module: the module.
        name: the weight's name.
        n_power_iterations: power iterations per forward in training mode.
        eps: for numerical stability of the normalisations.
        dim: the output dim (default 0, or 1 for ConvTranspose).

    Example:
        >>> snm = spectral_norm(nn.Linear(20, 40))
        >>> sorted(snm.state_dict())
        ['bias', 'parametrizations.weight.0._u', 'parametrizations.weight.0._v', 'parametrizations.weight.original']
    """
    weight = getattr(module, name, None)
    if not isinstance(weight, Tensor):
        raise ValueError(f"Module '{module}' has no parameter or buffer with name '{name}'")
    if dim is None:
        from ..modules.conv import ConvTranspose1d, ConvTranspose2d, ConvTranspose3d

        dim = 1 if isinstance(module, (ConvTranspose1d, ConvTranspose2d, ConvTranspose3d)) else 0
    parametrize.register_parametrization(module, name, _SpectralNorm(weight, n_power_iterations, dim, eps))
    return module


# ---- orthogonal ----------------------------------------------------------------------------------------
class _OrthMaps(enum.Enum):
    matrix_exp = enum.auto()
    cayley = enum.auto()
    householder = enum.auto()


def _eye_like(x: Tensor, n: int) -> Tensor:
    from ... import ops

    return ops.eye(n, dtype=x.dtype, device=x.device)


def _matrix_exp(a: Tensor) -> Tensor:
    """``exp(a)`` of square matrices by scaling and squaring with a degree-18 Taylor polynomial.

    Built from matmuls, so it is differentiable by composition; the truncation error is below float64
    rounding because the scaled matrix has norm <= 1/2.
    """
    n = a.shape[-1]
    norm = float(np.abs(a.detach().cpu().numpy()).sum(axis=-2).max()) if a.numel() else 0.0
    s = max(0, int(math.ceil(math.log2(norm / 0.5)))) if norm > 0.5 else 0
    x = a / (2.0 ** s) if s else a
    eye = _eye_like(a, n)
    result = eye
    for k in range(18, 0, -1):  # Horner: I + x/1 (I + x/2 (I + ... ))
        result = eye + (x @ result) / float(k)
    for _ in range(s):
        result = result @ result
    return result


class _Solve(Function):
    """``a^{-1} b`` with its gradient (for the Cayley map)."""

    @staticmethod
    def forward(ctx, a, b):
        x = E.wrap(E.array_module(a).linalg.solve(E.array(a), E.array(b)))
        ctx.save_for_backward(a, x)
        return x

    @staticmethod
    def backward(ctx, g):
        a, x = ctx.saved_tensors
        gb = _Solve.apply(a.mT, g)
        return -(gb @ x.mT), gb


def _householder_product(a: Tensor, tau: Tensor) -> Tensor:
    """``H_1 ... H_k`` restricted to the first ``a.shape[-1]`` columns, ``H_i = I - tau_i v_i v_i^T``.

    ``v_i`` is column ``i`` of ``a`` below the diagonal with a unit diagonal entry (LAPACK's layout), as
    ``torch.linalg.householder_product``; real matrices only.
    """
    n, k = a.shape[-2], a.shape[-1]
    q = _eye_like(a, n).expand(*a.shape[:-2], n, n)
    xp, dt = E.array_module(a), E.array(a).dtype
    rows = xp.arange(n)
    for i in range(tau.shape[-1]):
        below, unit = E.wrap((rows > i).astype(dt)), E.wrap((rows == i).astype(dt))
        v = a[..., :, i] * below + unit
        qv = (q @ v.unsqueeze(-1))
        q = q - tau[..., i].unsqueeze(-1).unsqueeze(-1) * (qv @ v.unsqueeze(-2))
    return q[..., :, :k]


def _geqrf(a: np.ndarray) -> tuple:
    """LAPACK geqrf of each matrix of ``a`` (NumPy's raw QR): the packed reflectors and tau."""
    batch = a.shape[:-2]
    flat = a.reshape((-1,) + a.shape[-2:])
    hs, taus = [], []
    for m in flat:
        h, tau = np.linalg.qr(m, mode="raw")
        hs.append(h.T)
        taus.append(tau)
    return (np.stack(hs).reshape(a.shape).astype(a.dtype),
            np.stack(taus).reshape(batch + (min(a.shape[-2:]),)).astype(a.dtype))


def _make_orthogonal(a: Tensor) -> Tensor:
    """The Q factor of the QR decomposition of tall ``a`` with diag(R) >= 0."""
    arr = a.detach().cpu().numpy()
    q, r = np.linalg.qr(arr)
    signs = np.sign(np.diagonal(r, axis1=-2, axis2=-1))
    signs[signs == 0] = 1
    return E.wrap(np.ascontiguousarray(q * signs[..., None, :]).astype(arr.dtype)).to(a.device)


def _is_orthogonal(q: Tensor) -> bool:
    from ... import _dtype as D

    n, k = q.shape[-2], q.shape[-1]
    eps = 10.0 * n * D.finfo(q.dtype).eps
    return bool((q.mH @ q).allclose(_eye_like(q, k), atol=eps))


class _Orthogonal(Module):
    def __init__(self, weight: Tensor, orthogonal_map: _OrthMaps, *, use_trivialization: bool = True) -> None:
        super().__init__()
        if weight.is_complex() and orthogonal_map == _OrthMaps.householder:
            raise ValueError("The householder parametrization does not support complex tensors.")
        self.shape = weight.shape
        self.orthogonal_map = orthogonal_map
        if use_trivialization:
            self.register_buffer("base", None)

    def forward(self, x: Tensor) -> Tensor:
        from ... import ops

        n, k = x.shape[-2], x.shape[-1]
        transposed = n < k
        if transposed:
            x = x.mT
            n, k = k, n
        if self.orthogonal_map in (_OrthMaps.matrix_exp, _OrthMaps.cayley):
            x = x.tril()
            if n != k:  # embed the tall matrix in a square one
                x = ops.cat([x, x.new_zeros(n, n - k).expand(*x.shape[:-2], -1, -1)], dim=-1)
            a = x - x.mH  # skew-symmetric
            if self.orthogonal_map == _OrthMaps.matrix_exp:
                q = _matrix_exp(a)
            else:
                eye = _eye_like(a, n)
                q = _Solve.apply(eye - a * 0.5, eye + a * 0.5)  # the Cayley map (I + A/2)(I - A/2)^{-1}
            if n != k:
                q = q[..., :k]
        else:
            a = x.tril(diagonal=-1)
            tau = 2.0 / (1.0 + (a * a).sum(dim=-2))
            q = _householder_product(a, tau)
            # The diagonal of x holds the signs (+-1) of the reflections; it is not trained.
            q = q * x.diagonal(dim1=-2, dim2=-1).detach().int().unsqueeze(-2)
        if hasattr(self, "base"):
            q = self.base @ q
        if transposed:
            q = q.mT
        return q

    def right_inverse(self, q: Tensor) -> Tensor:
        from ... import ops

        with no_grad():
            if q.shape != self.shape:
                raise ValueError(f"Expected a matrix or batch of matrices of shape {self.shape}. Got a tensor of shape "
                                 f"{q.shape}.")
            q_init = q
            n, k = q.shape[-2], q.shape[-1]
            transpose = n < k
            if transpose:
                q = q.mT
                n, k = k, n
            if not hasattr(self, "base"):
                if self.orthogonal_map in (_OrthMaps.cayley, _OrthMaps.matrix_exp):
                    raise NotImplementedError("It is not possible to assign to the matrix exponential or the Cayley "
                                              "parametrizations when use_trivialization=False.")
                h, tau = _geqrf(q.detach().cpu().numpy())
                diag = np.einsum("...ii->...i", h[..., :k, :k])  # a writable view of the diagonal
                diag[...] = np.sign(diag)
                diag[tau == 0.0] *= -1
                out = E.wrap(np.ascontiguousarray(h)).to(q.device)
                return out.mT if transpose else out
            if n == k:
                q = _make_orthogonal(q) if not _is_orthogonal(q) else q.clone()
            else:  # complete q to a square orthogonal matrix
                extra = ops.randn(*(tuple(q.shape[:-2]) + (n, n - k)), dtype=q.dtype, device=q.device)
                q = _make_orthogonal(ops.cat([q, extra], dim=-1))
            self.base = q
            # -Id: with it the Householder map gives the identity, so the parametrized weight is `base`.
            neg_id = ops.zeros_like(q_init)
            neg_id.diagonal(dim1=-2, dim2=-1).fill_(-1.0)
            return neg_id


def orthogonal(module: Module, name: str = "weight", orthogonal_map: str | None = None, *,
               use_trivialization: bool = True) -> Module:
    """Constrain ``module.<name>`` (a matrix or batch of matrices) to be orthogonal.

    Args:
        module: the module.
        name: the weight's name.
        orthogonal_map: ``"matrix_exp"``, ``"cayley"`` or ``"householder"`` (default: ``"matrix_exp"`` for
            square or complex matrices, ``"householder"`` otherwise).
        use_trivialization: keep a ``base`` orthogonal matrix and parametrize a rotation of it (so that
            assigning to the weight works for every map).

    Example:
        >>> lin = orthogonal(nn.Linear(20, 40))
        >>> Q = lin.weight
        >>> disttorch.dist(Q.T @ Q, disttorch.eye(20)) < 1e-5
        tensor(True)
    """
    weight = getattr(module, name, None)
    if not isinstance(weight, Tensor):
        raise ValueError(f"Module '{module}' has no parameter or buffer with name '{name}'")
    if weight.ndim < 2:
        raise ValueError(f"Expected a matrix or batch of matrices. Got a tensor of {weight.ndim} dimensions.")
    if orthogonal_map is None:
        orthogonal_map = "matrix_exp" if weight.shape[-2] == weight.shape[-1] or weight.is_complex() else "householder"
    orth_enum = getattr(_OrthMaps, orthogonal_map, None)
    if orth_enum is None:
        raise ValueError(f'orthogonal_map has to be one of "matrix_exp", "cayley", "householder". Got: {orthogonal_map}')
    orth = _Orthogonal(weight, orth_enum, use_trivialization=use_trivialization)
    parametrize.register_parametrization(module, name, orth, unsafe=True)
    return module
