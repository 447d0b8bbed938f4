"""disttorch.utils.viz.make_dot: the backward graph as dot text."""
import re

import disttorch as torch
from disttorch.utils.viz import make_dot


def test_graph_of_a_linear_layer_names_nodes_leaves_and_edges():
    lin = torch.nn.Linear(3, 2)
    x = torch.randn(4, 3)
    y = lin(x).relu().sum()
    dot = make_dot(y, params=dict(lin.named_parameters())).source
    assert dot.startswith("digraph {") and dot.rstrip().endswith("}")
    labels = re.findall(r'label="([^"]*)"', dot)
    assert "SumBackward0" in labels and "ReluBackward0" in labels
    assert r"weight\n(2, 3)" in labels and r"bias\n(2)" in labels
    # every edge joins two declared nodes
    ids = set(re.findall(r"^\s+(\w+) \[label", dot, re.M))
    for a, b in re.findall(r"^\s+(\w+) -> (\w+)$", dot, re.M):
        assert a in ids and b in ids
    # the walk reaches each node once: as many backward nodes as the graph has (sum, relu, linear, 2 leaves)
    assert len(ids) == 1 + 5


def test_shared_subgraph_appears_once_and_attrs_show_when_asked(tmp_path):
    w = torch.randn(3, requires_grad=True)
    h = w * 2
    y = (h + h).sum()
    dot = make_dot(y, show_attrs=True)
    assert dot.source.count("MulBackward0") == 1
    path = dot.save(str(tmp_path / "g.gv"))
    assert open(path).read() == dot.source
