"""F.pad / constant_pad_nd: every mode against np.pad, negative (cropping) pads, errors, gradchecks."""
import numpy as np
import pytest

import disttorch
from disttorch.ops import pad as PD
from helpers import assert_close, check_grad, rand_array

pytestmark = pytest.mark.filterwarnings("error")

T = disttorch.tensor
NP_MODE = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}


def np_widths(ndim, pads):
    """PyTorch's (last dim first) pad tuple as np.pad's per-axis widths."""
    widths = [(0, 0)] * ndim
    for k in range(len(pads) // 2):
        widths[ndim - 1 - k] = (pads[2 * k], pads[2 * k + 1])
    return widths


@pytest.mark.parametrize("shape,pads,value", [
    ((3,), (1, 2), 0.0), ((2, 3), (0, 1, 2, 0), 1.5), ((2, 3, 4), (1, 1, 1, 1, 1, 1), -2.0), ((2, 3), (), 0.0),
    ((0, 3), (1, 1), 0.0), ((1, 2, 3, 4), (2, 0), 7.0),
])
def test_constant_pad(shape, pads, value):
    a = rand_array(shape)
    out = PD.pad(T(a), pads, value=value)
    assert_close(out, np.pad(a, np_widths(len(shape), pads), constant_values=value))
    assert_close(PD.constant_pad_nd(T(a), pads, value), out.numpy())
    if a.size:
        check_grad(lambda x: PD.pad(x, pads, value=value), a, gradgrad=True)


@pytest.mark.parametrize("shape,pads", [((3, 5), (-1, -2)), ((3, 5), (-1, 2, 1, -2)), ((2, 4), (-4, 0)),
                                        ((2, 3, 4), (1, -2, -1, 0))])
def test_negative_padding_crops(shape, pads):
    a = rand_array(shape)
    out = PD.pad(T(a), pads)
    ref = a
    for k in range(len(pads) // 2):
        ax = len(shape) - 1 - k
        lo, hi = pads[2 * k], pads[2 * k + 1]
        ref = np.take(ref, np.arange(max(-lo, 0), ref.shape[ax] - max(-hi, 0)), axis=ax)
        ref = np.pad(ref, [(max(lo, 0), max(hi, 0)) if i == ax else (0, 0) for i in range(ref.ndim)])
    assert_close(out, ref)
    check_grad(lambda x: PD.pad(x, pads), a, gradgrad=True)


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
@pytest.mark.parametrize("shape,pads", [((2, 5), (2, 3)), ((1, 2, 4), (3, 1)), ((2, 3, 4), (1, 2, 2, 1)),
                                        ((1, 2, 3, 4), (3, 0, 0, 2)), ((1, 2, 3, 3, 3), (1, 1, 2, 0, 0, 2)),
                                        ((2, 3, 3, 4), (1, 2, 1, 0, 2, 1))])
def test_nonconstant_modes(mode, shape, pads):
    a = rand_array(shape)
    out = PD.pad(T(a), pads, mode=mode)
    assert_close(out, np.pad(a, np_widths(len(shape), pads), mode=NP_MODE[mode]))
    check_grad(lambda x: PD.pad(x, pads, mode=mode), a, gradgrad=mode == "reflect")


def test_single_element_replicate_and_dtypes():
    a = rand_array((1, 1, 1))
    assert_close(PD.pad(T(a), (2, 2), mode="replicate"), np.repeat(a, 5, axis=2))
    f32 = PD.pad(T(a.astype(np.float32)), (1, 1), mode="reflect" if a.shape[-1] > 1 else "replicate")
    assert f32.dtype == disttorch.float32
    ints = np.arange(6).reshape(1, 2, 3)
    out = PD.pad(T(ints), (2, 2), mode="reflect")
    assert out.dtype == disttorch.int64
    np.testing.assert_array_equal(out.numpy(), np.pad(ints, [(0, 0), (0, 0), (2, 2)], mode="reflect"))
    assert PD.pad(T(ints), (1, 1), value=9).numpy()[0, 0, 0] == 9
    c = (rand_array((1, 4)) + 1j * rand_array((1, 4))).astype(np.complex128)
    assert_close(PD.pad(T(c), (1, 2), mode="circular"), np.pad(c, [(0, 0), (1, 2)], mode="wrap"))


def test_grad_fn_names_and_no_alias():
    x = T(rand_array((1, 2, 4)), requires_grad=True)
    assert PD.pad(x, (1, 1)).grad_fn.name() == "ConstantPadNdBackward0"
    assert PD.pad(x, (1, 1), mode="reflect").grad_fn.name() == "ReflectionPad1DBackward0"
    assert PD.pad(x, (1, 1), mode="replicate").grad_fn.name() == "ReplicationPad1DBackward0"
    x4 = T(rand_array((1, 1, 3, 3)), requires_grad=True)
    assert PD.pad(x4, (1, 1, 1, 1), mode="reflect").grad_fn.name() == "ReflectionPad2DBackward0"
    a = rand_array((1, 2, 4))
    src = T(a)
    PD.pad(src, (0, 0), mode="reflect").numpy()[...] = 0
    PD.pad(src, (0, 0)).numpy()[...] = 0
    assert_close(src, a)


@pytest.mark.parametrize("shape,pads,kw,exc,match", [
    ((1, 1, 3), (3, 3), dict(mode="reflect"), RuntimeError,
     r"Argument #4: Padding size should be less than the corresponding input dimension, but got: padding \(3, 3\) "
     r"at dimension 2 of input \[1, 1, 3\]"),
    ((1, 3, 5), (1, 1, 3, 0), dict(mode="reflect"), RuntimeError, r"Argument #6: .* at dimension 1 of input"),
    ((2, 3), (1,), {}, RuntimeError, "Padding length must be divisible by 2"),
    ((2, 3), (1, 1, 1, 1, 1, 1), {}, RuntimeError, "Padding length should be less than or equal to two times"),
    ((2, 3), (1, 1), dict(mode="wrap"), NotImplementedError, "Unrecognised padding mode wrap"),
    ((1, 2, 3), (1, 1), dict(mode="reflect", value=1.0), RuntimeError, "doesn't take in value argument"),
    ((3,), (1, 1), dict(mode="reflect"), NotImplementedError, r"Padding size 2 is not supported for 1D input tensor\."),
    ((1, 2, 3, 4), (1, 1), dict(mode="replicate"), NotImplementedError,
     r"Padding size 2 is not supported for 4D input tensor\."),
    ((1, 2, 3), (-2, -2), {}, RuntimeError, "resulted in a negative output size"),
    ((1, 2, 3), (4, 0), dict(mode="circular"), RuntimeError, "wrapping around more than once"),
    ((1, 2, 3), (1.5, 1), {}, TypeError, "must be tuple of ints"),
])
def test_pad_errors(shape, pads, kw, exc, match):
    with pytest.raises(exc, match=match):
        PD.pad(T(rand_array(shape)), pads, **kw)


def test_exports():
    assert PD.FUNCTIONAL == ("pad",)
    assert PD.__all__ == ["constant_pad_nd"]
