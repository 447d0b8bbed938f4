"""A first slice of the parity suite on the stand-in CUDA device: each op runs on ``cuda`` (NumPy behind the
stand-in, which refuses implicit host conversion and counts transfers) and must give the CPU result."""
import numpy as np
import pytest

import disttorch
import disttorch.nn.functional as F
from disttorch.testing._standin_cuda import StandinArray


def _host(t):
    assert t.device.type == "cuda" and isinstance(t._data, StandinArray), t.device
    return t.detach().cpu().numpy()


def _pair(*shape, seed=0):
    h = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    return disttorch.tensor(h), disttorch.tensor(h, device="cuda")


def test_creation_on_cuda(standin_cuda):
    np.testing.assert_array_equal(_host(disttorch.zeros(2, 3, device="cuda")), np.zeros((2, 3), np.float32))
    np.testing.assert_array_equal(_host(disttorch.ones(4, device="cuda", dtype=disttorch.float64)), np.ones(4))
    np.testing.assert_array_equal(_host(disttorch.tensor([[1, 2], [3, 4]], device="cuda")), [[1, 2], [3, 4]])
    np.testing.assert_array_equal(_host(disttorch.arange(5, device="cuda")), np.arange(5))
    disttorch.manual_seed(7)
    first = _host(disttorch.randn(3, 4, device="cuda"))  # drawn on the device (tests/gpu_standin/test_device_random)
    disttorch.manual_seed(7)
    np.testing.assert_array_equal(_host(disttorch.randn(3, 4, device="cuda")), first)


def test_to_cuda_and_back(standin_cuda):
    c = disttorch.tensor([1.5, -2.0])
    standin_cuda.reset()
    g = c.to("cuda")
    assert g.is_cuda and g.device == disttorch.device("cuda:0") and standin_cuda.to_device == 1
    assert c.cuda().device == g.device and g.to("cuda") is g
    back = g.cpu()
    assert back.device.type == "cpu" and isinstance(back._data, np.ndarray) and standin_cuda.to_host == 1
    np.testing.assert_array_equal(back.numpy(), [1.5, -2.0])
    with pytest.raises(RuntimeError, match="same device"):
        g + c


@pytest.mark.parametrize("name, fn", [
    ("add", lambda a, b: a + b), ("mul", lambda a, b: a * b), ("div", lambda a, b: a / (b.abs() + 1)),
    ("exp", lambda a, b: a.exp()), ("tanh", lambda a, b: a.tanh()), ("sigmoid", lambda a, b: a.sigmoid()),
    ("relu", lambda a, b: F.relu(a)), ("gelu", lambda a, b: F.gelu(a)), ("maximum", disttorch.maximum),
    ("sum", lambda a, b: a.sum(1)), ("mean", lambda a, b: a.mean()), ("max", lambda a, b: a.max(0)[0]),
    ("argmax", lambda a, b: a.argmax(1)), ("var", lambda a, b: a.var(1)), ("logsumexp", lambda a, b: a.logsumexp(1)),
    ("matmul", lambda a, b: a @ b.t()), ("softmax", lambda a, b: F.softmax(a, 1)),
    ("log_softmax", lambda a, b: F.log_softmax(a, 0)), ("cat", lambda a, b: disttorch.cat([a, b], 1)),
    ("transpose", lambda a, b: a.t().contiguous()), ("layer_norm", lambda a, b: F.layer_norm(a, (5,))),
])
def test_op_matches_cpu(standin_cuda, name, fn):
    (a, ga), (b, gb) = _pair(4, 5, seed=1), _pair(4, 5, seed=2)
    np.testing.assert_allclose(_host(fn(ga, gb)), fn(a, b).numpy(), rtol=1e-5, atol=1e-6, err_msg=name)


def test_linear_matches_numpy_and_cpu(standin_cuda):
    lin = disttorch.nn.Linear(5, 3)
    x, gx = _pair(4, 5)
    w, bias = lin.weight.detach().numpy().copy(), lin.bias.detach().numpy().copy()
    glin = lin.to("cuda")
    assert glin.weight.is_cuda
    np.testing.assert_allclose(_host(glin(gx)), x.numpy() @ w.T + bias, rtol=1e-5, atol=1e-6)


def test_backward_matches_cpu(standin_cuda):
    a, ga = _pair(3, 4)
    a.requires_grad_()
    ga.requires_grad_()
    for t in (a, ga):
        (F.softmax(t * 2, 1)[:, :2].sum() + (t @ t.t()).tanh().mean()).backward()
    assert ga.grad.is_cuda
    np.testing.assert_allclose(_host(ga.grad), a.grad.numpy(), rtol=1e-5, atol=1e-6)


def _train(device, steps=3):
    disttorch.manual_seed(3)
    model = disttorch.nn.Sequential(disttorch.nn.Linear(6, 8), disttorch.nn.ReLU(), disttorch.nn.Linear(8, 3))
    model.to(device)
    opt = disttorch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    rng = np.random.default_rng(5)
    x = disttorch.tensor(rng.standard_normal((16, 6)).astype(np.float32), device=device)
    y = disttorch.tensor(rng.integers(0, 3, 16), device=device)

    def step():
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss

    losses = [step() for _ in range(steps)]
    return model, losses, step


def test_training_step_matches_cpu(standin_cuda):
    cpu_model, cpu_losses, _ = _train("cpu")
    gpu_model, gpu_losses, _ = _train("cuda")
    np.testing.assert_allclose([_host(v) for v in gpu_losses], [v.item() for v in cpu_losses], rtol=1e-5)
    for p, q in zip(cpu_model.parameters(), gpu_model.parameters()):
        np.testing.assert_allclose(_host(q), p.detach().numpy(), rtol=1e-5, atol=1e-6)


def test_training_step_makes_no_host_transfer(standin_cuda):
    """cross_entropy's target-range check is deferred to the next synchronisation (disttorch.cuda._checks)."""
    _, _, step = _train("cuda", steps=1)
    standin_cuda.reset()
    step()
    assert standin_cuda.total == 0, standin_cuda.summary()


@pytest.mark.parametrize("name, fn", [
    ("conv2d", lambda x, w: F.conv2d(x, w, padding=1)), ("max_pool2d", lambda x, w: F.max_pool2d(x, 2)),
    ("avg_pool2d", lambda x, w: F.avg_pool2d(x, 3, stride=1)),
    ("adaptive_avg", lambda x, w: F.adaptive_avg_pool2d(x, 1)),
    ("batch_norm", lambda x, w: F.batch_norm(x, None, None, training=True)),
])
def test_conv_and_pooling_match_cpu_with_grad(standin_cuda, name, fn):
    (x, gx), (w, gw) = _pair(2, 3, 6, 6, seed=3), _pair(4, 3, 3, 3, seed=4)
    grads = []
    for a, b in ((x, w), (gx, gw)):
        a.requires_grad_()
        out = fn(a, b)
        (out * out).sum().backward()
        grads.append(a.grad)
    np.testing.assert_allclose(_host(fn(gx, gw)), fn(x, w).detach().numpy(), rtol=1e-4, atol=1e-5, err_msg=name)
    np.testing.assert_allclose(_host(grads[1]), grads[0].numpy(), rtol=1e-4, atol=1e-5, err_msg=name)


def test_python_scalar_operands_make_no_upload(standin_cuda):
    """ops/_helpers.scalar_array filled a 0-d device array from a host scalar (one upload per op call)."""
    c = disttorch.tensor([1, 2, 100], dtype=disttorch.int8)
    g = c.to("cuda")
    f, gf = _pair(3, seed=6)
    standin_cuda.reset()
    results = [g + 300, 2 - g, g.clamp(max=50), gf * 2.5, disttorch.where(gf > 0, gf, 0.5), gf.pow(2)]
    assert standin_cuda.total == 0, standin_cuda.summary()
    expected = [c + 300, 2 - c, c.clamp(max=50), f * 2.5, disttorch.where(f > 0, f, 0.5), f.pow(2)]
    for r, e in zip(results, expected):
        assert r.dtype == e.dtype
        np.testing.assert_allclose(_host(r), e.numpy(), rtol=1e-6)


def test_cummax_backward_scatters_through_cupyx(standin_cuda):
    """cummax's backward accumulates repeated indices with cupyx.scatter_add on the device path."""
    h = np.array([[1.0, 3.0, 2.0, 5.0, 4.0]], np.float32)
    for dev in ("cpu", "cuda"):
        x = disttorch.tensor(h, device=dev, requires_grad=True)
        disttorch.cummax(x, 1).values.sum().backward()
        got = x.grad.cpu().numpy()
        np.testing.assert_array_equal(got, [[1.0, 2.0, 0.0, 2.0, 0.0]])  # each max counted once per position


def test_adam_step_matches_cpu(standin_cuda):
    out = []
    for dev in ("cpu", "cuda"):
        p = disttorch.nn.Parameter(disttorch.tensor([1.0, -2.0, 0.5], device=dev))
        opt = disttorch.optim.AdamW([p], lr=0.1, weight_decay=0.01)
        for _ in range(3):
            opt.zero_grad()
            (p * p * p).sum().backward()
            opt.step()
        out.append(p.detach().cpu().numpy())
    assert not np.allclose(out[0], [1.0, -2.0, 0.5])
    np.testing.assert_allclose(out[1], out[0], rtol=1e-6)


_IDX = np.array([0, 3, 1, 3])


@pytest.mark.parametrize("name, fn", [
    ("where", lambda a, i: disttorch.where(a > 0, a, a * 0.5)), ("clamp", lambda a, i: a.clamp(-0.5, 0.5)),
    ("pow", lambda a, i: a.pow(2) + a.abs().pow(1.5)), ("std", lambda a, i: a.std(0)),
    ("norm", lambda a, i: a.norm()), ("cumsum", lambda a, i: a.cumsum(1)), ("sort", lambda a, i: a.sort(1)[0]),
    ("topk", lambda a, i: a.topk(2, 1)[0]), ("gather", lambda a, i: a.gather(1, i[:, None])),
    ("index_select", lambda a, i: a.index_select(1, i)), ("index", lambda a, i: a[i]),
    ("embedding", lambda a, i: F.embedding(i, a)), ("masked_fill", lambda a, i: a.masked_fill(a < 0, 0.0)),
    ("einsum", lambda a, i: disttorch.einsum("ij,kj->ik", a, a)), ("pad", lambda a, i: F.pad(a, (1, 2))),
    ("mse", lambda a, i: F.mse_loss(a, a.flip(0))), ("smooth_l1", lambda a, i: F.smooth_l1_loss(a, a.flip(1))),
    ("nll", lambda a, i: F.nll_loss(F.log_softmax(a, 1), i)),
    ("bce", lambda a, i: F.binary_cross_entropy(a.sigmoid(), a.flip(0).sigmoid().detach())),
    ("leaky_elu", lambda a, i: F.leaky_relu(a) + F.elu(a) + F.silu(a)),
    ("interpolate", lambda a, i: F.interpolate(a[None], scale_factor=2, mode="linear")),
])
def test_more_ops_match_cpu_with_grad(standin_cuda, name, fn):
    res = []
    for dev in ("cpu", "cuda"):
        a = disttorch.tensor(np.random.default_rng(9).standard_normal((4, 5)).astype(np.float32), device=dev,
                             requires_grad=True)
        out = fn(a, disttorch.tensor(_IDX, device=dev))
        (out * out).sum().backward()
        assert out.device.type == dev and a.grad.device.type == dev
        res.append((out.detach().cpu().numpy(), a.grad.cpu().numpy()))
    for got, want in zip(res[1], res[0]):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6, err_msg=name)


def test_a_cpu_scalar_tensor_mixes_with_a_device_tensor_as_in_pytorch(standin_cuda):
    """PyTorch passes a 0-d CPU tensor to a CUDA op as a scalar; any other CPU tensor is refused."""
    x = disttorch.tensor([1.0, 2.0, 3.0], device="cuda")
    s = disttorch.tensor(2.0)
    for r, ref in ((x * s, [2.0, 4.0, 6.0]), (s - x, [1.0, 0.0, -1.0]), (disttorch.where(x > 1, x, s), [2.0, 2.0, 3.0])):
        assert r.device.type == "cuda"
        np.testing.assert_allclose(r.cpu().numpy(), ref)
    assert (x + disttorch.tensor(1, dtype=disttorch.int64)).dtype == disttorch.float32  # the 0-d rule of promotion
    with pytest.raises(RuntimeError, match="Expected all tensors to be on the same device"):
        x + disttorch.ones(3)
    with pytest.raises(RuntimeError, match="Expected all tensors to be on the same device"):
        x * disttorch.tensor(2.0, requires_grad=True)  # its gradient would have to come back to the CPU


@pytest.mark.parametrize("kernel", [2, 3])
def test_max_pool_with_nans_matches_the_cpu_without_a_host_check(standin_cuda, kernel):
    """On a device the max pool takes NaNs in its scan (PyTorch picks the last one) instead of checking for them on
    the host: values, indices and gradients equal the CPU's, with no device-to-host copy."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((2, 3, 6, 6)).astype(np.float32)
    a[0, 0, 0, 0] = a[0, 0, 1, 1] = a[1, 2, 4, 5] = np.nan
    a[1, 1, 2:4, 2:4] = np.nan
    outs = {}
    for dev in ("cpu", "cuda"):
        x = disttorch.tensor(a, device=dev, requires_grad=True)
        standin_cuda.reset()
        y, idx = F.max_pool2d(x, kernel, stride=kernel, return_indices=True)
        y.nan_to_num(0.0).sum().backward()
        if dev == "cuda":
            assert standin_cuda.to_host == 0, standin_cuda.summary()
        outs[dev] = (y.detach().cpu().numpy(), idx.cpu().numpy(), x.grad.cpu().numpy())
    for c, g in zip(outs["cpu"], outs["cuda"]):
        np.testing.assert_array_equal(c, g)
