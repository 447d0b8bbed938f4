"""Round trips between dense and sparse COO tensors, as data-preparation scripts write them.

Prints one JSON line with what a reader can check by hand against the dense matrix below.
"""
import json

import disttorch as torch

dense = torch.tensor([[0.0, 2.0, 0.0, 0.0],
                      [1.0, 0.0, 0.0, 3.0],
                      [0.0, 0.0, 0.0, 0.0]])
sp = dense.to_sparse()
assert sp.is_sparse and sp.layout == torch.sparse_coo and dense.layout == torch.strided
assert sp.is_coalesced()
back = sp.to_dense()

# An edge list with a repeated edge: sparse_coo_tensor keeps both until coalesce() sums them.
edge_index = torch.LongTensor([[0, 1, 1, 2, 1], [1, 0, 3, 2, 3]])
weights = torch.FloatTensor([1.0, 1.0, 1.0, 5.0, 1.0])
adj = torch.sparse_coo_tensor(edge_index, weights, (3, 4))
try:
    adj.indices()
    uncoalesced_error = None
except RuntimeError as e:
    uncoalesced_error = str(e)
adj = adj.coalesce()

rows = torch.sparse.sum(adj, dim=1).to_dense()
x = torch.arange(8.0).view(4, 2)
prod = torch.sparse.mm(adj, x)
row_softmax = torch.sparse.softmax(adj, dim=1).to_dense()

hybrid = torch.tensor([[[0.0, 0.0], [1.0, 2.0]], [[0.0, 0.0], [0.0, 0.0]]]).to_sparse(2)

print(json.dumps({
    "sparse_indices": sp.indices().tolist(),
    "sparse_values": sp.values().tolist(),
    "roundtrip_equal": bool(torch.equal(back, dense)),
    "uncoalesced_error": uncoalesced_error,
    "coalesced_nnz": adj._nnz(),
    "coalesced_values": adj.values().tolist(),
    "row_sums": rows.tolist(),
    "product": prod.tolist(),
    "row_softmax_row1": row_softmax[1].tolist(),
    "hybrid": [hybrid.sparse_dim(), hybrid.dense_dim(), hybrid._nnz(), hybrid.values().tolist()],
    "type": adj.type(),
}))
