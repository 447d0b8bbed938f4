"""Embedding and EmbeddingBag layers (disttorch.nn.modules.sparse)."""
import numpy as np
import pytest

import disttorch as torch
from disttorch.nn.modules.sparse import Embedding, EmbeddingBag
from tests.helpers import assert_close, rand_array


def idx(a):
    return torch.tensor(np.asarray(a, dtype=np.int64))


# ---- Embedding ----------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(4,), (2, 3), (), (0,), (2, 0, 1)])
def test_embedding_forward_is_row_lookup(shape):
    m = Embedding(10, 3)
    ids = np.random.default_rng(0).integers(0, 10, size=shape)
    out = m(idx(ids))
    assert_close(out, m.weight.detach().numpy()[ids], check_dtype=torch.float32)
    assert tuple(out.shape) == shape + (3,)


def test_embedding_int32_indices():
    m = Embedding(5, 2)
    out = m(torch.tensor(np.array([1, 4], dtype=np.int32)))
    assert_close(out, m.weight.detach().numpy()[[1, 4]])


def test_embedding_gradient_accumulates_rows_and_skips_padding():
    m = Embedding(5, 2, padding_idx=1).double()
    ids = idx([[0, 1, 3], [3, 1, 0]])
    g = rand_array((2, 3, 2))
    m(ids).backward(torch.tensor(g))
    expected = np.zeros((5, 2))
    np.add.at(expected, ids.numpy().ravel(), g.reshape(-1, 2))
    expected[1] = 0
    assert_close(m.weight.grad, expected)
    plain = Embedding(5, 2).double()  # the padding row's zero gradient is by design, not the derivative
    assert torch.autograd.gradcheck(lambda w: plain(ids), (plain.weight,))


def test_embedding_scale_grad_by_freq():
    m = Embedding(4, 1, scale_grad_by_freq=True).double()
    ids = idx([0, 0, 2])
    m(ids).sum().backward()
    assert_close(m.weight.grad, [[1.0], [0.0], [1.0], [0.0]])


def test_embedding_init_statistics_and_padding_row():
    torch.manual_seed(0)
    m = Embedding(1000, 50, padding_idx=3)
    w = m.weight.detach().numpy()
    np.testing.assert_array_equal(w[3], np.zeros(50))
    rest = np.delete(w, 3, axis=0)
    assert abs(rest.mean()) < 0.02 and abs(rest.std() - 1.0) < 0.02
    m.reset_parameters()
    np.testing.assert_array_equal(m.weight.detach().numpy()[3], np.zeros(50))


@pytest.mark.parametrize("pad,expected", [(None, None), (0, 0), (4, 4), (-1, 4), (-5, 0)])
def test_embedding_padding_idx_normalised(pad, expected):
    m = Embedding(5, 2, padding_idx=pad)
    assert m.padding_idx == expected
    if expected is not None:
        np.testing.assert_array_equal(m.weight.detach().numpy()[expected], [0.0, 0.0])


@pytest.mark.parametrize("pad", [5, -6])
def test_embedding_padding_idx_out_of_range(pad):
    with pytest.raises(AssertionError, match="Padding_idx must be within num_embeddings"):
        Embedding(5, 2, padding_idx=pad)


def test_embedding_max_norm_renormalises_looked_up_rows():
    w = torch.tensor([[3.0, 4.0], [0.3, 0.4], [6.0, 8.0]])
    m = Embedding.from_pretrained(w.clone(), max_norm=1.0)
    out = m(idx([0, 1]))
    assert_close(out, [[0.6, 0.8], [0.3, 0.4]], rtol=1e-5)
    assert_close(m.weight[2], [6.0, 8.0])  # not looked up: untouched


def test_embedding_from_pretrained():
    w = torch.tensor([[1.0, 2.3, 3.0], [4.0, 5.1, 6.3]])
    m = Embedding.from_pretrained(w)
    assert_close(m(idx([1])), [[4.0, 5.1, 6.3]])
    assert m.weight.requires_grad is False
    assert (m.num_embeddings, m.embedding_dim) == (2, 3)
    w[0, 0] = 9.0  # shares memory with the given tensor, as PyTorch
    assert float(m.weight[0, 0]) == 9.0
    m2 = Embedding.from_pretrained(w, freeze=False, padding_idx=-1)
    assert m2.weight.requires_grad is True and m2.padding_idx == 1
    with pytest.raises(AssertionError, match="Embeddings parameter is expected to be 2-dimensional"):
        Embedding.from_pretrained(torch.ones(3))


def test_embedding_weight_argument_and_freeze():
    w = torch.randn(4, 2)
    m = Embedding(4, 2, _weight=w, _freeze=True)
    assert m.weight.requires_grad is False
    np.testing.assert_array_equal(m.weight.detach().numpy(), w.numpy())
    with pytest.raises(AssertionError, match="Shape of weight does not match num_embeddings and embedding_dim"):
        Embedding(3, 2, _weight=w)


def test_embedding_factory_kwargs_state_dict_repr():
    m = Embedding(10, 3, dtype=torch.float64, device="cpu")
    assert m.weight.dtype == torch.float64 and tuple(m.weight.shape) == (10, 3)
    assert list(m.state_dict()) == ["weight"]
    m2 = Embedding(10, 3, dtype=torch.float64)
    m2.load_state_dict(m.state_dict())
    np.testing.assert_array_equal(m2(idx([1, 2])).detach().numpy(), m(idx([1, 2])).detach().numpy())
    assert repr(Embedding(10, 3)) == "Embedding(10, 3)"
    assert repr(Embedding(10, 3, padding_idx=-1, max_norm=1.0, norm_type=1.0, scale_grad_by_freq=True,
                          sparse=True)) == \
        "Embedding(10, 3, padding_idx=9, max_norm=1.0, norm_type=1.0, scale_grad_by_freq=True, sparse=True)"


def test_embedding_errors():
    m = Embedding(5, 2)
    with pytest.raises(IndexError):
        m(idx([5]))
    with pytest.raises(RuntimeError):
        m(torch.tensor([1.0]))


# ---- EmbeddingBag -------------------------------------------------------------------------------
@pytest.mark.parametrize("mode,fn", [("sum", np.sum), ("mean", np.mean), ("max", np.max)])
def test_embedding_bag_offsets(mode, fn):
    m = EmbeddingBag(10, 3, mode=mode)
    w = m.weight.detach().numpy()
    ids = [1, 2, 4, 5, 4, 3, 2, 9]
    out = m(idx(ids), idx([0, 4]))
    ref = np.stack([fn(w[ids[:4]], axis=0), fn(w[ids[4:]], axis=0)])
    assert_close(out, ref, rtol=1e-5, atol=1e-6)
    out2d = m(idx([ids[:4], ids[4:]]))
    assert_close(out2d, ref, rtol=1e-5, atol=1e-6)


def test_embedding_bag_per_sample_weights_padding_and_last_offset():
    m = EmbeddingBag(6, 2, mode="sum", include_last_offset=True, padding_idx=0).double()
    w = m.weight.detach().numpy()
    np.testing.assert_array_equal(w[0], [0.0, 0.0])
    ids, psw = [1, 0, 3, 2, 5], rand_array((5,))
    out = m(idx(ids), idx([0, 2, 5]), per_sample_weights=torch.tensor(psw))
    ref = np.stack([w[1] * psw[0], w[3] * psw[2] + w[2] * psw[3] + w[5] * psw[4]])
    assert_close(out, ref)
    assert torch.autograd.gradcheck(lambda wt: m(idx(ids), idx([0, 2, 5])), (m.weight,))


def test_embedding_bag_init_repr_state_and_from_pretrained():
    torch.manual_seed(0)
    m = EmbeddingBag(500, 40)
    w = m.weight.detach().numpy()
    assert abs(w.mean()) < 0.03 and abs(w.std() - 1.0) < 0.03
    assert repr(EmbeddingBag(10, 3)) == "EmbeddingBag(10, 3, mode='mean')"
    assert repr(EmbeddingBag(10, 3, mode="sum", padding_idx=-1, max_norm=2.0)) == \
        "EmbeddingBag(10, 3, max_norm=2.0, mode='sum', padding_idx=9)"
    assert list(m.state_dict()) == ["weight"]
    pre = EmbeddingBag.from_pretrained(torch.tensor([[1.0, 2.0], [3.0, 4.0]]), mode="sum")
    assert pre.weight.requires_grad is False
    assert_close(pre(idx([[0, 1]])), [[4.0, 6.0]])
    with pytest.raises(AssertionError, match="padding_idx must be within num_embeddings"):
        EmbeddingBag(3, 2, padding_idx=3)
    with pytest.raises(ValueError, match="mode has to be one of sum, mean or max"):
        EmbeddingBag(3, 2, mode="median")(idx([[0, 1]]))
