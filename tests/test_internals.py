"""disttorch._internals, the engine's surface for nn/optim/amp/distributed, and the layering rules it serves:
no hand-written version bumps outside the engine, one host conversion, imports that go one way."""
from __future__ import annotations

import ast
import pathlib
import re

import numpy as np
import pytest

import disttorch
from disttorch import _device
from disttorch import _internals as E

PKG = pathlib.Path(disttorch.__file__).parent


class _DeviceArray:
    """Stands in for a CuPy array: values reach the host only through get()."""

    def __init__(self, values):
        self._values = np.array(values)
        self.gets = 0

    def get(self):
        self.gets += 1
        return self._values.copy()


def test_array_wrap_and_versions():
    t = disttorch.tensor([1.0, 2.0])
    a = E.array(t)
    assert a is E.array(t) and isinstance(a, np.ndarray)
    a *= 2  # a write through the raw array ...
    v = t._version
    E.bump_version(t)  # ... is recorded by one call
    assert t._version == v + 1 and t.tolist() == [2.0, 4.0]
    w = E.wrap(np.arange(3.0))
    assert not w.requires_grad and w.tolist() == [0.0, 1.0, 2.0]
    view = E.view_of(t, a[:1])
    E.bump_version(view)  # a view shares its base's counter
    assert t._version == v + 2
    E.set_array(t, np.zeros(4))
    assert t.shape == (4,) and t._version == v + 3
    assert E.array_module(t) is np and E.array_module_of(a) is np


def test_in_place_write_after_save_is_caught_through_bump_version():
    x = disttorch.tensor([1.0, 2.0], requires_grad=True)
    w = disttorch.tensor([3.0, 4.0])
    y = (x * w).sum()  # saves w for x's gradient
    E.array(w)[...] = 0.0
    E.bump_version(w)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.backward()


def test_to_host():
    a = np.arange(4.0)
    assert E.to_host(a) is a  # host arrays are not copied
    s = E.to_host(np.float32(2.5))
    assert isinstance(s, np.ndarray) and s.shape == () and s.dtype == np.float32 and float(s) == 2.5
    dev = _DeviceArray([1, 2, 3])
    out = E.to_host(dev)
    assert isinstance(out, np.ndarray) and out.tolist() == [1, 2, 3] and dev.gets == 1
    assert E.to_host is _device.to_host and E.array_module_of is _device.array_module_of  # one of each


def _code_lines(path: pathlib.Path):
    for i, line in enumerate(path.read_text().splitlines(), 1):
        code = line.split("#", 1)[0]
        if code.strip():
            yield i, code


def test_no_hand_written_version_bumps_outside_the_engine():
    hits = []
    for sub in ("optim", "nn", "amp"):
        for path in (PKG / sub).rglob("*.py"):
            hits += [f"{path.relative_to(PKG)}:{i}" for i, code in _code_lines(path) if "_vc[0]" in code]
    assert hits == []


def test_no_inline_device_to_host_copies_in_the_surface_users():
    pattern = re.compile(r"\b(?:_data|arr|a)\.get\(\)")
    hits = []
    for sub in ("optim", "nn", "amp", "testing", "multiprocessing"):
        for path in (PKG / sub).rglob("*.py"):
            hits += [f"{path.relative_to(PKG)}:{i}" for i, code in _code_lines(path) if pattern.search(code)]
    for name in ("_tensor.py", "_tensor_str.py", "serialization.py", "ops/random.py", "ops/creation.py",
                 "ops/creation_data.py", "ops/creation_like.py", "ops/_creation_common.py"):
        hits += [f"{name}:{i}" for i, code in _code_lines(PKG / name) if pattern.search(code)]
    assert hits == []


# Files whose relative imports after their code are there by design: _tensor.py composes Tensor from the op
# families' method mixins, which import _tensor themselves.
_LATE_IMPORTS_ALLOWED = {"_tensor.py"}


def test_imports_go_one_way():
    """No module imports from the package again after its first def/class (the 'import back at the bottom'
    pattern of a file split in two that import each other)."""
    late = []
    for path in sorted(PKG.rglob("*.py")):
        rel = str(path.relative_to(PKG))
        if path.name == "__init__.py" or rel in _LATE_IMPORTS_ALLOWED:
            continue
        tree = ast.parse(path.read_text())
        seen_code = False
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                seen_code = True
            elif seen_code and isinstance(node, ast.ImportFrom) and node.level > 0:
                late.append(f"{rel}:{node.lineno}")
    assert late == []
