"""Optional parity of torch.fft and torch.special with PyTorch itself: same inputs, same outputs and gradients.

Skipped when PyTorch is not installed (CI does not install it).
"""
import numpy as np
import pytest

import disttorch

torch = pytest.importorskip("torch")

RNG = np.random.default_rng(3)
R = RNG.standard_normal((3, 8))
C = RNG.standard_normal((3, 5)) + 1j * RNG.standard_normal((3, 5))
POS = RNG.uniform(0.2, 4.0, (3, 4))
PROB = RNG.uniform(0.05, 0.95, (3, 4))

FFT_CASES = {
    "fft_real": (lambda L, x: L.fft.fft(x, norm="ortho"), R),
    "fft_complex_n": (lambda L, z: L.fft.fft(z, n=7, dim=0), C),
    "ifft": (lambda L, z: L.fft.ifft(z), C),
    "rfft": (lambda L, x: L.fft.rfft(x, n=10), R),
    "irfft": (lambda L, z: L.fft.irfft(z, n=9, norm="forward"), C),
    "hfft": (lambda L, z: L.fft.hfft(z), C),
    "ihfft": (lambda L, x: L.fft.ihfft(x), R),
    "fftn": (lambda L, x: L.fft.fftn(x, s=(4, 6)), R),
    "rfft2": (lambda L, x: L.fft.rfft2(x, norm="ortho"), R),
    "irfftn": (lambda L, z: L.fft.irfftn(z, s=(2, 6)), C),
    "hfft2": (lambda L, z: L.fft.hfft2(z), C),
    "ihfftn": (lambda L, x: L.fft.ihfftn(x, dim=(0, 1)), R),
    "fftshift": (lambda L, x: L.fft.fftshift(x, dim=1), R),
}


def _vec(t):
    a = t.detach().resolve_conj().numpy()
    return np.asarray(a, dtype=np.complex128)


def _run(lib, fn, arr):
    """The output and the gradient for a fixed random ``grad_outputs`` (the same for both libraries)."""
    rng = np.random.default_rng(0)
    x = lib.tensor(arr, requires_grad=True)
    out = fn(lib, x)
    v = rng.standard_normal(tuple(out.shape))
    if out.dtype.is_complex:
        v = v + 1j * rng.standard_normal(tuple(out.shape))
    (g,) = lib.autograd.grad(out, x, lib.tensor(v))
    return _vec(out), _vec(g)


@pytest.mark.parametrize("name", sorted(FFT_CASES))
def test_fft_parity(name):
    fn, arr = FFT_CASES[name]
    ours = _run(disttorch, fn, arr)
    theirs = _run(torch, fn, arr)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


SPECIAL_CASES = {
    "gammaln": lambda L, x: L.special.gammaln(x), "digamma": lambda L, x: L.special.digamma(x),
    "polygamma2": lambda L, x: L.special.polygamma(2, x), "multigammaln": lambda L, x: L.special.multigammaln(x, 2),
    "i0": lambda L, x: L.special.i0(x), "i0e": lambda L, x: L.special.i0e(x), "i1": lambda L, x: L.special.i1(x),
    "i1e": lambda L, x: L.special.i1e(x), "sinc": lambda L, x: L.special.sinc(x), "entr": lambda L, x: L.special.entr(x),
    "erfcx": lambda L, x: L.special.erfcx(x), "ndtr": lambda L, x: L.special.ndtr(x),
    "log_ndtr": lambda L, x: L.special.log_ndtr(x), "gammainc": lambda L, x: L.special.gammainc(x.detach() + 1, x),
    "gammaincc": lambda L, x: L.special.gammaincc(x.detach(), x), "zeta": lambda L, x: L.special.zeta(x.detach() + 1.5, x),
    "xlog1py": lambda L, x: L.special.xlog1py(x, x - 0.5),
}


@pytest.mark.parametrize("name", sorted(SPECIAL_CASES))
def test_special_parity(name):
    fn = SPECIAL_CASES[name]
    res = []
    for lib in (disttorch, torch):
        x = lib.tensor(POS, requires_grad=True)
        out = fn(lib, x)
        (g,) = lib.autograd.grad(out.sum(), x)
        res.append((out.detach().numpy(), g.numpy()))
    for a, b in zip(*res):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


def test_ndtri_and_no_grad_functions_parity():
    for name in ["bessel_j0", "bessel_y1", "modified_bessel_k0", "scaled_modified_bessel_k1", "spherical_bessel_j0",
                 "airy_ai", "ndtri"]:
        arr = PROB if name == "ndtri" else POS
        a = getattr(disttorch.special, name)(disttorch.tensor(arr)).numpy()
        b = getattr(torch.special, name)(torch.tensor(arr)).numpy()
        np.testing.assert_allclose(a, b, rtol=1e-4, err_msg=name)  # PyTorch's Bessel kernels are less accurate
    for name in ["chebyshev_polynomial_u", "hermite_polynomial_he", "legendre_polynomial_p", "laguerre_polynomial_l"]:
        a = getattr(disttorch.special, name)(disttorch.tensor(PROB), 5).numpy()
        b = getattr(torch.special, name)(torch.tensor(PROB), 5).numpy()
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12, err_msg=name)
