"""Compatibility programs for torch.fft and torch.special (tests/compat/progs/fft_*.py, special_*.py).

Each program is written as a PyTorch script with ``import disttorch as torch``; it runs in a subprocess and
its printed JSON is checked against expectations computed here independently (closed forms, the math module,
NumPy).
"""
import math

import numpy as np
from compat_support import run_program



def _i0_series(x: float) -> float:
    term, total = 1.0, 1.0
    for k in range(1, 200):  # sum_k (x/2)^(2k) / (k!)^2
        term *= (x / 2) ** 2 / (k * k)
        total += term
    return total


def test_spectral_analysis_and_spectral_loss():
    out = run_program("fft_spectral.py")
    assert out["spec_dtype"] == "disttorch.complex64" and out["spec_len"] == 129
    assert out["peaks"] == [5.0, 12.0]
    t = np.arange(256) / 64
    sig = np.sin(2 * np.pi * 5 * t) + 0.5 * np.sin(2 * np.pi * 12 * t)
    np.testing.assert_allclose(out["parseval"], [np.sum(sig ** 2)] * 2, rtol=1e-5)
    img = np.zeros((32, 32))
    img[8:24, 8:24] = 1
    yy, xx = np.meshgrid(np.arange(32) - 16, np.arange(32) - 16, indexing="ij")
    f2 = np.fft.fftshift(np.fft.fft2(img)) * ((yy ** 2 + xx ** 2) <= 36)
    smooth = np.fft.ifft2(np.fft.ifftshift(f2)).real
    np.testing.assert_allclose(out["smooth_range"], [smooth.min(), smooth.max()], rtol=1e-4, atol=1e-5)
    assert out["smooth_dtype"] == "disttorch.float32" and out["grad_dtype"] == "disttorch.float32"
    assert out["last_loss"] < 0.5 * out["first_loss"]


def test_fft_convolution_matches_conv1d_and_learns_the_kernel():
    out = run_program("fft_conv.py")
    assert out["max_diff"] < 1e-4
    assert out["kernel_err"] < 0.01
    assert out["w_grad_dtype"] == "disttorch.complex64" and out["w_grad_finite"] is True
    assert out["z_shape"] == [4, 3, 64]


def test_gamma_and_beta_maximum_likelihood():
    out = run_program("special_gamma_beta.py")
    np.testing.assert_allclose(out["gamma_fit"], [3.0, 2.0], rtol=0.1)
    np.testing.assert_allclose(out["beta_fit"], [2.0, 5.0], rtol=0.1)
    np.testing.assert_allclose(out["autograd_score"], out["digamma_score"], rtol=1e-4, atol=1e-5)
    mvl = 3 * 2 / 4 * math.log(math.pi) + sum(math.lgamma(2.5 - j / 2) for j in range(3))
    assert math.isclose(out["mvlgamma"], mvl, rel_tol=1e-6)
    np.testing.assert_allclose(out["lgamma_int"], [math.log(math.factorial(k - 1)) for k in range(1, 6)], atol=1e-6)


def test_special_helpers_in_everyday_use():
    out = run_program("special_misc.py")
    np.testing.assert_allclose(out["cdf"], [0.5 * math.erfc(-v / math.sqrt(2)) for v in (-1.96, 0.0, 1.0, 3.0)],
                               rtol=1e-6)
    assert math.isclose(out["log_cdf_tail"], math.log(0.5 * math.erfc(20 / math.sqrt(2))), rel_tol=1e-6)
    np.testing.assert_allclose(out["quantiles"], [-1.959963984540054, 0.0, 1.959963984540054], rtol=1e-6, atol=1e-7)
    p = np.exp([2.0, 1.0, 0.1]) / np.exp([2.0, 1.0, 0.1]).sum()
    np.testing.assert_allclose(out["entropy"], [-(p * np.log(p)).sum(), math.log(3)], rtol=1e-6)
    np.testing.assert_allclose(out["log_i0"], [math.log(_i0_series(k)) for k in (0.5, 5.0, 50.0)], rtol=1e-6)
    np.testing.assert_allclose(out["trigamma"], [math.pi ** 2 / 6, math.pi ** 2 / 6 - sum(1 / k ** 2 for k in
                                                                                       range(1, 10))], rtol=1e-6)
    kaiser = [_i0_series(8 * math.sqrt(max(0.0, 1 - v * v))) / _i0_series(8) for v in np.linspace(-1, 1, 9)]
    np.testing.assert_allclose(out["kaiser"], kaiser, rtol=1e-5)
    np.testing.assert_allclose(out["logits"], [math.log(0.1 / 0.9), 0.0, math.log(0.9 / 0.1)], rtol=1e-6, atol=1e-6)
    assert math.isclose(out["lse"], 1000 + math.log(2), rel_tol=1e-7)
    np.testing.assert_allclose(out["xlogy"], [0.0, 2 * math.log(3)], rtol=1e-6)
    assert math.isclose(out["erfcx"], math.exp(100) * math.erfc(10), rel_tol=1e-6)
    assert out["cheb"] == 4 * 0.5 ** 3 - 3 * 0.5
    assert abs(out["bessel_j0"]) < 1e-6  # the first zero of J0
