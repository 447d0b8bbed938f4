"""docs/coverage.md is generated from docs/pytorch_api.txt by docs/coverage.py and must be current."""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "docs" / "coverage.py"


@pytest.fixture(scope="module")
def cov():
    spec = importlib.util.spec_from_file_location("_coverage_script", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_api_list_is_well_formed(cov):
    sections = cov.parse_api(cov.API_LIST.read_text())
    names = [n for _, ns in sections for n in ns]
    assert len(names) == len(set(names)), sorted({n for n in names if names.count(n) > 1})
    assert 400 <= len(names) <= 800
    headings = [h for h, _ in sections]
    assert len(headings) == len(set(headings))
    for required in ("torch.autograd", "torch.nn.functional", "torch.optim", "torch.utils.data", "torch.distributed"):
        assert required in headings


def test_parse_api_rejects_bad_lines(cov):
    with pytest.raises(ValueError, match="dotted name"):
        cov.parse_api("# section\nnumpy.add\n")
    with pytest.raises(ValueError, match="before the first"):
        cov.parse_api("torch.add\n")
    assert cov.parse_api("# intro\n# more intro\n\n# A\ntorch.add\n# B  # note\ntorch.sub\n") == [
        ("A", ["torch.add"]), ("B", ["torch.sub"])]


@pytest.mark.parametrize("name,expected", [
    ("torch.tensor", True),
    ("torch.Tensor.shape", True),
    ("torch.float32", True),
    ("torch.autograd.grad", True),
    ("torch.no_such_function_xyz", False),
    ("torch.Tensor.no_such_method_xyz", False),
    ("torch.no_such_submodule_xyz.thing", False),
    ("torch.tensor.no_such_attribute", False),
])
def test_resolve(cov, name, expected):
    assert cov.resolve(name) is expected


def test_render_roundtrip_and_changes(cov):
    results = [("A", [("torch.add", True), ("torch.sub", False)]), ("B", [("torch.mul", True)])]
    text = cov.render(results)
    assert "**Overall: 2 / 3 (67%)**" in text
    assert "| A | 1 | 2 | 50% |" in text
    assert cov.parse_rendered(text) == {"torch.add": True, "torch.sub": False, "torch.mul": True}
    changes = cov.describe_changes({"torch.add": True, "torch.sub": False, "torch.div": True},
                                   {"torch.add": False, "torch.sub": True, "torch.mul": True})
    assert changes == ["newly covered (1): torch.sub", "no longer covered (1): torch.add",
                       "added to the list (1): torch.mul", "removed from the list (1): torch.div"]


def test_coverage_doc_is_current():
    """Fails when ops were added or removed since docs/coverage.md was generated; says which."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, str(SCRIPT), "--check"], check=False, cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, f"{proc.stdout}{proc.stderr}"


def test_import_sections_need_a_real_module(cov):
    # `torch.backends.cudnn` once existed only as an attribute, so `import torch.backends.cudnn` failed.
    results = cov.compute([("import torch.X", ["torch.fft", "torch.backends.cudnn", "torch.no_such_module_xyz"]),
                           ("attributes", ["torch.float32"])])
    assert results == [("import torch.X", [("torch.fft", True), ("torch.backends.cudnn", True),
                                           ("torch.no_such_module_xyz", False)]),
                       ("attributes", [("torch.float32", True)])]
    assert cov.importable("torch.float32") is False  # an attribute, not a module
