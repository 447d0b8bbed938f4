"""Tensor printing matches PyTorch's output character for character.

Expected strings marked [pytorch] are copied from PyTorch's own test suite (test/test_torch.py,
``test_print``) with ``torch.`` replaced by ``disttorch.``; the others follow the same rules
(column width, integer mode, scientific mode, line breaking) and were checked by hand.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

import disttorch
from disttorch import _tensor_str

inf, nan = math.inf, math.nan


@pytest.fixture(autouse=True)
def _default_printoptions():
    disttorch.set_printoptions(profile="default")
    yield
    disttorch.set_printoptions(profile="default")


def check(t, expected: str) -> None:
    assert repr(t) == expected
    assert str(t) == expected


# ---- values copied from PyTorch's test_print ------------------------------------------------
@pytest.mark.parametrize("data,expected", [
    ([2.3 + 4j, 7 + 6j], "tensor([2.3000+4.j, 7.0000+6.j])"),
    ([1e28 + 2j, -1e-28j], "tensor([1.0000e+28+2.0000e+00j, -0.0000e+00-1.0000e-28j])"),
    (2341234123412341, "tensor(2341234123412341)"),
    ([1e28, 1e-28], "tensor([1.0000e+28, 1.0000e-28])"),
    ([1, 2], "tensor([1, 2])"),
    ([1, -2], "tensor([ 1, -2])"),
    ([4, inf, 1.5, -inf, 0, nan, 1], "tensor([4.0000,    inf, 1.5000,   -inf, 0.0000,    nan, 1.0000])"),
    (0.00002, "tensor(2.0000e-05)"),
    ([True], "tensor([True])"),
    (True, "tensor(True)"),
    ([0.00002], "tensor([2.0000e-05])"),
    ([123456789.], "tensor([1.2346e+08])"),
    ([0.01, 11], "tensor([1.0000e-02, 1.1000e+01])"),
    ([1, 1010], "tensor([   1, 1010])"),
    ([1000000000], "tensor([1000000000])"),
    ([1., 1000.], "tensor([   1., 1000.])"),
    ([1., 1010.], "tensor([1.0000e+00, 1.0100e+03])"),
])
def test_pytorch_expected(data, expected):  # [pytorch]
    check(disttorch.tensor(data), expected)


def test_complex_nonfinite():  # [pytorch]
    y = disttorch.tensor([4, inf, complex(1.5, inf), complex(-inf, 4), 0, complex(nan, inf), complex(3, nan)])
    check(y, "tensor([4.0000+0.j,    inf+0.j, 1.5000+infj,   -inf+4.j, 0.0000+0.j,    nan+infj,\n"
             "        3.0000+nanj])")


def test_complex_sci_from_product():  # [pytorch]
    check(disttorch.tensor([0.00002 * (1 + 1j)], dtype=disttorch.complex64), "tensor([2.0000e-05+2.0000e-05j])")


def test_float64_dtype_suffix_and_default_dtype():  # [pytorch]
    x = disttorch.tensor([1e-324, 1e-323, 1e-322, 1e307, 1e308, 1e309], dtype=disttorch.float64)
    check(x, "tensor([ 0.0000e+00, 9.8813e-324, 9.8813e-323, 1.0000e+307, 1.0000e+308,\n"
             "                inf], dtype=disttorch.float64)")
    prev = disttorch.get_default_dtype()
    disttorch.set_default_dtype(disttorch.float64)
    try:
        check(x, "tensor([ 0.0000e+00, 9.8813e-324, 9.8813e-323, 1.0000e+307, 1.0000e+308,\n"
                 "                inf])")
        check(disttorch.tensor([1.5], dtype=disttorch.float32), "tensor([1.5000], dtype=disttorch.float32)")
        check(disttorch.tensor([1 + 2j], dtype=disttorch.complex128), "tensor([1.+2.j])")
    finally:
        disttorch.set_default_dtype(prev)


def test_summary_zeros():  # [pytorch]
    check(disttorch.zeros(10000), "tensor([0., 0., 0.,  ..., 0., 0., 0.])")


def test_summary_3d():  # [pytorch] (the as_strided case: a (100, 2, 10) tensor of ones)
    row = "[1., 1., 1.,  ..., 1., 1., 1.]"
    block = f"[{row},\n         {row}]"
    expected = ("tensor([" + ",\n\n        ".join([block] * 3 + ["..."] + [block] * 3) + "])")
    check(disttorch.ones(100, 2, 10), expected)


def test_summary_3d_complex():  # [pytorch]
    row = "[1.+1.j, 1.+1.j, 1.+1.j,  ..., 1.+1.j, 1.+1.j, 1.+1.j]"
    block = f"[{row},\n         {row}]"
    expected = ("tensor([" + ",\n\n        ".join([block] * 3 + ["..."] + [block] * 3) + "])")
    check(disttorch.tensor(np.full((100, 2, 10), 1 + 1j, dtype=np.complex64)), expected)


def test_summarized_data_shape():  # [pytorch] get_summarized_data keeps edgeitems at both ends
    x = np.random.default_rng(0).random((1, 20, 5, 30))
    s = _tensor_str._summarized(np, x, 3)
    first_and_last = [0, 1, 2, -3, -2, -1]
    assert s.shape == (1, 6, 5, 6)
    np.testing.assert_array_equal(s, x[:, first_and_last][..., first_and_last])


def test_integral_float_requires_grad():  # [pytorch]
    check(disttorch.tensor([123.], requires_grad=True), "tensor([123.], requires_grad=True)")


def test_sci_mode_option():  # [pytorch] (PyTorch >= 2.1 sizes the column in the forced mode)
    x = disttorch.tensor([1e2, 1e-2])
    disttorch.set_printoptions(sci_mode=True)
    check(x, "tensor([1.0000e+02, 1.0000e-02])")
    disttorch.set_printoptions(sci_mode=False)
    check(x, "tensor([100.0000,   0.0100])")
    disttorch.set_printoptions(sci_mode=None)
    check(x, "tensor([1.0000e+02, 1.0000e-02])")


def test_set_printoptions_docstring():  # [pytorch] the set_printoptions docstring example
    disttorch.set_printoptions(precision=2)
    check(disttorch.tensor([1.12345]), "tensor([1.12])")
    disttorch.set_printoptions(threshold=5)
    check(disttorch.arange(10), "tensor([0, 1, 2,  ..., 7, 8, 9])")
    disttorch.set_printoptions(profile="default")
    check(disttorch.tensor([1.12345]), "tensor([1.1235])")
    check(disttorch.arange(10), "tensor([0, 1, 2, 3, 4, 5, 6, 7, 8, 9])")


# ---- layout: widths, nesting, line breaking --------------------------------------------------
def test_line_breaking_1d():
    check(disttorch.arange(30),
          "tensor([ 0,  1,  2,  3,  4,  5,  6,  7,  8,  9, 10, 11, 12, 13, 14, 15, 16, 17,\n"
          "        18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29])")


def test_line_breaking_2d_rows():
    check(disttorch.arange(40.).reshape(2, 20),
          "tensor([[ 0.,  1.,  2.,  3.,  4.,  5.,  6.,  7.,  8.,  9., 10., 11., 12., 13.,\n"
          "         14., 15., 16., 17., 18., 19.],\n"
          "        [20., 21., 22., 23., 24., 25., 26., 27., 28., 29., 30., 31., 32., 33.,\n"
          "         34., 35., 36., 37., 38., 39.]])")


def test_linewidth_option():
    disttorch.set_printoptions(linewidth=31)  # (31 - 7) // 8 = 3 per line
    check(disttorch.arange(10.) / 4,
          "tensor([0.0000, 0.2500, 0.5000,\n"
          "        0.7500, 1.0000, 1.2500,\n"
          "        1.5000, 1.7500, 2.0000,\n"
          "        2.2500])")


def test_common_width_2d_and_3d():
    check(disttorch.tensor([[1.5, -2.25], [3.0, 4.0]]),
          "tensor([[ 1.5000, -2.2500],\n"
          "        [ 3.0000,  4.0000]])")
    check(disttorch.arange(8).reshape(2, 2, 2),
          "tensor([[[0, 1],\n"
          "         [2, 3]],\n"
          "\n"
          "        [[4, 5],\n"
          "         [6, 7]]])")


def test_summary_2d_int():
    check(disttorch.arange(1600).reshape(40, 40),
          "tensor([[   0,    1,    2,  ...,   37,   38,   39],\n"
          "        [  40,   41,   42,  ...,   77,   78,   79],\n"
          "        [  80,   81,   82,  ...,  117,  118,  119],\n"
          "        ...,\n"
          "        [1480, 1481, 1482,  ..., 1517, 1518, 1519],\n"
          "        [1520, 1521, 1522,  ..., 1557, 1558, 1559],\n"
          "        [1560, 1561, 1562,  ..., 1597, 1598, 1599]])")


def test_summary_width_ignores_hidden_values():
    a = np.ones(2000, dtype=np.float32)
    a[1000] = 1e10  # hidden by the summary: must not switch the shown values to scientific mode
    check(disttorch.tensor(a), "tensor([1., 1., 1.,  ..., 1., 1., 1.])")


def test_dtype_suffix_wraps_to_next_line():
    check(disttorch.tensor([0.5] * 8, dtype=disttorch.float64),
          "tensor([0.5000, 0.5000, 0.5000, 0.5000, 0.5000, 0.5000, 0.5000, 0.5000],\n"
          "       dtype=disttorch.float64)")


@pytest.mark.parametrize("profile,expected", [
    ("short", "tensor([0.33, 0.67,  ..., 0.67, 1.00])"),  # precision 2, edgeitems 2
    ("full", None),
])
def test_profiles(profile, expected):
    x = disttorch.tensor(np.tile(np.array([1, 2, 3], dtype=np.float32) / 3, 400))
    disttorch.set_printoptions(profile=profile)
    if expected is None:  # full: every element is printed
        assert repr(x).count("0.3333") == 400
    else:
        check(x, expected)


def test_edgeitems_option():
    disttorch.set_printoptions(threshold=5, edgeitems=1)
    check(disttorch.arange(10), "tensor([0,  ..., 9])")
    disttorch.set_printoptions(edgeitems=0)
    check(disttorch.tensor([1, 2]), "tensor([1, 2], size=(2,))")
    check(disttorch.arange(2000).reshape(2, 1000), "tensor([...], size=(2, 1000))")


def test_get_printoptions_and_context_manager():
    with _tensor_str.printoptions(precision=1):
        check(disttorch.tensor([0.25]), "tensor([0.2])")
        assert _tensor_str.get_printoptions()["precision"] == 1
    check(disttorch.tensor([0.25]), "tensor([0.2500])")
    with pytest.raises(ValueError, match="profile"):
        disttorch.set_printoptions(profile="huge")


# ---- number modes --------------------------------------------------------------------------
@pytest.mark.parametrize("data,expected", [
    ([1., 2., 3.], "tensor([1., 2., 3.])"),
    ([inf, -inf, 1.], "tensor([inf, -inf, 1.])"),
    ([-0., 1.], "tensor([-0., 1.])"),
    ([nan], "tensor([nan])"),
    ([0., 0.], "tensor([0., 0.])"),
    ([1e9], "tensor([1.0000e+09])"),
    ([100., 1000.], "tensor([ 100., 1000.])"),
    (3., "tensor(3.)"),
    (-0.5, "tensor(-0.5000)"),
    (5, "tensor(5)"),
    ([[True, False], [False, True]], "tensor([[ True, False],\n        [False,  True]])"),
])
def test_number_modes(data, expected):
    check(disttorch.tensor(data), expected)


@pytest.mark.parametrize("dtype,expected", [
    (disttorch.float16, "tensor([0.1000], dtype=disttorch.float16)"),
    (disttorch.bfloat16, "tensor([0.1001], dtype=disttorch.bfloat16)"),
    (disttorch.int32, "tensor([0], dtype=disttorch.int32)"),
    (disttorch.uint8, "tensor([0], dtype=disttorch.uint8)"),
    (disttorch.complex128, "tensor([0.1000+0.j], dtype=disttorch.complex128)"),
])
def test_dtype_suffix(dtype, expected):
    check(disttorch.tensor([0.1]).to(dtype), expected)


@pytest.mark.parametrize("make,expected", [
    (lambda: disttorch.zeros(0), "tensor([])"),
    (lambda: disttorch.zeros(0, 3), "tensor([], size=(0, 3))"),
    (lambda: disttorch.zeros(2, 0), "tensor([], size=(2, 0))"),
    (lambda: disttorch.zeros(0, dtype=disttorch.int64), "tensor([], dtype=disttorch.int64)"),
    (lambda: disttorch.zeros(0, 3, dtype=disttorch.int32), "tensor([], size=(0, 3), dtype=disttorch.int32)"),
    (lambda: disttorch.zeros(0, dtype=disttorch.bool), "tensor([], dtype=disttorch.bool)"),
])
def test_empty(make, expected):
    check(make(), expected)


# ---- autograd and type suffixes ------------------------------------------------------------
def test_grad_fn_and_requires_grad():
    a = disttorch.tensor([1., 2.], requires_grad=True)
    check(a, "tensor([1., 2.], requires_grad=True)")
    check(a * 2, "tensor([2., 4.], grad_fn=<MulBackward0>)")
    check(disttorch.tensor(2., requires_grad=True), "tensor(2., requires_grad=True)")
    check((a * 2).detach(), "tensor([2., 4.])")


def test_subclass_prefix_and_format():
    class MyTensor(disttorch.Tensor):
        pass

    check(MyTensor([1., 2.]), "MyTensor([1., 2.])")
    t = disttorch.tensor([1.5, 2.5])
    assert f"{t}" == repr(t)
    assert f"{disttorch.tensor(1.25):.1f}" == "1.2"


def test_tensor_contents_override():
    t = disttorch.tensor([1., 2.], requires_grad=True)
    assert _tensor_str.tensor_repr(t, tensor_contents="[...]") == "tensor([...], requires_grad=True)"


class _FakeCudaArray:
    """Enough of a CuPy array for the printer: the host copy comes from ``get()``."""

    class _Dev:
        id = 0

    def __init__(self, arr: np.ndarray) -> None:
        self._arr = arr
        self.device = self._Dev()
        self.shape, self.ndim, self.size, self.dtype = arr.shape, arr.ndim, arr.size, arr.dtype

    def get(self) -> np.ndarray:
        return self._arr


def test_cuda_device_suffix():
    t = disttorch.tensor([123])
    t._data = _FakeCudaArray(np.array([123]))
    assert t.device == disttorch.device("cuda", 0)
    check(t, "tensor([123], device='cuda:0')")  # [pytorch]
    e = disttorch.tensor([1.])
    e._data = _FakeCudaArray(np.zeros((0, 2), np.float32))
    check(e, "tensor([], device='cuda:0', size=(0, 2))")


@pytest.mark.gpu
def test_cuda_tensor_print():
    if not disttorch.cuda.is_available():
        pytest.skip("needs CuPy and an NVIDIA GPU")
    check(disttorch.tensor([123], device="cuda:0"), "tensor([123], device='cuda:0')")  # [pytorch]
    check(disttorch.zeros(10000, device="cuda"), "tensor([0., 0., 0.,  ..., 0., 0., 0.], device='cuda:0')")
