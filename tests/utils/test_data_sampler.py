"""disttorch.utils.data samplers against PyTorch's documented behaviour."""
from __future__ import annotations

import numpy as np
import pytest

import disttorch
from disttorch.utils.data import (
    BatchSampler, RandomSampler, Sampler, SequentialSampler, SubsetRandomSampler, WeightedRandomSampler,
)


def gen(seed):
    return disttorch.Generator().manual_seed(seed)


def test_sampler_base():
    with pytest.raises(NotImplementedError):
        iter(Sampler())
    with pytest.warns(UserWarning, match="`data_source` argument is not used"):
        Sampler(range(3))


def test_sequential_sampler():
    s = SequentialSampler(range(5))
    assert list(s) == [0, 1, 2, 3, 4] and len(s) == 5
    assert list(SequentialSampler([])) == []


def test_random_sampler_is_seeded_permutation():
    s = RandomSampler(range(10), generator=gen(7))
    out = list(s)
    assert sorted(out) == list(range(10)) and len(s) == 10
    assert out == disttorch.randperm(10, generator=gen(7)).tolist()
    assert out != list(s)  # the generator advances: the next epoch is another permutation (w.p. 1 - 1/10!)


def test_random_sampler_reproducible_with_manual_seed():
    disttorch.manual_seed(3)
    a = list(RandomSampler(range(20)))
    disttorch.manual_seed(3)
    b = list(RandomSampler(range(20)))
    assert a == b and sorted(a) == list(range(20))


def test_random_sampler_num_samples_without_replacement():
    s = RandomSampler(range(4), num_samples=10, generator=gen(0))
    out = list(s)
    assert len(out) == 10 == len(s)
    # Two full permutations, then the head of a third.
    assert sorted(out[:4]) == [0, 1, 2, 3] and sorted(out[4:8]) == [0, 1, 2, 3]
    assert len(set(out[8:])) == 2


@pytest.mark.parametrize("num_samples", [5, 32, 70])
def test_random_sampler_with_replacement(num_samples):
    s = RandomSampler(range(3), replacement=True, num_samples=num_samples, generator=gen(1))
    out = list(s)
    assert len(out) == num_samples == len(s)
    assert set(out) <= {0, 1, 2}
    assert out == list(RandomSampler(range(3), replacement=True, num_samples=num_samples, generator=gen(1)))


def test_random_sampler_errors():
    with pytest.raises(TypeError, match="replacement should be a boolean value, but got replacement=1"):
        RandomSampler(range(3), replacement=1)
    with pytest.raises(ValueError, match="num_samples should be a positive integer value, but got num_samples=0"):
        RandomSampler(range(3), num_samples=0)
    with pytest.raises(ValueError, match="num_samples=0"):
        RandomSampler([])


def test_subset_random_sampler():
    idx = [10, 20, 30, 40, 50]
    s = SubsetRandomSampler(idx, generator=gen(4))
    perm = disttorch.randperm(5, generator=gen(4)).tolist()
    assert list(s) == [idx[i] for i in perm] and len(s) == 5


def test_weighted_random_sampler_zero_weights_never_drawn():
    s = WeightedRandomSampler([0.0, 0.0, 2.0, 0.0], 6, generator=gen(0))
    assert list(s) == [2] * 6 and len(s) == 6
    assert s.weights.dtype is disttorch.float64


def test_weighted_random_sampler_without_replacement_is_distinct():
    out = list(WeightedRandomSampler([1.0, 5.0, 1.0, 0.5], 4, replacement=False, generator=gen(2)))
    assert sorted(out) == [0, 1, 2, 3]


def test_weighted_random_sampler_frequencies():
    out = np.array(list(WeightedRandomSampler([1.0, 3.0], 4000, generator=gen(9))))
    assert abs(out.mean() - 0.75) < 0.03  # P(1) = 3/4; 4000 draws give sd 0.007


def test_weighted_random_sampler_errors():
    with pytest.raises(ValueError, match="num_samples should be a positive integer value, but got num_samples=True"):
        WeightedRandomSampler([1.0], True)
    with pytest.raises(ValueError, match="num_samples=-1"):
        WeightedRandomSampler([1.0], -1)
    with pytest.raises(ValueError, match="replacement should be a boolean value, but got replacement=0"):
        WeightedRandomSampler([1.0], 1, replacement=0)
    with pytest.raises(ValueError, match=r"weights should be a 1d sequence but given weights have shape \(1, 2\)"):
        WeightedRandomSampler([[1.0, 2.0]], 1)


@pytest.mark.parametrize("n,bs,drop_last,expected", [
    (10, 3, False, [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9]]),
    (10, 3, True, [[0, 1, 2], [3, 4, 5], [6, 7, 8]]),
    (6, 3, True, [[0, 1, 2], [3, 4, 5]]),
    (6, 3, False, [[0, 1, 2], [3, 4, 5]]),
    (2, 5, True, []),
    (2, 5, False, [[0, 1]]),
    (0, 2, False, []),
])
def test_batch_sampler(n, bs, drop_last, expected):
    s = BatchSampler(SequentialSampler(range(n)), bs, drop_last)
    assert list(s) == expected and len(s) == len(expected)


def test_batch_sampler_over_plain_iterable():
    assert list(BatchSampler([5, 4, 3], 2, False)) == [[5, 4], [3]]


@pytest.mark.parametrize("bs", [0, -1, 2.0, True, None])
def test_batch_sampler_bad_batch_size(bs):
    with pytest.raises(ValueError, match=f"batch_size should be a positive integer value, but got batch_size={bs}"):
        BatchSampler(range(4), bs, False)


def test_batch_sampler_bad_drop_last():
    with pytest.raises(ValueError, match="drop_last should be a boolean value, but got drop_last=0"):
        BatchSampler(range(4), 2, 0)
