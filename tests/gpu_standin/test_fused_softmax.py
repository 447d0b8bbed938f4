"""softmax, log_softmax and cross_entropy on the stand-in CUDA device run the fused kernels of kernels/softmax.cu and
kernels/cross_entropy.cu (through the NumPy emulator of the CUDA code, disttorch.testing._emu_softmax) and give the
CPU's values and gradients; DISTTORCH_KERNELS=0 and the layouts/dtypes the kernels do not take run the generic
code. The emulator is written from the .cu source, so these tests check the plans the ops pack and how they use
the kernels' outputs; the CUDA code itself is checked on a GPU (tests/gpu/test_kernels_gpu.py)."""
import numpy as np
import pytest

import disttorch
import disttorch.nn.functional as F
from disttorch.testing import _kernel_emulator as K

# Largest |device - cpu| over the largest |cpu|: float32 allows a different summation order; float16 one rounding of
# the output (2^-11) on either side plus the generic path's float16 arithmetic in the backward.
TOL = {np.float32: 1e-5, np.float16: 4e-3, np.float64: 1e-12}


def _close(got, want, dtype, what):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape, f"{what}: shape {got.shape}, expected {want.shape}"
    scale = max(float(np.abs(want).max()), 1e-30)
    err = float(np.abs(got - want).max()) / scale
    assert err <= TOL[dtype], f"{what}: relative error {err:.3g} exceeds {TOL[dtype]}"


def _host(t):
    return t.detach().cpu().numpy()


def _softmax_run(dev, x, g, dim, log, grad_tensor=True):
    """(input, output weights, a function running (log_)softmax forward + backward on ``dev`` and returning the
    output); ``grad_tensor``: the loss weights the output by ``g``."""
    xt = disttorch.tensor(x, device=dev, requires_grad=True)
    gt = disttorch.tensor(g, device=dev)
    return xt, gt, (lambda: _sm(xt, gt, dim, log, grad_tensor))


def _sm(xt, gt, dim, log, grad_tensor):
    y = F.log_softmax(xt, dim) if log else F.softmax(xt, dim)
    # without grad_tensor the output's gradient is a broadcast (non-contiguous) view: sum(0)'s backward
    (y * gt).sum().backward() if grad_tensor else y.sum(0).square().sum().backward()
    return y


def _softmax_ref(x, dim, log):
    """Float64 NumPy softmax: the independent reference of the forward."""
    x = x.astype(np.float64)
    z = x - x.max(axis=dim, keepdims=True)
    lse = np.log(np.exp(z).sum(axis=dim, keepdims=True))
    return z - lse if log else np.exp(z - lse)


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
@pytest.mark.parametrize("log", [False, True])
@pytest.mark.parametrize("shape, dim, grad_tensor", [((5, 37), -1, True), ((2, 3, 40, 1), 2, False)])
def test_softmax_runs_the_kernels_and_matches_cpu(standin_cuda, dtype, log, shape, dim, grad_tensor):
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(shape) * 3).astype(dtype)
    g = rng.standard_normal(shape).astype(dtype)
    xc, _, run_cpu = _softmax_run("cpu", x, g, dim, log, grad_tensor)
    want = run_cpu()
    xd, _, run_dev = _softmax_run("cuda", x, g, dim, log, grad_tensor)
    K.LAUNCHES.clear()
    standin_cuda.reset()
    got = run_dev()
    assert standin_cuda.total == 0, standin_cuda.summary()
    op = "log_softmax" if log else "softmax"
    sfx = "f32" if dtype == np.float32 else "f16"
    assert dict(K.LAUNCHES) == {f"{op}_forward_{sfx}": 1, f"{op}_backward_{sfx}": 1}
    assert got.dtype == want.dtype and xd.grad.dtype == xc.grad.dtype
    _close(_host(got), _host(want), dtype, f"{op} forward")
    _close(_host(got), _softmax_ref(x, dim, log), dtype, f"{op} forward vs float64 NumPy")
    _close(_host(xd.grad), _host(xc.grad), dtype, f"{op} gradient")


def test_softmax_double_backward_keeps_the_differentiable_formula(standin_cuda):
    """create_graph: the forward uses the kernel, the backward the Tensor formula (it must be differentiable); the
    second backward, recording nothing, may use the kernel again."""
    x = np.random.default_rng(1).standard_normal((3, 6)).astype(np.float32)
    res = []
    for dev in ("cpu", "cuda"):
        K.LAUNCHES.clear()
        xt = disttorch.tensor(x, device=dev, requires_grad=True)
        y = F.softmax(xt, -1)
        (gx,) = disttorch.autograd.grad((y * y).sum(), xt, create_graph=True)
        if dev == "cuda":
            assert dict(K.LAUNCHES) == {"softmax_forward_f32": 1}
        (gx * gx).sum().backward()
        res.append((_host(gx), _host(xt.grad)))
    for a, b in zip(res[0], res[1]):
        _close(b, a, np.float32, "double backward")


def _fallback_cases():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((4, 9))
    return {
        "float64": (lambda d: disttorch.tensor(x, device=d, requires_grad=True), -1),
        "dim not last": (lambda d: disttorch.tensor(x.astype(np.float32), device=d, requires_grad=True), 0),
        "non-contiguous": (lambda d: disttorch.tensor(np.ascontiguousarray(x.T, np.float32), device=d,
                                                      requires_grad=True), -1),
        "0-d": (lambda d: disttorch.tensor(np.float32(1.5), device=d, requires_grad=True), 0),
    }


@pytest.mark.parametrize("case", sorted(_fallback_cases()))
@pytest.mark.parametrize("log", [False, True])
def test_softmax_fallbacks_launch_nothing_and_match_cpu(standin_cuda, case, log):
    make, dim = _fallback_cases()[case]
    outs = []
    for dev in ("cpu", "cuda"):
        K.LAUNCHES.clear()
        leaf = make(dev)
        view = leaf.t() if case == "non-contiguous" else leaf
        y = F.log_softmax(view, dim) if log else F.softmax(view, dim)
        (y * y).sum().backward()
        outs.append((_host(y), _host(leaf.grad)))
    assert not K.LAUNCHES, dict(K.LAUNCHES)
    dt = np.float64 if case == "float64" else np.float32
    for a, b in zip(outs[0], outs[1]):
        _close(b, a, dt, case)


def _ce(dev, x, t, w, **kw):
    xt = disttorch.tensor(x, device=dev, requires_grad=True)
    tt = disttorch.tensor(t, device=dev)
    wt = None if w is None else disttorch.tensor(w, device=dev)
    return xt, (lambda: F.cross_entropy(xt, tt, weight=wt, **kw))


def _ce_problem(shape, dtype, seed=3):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape) * 3).astype(dtype)
    c = shape[1] if len(shape) > 1 else shape[0]
    t = rng.integers(0, c, (shape[0],) + tuple(shape[2:]) if len(shape) > 1 else ()).astype(np.int64)
    if t.ndim:
        t.reshape(-1)[0] = 2  # the ignore_index of some cases below
    return x, t, rng.uniform(0.5, 2.0, c).astype(np.float32)


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize("weighted, eps, ignore_index", [(False, 0.0, -100), (True, 0.1, 2), (False, 0.3, 2)])
def test_cross_entropy_runs_the_kernels_and_matches_cpu(standin_cuda, dtype, reduction, weighted, eps, ignore_index):
    x, t, w = _ce_problem((6, 11), dtype)
    w = w if weighted else None
    kw = dict(reduction=reduction, label_smoothing=eps, ignore_index=ignore_index)
    xc, run_cpu = _ce("cpu", x, t, w, **kw)
    want = run_cpu()
    want.sum().backward()
    xd, run_dev = _ce("cuda", x, t, w, **kw)
    K.LAUNCHES.clear()
    standin_cuda.reset()
    got = run_dev()
    got.sum().backward()
    assert standin_cuda.total == 0, standin_cuda.summary()
    sfx = "f32" if dtype == np.float32 else "f16"
    assert dict(K.LAUNCHES) == {f"cross_entropy_forward_{sfx}": 1, f"cross_entropy_backward_{sfx}": 1}
    assert got.dtype == want.dtype and tuple(got.shape) == tuple(want.shape)
    _close(_host(got), _host(want), dtype, "cross_entropy loss")
    _close(_host(xd.grad), _host(xc.grad), dtype, "cross_entropy gradient")


def test_cross_entropy_forward_against_numpy():
    """The CPU reference itself against a float64 NumPy formula (weights, ignore_index, smoothing, 'mean')."""
    x, t, w = _ce_problem((6, 11), np.float32)
    eps = 0.2
    got = F.cross_entropy(disttorch.tensor(x), disttorch.tensor(t), weight=disttorch.tensor(w), ignore_index=2,
                          label_smoothing=eps)
    x64 = x.astype(np.float64)
    logp = x64 - np.log(np.exp(x64).sum(1, keepdims=True))
    keep = t != 2
    ts = np.where(keep, t, 0)
    per = (1 - eps) * w[ts] * -logp[np.arange(6), ts] + eps / 11 * -(logp * w).sum(1)
    want = (per * keep).sum() / (w[ts] * keep).sum()
    assert abs(float(got) - want) <= 1e-5 * abs(want)


@pytest.mark.parametrize("shape, tdtype", [((7,), np.int64), ((4, 5, 1), np.int32)])
def test_cross_entropy_unbatched_and_unit_spatial_use_the_kernel(standin_cuda, shape, tdtype):
    x, t, _ = _ce_problem(shape, np.float32)
    t = t.astype(tdtype)  # int32 class indices are widened for the kernel's int64 targets
    xc, run_cpu = _ce("cpu", x, t, None)
    want = run_cpu()
    want.backward()
    xd, run_dev = _ce("cuda", x, t, None)
    K.LAUNCHES.clear()
    got = run_dev()
    got.backward()
    assert dict(K.LAUNCHES) == {"cross_entropy_forward_f32": 1, "cross_entropy_backward_f32": 1}
    _close(_host(got), _host(want), np.float32, "loss")
    _close(_host(xd.grad), _host(xc.grad), np.float32, "gradient")


def test_cross_entropy_backward_keeps_its_input_and_can_run_twice(standin_cuda):
    """The input changed in place after the loss does not change the gradient (as PyTorch, whose log_softmax saves
    its output); retain_graph runs the kernel backward twice on what the forward kept."""
    x, t, _ = _ce_problem((5, 8), np.float32)
    grads = []
    for dev in ("cpu", "cuda"):
        K.LAUNCHES.clear()
        leaf = disttorch.tensor(x, device=dev, requires_grad=True)
        h = leaf * 1.0
        loss = F.cross_entropy(h, disttorch.tensor(t, device=dev), label_smoothing=0.1)
        with disttorch.no_grad():
            h.mul_(5.0)
        loss.backward(retain_graph=True)
        first = _host(leaf.grad).copy()
        loss.backward()
        grads.append((first, _host(leaf.grad)))
    assert K.LAUNCHES["cross_entropy_backward_f32"] == 2
    for a, b in zip(grads[0], grads[1]):
        _close(b, a, np.float32, "gradient")


def test_cross_entropy_double_backward_uses_the_tensor_formula(standin_cuda):
    x, t, w = _ce_problem((4, 6), np.float32)
    res = []
    for dev in ("cpu", "cuda"):
        K.LAUNCHES.clear()
        xt, run = _ce(dev, x, t, w, label_smoothing=0.1)
        (gx,) = disttorch.autograd.grad(run(), xt, create_graph=True)
        if dev == "cuda":  # the create_graph formula goes through softmax, on its kernel
            assert dict(K.LAUNCHES) == {"cross_entropy_forward_f32": 1, "softmax_forward_f32": 1}
        (gx * gx).sum().backward()
        res.append((_host(gx), _host(xt.grad)))
    for a, b in zip(res[0], res[1]):
        _close(b, a, np.float32, "double backward")


def _ce_fallbacks():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((4, 5, 3)).astype(np.float32)
    t = rng.integers(0, 5, (4, 3))
    return {
        "spatial (N, C, d)": (x, t, lambda a: a),
        "float64": (x[:, :, 0].astype(np.float64), t[:, 0], lambda a: a),
        "non-contiguous": (np.ascontiguousarray(x[:, :, 0].T), t[:, 0], lambda a: a.t()),
    }


@pytest.mark.parametrize("case", sorted(_ce_fallbacks()))
def test_cross_entropy_fallbacks_launch_nothing_and_match_cpu(standin_cuda, case):
    x, t, view = _ce_fallbacks()[case]
    outs = []
    for dev in ("cpu", "cuda"):
        K.LAUNCHES.clear()
        leaf = disttorch.tensor(x, device=dev, requires_grad=True)
        loss = F.cross_entropy(view(leaf), disttorch.tensor(t, device=dev), label_smoothing=0.1)
        loss.backward()
        outs.append((_host(loss), _host(leaf.grad)))
    assert not K.LAUNCHES, dict(K.LAUNCHES)
    dt = np.float64 if case == "float64" else np.float32
    for a, b in zip(outs[0], outs[1]):
        _close(b, a, dt, case)


def test_kernels_off_launch_nothing_and_match(standin_cuda, monkeypatch):
    monkeypatch.setenv("DISTTORCH_KERNELS", "0")
    x, t, w = _ce_problem((6, 11), np.float32)
    outs = []
    for dev in ("cpu", "cuda"):
        K.LAUNCHES.clear()
        xt = disttorch.tensor(x, device=dev, requires_grad=True)
        tt, wt = disttorch.tensor(t, device=dev), disttorch.tensor(w, device=dev)
        a, b = F.softmax(xt, -1), F.log_softmax(xt, -1)
        c = F.cross_entropy(xt, tt, weight=wt, label_smoothing=0.1, ignore_index=2)
        ((a * b).sum() + c).backward()
        outs.append((_host(a), _host(b), _host(c), _host(xt.grad)))
    assert not K.LAUNCHES, dict(K.LAUNCHES)
    for p, q in zip(outs[0], outs[1]):
        _close(q, p, np.float32, "DISTTORCH_KERNELS=0")


def test_out_of_range_target_still_raises_at_the_sync(standin_cuda):
    K.LAUNCHES.clear()
    loss = F.cross_entropy(disttorch.zeros(3, 4, device="cuda"), disttorch.tensor([0, 4, 1], device="cuda"))
    assert K.LAUNCHES["cross_entropy_forward_f32"] == 1
    with pytest.raises(IndexError, match="Target 4 is out of bounds"):
        disttorch.cuda.synchronize()
    del loss


@pytest.mark.parametrize("eps", [0.0, 0.2])
def test_all_ignored_mean_is_nan_with_zero_gradient_on_every_path(standin_cuda, eps):
    """PyTorch: a 'mean' over no kept target is nan, and the ignored rows' gradient is 0 (not inf * 0 = nan), on the
    kernel, the generic array backward and the create_graph formula alike."""
    from disttorch.autograd.op import array_backward

    x = np.random.default_rng(5).standard_normal((3, 4)).astype(np.float32)
    for dev, array_form in (("cuda", True), ("cpu", True), ("cpu", False)):
        K.LAUNCHES.clear()
        xt = disttorch.tensor(x, device=dev, requires_grad=True)
        with array_backward(array_form):
            loss = F.cross_entropy(xt, disttorch.tensor([-100, -100, -100], device=dev), label_smoothing=eps)
            loss.backward()
        assert np.isnan(_host(loss))
        np.testing.assert_array_equal(_host(xt.grad), np.zeros((3, 4), np.float32))
        assert bool(K.LAUNCHES) == (dev == "cuda")


def test_emulator_refuses_arguments_of_the_wrong_c_type():
    """A plan whose arguments do not match the kernel's parameters fails in the emulator, as it would misread memory
    on a GPU: a Python int for a long long, a float64 for a float, a missing argument."""
    import dataclasses

    from disttorch.kernels import launch as L
    from disttorch.testing import _emu_softmax

    x = np.ones((2, 3), np.float32)
    plan = L.softmax_plan(x, x.copy())
    for args, match in (((x, x.copy(), 2, np.int64(3)), "rows is int64"),
                        ((x, x.copy(), np.int64(2)), "no argument for parameter cols"),
                        ((x.astype(np.float64), x.copy(), np.int64(2), np.int64(3)), "x is a contiguous float32")):
        with pytest.raises(TypeError, match=match):
            _emu_softmax.run(dataclasses.replace(plan, args=args), args)
    t = np.zeros(2, np.int64)
    v = np.zeros(2, np.float32)
    ce = L.cross_entropy_plan(x, t, None, v, v.copy(), label_smoothing=0.1)
    bad_args = ce.args[:-1] + (0.1,)
    with pytest.raises(TypeError, match="label_smoothing is float32, got float"):
        _emu_softmax.run(dataclasses.replace(ce, args=bad_args), bad_args)
