"""disttorch.utils.data datasets against PyTorch's documented behaviour (expected values written out by hand)."""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

import disttorch
from disttorch.utils.data import (
    ChainDataset, ConcatDataset, Dataset, IterableDataset, StackDataset, Subset, TensorDataset, random_split,
)


class Range(Dataset):
    def __init__(self, start, stop):
        self.items = list(range(start, stop))

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


class Stream(IterableDataset):
    def __init__(self, items):
        self.items = items

    def __iter__(self):
        return iter(self.items)

    def __len__(self):
        return len(self.items)


def test_dataset_base_getitem_raises():
    with pytest.raises(NotImplementedError, match="Subclasses of Dataset should implement __getitem__"):
        Dataset()[0]


def test_tensor_dataset():
    x = disttorch.tensor(np.arange(12.0).reshape(4, 3))
    y = disttorch.tensor([10, 11, 12, 13])
    ds = TensorDataset(x, y)
    assert len(ds) == 4
    a, b = ds[2]
    np.testing.assert_array_equal(a.numpy(), [6.0, 7.0, 8.0])
    assert b.item() == 12 and b.dtype is disttorch.int64
    sl = ds[1:3]  # slices index every tensor, as in PyTorch
    np.testing.assert_array_equal(sl[1].numpy(), [11, 12])
    assert ds.tensors[0] is x


def test_tensor_dataset_size_mismatch():
    with pytest.raises(AssertionError, match="Size mismatch between tensors"):
        TensorDataset(disttorch.zeros(3), disttorch.zeros(4))


def test_concat_dataset_indices_and_cumulative_sizes():
    ds = ConcatDataset([Range(0, 3), Range(10, 12), Range(20, 24)])
    assert ds.cumulative_sizes == [3, 5, 9]
    assert len(ds) == 9
    assert [ds[i] for i in range(9)] == [0, 1, 2, 10, 11, 20, 21, 22, 23]
    assert [ds[-i] for i in range(1, 10)] == [23, 22, 21, 20, 11, 10, 2, 1, 0]
    with pytest.raises(ValueError, match="absolute value of index should not exceed dataset length"):
        ds[-10]
    with pytest.raises(IndexError):
        ds[9]


def test_concat_dataset_errors_and_add():
    with pytest.raises(AssertionError, match="datasets should not be an empty iterable"):
        ConcatDataset([])
    with pytest.raises(AssertionError, match="ConcatDataset does not support IterableDataset"):
        ConcatDataset([Range(0, 2), Stream([1])])
    cat = Range(0, 2) + Range(5, 6)
    assert isinstance(cat, ConcatDataset) and [cat[i] for i in range(3)] == [0, 1, 5]
    with pytest.warns(DeprecationWarning):
        assert cat.cummulative_sizes == [2, 3]


def test_chain_dataset():
    chain = Stream([1, 2]) + Stream([3])
    assert isinstance(chain, ChainDataset)
    assert list(chain) == [1, 2, 3] and len(chain) == 3
    with pytest.raises(AssertionError, match="ChainDataset only supports IterableDataset"):
        list(ChainDataset([Range(0, 2)]))


def test_subset():
    base = Range(100, 110)
    sub = Subset(base, [7, 2, 2, 0])
    assert len(sub) == 4
    assert [sub[i] for i in range(4)] == [107, 102, 102, 100]
    assert sub.__getitems__([0, 3]) == [107, 100]


def test_subset_forwards_getitems_and_lists():
    class Batched(Range):
        def __getitems__(self, idx):
            return ["batched", *idx]

    sub = Subset(Batched(0, 5), [4, 3, 2])
    assert sub.__getitems__([0, 2]) == ["batched", 4, 2]
    t = TensorDataset(disttorch.tensor([5, 6, 7, 8]))
    np.testing.assert_array_equal(Subset(t, [3, 1, 0])[[0, 1]][0].numpy(), [8, 6])


def test_stack_dataset():
    a, b = Range(0, 3), Range(10, 13)
    assert StackDataset(a, b)[1] == (1, 11)
    assert StackDataset(x=a, y=b)[2] == {"x": 2, "y": 12}
    assert StackDataset(x=a, y=b).__getitems__([0, 2]) == [{"x": 0, "y": 10}, {"x": 2, "y": 12}]
    assert StackDataset(a, b).__getitems__([2, 0]) == [(2, 12), (0, 10)]
    assert len(StackDataset(a, b)) == 3
    with pytest.raises(ValueError, match="Size mismatch between datasets"):
        StackDataset(a, Range(0, 2))
    with pytest.raises(ValueError, match="At least one dataset should be passed"):
        StackDataset()
    with pytest.raises(ValueError, match="both types are given"):
        StackDataset(a, y=b)


@pytest.mark.parametrize("n,lengths,expected", [
    (10, [3, 7], [3, 7]),
    (10, [0.5, 0.5], [5, 5]),
    # floor(10*0.33)=3, floor(10*0.33)=3, floor(10*0.34)=3; remainder 1 goes to split 0
    (10, [0.33, 0.33, 0.34], [4, 3, 3]),
    # floor(11*0.25)=2 each -> 8; remainder 3 round-robin to splits 0, 1, 2
    (11, [0.25, 0.25, 0.25, 0.25], [3, 3, 3, 2]),
    (7, [1.0], [7]),
])
def test_random_split_lengths(n, lengths, expected):
    parts = random_split(Range(0, n), lengths, generator=disttorch.Generator().manual_seed(1))
    assert [len(p) for p in parts] == expected
    seen = sorted(x for p in parts for x in (p[i] for i in range(len(p))))
    assert seen == list(range(n))  # a partition: every sample exactly once


def test_random_split_reproducible_and_is_randperm():
    g = disttorch.Generator().manual_seed(123)
    perm = disttorch.randperm(10, generator=disttorch.Generator().manual_seed(123)).tolist()
    a, b = random_split(Range(0, 10), [4, 6], generator=g)
    assert list(a.indices) == perm[:4] and list(b.indices) == perm[4:]
    c, d = random_split(Range(0, 10), [4, 6], generator=disttorch.Generator().manual_seed(123))
    assert list(c.indices) == list(a.indices)


def test_random_split_default_generator_follows_manual_seed():
    disttorch.manual_seed(5)
    a = random_split(Range(0, 20), [10, 10])[0].indices
    disttorch.manual_seed(5)
    b = random_split(Range(0, 20), [10, 10])[0].indices
    assert list(a) == list(b)


def test_random_split_errors_and_warning():
    with pytest.raises(ValueError, match="Sum of input lengths does not equal the length of the input dataset"):
        random_split(Range(0, 10), [3, 3])
    with pytest.raises(ValueError, match="Fraction at index 1 is not between 0 and 1"):
        random_split(Range(0, 10), [0.5, 1.5, -1.0])
    with pytest.warns(UserWarning) as rec:
        parts = random_split(Range(0, 2), [0.9, 0.05, 0.05])
    assert [str(w.message) for w in rec] == [
        f"Length of split at index {i} is 0. This might result in an empty dataset." for i in (1, 2)]
    # floor(1.8)=1, 0, 0; remainder 1 -> split 0
    assert [len(p) for p in parts] == [2, 0, 0]


def test_random_split_fraction_sum_close_to_one():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        parts = random_split(Range(0, 30), [0.1] * 10)
    assert [len(p) for p in parts] == [3] * 10
    assert math.isclose(sum([0.1] * 10), 1)
