"""Compatibility programs for sparse COO tensors and the legacy typed constructors (tests/compat/progs/sparse_*.py).

Each program is written as a PyTorch script with ``import disttorch as torch``; it runs in a subprocess and
its printed JSON is checked against expectations computed here independently (by hand or with NumPy).
"""
import math

import numpy as np
from compat_support import run_program



def test_gcn_with_spmm_trains():
    out = run_program("sparse_gcn.py")
    assert out["layout"].endswith("sparse_coo") and out["is_sparse"] is True
    assert out["nnz"] > 80  # at least the self loops of the 80 nodes
    # Two well-separated communities: the GCN must learn them (PyTorch reaches 1.0 on this graph).
    assert out["test_acc"] >= 0.9
    assert out["last_loss"] < 0.6 * out["first_loss"]


def test_dense_sparse_round_trips():
    out = run_program("sparse_convert.py")
    assert out["sparse_indices"] == [[0, 1, 1], [1, 0, 3]]
    assert out["sparse_values"] == [2.0, 1.0, 3.0]
    assert out["roundtrip_equal"] is True
    assert out["uncoalesced_error"] == "Cannot get indices on an uncoalesced tensor, please call .coalesce() first"
    # Edges (0,1) (1,0) (1,3) (2,2) (1,3): the repeated (1,3) is summed.
    assert out["coalesced_nnz"] == 4
    assert out["coalesced_values"] == [1.0, 1.0, 2.0, 5.0]
    assert out["row_sums"] == [1.0, 3.0, 5.0]
    x = np.arange(8.0).reshape(4, 2)
    a = np.zeros((3, 4))
    a[0, 1], a[1, 0], a[1, 3], a[2, 2] = 1, 1, 2, 5
    assert np.array_equal(np.array(out["product"]), a @ x)
    e1, e2 = math.exp(1.0), math.exp(2.0)
    np.testing.assert_allclose(out["row_softmax_row1"], [e1 / (e1 + e2), 0, 0, e2 / (e1 + e2)], rtol=1e-6)
    assert out["hybrid"] == [2, 1, 1, [[1.0, 2.0]]]
    assert out["type"] == "torch.sparse.FloatTensor"


def _numpy_two_layer(rng):
    """The legacy-types program's training loop, repeated in float32 NumPy."""
    f = np.float32
    x = rng.standard_normal((16, 10)).astype(f)
    y = rng.standard_normal((16, 3)).astype(f)
    w1 = (rng.standard_normal((10, 8)) * 0.5).astype(f)
    w2 = (rng.standard_normal((8, 3)) * 0.5).astype(f)
    losses = []
    for _ in range(200):
        h = x @ w1
        hr = np.maximum(h, 0)
        pred = hr @ w2
        diff = pred - y
        losses.append(float((diff ** 2).sum()))
        g = 2 * diff
        gw2 = hr.T @ g
        gh = (g @ w2.T) * (h > 0)
        gw1 = x.T @ gh
        w1 = w1 - f(1e-2) * gw1
        w2 = w2 - f(1e-2) * gw2
    return losses


def test_legacy_typed_constructors_script():
    out = run_program("sparse_legacy_types.py")
    assert out["x_is_float"] is True and out["x_is_double"] is False and out["x_is_variable"] is True
    assert out["x_type"] == "torch.FloatTensor" and out["long_type"] == "torch.LongTensor"
    assert out["zeros_shape"] == [2, 3] and out["from_list"] == 10.0
    assert out["byte_mask"] == [True, False, True]
    assert out["cast_by_class"] is True and out["cast_by_name"] is True
    ref = _numpy_two_layer(np.random.default_rng(7))
    np.testing.assert_allclose(out["first_loss"], ref[0], rtol=1e-5)
    np.testing.assert_allclose(out["last_loss"], ref[-1], rtol=1e-3)
    logits = np.array([[2.0, 0.5, 0.1], [0.1, 0.2, 3.0], [0.3, 1.5, 0.2], [0.0, 0.0, 1.0]])
    target = [0, 2, 1, 2]
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    np.testing.assert_allclose(out["ce"], -np.mean(np.log(p[range(4), target])), rtol=1e-6)
    grad0 = p[0].copy()
    grad0[0] -= 1
    np.testing.assert_allclose(out["ce_grad_row0"], grad0 / 4, rtol=1e-5, atol=1e-7)
