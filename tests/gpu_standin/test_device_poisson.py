"""``poisson`` on a CUDA tensor draws on the device (ops/random_poisson.py) from the CUDA generator: no host
transfer, reproducible from the generator's state, Poisson-distributed (checked against the pmf computed here
with math.lgamma), and a negative rate reported at the next synchronisation as the CPU reports it at once."""
import math

import numpy as np
import pytest

import disttorch
from disttorch.ops import random_poisson
from disttorch.ops.random_device import DeviceSampler


def _pmf(k, lam):
    return math.exp(-lam + k * math.log(lam) - math.lgamma(k + 1)) if lam > 0 else float(k == 0)


def _chi2_ok(x, lam):
    """Pearson's statistic over bins expected to hold >= 20 samples (tails pooled) stays below
    df + 6 * sqrt(2 df): a real mismatch (a wrong rate by 2%, a wrong spread) lands far above."""
    n = x.size
    lo = hi = int(lam)
    while lo > 0 and n * _pmf(lo - 1, lam) >= 20:
        lo -= 1
    while n * _pmf(hi + 1, lam) >= 20:
        hi += 1
    p = np.array([_pmf(k, lam) for k in range(lo, hi + 1)])
    p = np.concatenate([[1.0 - p.sum() - (1.0 - sum(_pmf(k, lam) for k in range(hi + 1)))], p,
                        [1.0 - sum(_pmf(k, lam) for k in range(hi + 1))]])
    inside = x[(x >= lo) & (x <= hi)].astype(np.int64) - lo
    obs = np.concatenate([[np.sum(x < lo)], np.bincount(inside, minlength=hi - lo + 1), [np.sum(x > hi)]])
    keep = p * n >= 1
    stat = float((((obs - n * p) ** 2)[keep] / (n * p)[keep]).sum())
    df = int(keep.sum()) - 1
    return stat < df + 6 * math.sqrt(2 * df), (stat, df)


def test_poisson_draws_on_the_device_reproducibly(standin_cuda):
    rates = disttorch.tensor([[0.0, 0.5, 3.0], [9.9, 10.0, 250.0]], device="cuda")
    g = disttorch.Generator(device="cuda").manual_seed(3)
    disttorch.poisson(rates, generator=g)  # warm-up
    g.manual_seed(3)
    standin_cuda.reset()
    a = disttorch.poisson(rates, generator=g)
    b = disttorch.poisson(rates, generator=g)
    assert standin_cuda.total == 0, standin_cuda.summary()
    assert a.is_cuda and a.dtype == disttorch.float32 and a.shape == (2, 3)
    g.manual_seed(3)
    np.testing.assert_array_equal(disttorch.poisson(rates, generator=g).cpu().numpy(), a.cpu().numpy())
    disttorch.cuda.manual_seed(3)  # the default generator, seeded alike, gives the same samples
    np.testing.assert_array_equal(disttorch.poisson(rates).cpu().numpy(), a.cpu().numpy())
    a, b = a.cpu().numpy(), b.cpu().numpy()
    assert a[0, 0] == 0 and np.all(a == np.floor(a)) and np.all(a >= 0)
    assert not np.array_equal(a, b)  # the offset advanced
    with pytest.raises(RuntimeError, match="Expected a 'cuda' device type for generator"):
        disttorch.poisson(rates, generator=disttorch.Generator())


@pytest.mark.parametrize("lam", [0.7, 4.0, 9.99, 10.0, 40.0, 3000.0])
def test_poisson_samples_follow_the_pmf(standin_cuda, lam):
    g = disttorch.Generator(device="cuda").manual_seed(int(lam * 100))
    x = disttorch.poisson(disttorch.full((6000,), lam, dtype=disttorch.float64, device="cuda"), generator=g)
    x = x.cpu().numpy()
    assert abs(x.mean() - lam) < 5 * math.sqrt(lam / x.size)
    ok, why = _chi2_ok(x, lam)
    assert ok, why


def test_negative_rate_raises_at_the_next_sync(standin_cuda):
    for bad in (-1.0, float("nan")):
        with pytest.raises(RuntimeError) as cpu:
            disttorch.poisson(disttorch.tensor([1.0, bad]))
        standin_cuda.reset()
        out = disttorch.poisson(disttorch.tensor([1.0, bad], device="cuda"))
        assert standin_cuda.to_host == 0, standin_cuda.summary()
        with pytest.raises(RuntimeError) as dev:
            out.cpu()
        assert str(dev.value) == str(cpu.value)


def test_rate_past_the_cpu_limit_raises_as_on_the_cpu(standin_cuda):
    for bad in (1e19, float("inf")):
        with pytest.raises(ValueError) as cpu:
            disttorch.poisson(disttorch.tensor([1.0, bad], dtype=disttorch.float64))
        out = disttorch.poisson(disttorch.tensor([1.0, bad], dtype=disttorch.float64, device="cuda"))
        with pytest.raises(ValueError) as dev:
            out.cpu()
        assert str(dev.value) == str(cpu.value)


def test_chunks_and_the_host_twin_draw_the_same_words(standin_cuda, monkeypatch):
    """Batched in small chunks, the sampler still gives valid samples; over NumPy, with the same generator state,
    it gives exactly the device's numbers (one code over the array module)."""
    monkeypatch.setattr(random_poisson, "_CHUNK", 7)
    rates = np.array([0.2, 2.0, 12.0, 1e6] * 6)
    g = disttorch.Generator(device="cuda").manual_seed(8)
    state = g.get_state()
    t = disttorch.tensor(rates, device="cuda")
    standin_cuda.reset()
    dev = disttorch.poisson(t, generator=g)
    assert standin_cuda.total == 0, standin_cuda.summary()
    dev = dev.cpu().numpy()
    g.set_state(state)
    host = random_poisson.poisson_device(DeviceSampler(np, g), rates, lambda: None)
    np.testing.assert_array_equal(dev, host)
    assert np.all(np.abs(dev[3::4] - 1e6) < 6 * 1e3) and np.all(dev[:3] <= 30)


def test_log_factorial_matches_math():
    k = np.array([0.0, 1, 2, 7, 8, 9, 30, 170, 1e4, 999999, 1e6, 3e9, 1e15])
    want = np.array([math.lgamma(v + 1) for v in k])
    np.testing.assert_allclose(random_poisson._log_factorial(np, k), want, rtol=1e-11, atol=1e-11)
