"""A two-layer graph convolutional network in the style of the common Kipf & Welling scripts.

The graph is synthetic (two communities, the label of a node is its community), the normalised
adjacency is built with scipy.sparse and converted with the legacy ``torch.sparse.FloatTensor``
constructor, and every forward multiplies it with ``torch.spmm``. Prints one JSON line.
"""
import json
import math
import sys
import warnings

import numpy as np
import scipy.sparse as sp

import disttorch as torch
import disttorch.nn as nn
import disttorch.nn.functional as F
import disttorch.optim as optim
import disttorch.sparse  # noqa: F401  (scripts import the submodule)

warnings.filterwarnings("ignore", category=UserWarning)  # the legacy sparse constructor is deprecated


class GraphConvolution(nn.Module):
    def __init__(self, in_features, out_features, bias=True):
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.weight = nn.Parameter(torch.FloatTensor(in_features, out_features))
        if bias:
            self.bias = nn.Parameter(torch.FloatTensor(out_features))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self):
        stdv = 1.0 / math.sqrt(self.weight.size(1))
        self.weight.data.uniform_(-stdv, stdv)
        if self.bias is not None:
            self.bias.data.uniform_(-stdv, stdv)

    def forward(self, input, adj):
        support = torch.mm(input, self.weight)
        output = torch.spmm(adj, support)
        if self.bias is not None:
            return output + self.bias
        return output


class GCN(nn.Module):
    def __init__(self, nfeat, nhid, nclass, dropout):
        super().__init__()
        self.gc1 = GraphConvolution(nfeat, nhid)
        self.gc2 = GraphConvolution(nhid, nclass)
        self.dropout = dropout

    def forward(self, x, adj):
        x = F.relu(self.gc1(x, adj))
        x = F.dropout(x, self.dropout, training=self.training)
        x = self.gc2(x, adj)
        return F.log_softmax(x, dim=1)


def normalize(mx):
    rowsum = np.array(mx.sum(1))
    r_inv = np.power(rowsum, -1.0).flatten()
    r_inv[np.isinf(r_inv)] = 0.0
    return sp.diags(r_inv).dot(mx)


def sparse_mx_to_torch_sparse_tensor(sparse_mx):
    sparse_mx = sparse_mx.tocoo().astype(np.float32)
    indices = torch.from_numpy(np.vstack((sparse_mx.row, sparse_mx.col)).astype(np.int64))
    values = torch.from_numpy(sparse_mx.data)
    shape = torch.Size(sparse_mx.shape)
    return torch.sparse.FloatTensor(indices, values, shape)


def accuracy(output, labels):
    preds = output.max(1)[1].type_as(labels)
    correct = preds.eq(labels).double()
    return correct.sum() / len(labels)


def load_data(rng, n_per_class=40, nfeat=30):
    labels = np.repeat([0, 1], n_per_class)
    n = labels.size
    same = labels[:, None] == labels[None, :]
    p = np.where(same, 0.25, 0.01)
    upper = np.triu(rng.random((n, n)) < p, 1)
    edges = np.argwhere(upper)
    adj = sp.coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(n, n), dtype=np.float32)
    adj = adj + adj.T.multiply(adj.T > adj) - adj.multiply(adj.T > adj)
    adj = normalize(adj + sp.eye(n))
    features = rng.normal(0.0, 1.0, (n, nfeat)).astype(np.float32)
    features[:, 0] += np.where(labels == 0, 0.6, -0.6)  # a weak signal the graph smooths into a strong one
    features = normalize(sp.csr_matrix(np.abs(features)))
    idx = rng.permutation(n)
    return (sparse_mx_to_torch_sparse_tensor(adj), torch.FloatTensor(np.array(features.todense())),
            torch.LongTensor(labels), torch.LongTensor(idx[:20]), torch.LongTensor(idx[20:]))


def main():
    torch.manual_seed(42)
    rng = np.random.default_rng(42)
    adj, features, labels, idx_train, idx_test = load_data(rng)
    model = GCN(nfeat=features.shape[1], nhid=16, nclass=int(labels.max()) + 1, dropout=0.5)
    optimizer = optim.Adam(model.parameters(), lr=0.01, weight_decay=5e-4)
    losses = []
    for epoch in range(150):
        model.train()
        optimizer.zero_grad()
        output = model(features, adj)
        loss_train = F.nll_loss(output[idx_train], labels[idx_train])
        loss_train.backward()
        optimizer.step()
        losses.append(loss_train.item())
    model.eval()
    output = model(features, adj)
    acc_test = accuracy(output[idx_test], labels[idx_test])
    print(json.dumps({"layout": str(adj.layout), "is_sparse": adj.is_sparse, "nnz": adj._nnz(),
                      "first_loss": losses[0], "last_loss": float(np.mean(losses[-10:])),
                      "test_acc": acc_test.item()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
