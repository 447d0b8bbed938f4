"""layer_norm, GELU/SiLU and dropout run their CUDA kernels (kernels/layer_norm.cu, activation.cu, dropout.cu) on a
CUDA device: on the stand-in device the plans run through the NumPy emulator of the .cu code
(disttorch/testing/_emu_norm_act.py), so these tests check that each op packs the plan the kernel expects and uses
its outputs right. Each compares with the op's generic code on the CPU (forward and gradients), counts the entry
points launched, and checks the fallbacks (DISTTORCH_KERNELS=0, float64, non-contiguous input, create_graph) and that
no host transfer happens."""
import numpy as np
import pytest

import disttorch
import disttorch.nn.functional as F
from disttorch.kernels import philox
from disttorch.testing._kernel_emulator import LAUNCHES

_TOL = {np.float32: dict(rtol=1e-5, atol=1e-5), np.float16: dict(rtol=2e-3, atol=2e-3),
        np.float64: dict(rtol=1e-12, atol=1e-12)}


def _grads(fn, arrays, device, grad_seed=1, create_graph=False):
    """``fn(*tensors)`` on ``device``, backward of a random-weighted sum: (output, input grads) as float64 NumPy."""
    ts = [disttorch.tensor(a, device=device, requires_grad=True) for a in arrays]
    y = fn(*ts)
    g = disttorch.tensor(np.random.default_rng(grad_seed).standard_normal(y.shape).astype(arrays[0].dtype),
                         device=device)
    gs = disttorch.autograd.grad(y, ts, g, create_graph=create_graph)
    return [t.detach().cpu().numpy().astype(np.float64) for t in (y, *gs)]


def _check_same(got, want, dtype):
    for k, (a, b) in enumerate(zip(got, want)):
        np.testing.assert_allclose(a, b, err_msg=f"output {k}", **_TOL[dtype])


def _ln(x, w, b):
    return F.layer_norm(x, (3, 8), w, b)


def _ln_arrays(dtype, shape=(5, 3, 8)):
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(shape) * 2 + 3).astype(dtype)
    return [x, rng.standard_normal(shape[-2:]).astype(dtype), rng.standard_normal(shape[-2:]).astype(dtype)]


_LN_ALL = {"layer_norm_forward", "layer_norm_backward_input", "layer_norm_backward_affine"}


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_layer_norm_runs_its_kernels_and_matches_cpu(standin_cuda, dtype):
    arrays = _ln_arrays(dtype)
    want = _grads(_ln, arrays, "cpu")
    LAUNCHES.clear()
    got = _grads(_ln, arrays, "cuda")
    sfx = "f32" if dtype == np.float32 else "f16"
    assert dict(LAUNCHES) == {f"{k}_{sfx}": 1 for k in _LN_ALL}
    _check_same(got, want, dtype)


def test_layer_norm_without_affine_and_input_grad_only(standin_cuda):
    x = _ln_arrays(np.float32)[0]
    fn = lambda t: F.layer_norm(t, (8,))  # noqa: E731
    want = _grads(fn, [x], "cpu")
    LAUNCHES.clear()
    got = _grads(fn, [x], "cuda")
    assert dict(LAUNCHES) == {"layer_norm_forward_f32": 1, "layer_norm_backward_input_f32": 1}
    _check_same(got, want, np.float32)


def test_layer_norm_kernel_matches_closed_form(standin_cuda):
    """Independent of the op's generic code: (x - mean) / sqrt(var + eps) * w + b in float64."""
    x, w, b = _ln_arrays(np.float32)
    y = _ln(*(disttorch.tensor(a, device="cuda") for a in (x, w, b)))
    xr = x.reshape(5, -1).astype(np.float64)
    ref = ((xr - xr.mean(1, keepdims=True)) / np.sqrt(xr.var(1, keepdims=True) + 1e-5)).reshape(x.shape) * w + b
    np.testing.assert_allclose(y.cpu().numpy(), ref, rtol=1e-5, atol=1e-5)


_ACTS = {"gelu": (lambda t: F.gelu(t), "gelu"), "gelu_tanh": (lambda t: F.gelu(t, approximate="tanh"), "gelu_tanh"),
         "silu": (F.silu, "silu")}


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
@pytest.mark.parametrize("name", sorted(_ACTS))
def test_activation_runs_its_kernels_and_matches_cpu(standin_cuda, name, dtype):
    fn, kernel = _ACTS[name]
    x = (np.random.default_rng(2).standard_normal((6, 7)) * 3).astype(dtype)
    want = _grads(fn, [x], "cpu")
    LAUNCHES.clear()
    got = _grads(fn, [x], "cuda")
    sfx = "f32" if dtype == np.float32 else "f16"
    assert dict(LAUNCHES) == {f"{kernel}_forward_{sfx}": 1, f"{kernel}_backward_{sfx}": 1}
    _check_same(got, want, dtype)


def test_silu_inplace_runs_the_kernel(standin_cuda):
    x = np.linspace(-4, 4, 12, dtype=np.float32)
    t = disttorch.tensor(x, device="cuda")
    LAUNCHES.clear()
    F.silu(t, inplace=True)
    assert LAUNCHES["silu_forward_f32"] == 1
    np.testing.assert_allclose(t.cpu().numpy(), x / (1 + np.exp(-x.astype(np.float64))), rtol=1e-6, atol=1e-7)


def _philox_state(g):
    st = g.get_state().numpy().tobytes()
    return int.from_bytes(st[:8], "little"), int.from_bytes(st[8:], "little")


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_dropout_kernel_mask_is_the_generators_next_draw(standin_cuda, dtype):
    g = disttorch.cuda.default_generators[0]
    g.manual_seed(7)
    F.dropout(disttorch.ones(3, device="cuda"), 0.5)  # move the offset off 0
    seed, offset = _philox_state(g)
    x = disttorch.tensor(np.random.default_rng(3).standard_normal(1003).astype(dtype), device="cuda",
                         requires_grad=True)
    LAUNCHES.clear()
    y = F.dropout(x, 0.3)
    (y * y.detach()).sum().backward()  # d/dx = mask * y / (1 - p)
    sfx = "f32" if dtype == np.float32 else "f16"
    assert dict(LAUNCHES) == {f"dropout_forward_{sfx}": 1, f"dropout_backward_{sfx}": 1}
    assert _philox_state(g) == (seed, offset + 1)  # one draw, as the generic device path takes
    keep = philox.dropout_keep_mask(1003, 0.3, seed, offset)
    xs = x.detach().cpu().numpy().astype(np.float64)
    ys = np.where(keep, xs / 0.7, 0.0)
    np.testing.assert_allclose(y.detach().cpu().numpy(), ys, **_TOL[dtype])
    np.testing.assert_allclose(x.grad.cpu().numpy(), np.where(keep, ys / 0.7, 0.0), **_TOL[dtype])


def test_dropout_same_masks_with_kernels_off_and_manual_seed_repeats(standin_cuda, monkeypatch):
    x = np.random.default_rng(4).standard_normal((4, 64)).astype(np.float32)

    def two_calls():
        disttorch.cuda.manual_seed(11)
        t = disttorch.tensor(x, device="cuda", requires_grad=True)
        ys = [F.dropout(t, 0.4), disttorch.nn.Dropout(0.25).train()(t)]
        sum(y.sum() for y in ys).backward()
        return [y.detach().cpu().numpy() for y in ys] + [t.grad.cpu().numpy()]

    LAUNCHES.clear()
    on = two_calls()
    assert LAUNCHES["dropout_forward_f32"] == 2 and LAUNCHES["dropout_backward_f32"] == 2
    np.testing.assert_array_equal(two_calls()[0], on[0])  # manual_seed reproduces the mask
    assert not np.array_equal(on[0] != 0, on[1] != 0)  # successive calls draw new masks
    monkeypatch.setenv("DISTTORCH_KERNELS", "0")
    LAUNCHES.clear()
    off = two_calls()
    assert not LAUNCHES
    for a, b in zip(on, off):
        np.testing.assert_array_equal(a != 0, b != 0)
        np.testing.assert_allclose(a, b, rtol=1e-6)


def test_dropout_inplace_runs_the_kernel(standin_cuda):
    disttorch.cuda.manual_seed(2)
    seed, offset = _philox_state(disttorch.cuda.default_generators[0])
    t = disttorch.ones(257, device="cuda")
    LAUNCHES.clear()
    r = F.dropout(t, 0.5, inplace=True)
    assert r is t and LAUNCHES["dropout_forward_f32"] == 1
    keep = philox.dropout_keep_mask(257, 0.5, seed, offset)
    np.testing.assert_array_equal(t.cpu().numpy(), np.where(keep, 2.0, 0.0).astype(np.float32))


def test_kernels_off_launch_nothing_and_match(standin_cuda, monkeypatch):
    monkeypatch.setenv("DISTTORCH_KERNELS", "0")
    arrays = _ln_arrays(np.float32)
    x = arrays[0]
    LAUNCHES.clear()
    _check_same(_grads(_ln, arrays, "cuda"), _grads(_ln, arrays, "cpu"), np.float32)
    for fn, _ in _ACTS.values():
        _check_same(_grads(fn, [x], "cuda"), _grads(fn, [x], "cpu"), np.float32)
    assert not LAUNCHES


_FALLBACKS = {
    "float64": (lambda x: F.layer_norm(x, (8,)) + F.gelu(x) + F.silu(x) + F.dropout(x, 0.5) * 0, np.float64),
    "non_contiguous": (lambda x: F.layer_norm(x.transpose(0, 2), (5,)).sum(2) + F.gelu(x.transpose(0, 2)).sum(2)
                       + F.silu(x[:, :, ::2]).sum((0, 2)), np.float32),
    "weight_dtype": (lambda x: F.layer_norm(x, (8,), disttorch.ones(8, dtype=disttorch.float32, device=x.device)),
                     np.float16),
    "feature_and_alpha_dropout": (lambda x: F.dropout1d(x, 0.5) * 0 + F.alpha_dropout(x, 0.5, True) * 0 + x,
                                  np.float32),
}


@pytest.mark.parametrize("name", sorted(_FALLBACKS))
def test_fallbacks_launch_nothing_and_are_right(standin_cuda, name):
    fn, dtype = _FALLBACKS[name]
    x = _ln_arrays(dtype)[0]
    want = _grads(fn, [x], "cpu")
    LAUNCHES.clear()
    got = _grads(fn, [x], "cuda")
    assert not LAUNCHES, dict(LAUNCHES)
    _check_same(got, want, dtype)


def test_create_graph_uses_the_kernel_forward_and_the_tensor_backward(standin_cuda):
    """Double backward: the forward kernels run, the first backward is Tensor ops (differentiable), so the second
    derivative matches the CPU's."""
    arrays = _ln_arrays(np.float32)

    def second(device):
        ts = [disttorch.tensor(a, device=device, requires_grad=True) for a in arrays]
        y = F.gelu(_ln(*ts)) + F.silu(ts[0])
        (gx,) = disttorch.autograd.grad(y.sum(), ts[0], create_graph=True)
        return [t.cpu().numpy() for t in disttorch.autograd.grad((gx * gx).sum(), ts)]

    want = second("cpu")
    LAUNCHES.clear()
    got = second("cuda")
    # the first backward is Tensor ops; the second (no graph) goes through the nodes again and may use kernels
    assert {"layer_norm_forward_f32", "gelu_forward_f32", "silu_forward_f32"} <= set(LAUNCHES)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def test_broadcast_gradient_still_runs_the_backward_kernels(standin_cuda):
    """``y.sum().backward()`` hands the node a broadcast (non-contiguous) gradient: it is made contiguous for the
    kernels rather than sending the op to the generic code."""
    arrays = _ln_arrays(np.float16)

    def run(device):
        ts = [disttorch.tensor(a, device=device, requires_grad=True) for a in arrays]
        (F.silu(_ln(*ts)).sum() + F.gelu(ts[0]).sum()).backward()
        return [t.grad.cpu().numpy().astype(np.float64) for t in ts]

    want = run("cpu")
    LAUNCHES.clear()
    got = run("cuda")
    assert {k.rsplit("_", 1)[0] for k in LAUNCHES} == {f"{k}_{d}" for k in ("gelu", "silu") for d in
                                                       ("forward", "backward")} | _LN_ALL
    _check_same(got, want, np.float16)


def test_layer_norm_generic_backward_on_the_kernels_statistics(standin_cuda):
    """A gradient the backward kernels do not take (float32 into a float16 node) runs the generic formulas on ``xhat``
    rebuilt from the forward kernel's mean/rstd, and still gives the CPU's gradients."""
    arrays = _ln_arrays(np.float16)
    g = np.random.default_rng(5).standard_normal(arrays[0].shape).astype(np.float32)
    grads = []
    LAUNCHES.clear()
    for device in ("cpu", "cuda"):
        ts = [disttorch.tensor(a, device=device, requires_grad=True) for a in arrays]
        node = _ln(*ts).grad_fn
        with disttorch.no_grad():
            gd = disttorch.tensor(g, device=device)._data
            res = node.backward_arrays(ts[0]._xp, gd)
        grads.append([(r.get() if device == "cuda" else r).astype(np.float64) for r in res])
    assert dict(LAUNCHES) == {"layer_norm_forward_f16": 1}
    _check_same(grads[1], grads[0], np.float16)


def test_no_host_transfer_in_forward_and_backward(standin_cuda):
    arrays = _ln_arrays(np.float32)

    def step():
        ts = [disttorch.tensor(a, device="cuda", requires_grad=True) for a in arrays]
        g = disttorch.ones(arrays[0].shape, device="cuda")
        return ts, g, lambda: (F.dropout(F.gelu(_ln(*ts)), 0.2) + F.silu(ts[0])
                               + F.gelu(ts[0], approximate="tanh")).backward(g)

    step()[2]()  # warm-up
    *_, run = step()
    LAUNCHES.clear()
    standin_cuda.reset()
    run()
    assert standin_cuda.total == 0, standin_cuda.summary()
    assert len(LAUNCHES) == 11, dict(LAUNCHES)
