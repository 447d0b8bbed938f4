"""Every fused kernel in disttorch.kernels, launched through its plan on a GPU, against the generic array-module
code (the ops running on CuPy) on random inputs, per storage dtype (conftest.REL_TOL).

bfloat16 entry points are compiled and plan-checked in tests/kernels but not launched here: CuPy arrays have no
bfloat16 dtype, so nothing can hand them one yet.
"""
import contextlib
import os

import numpy as np
import pytest

import disttorch
import disttorch.nn.functional as F
from disttorch.kernels import launch as L
from disttorch.kernels import philox
from disttorch.optim._functional import adam_update

pytestmark = pytest.mark.gpu
DTYPES = [np.float32, np.float16]
SHAPES = [(33, 1000), (4, 3000)]  # a row per block, with threads left idle / looping over more than 1024 columns


def _data(shape, dtype, seed, scale=1.0):
    """Random values rounded to ``dtype``, as float32 (the reference input) and as the kernel's dtype on the host."""
    h = (np.random.default_rng(seed).standard_normal(shape) * scale).astype(dtype)
    return h.astype(np.float32), h


def _run(cp, plan):
    L.launch(plan)
    cp.cuda.Device().synchronize()


@contextlib.contextmanager
def _generic():
    """DISTTORCH_KERNELS=0 inside: the ops run their generic array code (the reference), not the kernels."""
    prev = os.environ.get("DISTTORCH_KERNELS")
    os.environ["DISTTORCH_KERNELS"] = "0"
    try:
        yield
    finally:
        if prev is None:
            del os.environ["DISTTORCH_KERNELS"]
        else:
            os.environ["DISTTORCH_KERNELS"] = prev


def _ref(fn, *host, grad=None):
    """fn on CUDA tensors made from float32 host arrays (the generic path); with ``grad``, also the inputs' grads."""
    with _generic():
        ts = [disttorch.tensor(h, device="cuda", requires_grad=grad is not None) for h in host]
        out = fn(*ts)
        if grad is None:
            return out.detach().cpu().numpy()
        (out * disttorch.tensor(grad, device="cuda")).sum().backward()
        return out.detach().cpu().numpy(), [t.grad.cpu().numpy() for t in ts]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("log", [False, True])
def test_softmax_forward_backward(cp, rel_close, shape, dtype, log):
    xf, xh = _data(shape, dtype, 1, 3.0)
    gf, gh = _data(shape, dtype, 2)
    f = (lambda t: F.log_softmax(t, -1)) if log else (lambda t: F.softmax(t, -1))
    want, (want_gx,) = _ref(f, xf, grad=gf)
    x, y = cp.asarray(xh), cp.empty(shape, dtype)
    _run(cp, L.softmax_plan(x, y, log=log))
    rel_close(cp.asnumpy(y), want, dtype, "softmax forward")
    gx = cp.empty_like(x)
    _run(cp, L.softmax_backward_plan(cp.asarray(gh), cp.asarray(want.astype(dtype)), gx, log=log))
    rel_close(cp.asnumpy(gx), want_gx, dtype, "softmax backward")


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_layer_norm_forward_backward(cp, rel_close, shape, dtype):
    rows, d = shape
    _, xh = _data(shape, dtype, 3, 2.0)
    xh = (xh.astype(np.float32) + 5).astype(dtype)  # an offset mean: the two-pass variance matters
    xf = xh.astype(np.float32)
    wf, wh = _data(d, dtype, 4)
    bf, bh = _data(d, dtype, 5)
    gf, gh = _data(shape, dtype, 6)
    want, (gx_ref, gw_ref, gb_ref) = _ref(lambda x, w, b: F.layer_norm(x, (d,), w, b, 1e-5), xf, wf, bf, grad=gf)
    x, w, b = cp.asarray(xh), cp.asarray(wh), cp.asarray(bh)
    y, mean, rstd = cp.empty_like(x), cp.empty(rows, np.float32), cp.empty(rows, np.float32)
    _run(cp, L.layer_norm_plan(x, w, b, y, mean, rstd, d, eps=1e-5))
    rel_close(cp.asnumpy(y), want, dtype, "layer_norm forward")
    x64 = xf.astype(np.float64)
    rel_close(cp.asnumpy(mean), x64.mean(1), np.float32, "layer_norm mean")
    rel_close(cp.asnumpy(rstd), 1 / np.sqrt(x64.var(1) + 1e-5), np.float32, "layer_norm rstd")
    g, gx, gw, gb = cp.asarray(gh), cp.empty_like(x), cp.empty_like(w), cp.empty_like(b)
    _run(cp, L.layer_norm_backward_input_plan(g, x, mean, rstd, w, gx, d))
    _run(cp, L.layer_norm_backward_affine_plan(g, x, mean, rstd, gw, gb, d))
    rel_close(cp.asnumpy(gx), gx_ref, dtype, "layer_norm grad input")
    rel_close(cp.asnumpy(gw), gw_ref, dtype, "layer_norm grad weight")
    rel_close(cp.asnumpy(gb), gb_ref, dtype, "layer_norm grad bias")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind, approx, fn", [("gelu", "none", lambda t: F.gelu(t)),
                                              ("gelu", "tanh", lambda t: F.gelu(t, approximate="tanh")),
                                              ("silu", "none", lambda t: F.silu(t))])
def test_activations_forward_backward(cp, rel_close, dtype, kind, approx, fn):
    xf, xh = _data((1000, 37), dtype, 7, 4.0)
    gf, gh = _data((1000, 37), dtype, 8)
    want, (want_gx,) = _ref(fn, xf, grad=gf)
    x, y, gx = cp.asarray(xh), cp.empty(xh.shape, dtype), cp.empty(xh.shape, dtype)
    _run(cp, L.activation_plan(kind, x, y, approx))
    _run(cp, L.activation_backward_plan(kind, cp.asarray(gh), x, gx, approx))
    rel_close(cp.asnumpy(y), want, dtype, f"{kind} forward")
    rel_close(cp.asnumpy(gx), want_gx, dtype, f"{kind} backward")


@pytest.mark.parametrize("dtype", DTYPES)
def test_dropout_mask_is_the_host_philox_mask(cp, rel_close, dtype):
    n, p, seed, offset = 100_003, 0.3, 2 ** 40 + 11, 5
    xf, xh = _data(n, dtype, 9)
    x, y, mask = cp.asarray(xh), cp.empty(n, dtype), cp.empty(n, np.uint8)
    _run(cp, L.dropout_plan(x, y, mask, p, seed, offset))
    keep = philox.dropout_keep_mask(n, p, seed, offset)
    np.testing.assert_array_equal(cp.asnumpy(mask).astype(bool), keep)
    rel_close(cp.asnumpy(y), np.where(keep, xf / (1 - p), 0), dtype, "dropout forward")
    gx = cp.empty_like(x)
    _run(cp, L.dropout_backward_plan(x, mask, gx, p))
    rel_close(cp.asnumpy(gx), np.where(keep, xf / (1 - p), 0), dtype, "dropout backward")


@pytest.mark.parametrize("decoupled, weight_decay, maximize", [(False, 0.0, False), (False, 0.1, True),
                                                                (True, 0.1, False)])
def test_adam_multi_tensor_matches_the_generic_update(cp, rel_close, decoupled, weight_decay, maximize):
    rng = np.random.default_rng(10)
    shapes = [(70_000,), (0,), (3, 4), (131_073,)]  # tensors over several chunks, an empty one, a small one
    groups = [[cp.asarray(rng.standard_normal(s).astype(np.float32)) for s in shapes] for _ in range(4)]
    groups[3] = [cp.abs(a) for a in groups[3]]
    ref = [[a.copy() for a in g] for g in groups]
    for step in (1, 2, 3):
        _run(cp, L.adam_plan(*groups, step=step, lr=1e-2, weight_decay=weight_decay,
                             decoupled_weight_decay=decoupled, maximize=maximize))
        for p, g, m, v in zip(*ref):
            adam_update(cp, p, g, m, v, None, step, 1e-2, 0.9, 0.999, 1e-8, weight_decay, False, maximize,
                        decoupled_weight_decay=decoupled)
    for what, got, want in zip(("param", "grad", "exp_avg", "exp_avg_sq"), groups, ref):
        for a, b in zip(got, want):
            rel_close(cp.asnumpy(a), cp.asnumpy(b), np.float32, f"adam {what}")


@pytest.mark.parametrize("gdt, bdt", [(np.float32, np.float32), (np.float32, np.float16), (np.float16, np.float16)])
def test_bucket_pack_unpack(cp, rel_close, gdt, bdt):
    rng = np.random.default_rng(11)
    grads = [cp.asarray(rng.standard_normal(n).astype(gdt)) for n in (70_000, 0, 5, 3000)]
    bucket = cp.full(73_010, np.nan, dtype=bdt)
    _run(cp, L.bucket_plan(grads, bucket, pack=True, scale=0.5))
    want = np.concatenate([cp.asnumpy(g).astype(np.float32) * 0.5 for g in grads])
    rel_close(cp.asnumpy(bucket[:want.size]), want, bdt, "bucket pack")
    assert bool(cp.isnan(bucket[want.size:]).all())  # past the gradients: untouched
    out = [cp.zeros_like(g) for g in grads]
    _run(cp, L.bucket_plan(out, bucket, pack=False, scale=2.0))
    for g, o in zip(grads, out):
        rel_close(cp.asnumpy(o), cp.asnumpy(g).astype(np.float32), bdt, "bucket unpack")


@pytest.mark.parametrize("shape", [(64, 10), (7, 3000)])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("weighted, eps, ignore_index", [(False, 0.0, -100), (True, 0.1, 2)])
def test_cross_entropy_forward_backward(cp, rel_close, shape, dtype, weighted, eps, ignore_index):
    rows, c = shape
    xf, xh = _data(shape, dtype, 12, 3.0)
    rng = np.random.default_rng(13)
    t = rng.integers(0, c, rows).astype(np.int64)
    t[0] = 2
    w = rng.uniform(0.5, 2.0, c).astype(np.float32) if weighted else None
    g = rng.standard_normal(rows).astype(np.float32)
    wt = disttorch.tensor(w, device="cuda") if weighted else None
    tt = disttorch.tensor(t, device="cuda")
    want, (want_gx,) = _ref(lambda x: F.cross_entropy(x, tt, weight=wt, ignore_index=ignore_index, reduction="none",
                                                      label_smoothing=eps), xf, grad=g)
    x, tc = cp.asarray(xh), cp.asarray(t)
    wc = None if w is None else cp.asarray(w)
    loss, lse, bad = cp.empty(rows, np.float32), cp.empty(rows, np.float32), cp.zeros(1, np.int32)
    _run(cp, L.cross_entropy_plan(x, tc, wc, loss, lse, bad, ignore_index=ignore_index, label_smoothing=eps))
    assert int(bad[0]) == 0
    rel_close(cp.asnumpy(loss), want, np.float32, "cross_entropy loss")  # float32 for every input dtype
    x64 = xf.astype(np.float64)
    rel_close(cp.asnumpy(lse), np.log(np.exp(x64 - x64.max(1, keepdims=True)).sum(1)) + x64.max(1), np.float32,
              "cross_entropy lse")
    gx = cp.empty_like(x)
    _run(cp, L.cross_entropy_backward_plan(x, tc, wc, lse, cp.asarray(g), gx, ignore_index=ignore_index,
                                           label_smoothing=eps))
    rel_close(cp.asnumpy(gx), want_gx, dtype, "cross_entropy backward")


def test_cross_entropy_bad_target_sets_the_device_flag(cp):
    x = cp.zeros((3, 4), np.float32)
    loss, lse, bad = cp.empty(3, np.float32), cp.empty(3, np.float32), cp.zeros(1, np.int32)
    _run(cp, L.cross_entropy_plan(x, cp.asarray([0, 4, -100], dtype=np.int64), None, loss, lse, bad))
    assert int(bad[0]) == 1
    got = cp.asnumpy(loss)
    assert got[0] == pytest.approx(np.log(4)) and np.isnan(got[1]) and got[2] == 0


def _op_grads(fn, x, t, g, dtype):
    """(output, input gradient) of ``fn`` on a CUDA tensor of ``dtype`` built from host ``x``."""
    xt = disttorch.tensor(x.astype(dtype), device="cuda", requires_grad=True)
    out = fn(xt, t)
    (out.float() * disttorch.tensor(g, device="cuda")).sum().backward()
    return out.detach().float().cpu().numpy(), xt.grad.float().cpu().numpy()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name, fn", [
    ("softmax", lambda x, t: F.softmax(x, -1)),
    ("log_softmax", lambda x, t: F.log_softmax(x, -1)),
    ("cross_entropy", lambda x, t: F.cross_entropy(x, t, ignore_index=2, label_smoothing=0.1, reduction="none")),
    ("cross_entropy_mean", lambda x, t: F.cross_entropy(x, t, weight=disttorch.linspace(0.5, 2.0, 3000, device="cuda"),
                                                        reduction="mean"))])
def test_softmax_family_ops_with_kernels_match_the_generic_path(cp, rel_close, dtype, name, fn):
    """The ops as users call them (kernels on, ops/softmax.py and ops/_fused_ce.py) against DISTTORCH_KERNELS=0."""
    rows, c = 7, 3000
    x = _data((rows, c), np.float32, 16, 3.0)[0]
    t = disttorch.tensor(np.random.default_rng(17).integers(0, c, rows), device="cuda")
    gshape = (rows, c) if "softmax" in name else ((rows,) if name == "cross_entropy" else ())
    g = np.random.default_rng(18).standard_normal(gshape).astype(np.float32)
    got, got_gx = _op_grads(fn, x, t, g, dtype)
    with _generic():
        want, want_gx = _op_grads(fn, x, t, g, dtype)
    rel_close(got, want, dtype, f"{name} forward")
    rel_close(got_gx, want_gx, dtype, f"{name} gradient")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("k, d, p, s", [((3, 3), (1, 1), (1, 1), (1, 1)), ((3, 2), (2, 1), (2, 0), (2, 3)),
                                        ((5, 5), (1, 1), (2, 2), (2, 2))])
def test_im2col_col2im_match_unfold_fold(cp, rel_close, dtype, k, d, p, s):
    xf, xh = _data((4, 6, 29, 31), dtype, 14)
    want = _ref(lambda t: F.unfold(t, k, dilation=d, padding=p, stride=s), xf)
    x, cols = cp.asarray(xh), cp.empty(want.shape, dtype)
    _run(cp, L.im2col_plan(x, cols, k, dilation=d, padding=p, stride=s))
    np.testing.assert_array_equal(cp.asnumpy(cols).astype(np.float32), want)  # a copy: exact
    yf, yh = _data(want.shape, dtype, 15)
    back = _ref(lambda t: F.fold(t, (29, 31), k, dilation=d, padding=p, stride=s), yf)
    out = cp.empty_like(x)
    _run(cp, L.col2im_plan(cp.asarray(yh), out, k, dilation=d, padding=p, stride=s))
    rel_close(cp.asnumpy(out), back, dtype, "col2im")


def _norm_act_run(fn, arrays, g, dtype):
    """Output and input gradients of ``fn`` on CUDA tensors of ``dtype``, the CUDA generator seeded first (dropout
    then draws the same mask on both paths)."""
    disttorch.cuda.manual_seed(3)
    ts = [disttorch.tensor(a.astype(dtype), device="cuda", requires_grad=True) for a in arrays]
    out = fn(*ts)
    (out.float() * disttorch.tensor(g, device="cuda")).sum().backward()
    return [t.detach().float().cpu().numpy() for t in (out, *(t.grad for t in ts))]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name, fn", [
    ("layer_norm", lambda x, w, b: F.layer_norm(x, (3000,), w, b)),
    ("gelu", lambda x, w, b: F.gelu(x) * w + b),
    ("gelu_tanh", lambda x, w, b: F.gelu(x, approximate="tanh") * w + b),
    ("silu", lambda x, w, b: F.silu(x) * w + b),
    ("dropout", lambda x, w, b: F.dropout(x, 0.3) * w + b)])
def test_norm_act_dropout_ops_with_kernels_match_the_generic_path(cp, rel_close, dtype, name, fn):
    """The ops as users call them (kernels on: ops/norm.py, ops/_gelu.py, ops/dropout.py) against
    DISTTORCH_KERNELS=0, forward and every gradient; dropout's masks must be identical."""
    rows, c = 7, 3000
    arrays = [_data((rows, c), np.float32, 19, 3.0)[0] + 2, _data(c, np.float32, 20)[0], _data(c, np.float32, 21)[0]]
    g = np.random.default_rng(22).standard_normal((rows, c)).astype(np.float32)
    got = _norm_act_run(fn, arrays, g, dtype)
    with _generic():
        want = _norm_act_run(fn, arrays, g, dtype)
    if name == "dropout":
        np.testing.assert_array_equal(got[1] == 0, want[1] == 0)
    for what, a, b in zip(("forward", "grad input", "grad weight", "grad bias"), got, want):
        rel_close(a, b, dtype, f"{name} {what}")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("opt", ["Adam", "AdamW"])
def test_adam_optimizers_with_the_kernel_match_the_generic_path(cp, rel_close, dtype, opt):
    """Adam/AdamW as users call them (kernels on: one adam_multi_tensor launch per step and dtype) against
    DISTTORCH_KERNELS=0 (adam_update per parameter), over 3 steps."""
    def run():
        rng = np.random.default_rng(23)
        ps = [disttorch.tensor(rng.standard_normal(s).astype(dtype), device="cuda", requires_grad=True)
              for s in ((70_000,), (3, 4), (0,))]
        o = getattr(disttorch.optim, opt)(ps, lr=1e-2, weight_decay=0.1)
        for _ in range(3):
            for p in ps:
                p.grad = disttorch.tensor(rng.standard_normal(tuple(p.shape)).astype(dtype), device="cuda")
            o.step()
        return [p.detach().float().cpu().numpy() for p in ps]
    got = run()
    with _generic():
        want = run()
    for a, b in zip(got, want):
        rel_close(a, b, dtype, f"{opt} parameter")


def _conv_fold_run(fn, arrays, dtype, seed):
    """Output and input gradients of ``fn`` on CUDA tensors of ``dtype`` (a random output gradient)."""
    ts = [disttorch.tensor(a.astype(dtype), device="cuda", requires_grad=True) for a in arrays]
    out = fn(*ts)
    g = np.random.default_rng(seed).standard_normal(tuple(out.shape)).astype(np.float32)
    (out.float() * disttorch.tensor(g, device="cuda")).sum().backward()
    return [t.detach().float().cpu().numpy() for t in (out, *(t.grad for t in ts))]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kw", [dict(padding=1), dict(stride=2, padding=(1, 0), dilation=(1, 2)),
                                dict(padding=1, groups=2)])
def test_conv2d_unfold_fold_with_the_kernels_match_the_generic_path(cp, rel_close, dtype, kw):
    """conv2d (forward: im2col kernel + matmul; input gradient: matmul + col2im kernel) and unfold/fold as users
    call them, against DISTTORCH_KERNELS=0."""
    x = _data((4, 6, 29, 31), np.float32, 24)[0]
    w = _data((8, 6 // kw.get("groups", 1), 3, 3), np.float32, 25, 0.2)[0]
    b = _data(8, np.float32, 26)[0]
    cases = [("conv2d", lambda *t: F.conv2d(*t, **kw), [x, w, b])]
    if "groups" not in kw:
        geo = dict(kernel_size=(3, 3), **kw)
        cases.append(("unfold/fold", lambda t: F.fold(F.unfold(t, **geo) * 2, (29, 31), **geo), [x]))
    for name, fn, arrays in cases:
        got = _conv_fold_run(fn, arrays, dtype, 27)
        with _generic():
            want = _conv_fold_run(fn, arrays, dtype, 27)
        for what, a, c in zip(("forward", "grad input", "grad weight", "grad bias"), got, want):
            rel_close(a, c, dtype, f"{name} {what}")
