"""The multi-tensor Adam kernel, DDP's bucket pack/unpack kernels and conv's im2col/col2im kernels on the stand-in
device, where the plans run through the NumPy emulation of the .cu code (disttorch.testing._emu_multi).

Each case runs the same computation on the CPU (the generic code, the reference) and on the stand-in with kernels
on, and checks the results, which kernels ran (``LAUNCHES``) and the host<->device copies; then that
``DISTTORCH_KERNELS=0`` and the cases the kernels do not take launch nothing and stay right. DDP runs over a fake
2-rank world (every other rank holds the same data: the averaged gradient must equal the local one) and over a
real 1-rank zmq group, whose bucket all-reduces are staged through host memory.
"""
from __future__ import annotations

import os
import sys
from datetime import timedelta

import numpy as np
import pytest

import disttorch
import disttorch.nn.functional as F
from disttorch import nn
from disttorch.testing import _kernel_emulator as KE

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "distributed"))

F16 = disttorch.float16
F32 = disttorch.float32


def _np(t):
    return t.detach().cpu().float().numpy()


@pytest.fixture
def kernels_on(standin_cuda, monkeypatch):
    monkeypatch.delenv("DISTTORCH_KERNELS", raising=False)
    KE.LAUNCHES.clear()
    return standin_cuda


# ---- Adam / AdamW ------------------------------------------------------------------------------------
_SHAPES = ((3, 4), (5,), (70_000,))  # the last spans two 65536-element chunks of the kernel


def _adam_run(device, opt_cls, dtype, steps=3, grad_fn=None, **kw):
    rng = np.random.default_rng(0)
    vals = [rng.standard_normal(s).astype(np.float32) for s in _SHAPES]
    grads = [[rng.standard_normal(s).astype(np.float32) for s in _SHAPES] for _ in range(steps)]
    ps = [disttorch.tensor(v, dtype=dtype, device=device, requires_grad=True) for v in vals]
    opt = opt_cls(ps, lr=0.01, **kw)
    for gs in grads:
        for p, g in zip(ps, gs):
            p.grad = disttorch.tensor(g, dtype=dtype, device=device) if grad_fn is None else grad_fn(g, dtype, device)
        opt.step()
    return [_np(p) for p in ps], opt


def _reference_adam(decoupled, weight_decay, maximize, steps=3, lr=0.01, b1=0.9, b2=0.999, eps=1e-8):
    """PyTorch's Adam/AdamW formulas in float64 NumPy (independent of optim._functional)."""
    rng = np.random.default_rng(0)
    ps = [rng.standard_normal(s).astype(np.float64) for s in _SHAPES]
    grads = [[rng.standard_normal(s).astype(np.float32).astype(np.float64) for s in _SHAPES] for _ in range(steps)]
    ms, vs = [np.zeros_like(p) for p in ps], [np.zeros_like(p) for p in ps]
    for t, gs in enumerate(grads, 1):
        for p, g, m, v in zip(ps, gs, ms, vs):
            g = -g if maximize else g
            if decoupled:
                p *= 1 - lr * weight_decay
            else:
                g = g + weight_decay * p
            m += (1 - b1) * (g - m)
            v *= b2
            v += (1 - b2) * g * g
            p -= lr / (1 - b1 ** t) * m / (np.sqrt(v) / np.sqrt(1 - b2 ** t) + eps)
    return ps


@pytest.mark.parametrize("opt_cls, kw, decoupled", [
    (disttorch.optim.Adam, dict(weight_decay=0.1, maximize=True), False),
    (disttorch.optim.AdamW, dict(weight_decay=0.1), True),
])
@pytest.mark.parametrize("dtype, tol", [(F32, 2e-5), (F16, 4e-3)])
def test_adam_one_launch_per_step_matches_reference_and_cpu(kernels_on, opt_cls, kw, decoupled, dtype, tol):
    got, opt = _adam_run("cuda", opt_cls, dtype, **kw)
    suffix = "f32" if dtype is F32 else "f16"
    assert dict(KE.LAUNCHES) == {f"adam_multi_tensor_{suffix}": 3}  # 3 params, 3 steps: one launch per step
    want = _reference_adam(decoupled, kw["weight_decay"], kw.get("maximize", False))
    cpu, _ = _adam_run("cpu", opt_cls, dtype, **kw)
    for g, w, c in zip(got, want, cpu):
        scale = np.abs(w).max()
        np.testing.assert_allclose(g, w, atol=tol * scale)
        np.testing.assert_allclose(g, c, atol=tol * scale)
    assert float(opt.state[opt.param_groups[0]["params"][0]]["step"]) == 3.0


def test_adam_groups_by_dtype_and_param_group_and_makes_no_transfer(kernels_on):
    rng = np.random.default_rng(1)
    vals = [rng.standard_normal(6).astype(np.float32) for _ in range(4)]

    def make(device):
        ps = [disttorch.tensor(v, dtype=dt, device=device, requires_grad=True)
              for v, dt in zip(vals, (F32, F16, F32, F16))]
        opt = disttorch.optim.Adam([{"params": ps[:2]}, {"params": ps[2:], "lr": 0.1}], lr=0.01)
        for p in ps:
            p.grad = (p.detach() * 0.5 + 1).to(p.dtype)
        return ps, opt

    ps, opt = make("cuda")
    kernels_on.reset()
    opt.step()
    assert kernels_on.total == 0, kernels_on.summary()
    assert dict(KE.LAUNCHES) == {"adam_multi_tensor_f32": 2, "adam_multi_tensor_f16": 2}  # (group, dtype) pairs
    ref, ropt = make("cpu")
    ropt.step()
    for p, r in zip(ps, ref):
        np.testing.assert_allclose(_np(p), _np(r), rtol=1e-3, atol=1e-3)


def _transposed_grad(g, dtype, device):
    """``g`` as a tensor; a 2-d one as the transpose of a contiguous tensor (same values, not C-contiguous)."""
    if g.ndim != 2:
        return disttorch.tensor(g, dtype=dtype, device=device)
    return disttorch.tensor(np.ascontiguousarray(g.T), dtype=dtype, device=device).t()


@pytest.mark.parametrize("case", ["kernels_off", "amsgrad", "float64", "capturable", "non_contiguous_grad"])
def test_adam_fallbacks_launch_nothing_and_stay_right(kernels_on, monkeypatch, case):
    kw, dtype, grad_fn = {}, F32, None
    if case == "kernels_off":
        monkeypatch.setenv("DISTTORCH_KERNELS", "0")
    elif case == "amsgrad":
        kw = dict(amsgrad=True)
    elif case == "float64":
        dtype = disttorch.float64
    elif case == "capturable":
        kw = dict(capturable=True)
    else:
        grad_fn = _transposed_grad
    got, _ = _adam_run("cuda", disttorch.optim.Adam, dtype, grad_fn=grad_fn, **kw)
    if case == "non_contiguous_grad":  # only the 2-d parameter's gradient is non-contiguous: it leaves the launch
        assert dict(KE.LAUNCHES) == {"adam_multi_tensor_f32": 3}
    else:
        assert not KE.LAUNCHES
    cpu, _ = _adam_run("cpu", disttorch.optim.Adam, dtype, grad_fn=grad_fn, **kw)
    for g, c in zip(got, cpu):
        np.testing.assert_allclose(g, c, rtol=1e-5, atol=1e-6)


# ---- conv2d / unfold / fold ---------------------------------------------------------------------------
_CONVS = [
    dict(stride=1, padding=1),
    dict(stride=(2, 1), padding=(0, 2), dilation=(1, 2)),
    dict(padding=1, groups=2),
]


def _conv_run(device, dtype, x0, w0, b0, create_graph=False, transfers=None, **kw):
    x = disttorch.tensor(x0, dtype=dtype, device=device, requires_grad=True)
    w = disttorch.tensor(w0, dtype=dtype, device=device, requires_grad=True)
    b = disttorch.tensor(b0, dtype=dtype, device=device, requires_grad=True)
    if transfers is not None:
        transfers.reset()
    y = F.conv2d(x, w, b, **kw)
    gx, gw, gb = disttorch.autograd.grad((y * y).sum(), (x, w, b), create_graph=create_graph)
    if transfers is not None:
        assert transfers.total == 0, transfers.summary()  # forward + backward stay on the device
    return [_np(t) for t in (y, gx, gw, gb)]


def _conv_data(kw, seed=0, shape=(2, 4, 7, 6), kernel=(3, 2)):
    rng = np.random.default_rng(seed)
    x0 = rng.standard_normal(shape).astype(np.float32)
    w0 = rng.standard_normal((6, shape[1] // kw.get("groups", 1)) + kernel).astype(np.float32)
    return x0, w0, rng.standard_normal(6).astype(np.float32)


def _numpy_conv2d(x, w, b, stride, padding, dilation, groups):
    """Direct loops over the output in float64 (independent of ops/im2col.py)."""
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    x = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    oh, ow = (h - dh * (kh - 1) - 1) // sh + 1, (wd - dw * (kw - 1) - 1) // sw + 1
    y = np.zeros((n, o, oh, ow))
    og = o // groups
    for oc in range(o):
        g0 = (oc // og) * cg
        for i in range(kh):
            for j in range(kw):
                patch = x[:, g0:g0 + cg, i * dh:i * dh + sh * (oh - 1) + 1:sh, j * dw:j * dw + sw * (ow - 1) + 1:sw]
                y[:, oc] += np.einsum("nchw,c->nhw", patch, w[oc, :, i, j])
    return y + b.reshape(1, o, 1, 1)


def _pair(v):
    return v if isinstance(v, tuple) else (v, v)


@pytest.mark.parametrize("kw", _CONVS)
@pytest.mark.parametrize("dtype, tol", [(F32, 1e-5), (F16, 2e-2)])
def test_conv2d_forward_and_gradients_use_im2col_and_col2im(kernels_on, kw, dtype, tol):
    x0, w0, b0 = _conv_data(kw)
    if dtype is F16:
        x0, w0, b0 = (a.astype(np.float16).astype(np.float32) for a in (x0, w0, b0))
    got = _conv_run("cuda", dtype, x0, w0, b0, transfers=kernels_on, **kw)
    assert dict(KE.LAUNCHES) == {"im2col_f32": 1, "col2im_f32": 1}  # half types compute in float32, as the CPU
    want = _numpy_conv2d(x0, w0, b0, _pair(kw.get("stride", 1)), _pair(kw.get("padding", 0)),
                         _pair(kw.get("dilation", 1)), kw.get("groups", 1))
    np.testing.assert_allclose(got[0], want, rtol=tol, atol=tol * np.abs(want).max())
    cpu = _conv_run("cpu", dtype, x0, w0, b0, **kw)
    for g, c in zip(got, cpu):
        np.testing.assert_allclose(g, c, rtol=tol, atol=tol * np.abs(c).max())


def test_conv2d_double_backward_matches_cpu(kernels_on):
    """With create_graph the backward is recorded as Tensor ops (conv_transpose2d, whose forward is col2im), so
    the gradient of the input gradient is right."""
    x0, w0, b0 = _conv_data(_CONVS[1])
    res = []
    for dev in ("cuda", "cpu"):
        x = disttorch.tensor(x0, device=dev, requires_grad=True)
        w = disttorch.tensor(w0, device=dev, requires_grad=True)
        y = F.conv2d(x, w, disttorch.tensor(b0, device=dev), **_CONVS[1])
        (gx,) = disttorch.autograd.grad(y.pow(2).sum(), (x,), create_graph=True)
        assert gx.requires_grad
        (ggw,) = disttorch.autograd.grad(gx.pow(2).sum(), (w,))
        res.append([_np(t) for t in (gx, ggw)])
    assert KE.LAUNCHES["im2col_f32"] >= 1 and KE.LAUNCHES["col2im_f32"] >= 1
    for g, c in zip(*res):
        np.testing.assert_allclose(g, c, rtol=1e-4, atol=1e-4 * np.abs(c).max())


@pytest.mark.parametrize("kw", [dict(stride=2, padding=1), dict(stride=(1, 2), dilation=(2, 1), groups=2),
                                dict(stride=2, padding=1, output_padding=1)])
def test_conv_transpose2d_forward_is_col2im(kernels_on, kw):
    rng = np.random.default_rng(10)
    x0, w0 = rng.standard_normal((2, 4, 5, 6)), rng.standard_normal((4, 3, 3, 2))
    res = []
    for dev in ("cuda", "cpu"):
        KE.LAUNCHES.clear()
        x = disttorch.tensor(x0, dtype=F32, device=dev, requires_grad=True)
        w = disttorch.tensor(w0, dtype=F32, device=dev, requires_grad=True)
        y = F.conv_transpose2d(x, w, **kw)
        y.pow(2).sum().backward()
        res.append(([_np(t) for t in (y, x.grad, w.grad)], dict(KE.LAUNCHES)))
    # output_padding makes the padding asymmetric: the generic code, as for the CPU
    assert res[0][1] == ({} if "output_padding" in kw else {"col2im_f32": 1}) and res[1][1] == {}
    for g, c in zip(res[0][0], res[1][0]):
        np.testing.assert_allclose(g, c, rtol=1e-5, atol=1e-5)


@pytest.mark.filterwarnings("ignore:Using padding='same'")
@pytest.mark.parametrize("case", ["kernels_off", "float64", "same_even_kernel", "conv1d", "conv3d"])
def test_conv_fallbacks_launch_nothing_and_stay_right(kernels_on, monkeypatch, case):
    rng = np.random.default_rng(3)
    dtype, kw = F32, dict(padding=1)
    x0, w0 = rng.standard_normal((2, 2, 6, 5)), rng.standard_normal((3, 2, 3, 3))
    op = F.conv2d
    if case == "kernels_off":
        monkeypatch.setenv("DISTTORCH_KERNELS", "0")
    elif case == "float64":
        dtype = disttorch.float64
    elif case == "same_even_kernel":  # asymmetric padding: the kernels take (pH, pW) only
        w0, kw = rng.standard_normal((3, 2, 2, 2)), dict(padding="same")
    elif case == "conv1d":
        x0, w0, op = x0[:, :, 0], w0[:, :, 0], F.conv1d
    else:
        x0, w0, op = x0[:, :, None], w0[:, :, None], F.conv3d
    res = []
    for dev in ("cuda", "cpu"):
        x = disttorch.tensor(x0, dtype=dtype, device=dev, requires_grad=True)
        w = disttorch.tensor(w0, dtype=dtype, device=dev, requires_grad=True)
        y = op(x, w, **kw)
        y.pow(2).sum().backward()
        res.append([_np(t) for t in (y, x.grad, w.grad)])
    assert not KE.LAUNCHES
    for g, c in zip(*res):
        np.testing.assert_allclose(g, c, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype, tol", [(F32, 1e-6), (F16, 1e-2)])
def test_unfold_and_fold_use_the_kernels(kernels_on, dtype, tol):
    rng = np.random.default_rng(4)
    x0 = rng.standard_normal((2, 3, 6, 5)).astype(np.float32)
    geo = dict(kernel_size=(2, 3), dilation=(2, 1), padding=1, stride=(2, 1))
    res = {}
    for dev in ("cuda", "cpu"):
        KE.LAUNCHES.clear()
        x = disttorch.tensor(x0, dtype=dtype, device=dev, requires_grad=True)
        u = F.unfold(x, **geo)
        f = F.fold(u * u, (6, 5), **geo)
        (f * f).sum().backward()
        res[dev] = [_np(t) for t in (u, f, x.grad)], dict(KE.LAUNCHES)
    suffix = "f32" if dtype is F32 else "f16"
    # unfold forward, fold forward, then fold's backward (unfold) and unfold's backward (fold)
    assert res["cuda"][1] == {f"im2col_{suffix}": 2, f"col2im_{suffix}": 2} and res["cpu"][1] == {}
    assert res["cuda"][0][0].shape == (2, 3 * 6, 3 * 5)  # OH = (6 + 2 - 2 - 1) // 2 + 1, OW = (5 + 2 - 3) + 1
    for g, c in zip(res["cuda"][0], res["cpu"][0]):
        np.testing.assert_allclose(g, c, rtol=tol, atol=tol * max(1.0, np.abs(c).max()))


def test_unfold_matches_an_independent_gather(kernels_on):
    rng = np.random.default_rng(5)
    x0 = rng.standard_normal((1, 2, 5, 4)).astype(np.float32)
    u = _np(F.unfold(disttorch.tensor(x0, device="cuda"), (2, 2), padding=1, stride=2))
    xp = np.pad(x0, ((0, 0), (0, 0), (1, 1), (1, 1)))
    want = np.stack([xp[0, c, i:i + 5:2, j:j + 5:2].reshape(-1) for c in range(2) for i in range(2) for j in range(2)])
    assert KE.LAUNCHES == {"im2col_f32": 1}
    np.testing.assert_array_equal(u[0], want)


# ---- DDP buckets ----------------------------------------------------------------------------------------
def _mlp(device, dtype=F32):
    disttorch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3)).to(dtype).to(device)


def _local_grads(x0, dtype=F32):
    m = _mlp("cpu", dtype)
    m(disttorch.tensor(x0, dtype=dtype)).pow(2).sum().backward()
    return [_np(p.grad) for p in m.parameters()]


class _FakeWorld:
    """Rank 0 of a world of 2 identical ranks (tests/distributed/test_ddp_unit.py's fake): all_reduce(SUM)
    doubles in place, broadcast changes nothing; every collective is recorded as (name, shape, dtype)."""

    from disttorch.distributed.process_group import ReduceOp

    def __init__(self):
        self.calls = []

    def is_initialized(self):
        return True

    def get_rank(self, group=None):
        return 0

    def get_world_size(self, group=None):
        return 2

    def all_reduce(self, t, op=None, group=None, async_op=False):
        from disttorch.distributed.process_group import Work

        self.calls.append(("all_reduce", tuple(t.shape), str(t.dtype)))
        t._data[...] = t._data * 2
        return Work.completed() if async_op else None

    def broadcast(self, t, src=0, group=None, async_op=False):
        from disttorch.distributed.process_group import Work

        self.calls.append(("broadcast", tuple(t.shape), str(t.dtype)))
        return Work.completed() if async_op else None


@pytest.fixture
def fake_world(monkeypatch):
    import disttorch.nn.parallel.distributed as ddp_mod
    from disttorch.distributed.algorithms.ddp_comm_hooks import default_hooks

    d = _FakeWorld()
    for mod in (ddp_mod, default_hooks):
        monkeypatch.setattr(mod, "_dist", lambda: d)
    return d


def _ddp_grads(x0, hook=None, as_view=False, iters=2, dtype=F32, transfers=None):
    m = _mlp("cuda", dtype)
    ddp = nn.parallel.DistributedDataParallel(m, bucket_cap_mb=100 / 2 ** 20, gradient_as_bucket_view=as_view)
    if hook is not None:
        ddp.register_comm_hook(None, hook)
    x = disttorch.tensor(x0, dtype=dtype, device="cuda")
    for _ in range(iters):
        ddp.zero_grad()
        if transfers is not None:
            transfers.reset()
        ddp(x).pow(2).sum().backward()
        if transfers is not None:
            assert transfers.total == 0, transfers.summary()
    return [_np(p.grad) for p in m.parameters()], len(ddp._buckets)


@pytest.mark.parametrize("as_view", [False, True])
@pytest.mark.parametrize("compress", [False, True])
def test_ddp_packs_and_unpacks_each_bucket_in_one_launch(kernels_on, fake_world, as_view, compress):
    from disttorch.distributed.algorithms.ddp_comm_hooks import default_hooks

    x0 = np.random.default_rng(6).standard_normal((5, 4)).astype(np.float32)
    got, nb = _ddp_grads(x0, default_hooks.fp16_compress_hook if compress else None, as_view, transfers=kernels_on)
    assert nb == 2
    wire = "f16" if compress else "f32"
    want = {f"bucket_pack_f32_{wire}": 2 * nb}
    if compress or not as_view:  # a bucket-view .grad already holds the f32 result: nothing to unpack
        want[f"bucket_unpack_f32_{wire}"] = 2 * nb
    assert dict(KE.LAUNCHES) == want
    # every rank of the fake world holds the same data, so the average is the local gradient
    reduced = [c[2] for c in fake_world.calls if c[0] == "all_reduce"]
    assert reduced == ["disttorch.float16" if compress else "disttorch.float32"] * (2 * nb)
    for g, w in zip(got, _local_grads(x0)):
        np.testing.assert_allclose(g, w, rtol=2e-3 if compress else 1e-6, atol=2e-3 if compress else 1e-6)


class _WithUnused(nn.Module):
    def __init__(self):
        super().__init__()
        disttorch.manual_seed(0)
        self.used, self.unused = nn.Linear(4, 3), nn.Linear(4, 3)

    def forward(self, x):
        return self.used(x)


@pytest.mark.parametrize("compress", [False, True])
def test_ddp_unused_parameters_pack_zeros_and_keep_grad_none(kernels_on, fake_world, compress):
    from disttorch.distributed.algorithms.ddp_comm_hooks import default_hooks

    x0 = np.random.default_rng(9).standard_normal((5, 4)).astype(np.float32)
    m = _WithUnused().to("cuda")
    ddp = nn.parallel.DistributedDataParallel(m, find_unused_parameters=True)
    if compress:
        ddp.register_comm_hook(None, default_hooks.fp16_compress_hook)
    ddp(disttorch.tensor(x0, device="cuda")).pow(2).sum().backward()
    wire = "f16" if compress else "f32"
    # one bucket: packed in one launch (the unused parameters' slots as zeros); their None .grad cannot take a
    # direct unpack, so the result goes back through the bucket
    assert KE.LAUNCHES[f"bucket_pack_f32_{wire}"] == 1 and KE.LAUNCHES["bucket_unpack_f32_f32"] == 0
    assert m.unused.weight.grad is None and m.unused.bias.grad is None
    ref = _WithUnused()
    ref(disttorch.tensor(x0)).pow(2).sum().backward()
    for p, r in zip(m.used.parameters(), ref.used.parameters()):
        np.testing.assert_allclose(_np(p.grad), _np(r.grad), rtol=2e-3 if compress else 1e-6,
                                   atol=2e-3 if compress else 1e-6)


@pytest.mark.parametrize("case", ["kernels_off", "float64"])
def test_ddp_fallbacks_launch_nothing_and_stay_right(kernels_on, fake_world, monkeypatch, case):
    from disttorch.distributed.algorithms.ddp_comm_hooks import default_hooks

    x0 = np.random.default_rng(7).standard_normal((5, 4)).astype(np.float32)
    dtype = disttorch.float64 if case == "float64" else F32
    if case == "kernels_off":
        monkeypatch.setenv("DISTTORCH_KERNELS", "0")
    for hook in (None, default_hooks.fp16_compress_hook):
        fake_world.calls.clear()
        got, _ = _ddp_grads(x0, hook, dtype=dtype)
        assert not KE.LAUNCHES
        compressed = hook is not None  # the wire is float16 with or without the kernels (the hook for float64)
        assert {c[2] for c in fake_world.calls if c[0] == "all_reduce"} == {"disttorch.float16" if compressed
                                                                            else str(dtype)}
        for g, w in zip(got, _local_grads(x0, dtype)):
            np.testing.assert_allclose(g, w, rtol=2e-3 if compressed else 1e-6, atol=2e-3 if compressed else 1e-6)


@pytest.mark.timeout(60)
def test_ddp_on_a_one_rank_zmq_group_stages_only_the_buckets(kernels_on, monkeypatch):
    import disttorch.distributed as dist
    from _procs import free_port
    from disttorch.distributed.algorithms.ddp_comm_hooks import default_hooks

    for var in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(var, raising=False)
    dist.init_process_group("zmq", init_method=f"tcp://127.0.0.1:{free_port()}", rank=0, world_size=1,
                            timeout=timedelta(seconds=30))
    try:
        x0 = np.random.default_rng(8).standard_normal((5, 4)).astype(np.float32)
        want = _local_grads(x0)
        for hook in (None, default_hooks.fp16_compress_hook):
            KE.LAUNCHES.clear()
            m = _mlp("cuda")
            ddp = nn.parallel.DistributedDataParallel(m, bucket_cap_mb=100 / 2 ** 20)
            if hook is not None:
                ddp.register_comm_hook(None, hook)
            x = disttorch.tensor(x0, device="cuda")
            ddp(x).pow(2).sum().backward()  # the first step builds what later steps reuse
            ddp.zero_grad()
            kernels_on.reset()
            ddp(x).pow(2).sum().backward()
            nb = len(ddp._buckets)
            # each bucket's all-reduce is staged: 1 copy down, 1 up; packing and unpacking add none
            assert (kernels_on.to_host, kernels_on.to_device) == (nb, nb), kernels_on.summary()
            wire = "f16" if hook else "f32"
            assert dict(KE.LAUNCHES) == {f"bucket_pack_f32_{wire}": 2 * nb, f"bucket_unpack_f32_{wire}": 2 * nb}
            for g, w in zip([_np(p.grad) for p in m.parameters()], want):
                np.testing.assert_allclose(g, w, rtol=2e-3 if hook else 1e-6, atol=2e-3 if hook else 1e-6)
    finally:
        dist.destroy_process_group()
