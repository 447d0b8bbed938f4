"""disttorch.save / load: type-preserving round trips, safety, atomicity, clear errors, PyTorch .pt input."""
import collections
import io
import json
import os
import pickle
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest

import disttorch
from disttorch import nn, serialization
from disttorch.serialization import CheckpointError

DATA = Path(__file__).parent / "data"


def test_round_trip_preserves_python_types(tmp_path):
    od = collections.OrderedDict([("w", disttorch.arange(6.0).reshape(2, 3)), ("b", disttorch.zeros(2))])
    od._metadata = {"": {"version": 1}}
    obj = {"state": od, 1: "int key", (2, 3): "tuple key", "tup": (1, 2.5, None, True, False), "bytes": b"\x00\xff",
           "nested": [[1, {"a": (4,)}], "s"], "big": 2 ** 80, "neg": -5, "c": 1 + 2j, "set": {1, 2},
           "dtype": disttorch.bfloat16, "size": disttorch.Size([2, 3]), "dev": disttorch.device("cpu"),
           "np": np.arange(3, dtype=np.int16), "npf": np.float32(1.5), "empty": disttorch.empty(0, 3),
           "i64": disttorch.tensor([2 ** 40, -1]), "bool": disttorch.tensor([True, False]),
           "half": disttorch.tensor([1.5], dtype=disttorch.float16),
           "bf16": disttorch.tensor([2.5], dtype=disttorch.bfloat16),
           "cplx": disttorch.tensor([1 + 1j]), "scalar": disttorch.tensor(3.0)}
    path = tmp_path / "ckpt.pt"
    disttorch.save(obj, path)
    got = disttorch.load(path)
    assert set(got) == set(obj)
    assert type(got["state"]) is collections.OrderedDict and got["state"]._metadata == {"": {"version": 1}}
    assert list(got["state"]) == ["w", "b"]
    assert got[1] == "int key" and got[(2, 3)] == "tuple key"
    assert got["tup"] == (1, 2.5, None, True, False) and type(got["tup"]) is tuple
    assert type(got["tup"][2]) is type(None) and got["tup"][3] is True
    assert got["bytes"] == b"\x00\xff" and got["nested"] == [[1, {"a": (4,)}], "s"]
    assert got["big"] == 2 ** 80 and got["c"] == 1 + 2j and got["set"] == {1, 2}
    assert got["dtype"] is disttorch.bfloat16 and got["size"] == disttorch.Size([2, 3])
    assert isinstance(got["size"], disttorch.Size) and got["dev"] == disttorch.device("cpu")
    assert got["np"].dtype == np.int16 and list(got["np"]) == [0, 1, 2] and got["npf"] == np.float32(1.5)
    for k in ("empty", "i64", "bool", "half", "bf16", "cplx", "scalar"):
        assert got[k].dtype == obj[k].dtype and got[k].shape == obj[k].shape
        np.testing.assert_array_equal(got[k].numpy(), obj[k].numpy())


def test_tensor_attributes_identity_and_views(tmp_path):
    w = disttorch.randn(3, 4, requires_grad=True)
    base = disttorch.arange(12.0).reshape(3, 4)
    obj = {"w": w, "same": w, "t": base.t(), "row": base[1]}
    disttorch.save(obj, tmp_path / "a.pt")
    got = disttorch.load(tmp_path / "a.pt")
    assert got["w"] is got["same"] and got["w"].requires_grad and got["w"].is_leaf
    np.testing.assert_array_equal(got["t"].numpy(), np.arange(12.0).reshape(3, 4).T)
    np.testing.assert_array_equal(got["row"].numpy(), [4.0, 5.0, 6.0, 7.0])


def test_file_objects(tmp_path):
    buf = io.BytesIO()
    disttorch.save({"x": disttorch.ones(2)}, buf)
    buf.seek(0)
    assert disttorch.load(buf)["x"].tolist() == [1.0, 1.0]


def test_state_dicts_of_model_and_optimizer_resume(tmp_path):
    class Tiny(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(disttorch.randn(3, 2))
            self.register_buffer("count", disttorch.zeros((), dtype=disttorch.int64))

        def forward(self, x):
            return x @ self.w

    disttorch.manual_seed(0)
    m = Tiny()
    opt = disttorch.optim.Adam(m.parameters(), lr=0.1)
    x = disttorch.randn(5, 3)
    for _ in range(3):
        opt.zero_grad()
        m(x).pow(2).sum().backward()
        opt.step()
    disttorch.save({"model": m.state_dict(), "opt": opt.state_dict()}, tmp_path / "c.pt")
    m2 = Tiny()
    opt2 = disttorch.optim.Adam(m2.parameters(), lr=0.1)
    ck = disttorch.load(tmp_path / "c.pt")
    m2.load_state_dict(ck["model"])
    opt2.load_state_dict(ck["opt"])
    assert isinstance(ck["opt"]["state"], dict) and 0 in ck["opt"]["state"]  # int keys stay ints
    for mod, o in ((m, opt), (m2, opt2)):
        o.zero_grad()
        mod(x).pow(2).sum().backward()
        o.step()
    np.testing.assert_array_equal(m.w.detach().numpy(), m2.w.detach().numpy())


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(disttorch.randn(3, 2))
        self.register_buffer("stat", disttorch.ones(2))
        self.inner = nn.Sequential()
        self.act = disttorch.tanh
        self.cfg = (1, "same")

    def forward(self, x):
        return self.act(x @ self.w) * self.stat


def test_whole_module_needs_allowlist(tmp_path):
    net = Net()
    net.tied = net.w
    path = tmp_path / "net.pt"
    disttorch.save(net, path)
    with pytest.raises(pickle.UnpicklingError, match=r"Unsupported global: GLOBAL .*Net was not an allowed global"):
        disttorch.load(path)
    assert serialization.get_unsafe_globals_in_checkpoint(path) == sorted(
        [f"{__name__}.Net", "disttorch.nn.modules.container.Sequential", disttorch.tanh.__module__ + ".tanh"])
    with serialization.safe_globals([Net, nn.Sequential]):
        with pytest.raises(pickle.UnpicklingError, match="tanh"):
            disttorch.load(path)
    with serialization.safe_globals([Net, nn.Sequential, disttorch.tanh]):
        got = disttorch.load(path)
    assert isinstance(got, Net) and isinstance(got.w, nn.Parameter) and got.tied is got.w
    assert got.cfg == (1, "same") and got.act is disttorch.tanh
    x = disttorch.randn(4, 3)
    np.testing.assert_array_equal(got(x).detach().numpy(), net(x).detach().numpy())
    serialization.add_safe_globals([Net, nn.Sequential, disttorch.tanh])
    try:
        assert isinstance(disttorch.load(path), Net)
    finally:
        serialization.clear_safe_globals()


def test_weights_only_false_warns_and_loads(tmp_path):
    disttorch.save(Net(), tmp_path / "n.pt")
    with pytest.warns(UserWarning, match="weights_only=False"):
        assert isinstance(disttorch.load(tmp_path / "n.pt", weights_only=False), Net)


def test_atomic_save_keeps_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.pt"
    disttorch.save({"v": 1}, path)
    from disttorch import _safetensors

    real = _safetensors.write

    def crash(f, arrays, meta):
        f.write(b"partial")
        raise KeyboardInterrupt("simulated crash")
    monkeypatch.setattr(_safetensors, "write", crash)
    with pytest.raises(KeyboardInterrupt):
        disttorch.save({"v": 2}, path)
    monkeypatch.setattr(_safetensors, "write", real)
    assert disttorch.load(path) == {"v": 1}
    assert os.listdir(tmp_path) == ["ckpt.pt"]  # no temporary file left behind


def test_truncated_corrupted_and_foreign_files(tmp_path):
    path = tmp_path / "good.pt"
    disttorch.save({"w": disttorch.arange(100.0)}, path)
    raw = path.read_bytes()
    cut = tmp_path / "cut.pt"
    cut.write_bytes(raw[:-50])
    with pytest.raises(CheckpointError, match=r"cut\.pt.*truncated"):
        disttorch.load(cut)
    bad = tmp_path / "bad.pt"
    flipped = bytearray(raw)
    flipped[-10] ^= 0xFF
    bad.write_bytes(bytes(flipped))
    with pytest.raises(CheckpointError, match=r"bad\.pt.*checksum"):
        disttorch.load(bad)
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"hello world, this is not a checkpoint at all")
    with pytest.raises(CheckpointError, match=r"junk\.bin: not a disttorch checkpoint"):
        disttorch.load(junk)
    tiny = tmp_path / "tiny"
    tiny.write_bytes(b"abc")
    with pytest.raises(CheckpointError, match="too short"):
        disttorch.load(tiny)
    pkl = tmp_path / "legacy.pt"
    pkl.write_bytes(pickle.dumps({"a": 1}, protocol=2))
    with pytest.raises(CheckpointError, match="never unpickles"):
        disttorch.load(pkl)


def test_plain_safetensors_file(tmp_path):
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    b = np.array([1, -2], dtype=np.int64)
    header = {"a": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]},
              "b": {"dtype": "I64", "shape": [2], "data_offsets": [24, 40]}}
    h = json.dumps(header).encode()
    (tmp_path / "m.safetensors").write_bytes(struct.pack("<Q", len(h)) + h + a.tobytes() + b.tobytes())
    got = disttorch.load(tmp_path / "m.safetensors")
    np.testing.assert_array_equal(got["a"].numpy(), a)
    np.testing.assert_array_equal(got["b"].numpy(), b)


def test_map_location_forms(tmp_path):
    disttorch.save({"x": disttorch.ones(2)}, tmp_path / "m.pt")
    assert disttorch.load(tmp_path / "m.pt", map_location="cpu")["x"].device.type == "cpu"
    assert disttorch.load(tmp_path / "m.pt", map_location={"cpu": "cpu"})["x"].device.type == "cpu"
    seen = []
    got = disttorch.load(tmp_path / "m.pt", map_location=lambda t, loc: seen.append(loc) or t * 2)
    assert seen == ["cpu"] and got["x"].tolist() == [2.0, 2.0]


def test_reads_pytorch_checkpoint_without_torch():
    # Written by torch 2.13: torch.save of tensors and containers (see tests/data/README.md for the script).
    got = disttorch.load(DATA / "torch_checkpoint.pt")
    sd = got["model"]
    assert type(sd) is collections.OrderedDict and list(sd) == ["weight", "bias"]
    np.testing.assert_array_equal(sd["weight"].numpy(), np.arange(6.0, dtype=np.float32).reshape(2, 3))
    np.testing.assert_array_equal(sd["bias"].numpy(), [-1.0, 1.0])
    assert got["step"] == 7 and got["ints"] == {1: "a", 2: "b"} and got["tup"] == (1, 2.5, True, None)
    assert got["half"].dtype == disttorch.float16 and got["bf16"].dtype == disttorch.bfloat16
    np.testing.assert_array_equal(got["bf16"].float().numpy(), [0, 1, 2, 3])
    assert got["long"].dtype == disttorch.int64 and got["long"].tolist() == [0, 1, 2, 3, 4]
    assert got["bool"].tolist() == [True, False] and got["i8"].tolist() == [-3, 4]
    np.testing.assert_array_equal(got["t"].numpy(), np.arange(12.0).reshape(3, 4).T)
    assert got["view"].tolist() == [4.0, 5.0, 6.0, 7.0] and got["scalar"].item() == 3.5
    assert isinstance(got["param"], nn.Parameter) and got["param"].requires_grad
    lin = disttorch.load(DATA / "torch_linear_state_dict.pt")
    assert lin._metadata[""]["version"] == 1


def _zip_with_pickle(tmp_path, payload: bytes) -> Path:
    path = tmp_path / "evil.pt"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("evil/data.pkl", payload)
        z.writestr("evil/byteorder", "little")
    return path


def test_pt_reader_refuses_code(tmp_path):
    class Boom:
        def __reduce__(self):
            return (os.system, ("echo should-not-run",))
    path = _zip_with_pickle(tmp_path, pickle.dumps(Boom(), protocol=2))
    with pytest.raises(pickle.UnpicklingError, match=r"global posix\.system is not allowed"):
        disttorch.load(path)
    path = _zip_with_pickle(tmp_path, pickle.dumps({"a": 1}, protocol=2)[:-3])
    with pytest.raises(CheckpointError, match="truncated"):
        disttorch.load(path)


def test_save_refuses_unsaveable_objects(tmp_path):
    class Slotted:
        __slots__ = ("a",)
    with pytest.raises(TypeError, match="cannot save an object of type"):
        disttorch.save(Slotted(), tmp_path / "x.pt")


def test_saved_file_permissions_follow_umask_and_are_kept_on_overwrite(tmp_path):
    old = os.umask(0o022)
    try:
        disttorch.save({"v": 1}, tmp_path / "a.pt")
        os.umask(0o077)
        disttorch.save({"v": 1}, tmp_path / "b.pt")
    finally:
        os.umask(old)
    assert (tmp_path / "a.pt").stat().st_mode & 0o777 == 0o644  # as open(path, "wb") would create it
    assert (tmp_path / "b.pt").stat().st_mode & 0o777 == 0o600
    os.chmod(tmp_path / "a.pt", 0o640)
    disttorch.save({"v": 2}, tmp_path / "a.pt")
    assert (tmp_path / "a.pt").stat().st_mode & 0o777 == 0o640 and disttorch.load(tmp_path / "a.pt") == {"v": 2}


def test_save_writes_through_a_symlink(tmp_path):
    real_dir, link_dir = tmp_path / "real", tmp_path / "links"
    real_dir.mkdir()
    link_dir.mkdir()
    disttorch.save({"v": 1}, real_dir / "ckpt.pt")
    link = link_dir / "latest.pt"
    link.symlink_to(real_dir / "ckpt.pt")
    disttorch.save({"v": 2}, link)
    assert link.is_symlink() and os.readlink(link) == str(real_dir / "ckpt.pt")
    assert disttorch.load(real_dir / "ckpt.pt") == {"v": 2}
    assert os.listdir(real_dir) == ["ckpt.pt"] and os.listdir(link_dir) == ["latest.pt"]
    dangling = link_dir / "next.pt"
    dangling.symlink_to(real_dir / "new.pt")
    disttorch.save({"v": 3}, dangling)
    assert dangling.is_symlink() and disttorch.load(real_dir / "new.pt") == {"v": 3}


_BLOCKED_SAVER = """
import sys
import disttorch
from disttorch import _safetensors

def write_then_block(f, arrays, meta):
    f.write(b"partial")
    f.flush()
    sys.stdin.read()  # never answered: the test kills this process here, mid-save

_safetensors.write = write_then_block
disttorch.save({"v": 2}, sys.argv[1])
"""


def test_temp_file_of_a_killed_save_is_removed_by_the_next_save(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    path = tmp_path / "ckpt.pt"
    disttorch.save({"v": 1}, path)
    proc = subprocess.Popen([sys.executable, "-c", _BLOCKED_SAVER, str(path)], stdin=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        temps = []
        while not temps and time.monotonic() < deadline and proc.poll() is None:
            temps = [n for n in os.listdir(tmp_path) if n.endswith(".tmp") and os.path.getsize(tmp_path / n) > 0]
            time.sleep(0.01)
        assert temps, "the saver never started writing"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    from disttorch._checkpoint_files import _host

    host = _host()
    assert len(temps) == 1 and temps[0].startswith(f".ckpt.pt.{host}.{proc.pid}.")
    assert disttorch.load(path) == {"v": 1}  # the killed save left the previous checkpoint intact
    alive = tmp_path / f".ckpt.pt.{host}.{os.getppid()}.0123abcd.tmp"  # a live concurrent saver's file
    elsewhere = tmp_path / f".ckpt.pt.otherhost.{proc.pid}.0123abcd.tmp"  # another host sharing the directory
    alive.write_bytes(b"x")
    elsewhere.write_bytes(b"x")
    disttorch.save({"v": 3}, path)
    assert sorted(os.listdir(tmp_path)) == sorted(["ckpt.pt", alive.name, elsewhere.name])
    assert disttorch.load(path) == {"v": 3}
