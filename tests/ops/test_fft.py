"""torch.fft: forward against numpy.fft, PyTorch's dtype rules and errors, gradients by central differences.

Complex gradients follow PyTorch's convention: for ``grad_outputs=v`` the gradient of an input ``z = x + iy`` is
``dL/dx + i dL/dy`` with ``L = Re(sum(conj(v) * out))``; ``vjp_check`` compares autograd with that, numerically.
"""
from __future__ import annotations

import numpy as np
import pytest

import disttorch as torch
from disttorch.autograd import gradcheck, gradgradcheck

FFT = torch.fft
rng = np.random.default_rng(7)


def crand(*shape):
    return rng.standard_normal(shape) + 1j * rng.standard_normal(shape)


def npy(t):
    return t.detach().numpy()


# ---- forward against numpy.fft --------------------------------------------------------------------------------
ONE_D = [  # (name, complex input?, numpy reference)
    ("fft", False, np.fft.fft), ("fft", True, np.fft.fft), ("ifft", False, np.fft.ifft), ("ifft", True, np.fft.ifft),
    ("rfft", False, np.fft.rfft), ("irfft", True, np.fft.irfft), ("hfft", True, np.fft.hfft),
    ("ihfft", False, np.fft.ihfft),
]


@pytest.mark.parametrize("name,cplx,ref", ONE_D)
@pytest.mark.parametrize("norm", [None, "backward", "ortho", "forward"])
@pytest.mark.parametrize("n", [None, 5, 12])
def test_one_dimensional_matches_numpy(name, cplx, ref, norm, n):
    a = crand(3, 8) if cplx else rng.standard_normal((3, 8))
    for dim in (-1, 0):
        out = getattr(FFT, name)(torch.tensor(a), n=n, dim=dim, norm=norm)
        np.testing.assert_allclose(npy(out), ref(a, n=n, axis=dim, norm=norm), rtol=1e-10, atol=1e-10)


ND = [("fftn", False, np.fft.fftn), ("fftn", True, np.fft.fftn), ("ifftn", True, np.fft.ifftn),
      ("ifftn", False, np.fft.ifftn), ("rfftn", False, np.fft.rfftn), ("irfftn", True, np.fft.irfftn)]


@pytest.mark.parametrize("name,cplx,ref", ND)
@pytest.mark.parametrize("s,dim", [(None, None), (None, (0, 2)), ((4, 6), None), ((3, 4), (2, 0)),
                                   ((-1, 7), (1, 2))])
@pytest.mark.parametrize("norm", [None, "ortho", "forward"])
def test_n_dimensional_matches_numpy(name, cplx, ref, s, dim, norm):
    a = crand(4, 5, 6) if cplx else rng.standard_normal((4, 5, 6))
    out = getattr(FFT, name)(torch.tensor(a), s=s, dim=dim, norm=norm)
    axes = dim if dim is not None or s is None else tuple(range(3 - len(s), 3))
    np_s = None if s is None else [a.shape[d] if v == -1 else v for v, d in zip(s, axes)]
    if name == "irfftn" and s is not None and s[-1] == -1:
        np_s[-1] = 2 * (a.shape[axes[-1]] - 1)
    np.testing.assert_allclose(npy(out), ref(a, s=np_s, axes=axes, norm=norm), rtol=1e-10, atol=1e-10)


def _hfftn_ref(a, s, axes, norm):
    # hfftn(x) is irfftn(conj(x)) with the forward scaling: numpy's norm names swap direction.
    swap = {None: "forward", "backward": "forward", "forward": "backward", "ortho": "ortho"}[norm]
    return np.fft.irfftn(np.conj(a), s=s, axes=axes, norm=swap)


def _ihfftn_ref(a, s, axes, norm):
    swap = {None: "forward", "backward": "forward", "forward": "backward", "ortho": "ortho"}[norm]
    return np.conj(np.fft.rfftn(a, s=s, axes=axes, norm=swap))


@pytest.mark.parametrize("norm", [None, "ortho", "forward"])
def test_hfftn_and_ihfftn_match_their_definition(norm):
    a = crand(4, 5, 4)
    out = FFT.hfftn(torch.tensor(a), s=(4, 6), dim=(0, 2), norm=norm)
    np.testing.assert_allclose(npy(out), _hfftn_ref(a, (4, 6), (0, 2), norm), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(npy(FFT.hfft2(torch.tensor(a), norm=norm)), _hfftn_ref(a, None, (-2, -1), norm),
                               rtol=1e-10, atol=1e-10)
    r = rng.standard_normal((4, 5, 6))
    out = FFT.ihfftn(torch.tensor(r), dim=(0, 2), norm=norm)
    np.testing.assert_allclose(npy(out), _ihfftn_ref(r, None, (0, 2), norm), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(npy(FFT.ihfft2(torch.tensor(r), s=(3, 8), norm=norm)),
                               _ihfftn_ref(r, (3, 8), (-2, -1), norm), rtol=1e-10, atol=1e-10)
    # hfft of a Hermitian signal's first half is the real FFT of the full signal
    full = rng.standard_normal(10)
    half = np.fft.ifft(full)[:6]
    np.testing.assert_allclose(npy(FFT.hfft(torch.tensor(half), n=10)), full, atol=1e-10)


def test_two_dimensional_defaults():
    a = crand(3, 4, 6)
    np.testing.assert_allclose(npy(FFT.fft2(torch.tensor(a))), np.fft.fft2(a), atol=1e-10)
    np.testing.assert_allclose(npy(FFT.ifft2(torch.tensor(a), s=(5, 5))), np.fft.ifft2(a, s=(5, 5)), atol=1e-10)
    r = a.real.copy()
    np.testing.assert_allclose(npy(FFT.rfft2(torch.tensor(r))), np.fft.rfft2(r), atol=1e-10)
    np.testing.assert_allclose(npy(FFT.irfft2(torch.tensor(a))), np.fft.irfft2(a), atol=1e-10)


@pytest.mark.parametrize("src,expected", [
    (torch.float32, torch.complex64), (torch.float64, torch.complex128), (torch.int64, torch.complex64),
    (torch.bool, torch.complex64), (torch.complex64, torch.complex64), (torch.complex128, torch.complex128)])
def test_result_dtypes(src, expected):
    x = torch.tensor([1, 0, 2, 1, 0, 1]).to(src)
    assert FFT.fft(x).dtype == expected
    assert FFT.fftn(x).dtype == expected
    assert FFT.ifft(x).dtype == expected
    real_of = {torch.complex64: torch.float32, torch.complex128: torch.float64}[expected]
    assert FFT.irfft(x).dtype == real_of and FFT.hfft(x).dtype == real_of
    if not src.is_complex:
        assert FFT.rfft(x).dtype == expected and FFT.ihfft(x).dtype == expected and FFT.rfftn(x).dtype == expected


def test_float32_stays_single_precision_and_accurate():
    a = rng.standard_normal((4, 64)).astype(np.float32)
    out = FFT.rfft(torch.tensor(a))
    assert out.dtype == torch.complex64
    np.testing.assert_allclose(npy(out), np.fft.rfft(a.astype(np.float64)), rtol=1e-4, atol=1e-4)


def test_integer_input_uses_default_dtype():
    torch.set_default_dtype(torch.float64)
    try:
        assert FFT.rfft(torch.arange(4)).dtype == torch.complex128
    finally:
        torch.set_default_dtype(torch.float32)


def test_autocast_runs_the_float32_list_in_float32():
    x = torch.randn(2, 8).to(torch.bfloat16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        for name in ["fft", "ifft", "fft2", "ifft2", "fftn", "ifftn", "rfft", "rfft2", "rfftn", "ihfft"]:
            assert getattr(FFT, name)(x).dtype == torch.complex64, name
        for name in ["irfft", "irfft2", "irfftn", "hfft"]:
            assert getattr(FFT, name)(x).dtype == torch.float32, name
        with pytest.raises(RuntimeError, match="Unsupported dtype BFloat16"):  # not on PyTorch's list either
            FFT.hfft2(x)
        assert torch.polar(x, x).dtype == torch.complex64
    with pytest.raises(RuntimeError, match="Unsupported dtype BFloat16"):
        FFT.rfft(x)


def test_zero_dim_and_empty_dims():
    s = torch.tensor(3.0)
    out = FFT.fftn(s)
    assert out.dtype == torch.complex64 and out.shape == () and complex(out.item()) == 3
    with pytest.raises(IndexError, match="no dimensions"):
        FFT.fft(s)
    with pytest.raises(RuntimeError, match="rfftn must transform at least one axis"):
        FFT.rfftn(torch.ones(2, 3), dim=())
    e = FFT.fft(torch.zeros(0, 4))
    assert e.shape == (0, 4)


@pytest.mark.parametrize("call,exc,msg", [
    (lambda: FFT.fft(torch.ones(4, dtype=torch.float16)), RuntimeError, "Unsupported dtype Half"),
    (lambda: FFT.rfft(torch.ones(4, dtype=torch.bfloat16)), RuntimeError, "Unsupported dtype BFloat16"),
    (lambda: FFT.rfft(torch.ones(4, dtype=torch.complex64)), RuntimeError, "rfft expects a real input tensor"),
    (lambda: FFT.ihfft(torch.ones(4, dtype=torch.complex64)), RuntimeError, "ihfft expects a real input tensor"),
    (lambda: FFT.rfftn(torch.ones(4, dtype=torch.complex64)), RuntimeError, "rfftn expects a real-valued input"),
    (lambda: FFT.fft(torch.ones(4), n=0), RuntimeError, r"Invalid number of data points \(0\)"),
    (lambda: FFT.irfft(torch.ones(1, dtype=torch.complex64)), RuntimeError, r"Invalid number of data points \(0\)"),
    (lambda: FFT.fft(torch.ones(4), norm="bad"), RuntimeError, 'Invalid normalization mode: "bad"'),
    (lambda: FFT.fft(torch.ones(4), dim=3), IndexError, "Dimension out of range"),
    (lambda: FFT.fftn(torch.ones(4), s=(4, 4)), RuntimeError, "Got shape with 2 values but input tensor only has 1"),
    (lambda: FFT.fftn(torch.ones(2, 3), s=(4, 4), dim=(0,)), RuntimeError, "must have the same length"),
    (lambda: FFT.fftn(torch.ones(2, 3), dim=(0, -2)), RuntimeError, "FFT dims must be unique"),
    (lambda: FFT.fft(torch.ones(4), out=torch.empty(4)), RuntimeError, "fft expects a complex output tensor"),
    (lambda: FFT.irfft(torch.ones(4, dtype=torch.complex64), out=torch.empty(4, dtype=torch.complex64)),
     RuntimeError, "irfft expects a floating point output tensor"),
    (lambda: FFT.fftfreq(4, dtype=torch.int64), RuntimeError, "fftfreq requires a floating point or complex dtype"),
])
def test_errors_as_pytorch(call, exc, msg):
    with pytest.raises(exc, match=msg):
        call()


def test_out_argument():
    o = torch.empty(0, dtype=torch.complex128)
    r = FFT.fft(torch.tensor([1.0, 2.0, 3.0]), out=o)
    assert r is o and o.dtype == torch.complex128
    np.testing.assert_allclose(npy(o), np.fft.fft([1.0, 2.0, 3.0]), rtol=1e-6)
    o = torch.empty(5)
    FFT.irfft(torch.tensor([1 + 0j, 2 - 1j, 3 + 0j]), n=5, out=o)
    np.testing.assert_allclose(npy(o), np.fft.irfft([1 + 0j, 2 - 1j, 3 + 0j], n=5), rtol=1e-6)
    x = torch.ones(4, requires_grad=True)
    with pytest.raises(RuntimeError, match="out=... arguments don't support automatic differentiation"):
        FFT.fft(x, out=torch.empty(4, dtype=torch.complex64))


def test_fftfreq_rfftfreq():
    for n, d in [(1, 1.0), (5, 0.5), (8, 0.1), (9, 2.0)]:
        np.testing.assert_allclose(npy(FFT.fftfreq(n, d)), np.fft.fftfreq(n, d), rtol=1e-6)
        np.testing.assert_allclose(npy(FFT.rfftfreq(n, d)), np.fft.rfftfreq(n, d), rtol=1e-6)
    assert FFT.fftfreq(5).dtype == torch.float32 and FFT.rfftfreq(5, dtype=torch.float64).dtype == torch.float64
    assert FFT.fftfreq(4, requires_grad=True).requires_grad
    assert FFT.fftfreq(0).shape == (0,)


def test_fftshift_ifftshift():
    a = np.arange(30).reshape(5, 6)
    for dim in (None, 0, 1, -1, (0, 1)):
        np.testing.assert_array_equal(npy(FFT.fftshift(torch.tensor(a), dim)), np.fft.fftshift(a, dim))
        np.testing.assert_array_equal(npy(FFT.ifftshift(torch.tensor(a), dim)), np.fft.ifftshift(a, dim))
    x = torch.tensor(rng.standard_normal(7), requires_grad=True)
    assert gradcheck(FFT.fftshift, (x,))


# ---- gradients -------------------------------------------------------------------------------------------------
def _real_loss(out, v):
    """``Re(sum(conj(v) * out))`` in NumPy: the loss whose gradient w.r.t. ``out`` is ``v``."""
    return float(np.real(np.sum(np.conj(v) * out)))


def vjp_check(fn, *arrays, eps=1e-6, rtol=1e-6, atol=1e-7):
    """Autograd's gradients of ``fn`` (with a random ``grad_outputs``) against central differences."""
    ts = [torch.tensor(a, requires_grad=True) for a in arrays]
    out = fn(*ts)
    v = crand(*out.shape) if out.dtype.is_complex else rng.standard_normal(out.shape)
    grads = torch.autograd.grad(out, ts, torch.tensor(v))
    for k, (a, g) in enumerate(zip(arrays, grads)):
        assert g.dtype == ts[k].dtype, (g.dtype, ts[k].dtype)
        num = np.zeros(a.shape, dtype=a.dtype)
        parts = (1.0, 1j) if np.iscomplexobj(a) else (1.0,)
        for idx in np.ndindex(a.shape):
            for p in parts:
                vals = []
                for sign in (1, -1):
                    b = [x.copy() for x in arrays]
                    b[k][idx] += sign * eps * p
                    vals.append(_real_loss(npy(fn(*[torch.tensor(x) for x in b])), v))
                num[idx] += p * (vals[0] - vals[1]) / (2 * eps)
        np.testing.assert_allclose(npy(g), num, rtol=rtol, atol=atol, err_msg=f"input {k}")


GRAD_CASES = [
    ("fft real", lambda x: FFT.fft(x), (6,), False),
    ("fft complex n", lambda z: FFT.fft(z, n=8, norm="ortho"), (5,), True),
    ("ifft complex trim", lambda z: FFT.ifft(z, n=4), (6,), True),
    ("ifft real", lambda x: FFT.ifft(x, norm="forward"), (5,), False),
    ("rfft even", lambda x: FFT.rfft(x), (6,), False),
    ("rfft odd dim0", lambda x: FFT.rfft(x, dim=0, norm="ortho"), (5, 2), False),
    ("irfft even", lambda z: FFT.irfft(z), (4,), True),
    ("irfft odd n", lambda z: FFT.irfft(z, n=7, norm="forward"), (4,), True),
    ("hfft", lambda z: FFT.hfft(z, n=6), (4,), True),
    ("ihfft", lambda x: FFT.ihfft(x), (5,), False),
    ("fftn real", lambda x: FFT.fftn(x, s=(3, 4)), (2, 3), False),
    ("ifftn complex", lambda z: FFT.ifftn(z, norm="ortho"), (2, 3), True),
    ("rfft2", lambda x: FFT.rfft2(x, norm="forward"), (3, 4), False),
    ("irfftn", lambda z: FFT.irfftn(z, s=(3, 5)), (3, 3), True),
    ("irfft2 default", lambda z: FFT.irfft2(z), (2, 3), True),
    ("hfft2", lambda z: FFT.hfft2(z, s=(2, 4)), (2, 3), True),
    ("ihfft2", lambda x: FFT.ihfft2(x), (3, 4), False),
    ("ihfftn 1 dim", lambda x: FFT.ihfftn(x, dim=(1,), norm="ortho"), (2, 5), False),
]


@pytest.mark.parametrize("name,fn,shape,cplx", GRAD_CASES, ids=[c[0] for c in GRAD_CASES])
def test_gradients_central_differences(name, fn, shape, cplx):
    vjp_check(fn, crand(*shape) if cplx else rng.standard_normal(shape))


def test_gradcheck_real_pipelines_and_double_backward():
    x = torch.tensor(rng.standard_normal(6), requires_grad=True)
    assert gradcheck(lambda t: FFT.rfft(t).abs(), (x,))
    assert gradcheck(lambda t: FFT.irfft(FFT.rfft(t) * FFT.rfft(t.flip(0)), n=6), (x,))
    assert gradgradcheck(lambda t: (FFT.rfft(t, norm="ortho") * FFT.rfft(t).conj()).real.sum(), (x,))
    assert gradgradcheck(lambda t: torch.view_as_real(FFT.fft2(t.reshape(2, 3))).pow(2).sum(), (x,))
    assert gradgradcheck(lambda t: FFT.irfft(FFT.rfft(t) * 1j, n=6), (x,))


def test_gradient_dtypes_float32():
    x = torch.randn(8, requires_grad=True)
    FFT.rfft(x).abs().sum().backward()
    assert x.grad.dtype == torch.float32
    z = torch.randn(8, dtype=torch.complex64, requires_grad=True)
    FFT.irfft(z).sum().backward()
    assert z.grad.dtype == torch.complex64
    # an explicit cast to complex sends the real part back (PyTorch's _to_copy backward)
    y = torch.randn(4, requires_grad=True)
    FFT.fft(y.to(torch.complex64)).abs().sum().backward()
    assert y.grad.dtype == torch.float32


def test_fft_convolution_gradient_matches_direct_convolution():
    # circular convolution through the FFT: its gradient w.r.t. both signals is a circular correlation
    a = rng.standard_normal(8)
    k = rng.standard_normal(8)
    ta, tk = torch.tensor(a, requires_grad=True), torch.tensor(k, requires_grad=True)
    y = FFT.irfft(FFT.rfft(ta) * FFT.rfft(tk), n=8)
    direct = np.array([sum(a[j] * k[(i - j) % 8] for j in range(8)) for i in range(8)])
    np.testing.assert_allclose(npy(y), direct, atol=1e-12)
    w = rng.standard_normal(8)
    (y * torch.tensor(w)).sum().backward()
    ga = np.array([sum(w[i] * k[(i - j) % 8] for i in range(8)) for j in range(8)])
    gk = np.array([sum(w[i] * a[(i - m) % 8] for i in range(8)) for m in range(8)])
    np.testing.assert_allclose(npy(ta.grad), ga, atol=1e-12)
    np.testing.assert_allclose(npy(tk.grad), gk, atol=1e-12)


# ---- complex accessors used with FFT output --------------------------------------------------------------
def test_real_imag_view_as_real_complex_forward():
    a = crand(2, 3)
    z = torch.tensor(a)
    np.testing.assert_array_equal(npy(z.real), a.real)
    np.testing.assert_array_equal(npy(torch.imag(z)), a.imag)
    vr = torch.view_as_real(z)
    assert vr.shape == (2, 3, 2)
    np.testing.assert_array_equal(npy(vr), np.stack([a.real, a.imag], -1))
    np.testing.assert_array_equal(npy(torch.view_as_complex(vr)), a)
    vr[0, 0, 1] = 5.0  # a view: the write shows in the complex tensor
    assert complex(z[0, 0].item()).imag == 5.0
    t = torch.tensor(a.T)  # non-contiguous complex input still views
    np.testing.assert_array_equal(npy(torch.view_as_real(t.t())), np.stack([a.real, a.imag], -1))
    r = torch.ones(3)
    assert torch.real(r) is r and r.conj() is r and not z.is_conj()
    np.testing.assert_array_equal(npy(z.conj()), np.conj(npy(z)))
    np.testing.assert_allclose(npy(torch.angle(z)), np.angle(npy(z)))
    np.testing.assert_allclose(npy(torch.angle(torch.tensor([1.0, -2.0, 0.0, float("nan")]))),
                               [0, np.pi, 0, np.nan])
    c = torch.complex(torch.tensor([1.0, 2.0]), torch.tensor([[3.0], [4.0]]))
    np.testing.assert_array_equal(npy(c), np.array([[1 + 3j, 2 + 3j], [1 + 4j, 2 + 4j]]))
    np.testing.assert_allclose(npy(torch.polar(torch.tensor([2.0]), torch.tensor([0.5]))), [2 * np.exp(0.5j)],
                               rtol=1e-6)


@pytest.mark.parametrize("call,msg", [
    (lambda: torch.imag(torch.ones(2)), "imag is not implemented for tensors with non-complex dtypes"),
    (lambda: torch.view_as_real(torch.ones(2)), "view_as_real is only supported for complex tensors"),
    (lambda: torch.view_as_complex(torch.ones(2, 3)), "last dimension of size 2"),
    (lambda: torch.view_as_complex(torch.ones(2, 4)[:, ::2]), "last dimension with stride 1"),
    (lambda: torch.view_as_complex(torch.ones(3, 2, dtype=torch.float16)), "only supported for float and double"),
    (lambda: torch.complex(torch.ones(2), torch.ones(2, dtype=torch.float64)), "Expected object of scalar type Float"),
    (lambda: torch.complex(torch.ones(2, dtype=torch.int64), torch.ones(2, dtype=torch.int64)),
     "Expected both inputs to be Half, Float or Double"),
])
def test_complex_accessor_errors(call, msg):
    with pytest.raises(RuntimeError, match=msg):
        call()


COMPLEX_GRAD_CASES = [
    ("real", lambda z: torch.real(z) * 1.5, [True]),
    ("imag", lambda z: z.imag * 1.5, [True]),
    ("view_as_real", lambda z: torch.view_as_real(z), [True]),
    ("view_as_complex", lambda x: torch.view_as_complex(x), [False]),
    ("conj", lambda z: z.conj() * (1 + 2j), [True]),
    ("angle", lambda z: torch.angle(z), [True]),
    ("complex", lambda a, b: torch.complex(a, b), [False, False]),
    ("polar", lambda a, b: torch.polar(a, b), [False, False]),
    ("mul complex", lambda a, b: a * b, [True, True]),
    ("mul real by complex", lambda a, b: a * b, [False, True]),
    ("div complex", lambda a, b: a / b, [True, True]),
    ("abs", lambda z: z.abs(), [True]),
    ("sum", lambda z: z.sum(), [True]),
    ("mean", lambda z: z.mean() * 2, [True]),
]


@pytest.mark.parametrize("name,fn,kinds", COMPLEX_GRAD_CASES, ids=[c[0] for c in COMPLEX_GRAD_CASES])
def test_complex_accessor_gradients(name, fn, kinds):
    shape = (3, 2) if name == "view_as_complex" else (3,)
    arrays = [crand(*shape) if c else rng.standard_normal(shape) + 2.0 for c in kinds]
    vjp_check(fn, *arrays)


def test_view_as_complex_needs_an_even_storage_offset():
    base = torch.arange(12, dtype=torch.float32)
    with pytest.raises(RuntimeError, match="Tensor must have a storage_offset divisible by 2"):
        torch.view_as_complex(base[1:9].reshape(4, 2))
    with pytest.raises(RuntimeError, match="Tensor must have a storage_offset divisible by 2"):
        torch.view_as_complex(base.reshape(3, 4)[:, 1:3])
    ref = np.arange(12, dtype=np.float64)
    r = torch.view_as_complex(torch.arange(12, dtype=torch.float64)[2:].reshape(5, 2))
    np.testing.assert_array_equal(r.numpy(), ref[2::2] + 1j * ref[3::2])
