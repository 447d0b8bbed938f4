"""disttorch.jit (pass-through with one warning), disttorch.hub (local cache, no downloads) and
disttorch.testing (assert_close messages checked against PyTorch 2.13's, make_tensor)."""
from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import textwrap
import warnings
import zipfile

import numpy as np
import pytest

import disttorch as torch
from disttorch.testing import assert_close, make_tensor


# ---- jit and compile -----------------------------------------------------------------------------------
def test_script_trace_and_compile_warn_once_per_process():
    code = textwrap.dedent("""
        import warnings
        warnings.simplefilter("always")
        import disttorch as torch
        m = torch.nn.Linear(2, 2)
        with warnings.catch_warnings(record=True) as rec:
            warnings.simplefilter("always")
            assert torch.jit.script(m) is m and torch.jit.trace(m, torch.ones(1, 2)) is m
            assert torch.jit.script(len) is len and torch.jit.trace_module(m, {"forward": torch.ones(1, 2)}) is m
            assert torch.compile(m) is m and torch.compile(mode="max-autotune")(len) is len
            assert torch.compile(m, disable=True) is m
        print(sorted(str(w.message).split(":")[0] for w in rec))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "['disttorch.compile', 'disttorch.jit.script']"


def test_jit_helpers():
    jit = torch.jit

    @jit.ignore
    def f(x):
        return x + 1

    @jit.ignore(drop=True)
    def g(x):
        return x + 2

    assert f(1) == 2 and g(1) == 3 and jit.unused(f) is f and jit.export(f) is f
    assert jit.is_scripting() is False and jit.is_tracing() is False
    assert jit.annotate(list, [1]) == [1] and jit.Attribute(3, int) == 3
    assert not isinstance(torch.nn.Linear(1, 1), jit.ScriptModule)
    assert jit.fork(lambda a, b: a * b, 3, 4).wait() == 12 and jit.wait(jit.fork(len, [1, 2])) == 2


def test_jit_save_writes_a_state_dict_and_load_explains(tmp_path):
    m = torch.nn.Linear(2, 3)
    path = tmp_path / "m.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # jit.script's once-per-process warning
        scripted = torch.jit.script(m)
    with pytest.warns(UserWarning, match="state_dict"):
        torch.jit.save(scripted, str(path))
    sd = torch.load(str(path))
    assert torch.equal(sd["weight"], m.weight) and torch.equal(sd["bias"], m.bias)
    with pytest.raises(RuntimeError, match=r"m.pt\): disttorch cannot run TorchScript programs .*load_state_dict"):
        torch.jit.load(str(path))


# ---- hub ------------------------------------------------------------------------------------------------
@pytest.fixture
def hub_dir(tmp_path):
    old = torch.hub._hub_dir
    torch.hub.set_dir(tmp_path / "hub")
    yield tmp_path / "hub"
    torch.hub._hub_dir = old


def test_get_dir_follows_torch_home(monkeypatch):
    old = torch.hub._hub_dir
    torch.hub._hub_dir = None
    try:
        monkeypatch.setenv("TORCH_HOME", "/some/where")
        assert torch.hub.get_dir() == "/some/where/hub"
        monkeypatch.delenv("TORCH_HOME")
        monkeypatch.setenv("XDG_CACHE_HOME", "/xdg")
        assert torch.hub.get_dir() == "/xdg/torch/hub"
    finally:
        torch.hub._hub_dir = old


def test_load_state_dict_from_url_reads_the_cache(hub_dir):
    m = torch.nn.Linear(3, 2)
    ckpt = hub_dir / "checkpoints"
    ckpt.mkdir(parents=True)
    raw = ckpt / "tmp.pth"
    torch.save(m.state_dict(), str(raw))
    digest = hashlib.sha256(raw.read_bytes()).hexdigest()
    name = f"tiny-{digest[:8]}.pth"
    raw.rename(ckpt / name)
    sd = torch.hub.load_state_dict_from_url(f"https://example.com/weights/{name}", check_hash=True)
    assert torch.equal(sd["weight"], m.weight)
    other = hub_dir / "elsewhere"
    other.mkdir()
    (ckpt / name).rename(other / "renamed.pth")
    sd = torch.hub.load_state_dict_from_url(f"https://example.com/weights/{name}", model_dir=str(other),
                                            file_name="renamed.pth", map_location="cpu")
    assert torch.equal(sd["bias"], m.bias)
    # a file whose content does not match the hash in its name
    (other / "renamed.pth").rename(ckpt / "tiny-00000000.pth")
    with pytest.raises(RuntimeError, match='invalid hash value .*expected "00000000"'):
        torch.hub.load_state_dict_from_url("https://example.com/weights/tiny-00000000.pth", check_hash=True)


def test_missing_file_says_what_to_fetch_and_where(hub_dir):
    url = "https://example.com/models/resnet-9c1b2d3e.pth"
    dst = os.path.join(str(hub_dir), "checkpoints", "resnet-9c1b2d3e.pth")
    with pytest.raises(RuntimeError) as e:
        torch.hub.load_state_dict_from_url(url, check_hash=True)
    msg = str(e.value)
    assert dst in msg and f"Fetch {url}" in msg and "9c1b2d3e" in msg and "does not download" in msg
    with pytest.raises(RuntimeError, match=r"Fetch https://example.com/x.bin .* put the file at /tmp/x.bin"):
        torch.hub.download_url_to_file("https://example.com/x.bin", "/tmp/x.bin")


def test_hub_load_local_and_cached_repositories(hub_dir, tmp_path):
    hubconf = textwrap.dedent('''
        dependencies = ["numpy"]

        def tiny(out_features=2):
            """A tiny linear model."""
            import disttorch
            return disttorch.nn.Linear(3, out_features)

        def _private():
            pass
    ''')
    local = tmp_path / "repo"
    local.mkdir()
    (local / "hubconf.py").write_text(hubconf)
    model = torch.hub.load(str(local), "tiny", source="local", out_features=4)
    assert tuple(model.weight.shape) == (4, 3)
    with pytest.raises(RuntimeError, match="Cannot find callable nope in hubconf"):
        torch.hub.load(str(local), "nope", source="local")
    with pytest.raises(ValueError, match='Unknown source: "web"'):
        torch.hub.load(str(local), "tiny", source="web")
    with pytest.raises(RuntimeError, match=r"owner/proj .*https://github.com/owner/proj/zipball/main .*"
                                           r"owner_proj_main/hubconf.py"):
        torch.hub.load("owner/proj", "tiny")
    cached = hub_dir / "owner_proj_main"
    cached.mkdir(parents=True)
    (cached / "hubconf.py").write_text(hubconf)
    assert tuple(torch.hub.load("owner/proj", "tiny", verbose=False).weight.shape) == (2, 3)
    assert torch.hub.list("owner/proj", verbose=False) == ["tiny"]
    assert torch.hub.help("owner/proj", "tiny") == "A tiny linear model."
    with pytest.raises(RuntimeError, match="trust_repo=False"):
        torch.hub.load("owner/proj", "tiny", trust_repo=False, verbose=False)


# ---- testing --------------------------------------------------------------------------------------------
# Messages as PyTorch 2.13 prints them (recorded from torch.testing.assert_close).
PT_MISMATCH = ("Tensor-likes are not close!\n\nMismatched elements: 1 / 3 (33.3%)\n"
               "Greatest absolute difference: 0.5 at index (1,) (up to 1e-05 allowed)\n"
               "Greatest relative difference: 0.20000000298023224 at index (1,) (up to 1.3e-06 allowed)")
PT_INT = ("Tensor-likes are not equal!\n\nMismatched elements: 1 / 3 (33.3%)\n"
          "Greatest absolute difference: 2 at index (1,)\nGreatest relative difference: 0.5 at index (1,)")
PT_SCALAR = ("Scalars are not close!\n\nExpected 2.0 but got 1.0.\nAbsolute difference: 1.0 (up to 1e-05 allowed)\n"
             "Relative difference: 0.5 (up to 1.3e-06 allowed)")
PT_NUMBERS = ("Scalars are not close!\n\nExpected 1.1 but got 1.0.\nAbsolute difference: 0.10000000000000009 (up to "
              "1e-07 allowed)\nRelative difference: 0.09090909090909098 (up to 1e-07 allowed)")
PT_LIST = ("Tensor-likes are not close!\n\nMismatched elements: 2 / 2 (100.0%)\n"
           "Greatest absolute difference: 1.0 at index (0,) (up to 1e-05 allowed)\n"
           "Greatest relative difference: inf at index (0,) (up to 1.3e-06 allowed)\n\nThe failure occurred for item [1]")
PT_2D = ("Tensor-likes are not close!\n\nMismatched elements: 2 / 4 (50.0%)\n"
         "Greatest absolute difference: 1.0 at index (1, 1) (up to 1e-05 allowed)\n"
         "Greatest relative difference: 0.20000000298023224 at index (0, 1) (up to 1.3e-06 allowed)")


def _message(*args, **kwargs) -> str:
    with pytest.raises(AssertionError) as e:
        assert_close(*args, **kwargs)
    return str(e.value)


def test_assert_close_messages_match_pytorch():
    t = torch.tensor
    assert _message(t([1., 2., 3.]), t([1., 2.5, 3.])) == PT_MISMATCH
    assert _message(t([[1., 2.], [3., 4.]]), t([[1., 2.5], [3., 5.]])) == PT_2D
    assert _message(t([1, 2, 3]), t([1, 4, 3])) == PT_INT
    assert _message(t(1.), t(2.)) == PT_SCALAR
    assert _message(1.0, 1.1) == PT_NUMBERS
    assert _message([torch.ones(1), torch.ones(2)], [torch.ones(1), torch.zeros(2)]) == PT_LIST
    assert _message(t([1.]), t([1.], dtype=torch.float64)) == \
        "The values for attribute 'dtype' do not match: disttorch.float32 != disttorch.float64."
    assert _message(torch.ones(2), torch.ones(3)) == \
        "The values for attribute 'shape' do not match: disttorch.Size([2]) != disttorch.Size([3])."
    assert _message(1, 1.0) == "The (d)types do not match: <class 'int'> != <class 'float'>."
    assert _message([torch.ones(1)], [torch.ones(1)] * 2) == "The length of the sequences mismatch: 1 != 2"
    assert _message({"a": torch.ones(1)}, {"b": torch.ones(1)}) == (
        "The keys of the mappings do not match:\nMissing keys in the actual mapping: ['b']\n"
        "Additional keys in the actual mapping: ['a']")
    assert _message(torch.ones(1), torch.zeros(1), msg="custom") == "custom"
    assert _message(torch.ones(1), torch.zeros(1), msg=lambda m: "X " + m).startswith("X Tensor-likes are not close!")


def test_assert_close_tolerances_and_options():
    t = torch.tensor
    assert_close(t([1.0, 2.0]), t([1.0, 2.000001]))
    assert_close(t([1.0], dtype=torch.bfloat16), t([1.0078125], dtype=torch.bfloat16))  # rtol 1.6e-2
    _message(t([1.0], dtype=torch.float16), t([1.0078125], dtype=torch.float16))  # rtol 1e-3
    assert_close(t([1.0], dtype=torch.float16), t([1.0005]), check_dtype=False)  # the looser of the two dtypes
    assert_close(t([float("nan")]), t([float("nan")]), equal_nan=True)
    _message(t([float("nan")]), t([float("nan")]))
    assert_close(t([float("inf")]), t([float("inf")]))
    assert_close(t([1.0]), t([1.5]), rtol=0.0, atol=0.5)
    with pytest.raises(ValueError, match="^Both 'rtol' and 'atol' must be either specified or omitted, but got no "
                                         "atol.$"):
        assert_close(t([1.0]), t([1.0]), rtol=1e-3)
    with pytest.raises(TypeError, match="No comparison pair was able to handle inputs of type"):
        assert_close(t(1.0), 1.0)
    assert_close(np.ones(2), np.ones(2))
    assert_close(None, None)
    assert_close({"a": [t([1.0]), 2]}, {"a": [t([1.0]), 2]})


def test_make_tensor():
    x = make_tensor(200, 3, dtype=torch.float32, device="cpu")
    assert x.shape == (200, 3) and x.dtype is torch.float32 and -9 <= x.min().item() and x.max().item() < 9
    i = make_tensor((500,), dtype=torch.int64, device="cpu", low=0, high=5)
    assert set(i.tolist()) == {0, 1, 2, 3, 4}
    u = make_tensor(100, dtype=torch.uint8, device="cpu", low=-5, high=3)
    assert u.min().item() >= 0 and u.max().item() <= 2
    b = make_tensor(100, dtype=torch.bool, device="cpu")
    assert b.dtype is torch.bool and set(b.tolist()) == {False, True}
    nz = make_tensor(1000, dtype=torch.int8, device="cpu", low=-1, high=1, exclude_zero=True)
    assert set(nz.tolist()) == {-1, 1}
    nc = make_tensor(4, 5, dtype=torch.float64, device="cpu", noncontiguous=True, requires_grad=True)
    assert nc.shape == (4, 5) and not nc.is_contiguous() and nc.requires_grad
    with pytest.raises(ValueError, match="`low` must be less than `high`, but got 5 >= 1"):
        make_tensor(2, dtype=torch.float32, device="cpu", low=5, high=1)
    with pytest.raises(ValueError, match="`requires_grad=True` is not supported for boolean and integral dtypes"):
        make_tensor(2, dtype=torch.int64, device="cpu", requires_grad=True)
    with pytest.raises(TypeError):
        make_tensor(2)


def test_corrupted_cached_zip_is_a_checkpoint_error(hub_dir):
    from disttorch.serialization import CheckpointError

    ckpt = hub_dir / "checkpoints"
    ckpt.mkdir(parents=True)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:  # PyTorch's legacy layout: one checkpoint file inside a zip
        zf.writestr("w.bin", b"0" * 64)
    blob = buf.getvalue()
    cd = blob.index(b"PK\x01\x02")  # 'version needed to extract' in the central directory: 19.2
    (ckpt / "w.pth").write_bytes(blob[:cd + 6] + (192).to_bytes(2, "little") + blob[cd + 8:])
    with pytest.raises(CheckpointError, match=r"w\.pth: corrupted zip archive \(NotImplementedError: zip file version"):
        torch.hub.load_state_dict_from_url("https://example.com/weights/w.pth")
