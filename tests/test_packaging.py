"""The wheel ships disttorch with launcher/ and kernels/ mapped in, and every subpackage listed."""
import pathlib
import subprocess
import sys
try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = None
import zipfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _listed_packages():
    if tomllib is None:
        pytest.skip("tomllib needs Python >= 3.11")
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return set(cfg["tool"]["setuptools"]["packages"])


def test_every_subpackage_is_listed_in_pyproject():
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "disttorch").rglob("__init__.py")}
    missing = found - _listed_packages()
    assert not missing, f"add to [tool.setuptools] packages in pyproject.toml: {sorted(missing)}"


@pytest.mark.slow
def test_wheel_contains_launcher_and_kernels(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (wheel,) = tmp_path.glob("disttorch-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "disttorch/launcher/cli.py" in names
    assert "disttorch/kernels/__init__.py" in names
    shipped = {f"disttorch/kernels/{p.name}" for p in (ROOT / "kernels").glob("*.cu*")}
    assert shipped and shipped <= names, f"kernel sources missing from the wheel: {sorted(shipped - names)}"
    assert "disttorch/_tensor.py" in names
    assert any(n.endswith("entry_points.txt") for n in names)
