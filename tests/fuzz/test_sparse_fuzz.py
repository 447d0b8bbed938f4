"""Fuzz sparse COO construction and the kernels behind it with random shapes, indices and values.

``sparse_coo_tensor`` takes indices from user data (edge lists read from files): out-of-range or negative
indices must raise a RuntimeError naming the dim, never wrap around or write outside an array. Valid
inputs must agree with a NumPy scatter-add reference through coalesce, to_dense, to_sparse, spmm,
sparse.sum and softmax. Example counts scale with ``fuzz_support.examples`` (``make fuzz`` runs 50x).
"""
from __future__ import annotations

import numpy as np
import pytest
from fuzz_support import settings_for
from hypothesis import given
from hypothesis import strategies as st

import disttorch as torch


@st.composite
def coo_inputs(draw):
    sd = draw(st.integers(1, 3))
    dd = draw(st.integers(0, 1))
    shape = tuple(draw(st.lists(st.integers(1, 5), min_size=sd + dd, max_size=sd + dd)))
    nnz = draw(st.integers(0, 12))
    bad = draw(st.booleans())
    lo, hi = (-3, 7) if bad else (0, 4)
    idx = np.array([[draw(st.integers(lo, hi)) for _ in range(nnz)] for _ in range(sd)], dtype=np.int64)
    idx = idx.reshape(sd, nnz)
    vals = np.array(draw(st.lists(st.integers(-4, 4), min_size=nnz * max(1, shape[sd] if dd else 1),
                                  max_size=nnz * max(1, shape[sd] if dd else 1))), dtype=np.float64)
    vals = vals.reshape((nnz,) + shape[sd:]) / 2.0
    return idx, vals, shape


def _in_bounds(idx, shape):
    sd = idx.shape[0]
    return bool(np.all(idx >= 0) and np.all(idx < np.array(shape[:sd])[:, None]))


@settings_for(60)
@given(coo_inputs())
def test_construction_checks_bounds_and_kernels_agree(case):
    idx, vals, shape = case
    if not _in_bounds(idx, shape):
        with pytest.raises(RuntimeError, match="negative index|size is inconsistent with indices"):
            torch.sparse_coo_tensor(idx, vals, shape)
        return
    s = torch.sparse_coo_tensor(idx, vals, shape)
    ref = np.zeros(shape)
    np.add.at(ref, tuple(idx), vals)
    assert np.array_equal(s.to_dense().numpy(), ref)  # dyadic values: sums are exact in any order
    c = s.coalesce()
    assert c.is_coalesced() and np.array_equal(c.to_dense().numpy(), ref)
    if c._nnz() > 1:
        keys = np.ravel_multi_index(tuple(c.indices().numpy()), shape[:idx.shape[0]])
        assert np.all(np.diff(keys) > 0)
    back = torch.tensor(ref).to_sparse(idx.shape[0])
    assert np.array_equal(back.to_dense().numpy(), ref)
    assert np.array_equal(torch.sparse.sum(s).numpy(), ref.sum())
    if idx.shape[0] == 2 and len(shape) == 2:
        x = np.arange(shape[1] * 3, dtype=np.float64).reshape(shape[1], 3)
        assert np.array_equal(torch.spmm(s, torch.tensor(x)).numpy(), ref @ x)


@settings_for(30)
@given(coo_inputs(), st.integers(0, 3))
def test_softmax_rows_sum_to_one_over_specified_elements(case, dim_seed):
    idx, vals, shape = case
    if not _in_bounds(idx, shape) or idx.shape[1] == 0:
        return
    s = torch.sparse_coo_tensor(idx, vals, shape).coalesce()
    dim = dim_seed % len(shape)
    out = torch.sparse.softmax(s, dim)
    assert out.is_sparse and np.array_equal(out.indices().numpy(), s.indices().numpy())
    total = torch.sparse.sum(out, dim)
    dense_total = total.to_dense().numpy() if total.is_sparse else total.numpy()
    present = np.zeros(shape, dtype=bool)
    present[tuple(s.indices().numpy())] = True
    lines = present.any(axis=dim)
    np.testing.assert_allclose(dense_total[lines], 1.0, rtol=1e-12)
