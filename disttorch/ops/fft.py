"""FFT primitives, as PyTorch's ``_fft_c2c``, ``_fft_r2c`` and ``_fft_c2r``, with their backward formulas.

``disttorch.fft`` builds every public transform from these three. Each primitive takes the dims it
transforms and a normalisation *mode* that scales the result independently of direction: ``NONE`` (1),
``ROOT`` (1/sqrt(n)) or ``BY_N`` (1/n), n being the product of the transformed signal sizes. That makes the
adjoint of a transform the transform in the other direction with the same mode, which is all backward needs:

* c2c: ``grad_in = c2c(g, mode, opposite direction)``;
* r2c: zero-pad a one-sided gradient to the full length, inverse c2c, keep the real part;
* c2r: ``r2c(g)``, doubling the bins whose mirror image was dropped by the one-sided input
  (PyTorch's ``fft_c2r_backward``).

Backward is written with these primitives and Tensor ops, so double backward works too. The arrays go
through ``scipy.fft`` on the CPU (single precision stays single) and ``cupy.fft`` on a GPU; SciPy is imported
on first use only.
"""
from __future__ import annotations

import numpy as np

from .. import _tensor as T
from ..autograd.op import Op
from .complex_ops import real

NONE, ROOT, BY_N = 0, 1, 2

_SCIPY_FFT = None


def _backend(xp):
    """The FFT module for arrays of ``xp``: scipy.fft for NumPy (keeps float32), ``xp.fft`` otherwise."""
    global _SCIPY_FFT
    if xp is np:
        if _SCIPY_FFT is None:
            import scipy.fft

            _SCIPY_FFT = scipy.fft
        return _SCIPY_FFT
    return xp.fft


def _norm_name(mode: int, forward: bool) -> str:
    """The NumPy/SciPy ``norm`` name that scales a transform in direction ``forward`` by ``mode``."""
    if mode == ROOT:
        return "ortho"
    if forward:
        return "backward" if mode == NONE else "forward"
    return "forward" if mode == NONE else "backward"


# ---- complex to complex ------------------------------------------------------------------------------------
class FftC2CBackward0(Op):
    op_name = "_fft_c2c"

    def forward(self, xp, a, dims=(), mode=NONE, forward=True):
        self.dims, self.mode, self.forward = dims, mode, forward
        if not dims:
            return a.copy()
        b = _backend(xp)
        return (b.fftn if forward else b.ifftn)(a, axes=dims, norm=_norm_name(mode, forward))

    def backward(self, g):
        return fft_c2c(g, self.dims, self.mode, not self.forward)


def fft_c2c(x, dims: tuple, mode: int, forward: bool):
    """The complex DFT of complex tensor ``x`` over ``dims`` (inverse sign when not ``forward``), scaled by ``mode``."""
    return FftC2CBackward0.apply(x, dims=dims, mode=mode, forward=forward)


# ---- real to complex ---------------------------------------------------------------------------------------
class FftR2CBackward0(Op):
    op_name = "_fft_r2c"

    def forward(self, xp, a, dims=(), mode=NONE, onesided=True):
        self.dims, self.mode, self.onesided, self.last_size = dims, mode, onesided, a.shape[dims[-1]]
        b = _backend(xp)
        norm = _norm_name(mode, True)
        return b.rfftn(a, axes=dims, norm=norm) if onesided else b.fftn(a, axes=dims, norm=norm)

    def backward(self, g):
        if self.onesided:
            last = self.dims[-1]
            missing = self.last_size - g.shape[last]
            if missing > 0:
                from .join import cat

                shape = list(g.shape)
                shape[last] = missing
                g = cat([g, g.new_zeros(shape)], last)
        return real(fft_c2c(g, self.dims, self.mode, False))


def fft_r2c(x, dims: tuple, mode: int, onesided: bool):
    """The forward DFT of real tensor ``x`` over ``dims``; ``onesided`` keeps ``n // 2 + 1`` bins of the last dim."""
    return FftR2CBackward0.apply(x, dims=dims, mode=mode, onesided=onesided)


# ---- complex to real ---------------------------------------------------------------------------------------
class FftC2RBackward0(Op):
    op_name = "_fft_c2r"

    def forward(self, xp, a, dims=(), mode=NONE, last_dim_size=1):
        self.dims, self.mode = dims, mode
        b = _backend(xp)
        s = [a.shape[d] for d in dims[:-1]] + [last_dim_size]
        return b.irfftn(a, s=s, axes=dims, norm=_norm_name(mode, False))

    def backward(self, g):
        gi = fft_r2c(g, self.dims, self.mode, True)
        last = self.dims[-1]
        # Bins 1 .. n - (n//2 + 1) stand for themselves and their dropped mirror images: count them twice.
        double = g.shape[last] - gi.shape[last]
        if double > 0:
            xp = g._xp
            w = xp.ones(gi.shape[last], dtype=g._data.dtype)
            w[1:1 + double] = 2
            shape = [1] * gi.dim()
            shape[last] = -1
            gi = gi * T._wrap(w.reshape(shape))
        return gi


def fft_c2r(x, dims: tuple, mode: int, last_dim_size: int):
    """The inverse DFT of a one-sided Hermitian complex tensor ``x`` over ``dims``, giving ``last_dim_size`` real
    values along the last of them (its imaginary parts at frequency 0 and n/2 are ignored)."""
    return FftC2RBackward0.apply(x, dims=dims, mode=mode, last_dim_size=last_dim_size)
