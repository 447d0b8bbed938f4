"""nn.utils.rnn: PackedSequence and the pack/pad helpers against NumPy bookkeeping."""
import numpy as np
import pytest

import disttorch
from disttorch.nn.utils.rnn import (PackedSequence, invert_permutation, pack_padded_sequence, pack_sequence,
                                    pad_packed_sequence, pad_sequence, unpack_sequence, unpad_sequence)


def _ref_pack(x, lengths):
    """Time-major padded (T, B, *) with lengths sorted decreasingly -> (data, batch_sizes)."""
    rows, sizes = [], []
    for t in range(max(lengths)):
        active = [b for b in range(x.shape[1]) if lengths[b] > t]
        sizes.append(len(active))
        rows.extend(x[t, b] for b in active)
    return np.stack(rows), sizes


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("trail", [(), (2,), (2, 3)])
def test_pack_padded_sorted(batch_first, trail):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 3) + trail)
    lengths = [4, 2, 1]
    inp = disttorch.tensor(x.swapaxes(0, 1) if batch_first else x)
    p = pack_padded_sequence(inp, lengths, batch_first=batch_first)
    data, sizes = _ref_pack(x, lengths)
    np.testing.assert_array_equal(p.data.numpy(), data)
    assert p.batch_sizes.tolist() == sizes and p.batch_sizes.dtype == disttorch.int64
    assert p.sorted_indices is None and p.unsorted_indices is None
    padded, lens = pad_packed_sequence(p, batch_first=batch_first, padding_value=-1.0)
    ref = x.copy()
    for b, n in enumerate(lengths):
        ref[n:, b] = -1.0
    np.testing.assert_array_equal(padded.numpy(), ref.swapaxes(0, 1) if batch_first else ref)
    assert lens.tolist() == lengths and lens.dtype == disttorch.int64


def test_pack_unsorted_keeps_order():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(3, 4, 2))
    lengths = disttorch.tensor([1, 3, 2, 3])
    p = pack_padded_sequence(disttorch.tensor(x), lengths, enforce_sorted=False)
    order = p.sorted_indices.tolist()
    assert sorted(order) == [0, 1, 2, 3]
    assert [lengths.tolist()[i] for i in order] == [3, 3, 2, 1]
    assert p.unsorted_indices.tolist() == np.argsort(order).tolist()
    data, sizes = _ref_pack(x[:, order], [3, 3, 2, 1])
    np.testing.assert_array_equal(p.data.numpy(), data)
    assert p.batch_sizes.tolist() == sizes
    padded, lens = pad_packed_sequence(p, total_length=5)
    assert lens.tolist() == [1, 3, 2, 3] and tuple(padded.shape) == (5, 4, 2)
    ref = np.zeros((5, 4, 2))
    for b, n in enumerate([1, 3, 2, 3]):
        ref[:n, b] = x[:n, b]
    np.testing.assert_array_equal(padded.numpy(), ref)


def test_pack_grad_round_trip():
    rng = np.random.default_rng(2)

    def f(x):
        p = pack_padded_sequence(x, [2, 3, 1], batch_first=True, enforce_sorted=False)
        return pad_packed_sequence(p, batch_first=True, padding_value=0.5)[0]
    assert disttorch.autograd.gradcheck(f, (disttorch.tensor(rng.normal(size=(3, 3, 2)), requires_grad=True),))


def test_pack_sequence_and_unpack():
    seqs = [disttorch.tensor(np.arange(n * 2, dtype=np.float64).reshape(n, 2) + 10 * n) for n in (2, 4, 1)]
    p = pack_sequence(seqs, enforce_sorted=False)
    assert p.batch_sizes.tolist() == [3, 2, 1, 1]
    out = unpack_sequence(p)
    assert len(out) == 3
    for a, b in zip(out, seqs):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    with pytest.raises(RuntimeError, match="must be sorted in decreasing order when `enforce_sorted` is True"):
        pack_sequence(seqs)


@pytest.mark.parametrize("batch_first", [False, True])
def test_unpad_sequence(batch_first):
    seqs = [disttorch.randn(n, 3) for n in (3, 1, 2)]
    padded = pad_sequence(seqs, batch_first=batch_first)
    out = unpad_sequence(padded, disttorch.tensor([3, 1, 2]), batch_first=batch_first)
    for a, b in zip(out, seqs):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_pack_errors():
    x = disttorch.randn(3, 2, 1)
    with pytest.raises(RuntimeError, match="`lengths` array must be sorted in decreasing order"):
        pack_padded_sequence(x, [1, 3])
    with pytest.raises(RuntimeError, match=r"Expected `len\(lengths\)` to be equal to batch_size, but got 3 "
                                           r"\(batch_size=2\)"):
        pack_padded_sequence(x, [3, 2, 1])
    with pytest.raises(RuntimeError, match="Length of all samples has to be greater than 0"):
        pack_padded_sequence(x, [3, 0])
    p = pack_padded_sequence(x, [3, 2])
    with pytest.raises(ValueError, match="Expected total_length to be at least the length of the longest sequence "
                                         "in input, but got total_length=2 and max sequence length being 3"):
        pad_packed_sequence(p, total_length=2)


def test_packed_sequence_tuple_and_casts():
    p = pack_padded_sequence(disttorch.randn(2, 2, 3), [2, 1])
    data, batch_sizes, s, u = p
    assert data is p.data and p._fields == ("data", "batch_sizes", "sorted_indices", "unsorted_indices")
    q = p.double()
    assert isinstance(q, PackedSequence) and q.data.dtype == disttorch.float64
    assert q.batch_sizes is p.batch_sizes
    assert p.to(disttorch.float32) is p and not p.is_cuda
    legacy = PackedSequence((p.data, p.batch_sizes))
    assert legacy.batch_sizes is p.batch_sizes
    perm = disttorch.tensor([2, 0, 1])
    assert invert_permutation(perm).tolist() == [1, 2, 0] and invert_permutation(None) is None
