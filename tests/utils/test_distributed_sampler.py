"""DistributedSampler against PyTorch's documented index formula (padding, drop_last, rank striding)."""
from __future__ import annotations

import math

import pytest

import disttorch as torch
from disttorch.utils.data import DataLoader, TensorDataset
from disttorch.utils.data.distributed import DistributedEvalSampler, DistributedSampler


class Sized:
    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n


def reference(order, n_replicas, rank, drop_last):
    """PyTorch's formula: pad by repeating from the start (or truncate), then take every R-th from rank."""
    n = len(order)
    if drop_last and n % n_replicas:
        num = math.ceil((n - n_replicas) / n_replicas)
    else:
        num = math.ceil(n / n_replicas)
    total = num * n_replicas
    idx = list(order)
    if not drop_last:
        while len(idx) < total:
            idx += list(order)[:total - len(idx)]
    idx = idx[:total]
    return idx[rank:total:n_replicas]


# n=0 without drop_last is left out: PyTorch cannot pad an empty dataset either
@pytest.mark.parametrize("n,drop_last", [(0, True)] + [(n, d) for n in (1, 5, 10, 11) for d in (False, True)])
@pytest.mark.parametrize("replicas", [1, 2, 3, 4])
def test_unshuffled_matches_reference(n, replicas, drop_last):
    for rank in range(replicas):
        s = DistributedSampler(Sized(n), replicas, rank, shuffle=False, drop_last=drop_last)
        got = list(s)
        assert got == reference(range(n), replicas, rank, drop_last)
        assert len(s) == len(got)


def test_padding_longer_than_dataset():
    # 2 samples over 5 ranks: the padding repeats the list more than once
    got = [list(DistributedSampler(Sized(2), 5, r, shuffle=False)) for r in range(5)]
    assert got == [[0], [1], [0], [1], [0]]


@pytest.mark.parametrize("n,replicas", [(10, 3), (7, 2)])
def test_shuffled_is_seeded_permutation(n, replicas):
    samplers = [DistributedSampler(Sized(n), replicas, r, shuffle=True, seed=5) for r in range(replicas)]
    g = torch.Generator().manual_seed(5)
    order = torch.randperm(n, generator=g).tolist()
    for r, s in enumerate(samplers):
        assert list(s) == reference(order, replicas, r, False)
        assert list(s) == list(s)  # same epoch, same order
    # ranks agree on the permutation, so together they cover every sample
    covered = set(i for s in samplers for i in s)
    assert covered == set(range(n))
    for s in samplers:
        s.set_epoch(1)
    g1 = torch.Generator().manual_seed(6)
    order1 = torch.randperm(n, generator=g1).tolist()
    assert list(samplers[0]) == reference(order1, replicas, 0, False)
    assert order1 != order


def test_shuffle_does_not_touch_global_rng():
    torch.manual_seed(0)
    a = torch.rand(1).item()
    torch.manual_seed(0)
    list(DistributedSampler(Sized(10), 2, 0))
    assert torch.rand(1).item() == a


@pytest.mark.parametrize("n,replicas", [(10, 3), (2, 4), (9, 3), (0, 2)])
@pytest.mark.parametrize("shuffle", [False, True])
def test_eval_sampler_never_duplicates(n, replicas, shuffle):
    parts = [list(DistributedEvalSampler(Sized(n), replicas, r, shuffle=shuffle)) for r in range(replicas)]
    flat = [i for p in parts for i in p]
    assert sorted(flat) == list(range(n))
    assert [len(p) for p in parts] == [len(range(r, n, replicas)) for r in range(replicas)]
    same = [list(DistributedSampler(Sized(n), replicas, r, shuffle=shuffle, pad=False)) for r in range(replicas)]
    assert same == parts


def test_invalid_arguments_and_defaults(monkeypatch):
    with pytest.raises(ValueError, match="Invalid rank 2"):
        DistributedSampler(Sized(4), 2, 2)
    with pytest.raises(ValueError, match="Invalid rank -1"):
        DistributedSampler(Sized(4), 2, -1)
    with pytest.raises(ValueError, match="num_replicas"):
        DistributedSampler(Sized(4), 0, 0)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.delenv("RANK", raising=False)
    with pytest.raises(RuntimeError, match="distributed package"):
        DistributedSampler(Sized(4))
    monkeypatch.setenv("WORLD_SIZE", "3")
    monkeypatch.setenv("RANK", "1")
    s = DistributedSampler(Sized(6), shuffle=False)
    assert (s.num_replicas, s.rank, list(s)) == (3, 1, [1, 4])


def test_with_dataloader_and_lazy_export():
    from disttorch.utils import data

    assert data.DistributedSampler is DistributedSampler
    ds = TensorDataset(torch.arange(10))
    loader = DataLoader(ds, batch_size=2, sampler=DistributedSampler(ds, 2, 1, shuffle=False))
    assert [b[0].tolist() for b in loader] == [[1, 3], [5, 7], [9]]
