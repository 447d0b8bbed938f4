"""Random sampling: seeding, Generators, state round trips, distribution sanity, in-place samplers.

Distribution checks use sample sizes and tolerances many standard errors wide (and fixed seeds),
so they cannot flake.
"""
import pickle

import numpy as np
import pytest

import disttorch
import disttorch.random as drandom

SAMPLERS = [
    lambda g: disttorch.rand(5, generator=g),
    lambda g: disttorch.randn(2, 3, generator=g),
    lambda g: disttorch.randint(0, 100, (6,), generator=g),
    lambda g: disttorch.randperm(8, generator=g),
    lambda g: disttorch.normal(0.0, 1.0, (4,), generator=g),
    lambda g: disttorch.bernoulli(disttorch.full((8,), 0.5), generator=g),
    lambda g: disttorch.multinomial(disttorch.ones(10), 4, generator=g),
    lambda g: disttorch.poisson(disttorch.full((5,), 3.0), generator=g),
    lambda g: disttorch.empty(5).uniform_(-1, 1, generator=g),
    lambda g: disttorch.empty(5).normal_(generator=g),
]


@pytest.mark.parametrize("sample", SAMPLERS)
def test_manual_seed_reproducible(sample):
    disttorch.manual_seed(123)
    a = sample(None)
    disttorch.manual_seed(123)
    b = sample(None)
    np.testing.assert_array_equal(a.numpy(), b.numpy())


@pytest.mark.parametrize("sample", SAMPLERS)
def test_generator_reproducible_and_independent(sample):
    g1, g2 = disttorch.Generator().manual_seed(7), disttorch.Generator().manual_seed(7)
    a = sample(g1)
    disttorch.manual_seed(1)
    disttorch.rand(100)  # the default generator does not disturb g2
    b = sample(g2)
    np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_different_seeds_differ():
    a = disttorch.rand(20, generator=disttorch.Generator().manual_seed(1))
    b = disttorch.rand(20, generator=disttorch.Generator().manual_seed(2))
    assert not np.array_equal(a.numpy(), b.numpy())


def test_manual_seed_returns_default_generator_and_seeds():
    g = disttorch.manual_seed(5)
    assert g is disttorch.default_generator and isinstance(g, disttorch.Generator)
    assert disttorch.initial_seed() == 5
    assert disttorch.Generator().manual_seed(-1).initial_seed() == 0xFFFF_FFFF_FFFF_FFFF - 1
    s = disttorch.seed()
    assert disttorch.initial_seed() == s and 0 <= s < 2 ** 64
    with pytest.raises(RuntimeError, match="Overflow"):
        disttorch.manual_seed(2 ** 64)


def test_generator_attributes():
    g = disttorch.Generator(device="cpu")
    assert g.device == disttorch.device("cpu")
    assert g.manual_seed(3) is g and g.initial_seed() == 3
    assert isinstance(g.seed(), int)


def test_state_round_trip():
    g = disttorch.Generator().manual_seed(9)
    disttorch.rand(3, generator=g)
    state = g.get_state()
    assert state.dtype is disttorch.uint8 and state.ndim == 1
    a = disttorch.randn(5, generator=g)
    assert g.set_state(state) is g
    np.testing.assert_array_equal(disttorch.randn(5, generator=g).numpy(), a.numpy())
    assert g.initial_seed() == 9
    other = disttorch.Generator().set_state(state)
    np.testing.assert_array_equal(disttorch.randn(5, generator=other).numpy(), a.numpy())


def test_default_state_round_trip_and_fork_rng():
    disttorch.manual_seed(0)
    s = disttorch.get_rng_state()
    a = disttorch.rand(4)
    disttorch.set_rng_state(s)
    np.testing.assert_array_equal(disttorch.rand(4).numpy(), a.numpy())
    before = drandom.get_rng_state()
    with drandom.fork_rng():
        disttorch.rand(10)
    np.testing.assert_array_equal(drandom.get_rng_state().numpy(), before.numpy())
    assert drandom.default_generator is disttorch.default_generator
    drandom.manual_seed(4)
    assert drandom.initial_seed() == 4


def test_set_state_errors():
    g = disttorch.Generator()
    with pytest.raises(TypeError, match="ByteTensor"):
        g.set_state(disttorch.zeros(56))
    with pytest.raises(RuntimeError, match="bytes"):
        g.set_state(disttorch.zeros(3, dtype=disttorch.uint8))
    with pytest.raises(TypeError, match="Generator"):
        disttorch.rand(2, generator=np.random.default_rng(0))


def test_generator_pickles_with_state():
    g = disttorch.Generator().manual_seed(11)
    g2 = pickle.loads(pickle.dumps(g))
    np.testing.assert_array_equal(disttorch.rand(3, generator=g).numpy(), disttorch.rand(3, generator=g2).numpy())


# ---- factories: shapes, dtypes, bounds, moments ---------------------------------------------------
@pytest.mark.parametrize("fn", [disttorch.rand, disttorch.randn])
@pytest.mark.parametrize("dtype", [None, disttorch.float64, disttorch.float16, disttorch.bfloat16])
def test_rand_randn_shape_dtype(fn, dtype):
    for t in (fn(2, 3, dtype=dtype), fn((2, 3), dtype=dtype), fn(size=(2, 3), dtype=dtype)):
        assert t.shape == (2, 3) and t.dtype is (dtype or disttorch.float32)
    assert fn(()).shape == ()
    assert fn(3, requires_grad=True).requires_grad


@pytest.mark.parametrize("dtype", [disttorch.float32, disttorch.float64, disttorch.float16, disttorch.bfloat16])
def test_rand_bounds_and_mean(dtype):
    x = disttorch.rand(100_000, dtype=dtype, generator=disttorch.Generator().manual_seed(0)).numpy()
    x = x.astype(np.float64)
    assert x.min() >= 0.0 and x.max() < 1.0
    assert abs(x.mean() - 0.5) < 0.01


def test_randn_moments():
    x = disttorch.randn(100_000, generator=disttorch.Generator().manual_seed(0)).numpy().astype(np.float64)
    assert abs(x.mean()) < 0.02 and abs(x.std() - 1) < 0.02


def test_rand_int_dtype_raises():
    with pytest.raises(RuntimeError, match="\"check_uniform_bounds\" not implemented for 'Long'"):
        disttorch.rand(2, dtype=disttorch.int64)
    with pytest.raises(RuntimeError, match="negative dimension"):
        disttorch.randn(-1)


@pytest.mark.parametrize("args,kwargs,low,high", [((10, (1000,)), {}, 0, 10), ((-5, 5, (1000,)), {}, -5, 5),
                                                  ((3, (1000,)), {"dtype": disttorch.float32}, 0, 3),
                                                  ((), {"low": 2, "high": 4, "size": (1000,)}, 2, 4),
                                                  ((7,), {"size": (1000,)}, 0, 7)])
def test_randint(args, kwargs, low, high):
    t = disttorch.randint(*args, **kwargs, generator=disttorch.Generator().manual_seed(0))
    assert t.shape == (1000,) and t.dtype is kwargs.get("dtype", disttorch.int64)
    x = t.numpy()
    assert x.min() == low and x.max() == high - 1  # 1000 draws hit both ends of these small ranges


def test_randint_errors():
    with pytest.raises(RuntimeError, match="from=5 >= to=5"):
        disttorch.randint(5, 5, (2,))
    with pytest.raises(TypeError, match="size"):
        disttorch.randint(0, 5, 3)
    with pytest.raises(RuntimeError, match="only Tensors of floating point"):
        disttorch.randint(0, 5, (2,), requires_grad=True)


def test_randperm():
    p = disttorch.randperm(50, generator=disttorch.Generator().manual_seed(0))
    assert p.dtype is disttorch.int64 and sorted(p.tolist()) == list(range(50))
    assert disttorch.randperm(0).shape == (0,)
    assert disttorch.randperm(4, dtype=disttorch.float32).dtype is disttorch.float32
    with pytest.raises(RuntimeError, match=r"Trying to create tensor with negative dimension -1: \[-1\]"):
        disttorch.randperm(-1)


def test_normal_overloads():
    g = disttorch.Generator().manual_seed(0)
    mean = disttorch.tensor([0.0, 100.0]).reshape(2, 1).expand(2, 50_000)
    x = disttorch.normal(mean, 2.0, generator=g).numpy()
    assert x.shape == (2, 50_000) and abs(x[1].mean() - 100) < 0.1 and abs(x[0].std() - 2) < 0.05
    x = disttorch.normal(5.0, disttorch.full((100_000,), 3.0), generator=g).numpy()
    assert abs(x.mean() - 5) < 0.1 and abs(x.std() - 3) < 0.05
    x = disttorch.normal(disttorch.zeros(100_000), disttorch.full((100_000,), 0.5), generator=g).numpy()
    assert abs(x.std() - 0.5) < 0.01
    x = disttorch.normal(1.0, 0.0, size=(3,), generator=g)
    assert x.tolist() == [1.0, 1.0, 1.0] and x.dtype is disttorch.float32
    assert disttorch.normal(0.0, 1.0, (2, 2), dtype=disttorch.float64).dtype is disttorch.float64
    with pytest.raises(RuntimeError, match="std >= 0.0"):
        disttorch.normal(0.0, -1.0, (2,))
    with pytest.raises(RuntimeError, match="std >= 0.0"):
        disttorch.normal(disttorch.zeros(2), disttorch.tensor([1.0, -1.0]))
    with pytest.raises(TypeError, match="size"):
        disttorch.normal(0.0, 1.0)


def test_normal_grad_is_zero():
    mean = disttorch.zeros(3, requires_grad=True)
    out = disttorch.normal(mean, 1.0)
    assert out.requires_grad
    out.sum().backward()
    assert mean.grad.tolist() == [0.0, 0.0, 0.0]


def test_bernoulli():
    g = disttorch.Generator().manual_seed(0)
    p = disttorch.tensor([0.0, 1.0] * 1000)
    out = disttorch.bernoulli(p, generator=g)
    np.testing.assert_array_equal(out.numpy(), p.numpy())  # p = 0 and 1 are exact
    assert out.dtype is disttorch.float32
    x = disttorch.bernoulli(disttorch.full((100_000,), 0.3), generator=g).numpy()
    assert set(np.unique(x)) <= {0.0, 1.0} and abs(x.mean() - 0.3) < 0.01
    x = disttorch.bernoulli(disttorch.zeros(100_000), 0.7, generator=g).numpy()
    assert abs(x.mean() - 0.7) < 0.01
    with pytest.raises(RuntimeError, match="p_in >= 0"):
        disttorch.bernoulli(disttorch.tensor([1.5]))
    assert p.bernoulli(generator=g).shape == p.shape


def test_multinomial_without_replacement():
    g = disttorch.Generator().manual_seed(0)
    probs = disttorch.tensor([[1.0, 2.0, 3.0, 4.0, 5.0], [5.0, 0.0, 1.0, 0.0, 1.0]])
    for _ in range(50):
        idx = disttorch.multinomial(probs, 3, generator=g)
        assert idx.shape == (2, 3) and idx.dtype is disttorch.int64
        for row in idx.tolist():
            assert len(set(row)) == 3
        assert set(idx.tolist()[1]) == {0, 2, 4}  # zero-probability categories come last
    full = disttorch.multinomial(disttorch.ones(6), 6, generator=g)
    assert sorted(full.tolist()) == list(range(6))


def test_multinomial_with_replacement():
    g = disttorch.Generator().manual_seed(0)
    idx = disttorch.multinomial(disttorch.tensor([0.2, 0.0, 0.8]), 50_000, replacement=True, generator=g).numpy()
    assert idx.shape == (50_000,) and 1 not in idx
    assert abs((idx == 2).mean() - 0.8) < 0.01
    assert disttorch.ones(3).multinomial(10, True, generator=g).shape == (10,)


@pytest.mark.parametrize("probs,n,repl,match", [
    ([1.0, 1.0], 3, False, "cannot sample n_sample > prob_dist.size"),
    ([1.0, -1.0], 1, False, "element < 0"),
    ([0.0, 0.0], 1, True, "sum of probabilities <= 0"),
    ([1.0, float("nan")], 1, True, "nan"),
    ([1.0, 1.0], 0, True, "n_sample <= 0"),
])
def test_multinomial_errors(probs, n, repl, match):
    with pytest.raises(RuntimeError, match=match):
        disttorch.multinomial(disttorch.tensor(probs), n, replacement=repl)


def test_multinomial_bad_rank():
    with pytest.raises(RuntimeError, match="1 or 2 dim"):
        disttorch.multinomial(disttorch.ones(2, 2, 2), 1)


def test_poisson():
    x = disttorch.poisson(disttorch.full((100_000,), 4.0), generator=disttorch.Generator().manual_seed(0)).numpy()
    assert x.dtype == np.float32 and abs(x.mean() - 4) < 0.05
    assert disttorch.poisson(disttorch.zeros(3)).tolist() == [0.0, 0.0, 0.0]


def test_like_samplers():
    x = disttorch.zeros(2, 3, dtype=disttorch.float64)
    assert disttorch.rand_like(x).dtype is disttorch.float64 and disttorch.rand_like(x).shape == (2, 3)
    assert disttorch.randn_like(x, dtype=disttorch.float32).dtype is disttorch.float32
    r = disttorch.randint_like(x, 10)
    assert r.dtype is disttorch.float64 and r.numpy().max() < 10
    r = disttorch.randint_like(x, 5, 7)
    assert set(np.unique(r.numpy())) <= {5.0, 6.0}


# ---- in-place samplers --------------------------------------------------------------------------
def test_uniform_inplace():
    x = disttorch.empty(100_000)
    v = x._version
    assert x.uniform_(-2, 3, generator=disttorch.Generator().manual_seed(0)) is x
    assert x._version > v
    a = x.numpy()
    assert a.min() >= -2 and a.max() < 3 and abs(a.mean() - 0.5) < 0.05
    with pytest.raises(RuntimeError, match="from=2 > to=1"):
        x.uniform_(2, 1)
    with pytest.raises(RuntimeError, match="\"check_uniform_bounds\" not implemented for 'Long'"):
        disttorch.zeros(2, dtype=disttorch.int64).uniform_()


def test_normal_and_other_inplace():
    g = disttorch.Generator().manual_seed(0)
    a = disttorch.empty(100_000).normal_(3, 2, generator=g).numpy()
    assert abs(a.mean() - 3) < 0.05 and abs(a.std() - 2) < 0.05
    a = disttorch.empty(100_000, dtype=disttorch.float64).exponential_(2.0, generator=g).numpy()
    assert a.min() >= 0 and abs(a.mean() - 0.5) < 0.01
    a = disttorch.empty(100_000).geometric_(0.25, generator=g).numpy()
    assert a.min() >= 1 and abs(a.mean() - 4) < 0.1
    a = disttorch.empty(100_001).cauchy_(1.0, 0.5, generator=g).numpy()
    assert abs(np.median(a) - 1.0) < 0.02
    a = disttorch.empty(100_000).log_normal_(0.0, 0.5, generator=g).numpy()
    assert a.min() > 0 and abs(np.log(a).mean()) < 0.01
    with pytest.raises(RuntimeError, match="std >= 0.0"):
        disttorch.empty(2).normal_(0, -1)
    with pytest.raises(RuntimeError, match="lambda > 0.0"):
        disttorch.empty(2).exponential_(0)
    with pytest.raises(RuntimeError, match=r"p to be in \(0, 1\)"):
        disttorch.empty(2).geometric_(0)
    with pytest.raises(RuntimeError, match="std > 0.0"):
        disttorch.empty(2).log_normal_(0, 0)


def test_bernoulli_inplace():
    g = disttorch.Generator().manual_seed(0)
    assert disttorch.empty(1000).bernoulli_(0.0, generator=g).numpy().max() == 0
    assert disttorch.empty(1000).bernoulli_(1.0, generator=g).numpy().min() == 1
    x = disttorch.empty(100_000, dtype=disttorch.int64).bernoulli_(0.25, generator=g).numpy()
    assert set(np.unique(x)) == {0, 1} and abs(x.mean() - 0.25) < 0.01
    p = disttorch.tensor([0.0, 1.0])
    assert disttorch.empty(3, 2).bernoulli_(p, generator=g).tolist() == [[0.0, 1.0]] * 3
    with pytest.raises(RuntimeError, match=r"bernoulli_ expects p to be in \[0, 1\], but got p=1\.5"):
        disttorch.empty(2).bernoulli_(1.5)


@pytest.mark.parametrize("dtype,args,low,high", [
    (disttorch.int64, (10,), 0, 9), (disttorch.int64, (-3, 3), -3, 2), (disttorch.float32, (5,), 0, 4),
    (disttorch.uint8, (), 0, 255), (disttorch.bool, (), 0, 1), (disttorch.int8, (), 0, 127),
])
def test_random_inplace(dtype, args, low, high):
    x = disttorch.empty(5000, dtype=dtype).random_(*args, generator=disttorch.Generator().manual_seed(0))
    a = x.numpy().astype(np.int64)
    assert a.min() == low and a.max() == high


def test_random_inplace_full_ranges():
    a = disttorch.empty(1000, dtype=disttorch.int64).random_().numpy()
    assert a.min() >= 0 and a.max() > 2 ** 60  # the whole non-negative int64 range
    f = disttorch.empty(1000).random_().numpy()
    assert f.min() >= 0 and f.max() <= 2 ** 24 and np.all(f == np.floor(f))
    with pytest.raises(RuntimeError, match="from=3 >= to=3"):
        disttorch.empty(2).random_(3, 3)


def test_inplace_on_leaf_requiring_grad():
    w = disttorch.empty(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
        w.normal_()
    with disttorch.no_grad():
        w.normal_()
        w.uniform_(-1, 1)
    assert w.requires_grad and w.is_leaf


def test_inplace_on_nonleaf_gives_zero_grad():
    w = disttorch.ones(3, requires_grad=True)
    y = w * 2
    y.uniform_()
    y.sum().backward()
    assert w.grad.tolist() == [0.0, 0.0, 0.0]
