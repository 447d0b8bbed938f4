"""Random numbers on the device (ops/random_device.py): CUDA generators are Philox (seed, offset) drawn with the array
module, so CUDA samplers make no host transfer; the words match the independent NumPy Philox of kernels/philox.py
(itself checked against the published known-answer vectors), and dropout's mask is the one kernels/dropout.cu draws."""
import numpy as np
import pytest

import disttorch
import disttorch.nn.functional as F
from disttorch.kernels import philox
from disttorch.ops.random_device import philox_words
from disttorch.testing._standin_cuda import standin


def _ref_words(n, seed, offset):
    blocks = (n + 3) // 4
    counters = [[b & 0xFFFFFFFF, b >> 32, offset & 0xFFFFFFFF, offset >> 32] for b in range(blocks)]
    return philox.philox4x32_10(counters, (seed & 0xFFFFFFFF, seed >> 32)).reshape(-1)[:n]


@pytest.mark.parametrize("seed, offset", [(0, 0), (123456789, 5), (2**64 - 1, 2**33 + 7)])
def test_philox_words_match_the_reference_on_host_and_device(seed, offset):
    np.testing.assert_array_equal(philox_words(np, 10, seed, offset), _ref_words(10, seed, offset))
    np.testing.assert_array_equal(philox_words(standin, 10, seed, offset).get(), _ref_words(10, seed, offset))


def test_rand_is_the_top_24_bits_of_the_words(standin_cuda):
    disttorch.cuda.manual_seed(42)
    g = disttorch.cuda.default_generators[0]
    seed, offset = g.initial_seed(), int.from_bytes(g.get_state().numpy()[8:].tobytes(), "little")
    got = disttorch.rand(7, device="cuda").cpu().numpy()
    np.testing.assert_array_equal(got, (_ref_words(7, seed, offset) >> 8).astype(np.float32) * np.float32(2 ** -24))


def test_dropout_mask_is_the_kernels_mask(standin_cuda):
    g = disttorch.cuda.default_generators[0].manual_seed(9)
    g.set_state(disttorch.tensor(np.frombuffer((9).to_bytes(8, "little") + (3).to_bytes(8, "little"), np.uint8)))
    y = F.dropout(disttorch.ones(1001, device="cuda"), 0.3).cpu().numpy()
    keep = philox.dropout_keep_mask(1001, 0.3, 9, 3)
    np.testing.assert_allclose(y, np.where(keep, 1 / 0.7, 0.0).astype(np.float32), rtol=1e-6)


_SAMPLERS = [
    ("rand", lambda g: disttorch.rand(5, 4, device="cuda", generator=g)),
    ("randn", lambda g: disttorch.randn(9, device="cuda", dtype=disttorch.float64, generator=g)),
    ("randn_half", lambda g: disttorch.randn(6, device="cuda", dtype=disttorch.float16, generator=g)),
    ("randint", lambda g: disttorch.randint(-3, 10, (20,), device="cuda", generator=g)),
    ("randperm", lambda g: disttorch.randperm(12, device="cuda", generator=g)),
    ("normal", lambda g: disttorch.normal(2.0, 3.0, (8,), device="cuda", generator=g)),
    ("normal_t", lambda g: disttorch.normal(disttorch.zeros(4, device="cuda"), disttorch.ones(4, device="cuda"),
                                            generator=g)),
    ("uniform_", lambda g: disttorch.empty(6, device="cuda").uniform_(-2, 2, generator=g)),
    ("normal_", lambda g: disttorch.empty(6, device="cuda").normal_(generator=g)),
    ("exponential_", lambda g: disttorch.empty(6, device="cuda").exponential_(generator=g)),
    ("random_", lambda g: disttorch.empty(6, device="cuda").random_(0, 5, generator=g)),
    ("bernoulli", lambda g: disttorch.bernoulli(disttorch.full((30,), 0.5, device="cuda"), generator=g)),
    ("bernoulli_", lambda g: disttorch.empty(6, device="cuda").bernoulli_(0.5, generator=g)),
    ("multinomial", lambda g: disttorch.multinomial(disttorch.ones(3, 5, device="cuda"), 4, generator=g)),
    ("multinomial_r", lambda g: disttorch.multinomial(disttorch.ones(5, device="cuda"), 9, True, generator=g)),
]


@pytest.mark.parametrize("name, fn", _SAMPLERS, ids=[s[0] for s in _SAMPLERS])
def test_samplers_draw_on_the_device_reproducibly(standin_cuda, name, fn):
    g = disttorch.Generator(device="cuda").manual_seed(5)
    fn(g)  # warm-up: the inputs above are made on the device, with no upload
    g.manual_seed(5)
    standin_cuda.reset()
    a = fn(g)
    assert standin_cuda.total == 0, standin_cuda.summary()
    assert a.is_cuda
    state = g.get_state()
    b = fn(g)
    g.set_state(state)
    np.testing.assert_array_equal(fn(g).cpu().numpy(), b.cpu().numpy())
    assert not np.array_equal(a.cpu().numpy(), b.cpu().numpy()) or name == "multinomial"  # the offset advanced


def test_layers_draw_on_the_device(standin_cuda):
    x = disttorch.randn(4, 8, device="cuda")
    standin_cuda.reset()
    y = F.dropout(x, 0.5) + F.rrelu(x, training=True) + F.alpha_dropout(x, 0.2, training=True)
    assert standin_cuda.total == 0, standin_cuda.summary()
    h = x.cpu().numpy()
    r = (F.rrelu(x, 0.1, 0.3, training=True).cpu().numpy())
    neg = h < 0
    assert np.all(r[~neg] == h[~neg]) and np.all((r[neg] <= 0.1 * h[neg]) & (r[neg] >= 0.3 * h[neg] - 1e-6))
    assert y.shape == (4, 8)


def test_seeding_as_pytorch(standin_cuda):
    disttorch.manual_seed(11)  # seeds every device's default generator
    a = disttorch.randn(5, device="cuda").cpu()
    disttorch.cuda.manual_seed(11)
    assert disttorch.cuda.initial_seed() == 11
    np.testing.assert_array_equal(disttorch.randn(5, device="cuda").cpu().numpy(), a.numpy())
    st = disttorch.cuda.get_rng_state()
    b = disttorch.rand(3, device="cuda").cpu()
    disttorch.cuda.set_rng_state(st)
    np.testing.assert_array_equal(disttorch.rand(3, device="cuda").cpu().numpy(), b.numpy())
    with disttorch.random.fork_rng():
        disttorch.rand(3, device="cuda")
    assert not np.array_equal(disttorch.rand(3, device="cuda").cpu().numpy(), b.numpy())
    assert st.numel() == 16 and disttorch.Generator(device="cuda").get_state().numel() == 16


def test_generator_device_must_match(standin_cuda):
    with pytest.raises(RuntimeError, match="Expected a 'cuda' device type for generator but found 'cpu'"):
        disttorch.rand(2, device="cuda", generator=disttorch.Generator())
    with pytest.raises(RuntimeError, match="Expected a 'cpu' device type for generator but found 'cuda'"):
        disttorch.rand(2, generator=disttorch.Generator(device="cuda"))
    with pytest.raises(RuntimeError, match="16 bytes"):
        disttorch.Generator(device="cuda").set_state(disttorch.Generator().get_state())


def test_distributions_have_their_moments(standin_cuda):
    g = disttorch.Generator(device="cuda").manual_seed(0)
    n = 40000
    u = disttorch.rand(n, device="cuda", generator=g, dtype=disttorch.float64).cpu().numpy()
    z = disttorch.randn(n, device="cuda", generator=g).cpu().numpy()
    k = disttorch.randint(0, 6, (n,), device="cuda", generator=g).cpu().numpy()
    p = disttorch.randperm(1000, device="cuda", generator=g).cpu().numpy()
    assert 0 <= u.min() and u.max() < 1 and abs(u.mean() - 0.5) < 0.01 and abs(u.var() - 1 / 12) < 0.003
    assert abs(z.mean()) < 0.02 and abs(z.std() - 1) < 0.02
    assert set(k.tolist()) == set(range(6)) and np.abs(np.bincount(k) / n - 1 / 6).max() < 0.01
    np.testing.assert_array_equal(np.sort(p), np.arange(1000))
    probs = np.array([[0.1, 0.0, 0.6, 0.3]])
    m = disttorch.multinomial(disttorch.tensor(probs, device="cuda"), 20000, True, generator=g).cpu().numpy()
    np.testing.assert_allclose(np.bincount(m[0], minlength=4) / 20000, probs[0], atol=0.015)
    w = disttorch.multinomial(disttorch.tensor(np.ones((50, 6)), device="cuda"), 6, generator=g).cpu().numpy()
    assert all(sorted(r) == list(range(6)) for r in w.tolist())


def test_bad_probabilities_raise_at_the_next_sync(standin_cuda):
    p = disttorch.tensor([0.5, 1.5], device="cuda")
    out = disttorch.bernoulli(p)
    with pytest.raises(RuntimeError, match="Expected p_in >= 0 && p_in <= 1"):
        out.cpu()
    bad = disttorch.multinomial(disttorch.tensor([[1.0, -1.0]], device="cuda"), 1)
    with pytest.raises(RuntimeError, match="probability tensor contains either"):
        bad.cpu()
