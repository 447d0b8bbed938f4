"""Sequential, ModuleList, ModuleDict, ParameterList and ParameterDict."""
from collections import OrderedDict

import numpy as np
import pytest

import disttorch as torch
from disttorch import nn


class Scale(nn.Module):
    def __init__(self, k: float) -> None:
        super().__init__()
        self.k = k

    def forward(self, x):
        return x * self.k

    def extra_repr(self) -> str:
        return f"k={self.k}"


def names(m):
    return list(m._modules)


# ---- Sequential -------------------------------------------------------------------------------
def test_sequential_forward_and_indexing():
    a, b, c = Scale(2.0), Scale(3.0), Scale(5.0)
    s = nn.Sequential(a, b, c)
    np.testing.assert_allclose(s(torch.ones(2)).numpy(), [30.0, 30.0])
    assert len(s) == 3 and list(s) == [a, b, c]
    assert s[0] is a and s[-1] is c and s[-3] is a
    sub = s[1:]
    assert type(sub) is nn.Sequential and list(sub) == [b, c] and names(sub) == ["1", "2"]
    assert list(s[::-1]) == [c, b, a]
    with pytest.raises(IndexError, match="index 3 is out of range"):
        s[3]
    with pytest.raises(IndexError, match="index -4 is out of range"):
        s[-4]


def test_sequential_ordered_dict_constructor():
    s = nn.Sequential(OrderedDict([("first", Scale(2.0)), ("second", Scale(3.0))]))
    assert names(s) == ["first", "second"]
    assert s.second is s[1]
    np.testing.assert_allclose(s(torch.ones(1)).numpy(), [6.0])
    assert type(s[0:1]) is nn.Sequential and names(s[0:1]) == ["first"]


def test_sequential_mutation():
    a, b, c, d = (Scale(float(i)) for i in range(4))
    s = nn.Sequential(a, b)
    assert s.append(c) is s and names(s) == ["0", "1", "2"]
    s.insert(0, d)
    assert list(s) == [d, a, b, c]
    s.insert(-1, d)
    assert list(s) == [d, a, b, d, c]
    del s[0]
    assert list(s) == [a, b, d, c] and names(s) == ["0", "1", "2", "3"]
    del s[1:3]
    assert list(s) == [a, c] and names(s) == ["0", "1"]
    s[-1] = b
    assert list(s) == [a, b]
    assert s.pop(0) is a and list(s) == [b]
    s.extend([c, d])
    assert list(s) == [b, c, d]
    with pytest.raises(IndexError, match="Index out of range: 9"):
        s.insert(9, a)
    with pytest.raises(AssertionError):
        s.insert(0, 3)


def test_sequential_add_mul_iadd():
    a, b = Scale(1.0), Scale(2.0)
    s = nn.Sequential(a) + nn.Sequential(b)
    assert list(s) == [a, b]
    s += nn.Sequential(a)
    assert list(s) == [a, b, a] and names(s) == ["0", "1", "2"]
    assert list(nn.Sequential(a, b) * 2) == [a, b, a, b]
    assert list(2 * nn.Sequential(a)) == [a, a]
    with pytest.raises(ValueError, match="add operator supports only objects of Sequential class"):
        nn.Sequential(a) + [b]
    with pytest.raises(ValueError, match="Non-positive multiplication factor 0"):
        nn.Sequential(a) * 0


def test_sequential_registers_parameters_and_repr():
    s = nn.Sequential(Scale(1.0), nn.Sequential(Scale(2.0)))
    s[1].w = nn.Parameter(torch.ones(1))
    assert [n for n, _ in s.named_parameters()] == ["1.w"]
    assert repr(s) == ("Sequential(\n"
                       "  (0): Scale(k=1.0)\n"
                       "  (1): Sequential(\n"
                       "    (0): Scale(k=2.0)\n"
                       "  )\n"
                       ")")
    assert repr(nn.Sequential()) == "Sequential()"
    assert "0" not in dir(s)


# ---- ModuleList ---------------------------------------------------------------------------------
def test_module_list_basics():
    a, b, c = Scale(1.0), Scale(2.0), Scale(3.0)
    ml = nn.ModuleList([a, b])
    assert len(ml) == 2 and ml[0] is a and ml[-1] is b
    ml.append(c)
    ml.extend([a])
    assert list(ml) == [a, b, c, a] and names(ml) == ["0", "1", "2", "3"]
    ml.insert(1, c)
    assert list(ml) == [a, c, b, c, a]
    assert ml.index(b) == 2
    sub = ml[1:3]
    assert type(sub) is nn.ModuleList and list(sub) == [c, b]
    del ml[0]
    assert list(ml) == [c, b, c, a] and names(ml) == ["0", "1", "2", "3"]
    ml[0] = b
    assert ml[0] is b
    assert ml.pop(-1) is a and len(ml) == 3
    both = ml + [a]
    assert type(both) is nn.ModuleList and list(both) == [b, b, c, a]
    ml += [a]
    assert len(ml) == 4
    with pytest.raises(IndexError, match="index 10 is out of range"):
        ml[10]
    with pytest.raises(TypeError, match="ModuleList.extend should be called with an iterable, but got int"):
        ml.extend(3)
    with pytest.raises(NotImplementedError, match="missing the required \"forward\""):
        ml(torch.ones(1))


def test_module_list_parameters_and_repr():
    w = Scale(1.0)
    w.p = nn.Parameter(torch.ones(1))
    ml = nn.ModuleList([w, Scale(2.0), Scale(2.0), Scale(2.0), w])
    assert [n for n, _ in ml.named_parameters()] == ["0.p"]
    assert repr(ml) == ("ModuleList(\n"
                        "  (0): Scale(k=1.0)\n"
                        "  (1-3): 3 x Scale(k=2.0)\n"
                        "  (4): Scale(k=1.0)\n"
                        ")")
    assert repr(nn.ModuleList()) == "ModuleList()"


# ---- ModuleDict ---------------------------------------------------------------------------------
def test_module_dict():
    a, b, c = Scale(1.0), Scale(2.0), Scale(3.0)
    md = nn.ModuleDict({"x": a, "y": b})
    assert list(md) == ["x", "y"] and md["y"] is b and "x" in md and len(md) == 2
    md["z"] = c
    assert list(md.keys()) == ["x", "y", "z"] and list(md.values()) == [a, b, c]
    assert list(md.items())[2] == ("z", c)
    assert md.pop("x") is a and list(md) == ["y", "z"]
    md.update([("w", a)])
    md.update(nn.ModuleDict({"v": b}))
    assert list(md) == ["y", "z", "w", "v"]
    del md["y"]
    assert md.z is c
    with pytest.raises(ValueError, match="element #0 has length 3; 2 is required"):
        md.update([("a", a, b)])
    with pytest.raises(TypeError, match="should be called with an iterable of key/value pairs"):
        md.update(3)
    md.clear()
    assert len(md) == 0
    assert repr(nn.ModuleDict({"a": Scale(1.0)})) == "ModuleDict(\n  (a): Scale(k=1.0)\n)"


# ---- ParameterList -----------------------------------------------------------------------------
def test_parameter_list():
    t = torch.zeros(2, 3)
    p = nn.Parameter(torch.ones(4))
    pl = nn.ParameterList([t, p])
    assert len(pl) == 2 and pl[1] is p
    assert type(pl[0]) is nn.Parameter and pl[0].requires_grad
    pl[0].data.add_(1.0)
    assert t.numpy().sum() == 6.0  # wrapping shares memory
    pl.append(torch.ones(1, dtype=torch.float64))
    pl.extend([p])
    assert len(pl) == 4
    assert [n for n, _ in pl.named_parameters()] == ["0", "1", "2"]  # p appears twice, counted once
    sub = pl[1:3]
    assert type(sub) is nn.ParameterList and sub[0] is p
    assert list(pl)[-1] is p
    pl[-1] = torch.zeros(5)
    assert pl[3].shape == (5,)
    pl += [3]
    assert pl[4] == 3
    with pytest.raises(TypeError, match="ParameterList.extend should be called with an iterable, but got Tensor"):
        pl.extend(torch.ones(2))
    with pytest.raises(RuntimeError, match="ParameterList should not be called."):
        pl()


def test_parameter_list_repr():
    pl = nn.ParameterList([torch.zeros(2, 3), torch.zeros(1, dtype=torch.float64)])
    assert repr(pl) == ("ParameterList(\n"
                        "    (0): Parameter containing: [disttorch.float32 of size 2x3]\n"
                        "    (1): Parameter containing: [disttorch.float64 of size 1]\n"
                        ")")
    assert repr(nn.ParameterList()) == "ParameterList()"
    assert repr(nn.ParameterList([torch.zeros(2)])) == (
        "ParameterList(  (0): Parameter containing: [disttorch.float32 of size 2])")


# ---- ParameterDict -----------------------------------------------------------------------------
def test_parameter_dict():
    pd = nn.ParameterDict({"b": torch.ones(2), "a": torch.zeros(3)})
    assert list(pd) == ["a", "b"]  # a plain dict is inserted in sorted order
    assert type(pd["a"]) is nn.Parameter and "a" in pd and len(pd) == 2
    pd["c"] = nn.Parameter(torch.ones(1))
    pd.update(OrderedDict([("z", torch.ones(1)), ("y", torch.ones(1))]))
    assert list(pd.keys()) == ["a", "b", "c", "z", "y"]
    assert [n for n, _ in pd.named_parameters()] == ["a", "b", "c", "z", "y"]
    assert pd.get("nope", 7) == 7
    assert pd.pop("z").shape == (1,) and "z" not in pd
    k, v = pd.popitem()
    assert k == "y" and v.shape == (1,)
    assert pd.setdefault("d", torch.zeros(2)).shape == (2,)
    cp = pd.copy()
    assert list(cp) == list(pd) and cp["a"] is pd["a"]
    merged = pd | nn.ParameterDict({"e": torch.ones(1)})
    assert list(merged)[-1] == "e" and "e" not in pd
    pd |= {"e": torch.ones(1)}
    assert "e" in pd
    assert list(reversed(pd))[0] == "e"
    fk = pd.fromkeys(["p", "q"], torch.ones(1))
    assert list(fk) == ["p", "q"] and fk["p"].shape == (1,)  # each key wraps the tensor in its own Parameter
    del pd["a"]
    assert "a" not in pd and not hasattr(pd, "a")
    with pytest.raises(TypeError, match="not a string"):
        pd[1] = torch.ones(1)
    pd.clear()
    assert len(pd) == 0 and list(pd.parameters()) == []
    with pytest.raises(RuntimeError, match="ParameterDict should not be called."):
        pd(1)


def test_parameter_dict_repr_and_state_dict():
    pd = nn.ParameterDict({"w": torch.zeros(2, 3)})
    pd["n"] = "text"
    assert repr(pd) == ("ParameterDict(\n"
                        "    (w): Parameter containing: [torch.FloatTensor of size 2x3]\n"
                        "    (n): Object of type: str\n"
                        ")")
    assert list(pd.state_dict()) == ["w"]
