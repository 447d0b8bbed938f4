"""Property tests: broadcasting of binary ops and PyTorch's type promotion, checked against independent rules."""
import functools

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import disttorch

# ---- an independent statement of PyTorch's documented promotion rules ------------------------------------
# Categories: bool < integer < floating. Within a category the result is the smallest type holding both.
_INT_BITS = {"uint8": 8, "int8": 8, "int16": 16, "int32": 32, "int64": 64}
_FLOAT_BITS = {"float16": 16, "bfloat16": 16, "float32": 32, "float64": 64}
DTYPES = ["bool", *_INT_BITS, *_FLOAT_BITS]


def category(name: str) -> int:
    return 0 if name == "bool" else 1 if name in _INT_BITS else 2


def promote(a: str, b: str) -> str:
    if a == b:
        return a
    if category(a) != category(b):
        return a if category(a) > category(b) else b
    if category(a) == 2:
        if {a, b} == {"float16", "bfloat16"}:
            return "float32"  # neither holds the other
        return a if _FLOAT_BITS[a] >= _FLOAT_BITS[b] else b
    if "uint8" in (a, b):  # the only unsigned type: a signed type must be wider than 8 bits to hold it
        signed = b if a == "uint8" else a
        return signed if _INT_BITS[signed] > 8 else "int16"
    return a if _INT_BITS[a] >= _INT_BITS[b] else b


def expected_dtype(operands, default: str) -> str:
    """Dimensioned tensors > zero-dim tensors > Python scalars, unless a lower group has a higher category."""
    groups = {"dim": [], "zero": [], "scalar": []}
    for kind, name in operands:
        groups[kind].append(name)
    res = functools.reduce(promote, groups["dim"]) if groups["dim"] else None
    if groups["zero"]:
        z = functools.reduce(promote, groups["zero"])
        if res is None or category(z) > category(res):
            res = z if res is None else promote(res, z)
    if groups["scalar"]:
        s = functools.reduce(promote, groups["scalar"])
        if res is None:
            res = s
        elif category(s) > category(res):
            res = default if category(s) == 2 else s
    return res


_SCALARS = {"bool": True, "int64": 3, "float": 2.5}


def make_operand(kind: str, name: str, default: str):
    """A Python scalar, 0-d tensor or 1-d tensor of ``name``, and its (kind, dtype name) for the rule."""
    if kind == "scalar":
        value = _SCALARS[name]
        return value, ("scalar", default if name == "float" else name)
    dt = getattr(disttorch, name)
    t = disttorch.ones((), dtype=dt) if kind == "zero" else disttorch.ones(3, dtype=dt)
    return t, (kind, name)


operand = st.one_of(
    st.tuples(st.sampled_from(["dim", "zero"]), st.sampled_from(DTYPES)),
    st.tuples(st.just("scalar"), st.sampled_from(list(_SCALARS))),
)


@settings(max_examples=50, deadline=None)
@given(operand, operand, st.sampled_from(["float32", "float64"]))
def test_binary_result_dtype(op_a, op_b, default):
    assume(op_a[0] != "scalar" or op_b[0] != "scalar")  # binary ops need a tensor operand
    prev = disttorch.get_default_dtype()
    disttorch.set_default_dtype(getattr(disttorch, default))
    try:
        a, ka = make_operand(*op_a, default)
        b, kb = make_operand(*op_b, default)
        want = getattr(disttorch, expected_dtype([ka, kb], default))
        assert disttorch.result_type(a, b) is want
        assert (a + b).dtype is want
        assert (a * b).dtype is want
        assert disttorch.where(disttorch.ones(3, dtype=disttorch.bool), a, b).dtype is want
        assert (a < b).dtype is disttorch.bool
        assert (a / b).dtype is (want if want.is_floating_point else getattr(disttorch, default))
    finally:
        disttorch.set_default_dtype(prev)


@pytest.mark.parametrize("names,kinds,expected", [
    (("float16", "bfloat16"), ("dim", "dim"), "float32"),
    (("uint8", "int8"), ("dim", "dim"), "int16"),
    (("int32", "float"), ("dim", "scalar"), "float32"),
    (("int64", "float16"), ("dim", "dim"), "float16"),
    (("int64", "float64"), ("dim", "zero"), "float64"),
    (("float16", "float64"), ("dim", "zero"), "float16"),
    (("uint8", "int64"), ("dim", "scalar"), "uint8"),
    (("bool", "int64"), ("dim", "scalar"), "int64"),
])
def test_rule_table_examples(names, kinds, expected):
    # The documented examples hold for the independent rules and for disttorch.
    ops = [(k, "float32" if n == "float" else n) for n, k in zip(names, kinds)]
    assert expected_dtype(ops, "float32") == expected
    a, _ = make_operand(kinds[0], names[0], "float32")
    b, _ = make_operand(kinds[1], names[1], "float32")
    assert (a + b).dtype is getattr(disttorch, expected)


# ---- broadcasting ---------------------------------------------------------------------------------------
@st.composite
def shape_pairs(draw):
    """Pairs that broadcast often but not always: the second is a perturbed suffix of the first."""
    first = tuple(draw(st.lists(st.integers(0, 3), max_size=4)))
    k = draw(st.integers(0, len(first)))
    second = [draw(st.sampled_from([s, 1, s, draw(st.integers(0, 3))])) for s in first[len(first) - k:]]
    lead = draw(st.lists(st.integers(1, 3), max_size=1))
    return first, tuple(lead + second) if draw(st.booleans()) else tuple(second)


BINARY_OPS = [disttorch.add, disttorch.sub, disttorch.mul, disttorch.div, disttorch.eq, disttorch.lt,
              disttorch.maximum, disttorch.atan2, disttorch.remainder, disttorch.pow, disttorch.logical_and]


@settings(max_examples=50, deadline=None)
@given(shape_pairs(), st.booleans())
def test_binary_broadcast_shapes(shapes, swap):
    s1, s2 = shapes[::-1] if swap else shapes
    a = disttorch.tensor(np.full(s1, 1.5))
    b = disttorch.tensor(np.full(s2, 0.5))
    try:
        expected = tuple(np.broadcast_shapes(s1, s2))
    except ValueError:
        expected = None
    for op in BINARY_OPS:
        if expected is None:
            with pytest.raises(RuntimeError):
                op(a, b)
        else:
            assert tuple(op(a, b).shape) == expected, op
    # in place: allowed exactly when the broadcast shape is self's shape
    if expected == s1:
        assert a.add_(b) is a
    else:
        with pytest.raises(RuntimeError):
            a.add_(b)
