"""disttorch checkpoint integrity: whole-file digest (exhaustive bit flips), HMAC keys, format compatibility,
nesting limits (save refuses what load refuses; no crash on any thread), weights_only=False calls nothing,
malformed structures with a valid digest."""
import base64
import collections
import enum
import hashlib
import io
import json
import os
import struct
import subprocess
import sys
import textwrap
import warnings
import zlib
from pathlib import Path

import msgpack
import numpy as np
import pytest

import disttorch
from disttorch import serialization
from disttorch.serialization import CheckpointError, checkpoint_options

sys.path.insert(0, str(Path(__file__).parent))
import checkpoint_craft as C  # noqa: E402

KEY = bytes(range(32))


def _small():
    od = collections.OrderedDict([("b", 1.5), ("a", [1, 2])])
    return {"w": disttorch.tensor([[1.0, -2.0], [3.5, 4.0]]), "nested": [1, {"k": ("x", None)}, [True, b"\x01"]],
            "tup": (3, "s", 2.5), "od": od, 7: "int key"}


def _same(a, b, path="root"):
    """Exact equality of types and values, tensors included."""
    assert type(a) is type(b), (path, type(a), type(b))
    if isinstance(a, disttorch.Tensor):
        assert a.dtype == b.dtype and a.shape == b.shape and a.requires_grad == b.requires_grad, path
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    elif isinstance(a, dict):
        assert list(a) == list(b), path
        for k in a:
            _same(a[k], b[k], f"{path}[{k!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            _same(x, y, f"{path}[{i}]")
    else:
        assert a == b, path


def _saved(obj) -> bytes:
    buf = io.BytesIO()
    disttorch.save(obj, buf)
    return buf.getvalue()


def _load(blob: bytes, **kw):
    return disttorch.load(io.BytesIO(blob), **kw)


def test_every_single_bit_flip_loads_the_original_or_raises_checkpoint_error():
    obj = _small()
    blob = _saved(obj)
    _same(_load(blob), obj)
    outcomes = collections.Counter()
    for bit in range(len(blob) * 8):
        bad = bytearray(blob)
        bad[bit // 8] ^= 1 << (bit % 8)
        try:
            got = _load(bytes(bad))
        except CheckpointError:
            outcomes["refused"] += 1
            continue
        _same(got, obj)
        outcomes["identical"] += 1
    assert sum(outcomes.values()) == len(blob) * 8 > 2500


def test_truncation_extension_and_prefix_damage_are_refused():
    blob = _saved(_small())
    for bad in (blob[:-1], blob + b"\0", blob[:200], blob[:8 + 20]):
        with pytest.raises(CheckpointError):
            _load(bad)
    renamed = blob.replace(b'"__metadata__"', b'"__metadatb__"', 1)  # 2 bits: not a plain safetensors dict
    with pytest.raises(CheckpointError, match="header prefix is damaged"):
        _load(renamed)


def test_file_is_safetensors_with_a_digest_any_reader_can_check():
    w = np.arange(6, dtype=np.float32).reshape(2, 3)
    blob = _saved({"w": disttorch.tensor(w), "i": disttorch.tensor([5, -6])})
    header = C.verify_v2(blob)  # JSON + hashlib only
    meta = header.pop("__metadata__")
    assert list(meta)[0] == "disttorch_digest" and all(isinstance(v, str) for v in meta.values())
    assert meta["format"] == "disttorch" and meta["version"] == "2"
    (hlen,) = struct.unpack("<Q", blob[:8])
    data = blob[8 + hlen:]
    spans = sorted(tuple(e["data_offsets"]) for e in header.values())
    assert spans[0][0] == 0 and spans[-1][1] == len(data) and all(a[1] == b[0] for a, b in zip(spans, spans[1:]))
    arrays = {tuple(e["shape"]): (e["dtype"], data[e["data_offsets"][0]:e["data_offsets"][1]]) for e in header.values()}
    assert arrays[(2, 3)] == ("F32", w.tobytes()) and arrays[(2,)] == ("I64", np.array([5, -6], "<i8").tobytes())


def test_hmac_key_signs_and_refuses_unsigned_files(monkeypatch, tmp_path):
    plain = _saved({"x": 1})
    monkeypatch.setenv("DISTTORCH_CHECKPOINT_KEY", KEY.hex())
    signed = _saved({"x": 1})
    assert b'"disttorch_digest":"hmac-sha256:' in signed[:80]
    C.verify_v2(signed, KEY)
    assert _load(signed) == {"x": 1}
    with pytest.raises(CheckpointError, match=r"not signed.*DISTTORCH_CHECKPOINT_ALLOW_UNSIGNED"):
        _load(plain)
    safetensors = C.disttorch_v2(b"\xc0")[:0] or _plain_safetensors()
    with pytest.raises(CheckpointError, match="not signed"):
        _load(safetensors)
    with pytest.raises(CheckpointError, match="not signed"):
        _load(C.pt_zip(b"\x80\x02N."))
    with checkpoint_options(allow_unsigned=True):
        assert _load(plain) == {"x": 1} and _load(C.pt_zip(b"\x80\x02N.")) is None
    forged = C.disttorch_v2(msgpack.packb({"x": 2}), key=bytes(32))  # signed with another key
    with pytest.raises(CheckpointError, match="signature does not verify"):
        _load(forged)
    assert _load(C.disttorch_v2(msgpack.packb({"x": 3}), key=KEY)) == {"x": 3}
    monkeypatch.delenv("DISTTORCH_CHECKPOINT_KEY")
    with pytest.raises(CheckpointError, match="no key is configured"):
        _load(signed)
    monkeypatch.setenv("DISTTORCH_CHECKPOINT_KEY", "abc")
    with pytest.raises(ValueError, match="DISTTORCH_CHECKPOINT_KEY.*hex"):
        _load(signed)


def _plain_safetensors() -> bytes:
    a = np.arange(4, dtype=np.float32)
    h = json.dumps({"__metadata__": {"format": "pt"}, "a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}})
    return struct.pack("<Q", len(h)) + h.encode() + a.tobytes()


def _v1_file(structure: bytes, arrays: dict) -> bytes:
    header, data = {}, b""
    for name, arr in arrays.items():
        header[name] = {"dtype": "F32", "shape": list(arr.shape), "data_offsets": [len(data), len(data) + arr.nbytes]}
        data += arr.tobytes()
    header["__metadata__"] = {"format": "disttorch", "version": "1",
                              "structure": base64.b64encode(structure).decode(), "data_crc32": str(zlib.crc32(data))}
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw + data


def test_older_disttorch_files_and_plain_safetensors_still_load():
    arr = np.array([1.0, 2.0], np.float32)
    structure = msgpack.packb({"w": msgpack.ExtType(2, msgpack.packb(["t0", False, "cpu", None, {}])),
                               "t": msgpack.ExtType(1, msgpack.packb([1, "a"]))}, use_bin_type=True)
    got = _load(_v1_file(structure, {"t0": arr}))
    assert got["t"] == (1, "a") and got["w"].tolist() == [1.0, 2.0]
    damaged = bytearray(_v1_file(structure, {"t0": arr}))
    damaged[-1] ^= 0x40
    with pytest.raises(CheckpointError, match="checksum"):
        _load(bytes(damaged))
    plain = _load(_plain_safetensors())
    assert list(plain) == ["a"] and plain["a"].tolist() == [0.0, 1.0, 2.0, 3.0]
    with pytest.raises(CheckpointError, match="version '3'"):
        _load(C.disttorch_v2(msgpack.packb(1), meta_extra={"version": "3"}))


def _nest(depth: int, leaf=1):
    x = leaf
    for _ in range(depth):
        x = (x,)
    return x


def test_nesting_limit_same_in_save_and_load_with_the_path():
    ok = _nest(100)
    assert _load(_saved(ok)) == ok
    with pytest.raises(CheckpointError, match=r"disttorch.save: nesting depth exceeds the limit max_depth=100 .*"
                                              r"DISTTORCH_CHECKPOINT_MAX_DEPTH"):
        _saved(_nest(101))
    mixed = {"a": [collections.OrderedDict(k={"z": _nest(96)})]}  # dict, list, OrderedDict, dict + 96 = 100 levels
    assert _load(_saved(mixed)) == mixed
    mixed["a"][0]["k"]["z"] = _nest(97)
    with pytest.raises(CheckpointError, match=r"at root\['a'\]\[0\]<OrderedDict>\['k'\]\['z'\]<tuple>\[0\]<tuple>"):
        _saved(mixed)
    lists = [[[[[[1]]]]]]
    with checkpoint_options(max_depth=5):
        with pytest.raises(CheckpointError, match=r"max_depth=5 at root\[0\]\[0\]\[0\]\[0\]"):
            _saved(lists)
        deep_file = C.disttorch_v2(msgpack.packb(lists))
        with pytest.raises(CheckpointError, match=r"<file object>: nesting depth exceeds the limit max_depth=5"):
            _load(deep_file)
    assert _load(deep_file) == lists
    with checkpoint_options(max_depth=200):
        assert _load(_saved(_nest(200))) == _nest(200)
    with pytest.raises(ValueError, match="above the ceiling 250"):
        with checkpoint_options(max_depth=10_000):
            pass


_DEEP_RUNNER = textwrap.dedent("""
    import io, json, sys, threading
    sys.path.insert(0, sys.argv[1])
    import warnings
    import msgpack, disttorch
    import checkpoint_craft as C
    warnings.simplefilter("ignore")
    from disttorch.serialization import CheckpointError
    def nested_ext(depth):
        b = msgpack.packb(1)
        for _ in range(depth):
            b = msgpack.packb(msgpack.ExtType(1, b"\\x91" + b))  # a tuple holding the next level
        return b
    def nested_objects(depth):
        b = msgpack.packb(1)
        for _ in range(depth):  # an object whose __dict__ holds the next level
            b = msgpack.packb(msgpack.ExtType(12, msgpack.packb("argparse.Namespace") + b"\\x93\\xa4dict\\x81\\xa1x" + b
                                              + b"\\xc0"))
        return b
    def probe(name, fn, out):
        try:
            fn()
            out[name] = "ok"
        except CheckpointError as e:
            out[name] = "CheckpointError: " + str(e)[:300]
    def run(out):
        x = 1
        for _ in range(195):
            x = (x,)
        probe("save 195 deep", lambda: disttorch.save(x, io.BytesIO()), out)
        probe("load 100 deep", lambda: disttorch.load(io.BytesIO(C.disttorch_v2(nested_ext(100)))), out)
        probe("load 5000 deep", lambda: disttorch.load(io.BytesIO(C.disttorch_v2(nested_ext(5000)))), out)
        probe("objects 5000 deep", lambda: disttorch.load(io.BytesIO(C.disttorch_v2(nested_objects(5000))),
                                                         weights_only=False), out)
        probe("objects 100 deep", lambda: disttorch.load(io.BytesIO(C.disttorch_v2(nested_objects(100))),
                                                        weights_only=False), out)
    out = {}
    run(out)
    threading.stack_size(1 << 20)  # a small thread stack: the limit keeps the recursion inside it
    t_out = {}
    t = threading.Thread(target=run, args=(t_out,))
    t.start(); t.join()
    print(json.dumps({"main": out, "thread": t_out}))
""")


def test_deep_files_never_crash_on_the_main_thread_or_a_1_mib_thread():
    proc = subprocess.run([sys.executable, "-c", _DEEP_RUNNER, str(Path(__file__).parent)], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, f"rc={proc.returncode} {proc.stderr[-2000:]}"
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    for where in ("main", "thread"):
        r = report[where]
        assert r["load 100 deep"] == "ok", r
        assert "nesting depth exceeds the limit max_depth=100" in r["save 195 deep"], r
        assert "nesting depth exceeds the limit max_depth=100 at root<tuple>[0]<tuple>" in r["load 5000 deep"], r
        assert "nesting depth exceeds the limit max_depth=100 at root<object>['x']<object>" in r["objects 5000 deep"], r
        assert r["objects 100 deep"] == "ok", r


class Color(enum.Enum):
    RED = 1


def test_weights_only_false_calls_nothing_from_the_file(tmp_path):
    marker = tmp_path / "ran"

    def file_with(value) -> io.BytesIO:
        return io.BytesIO(C.disttorch_v2(msgpack.packb(value)))

    attacks = [msgpack.ExtType(16, msgpack.packb(["os.system", f"touch {marker}"])),  # enum tag
               msgpack.ExtType(12, msgpack.packb("os.system") + msgpack.packb(["setstate", f"touch {marker}", None])),
               msgpack.ExtType(16, msgpack.packb(["subprocess.Popen", ["touch", str(marker)]]))]
    for attack in attacks:
        for weights_only in (True, False):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                with pytest.raises(CheckpointError):
                    disttorch.load(file_with(attack), weights_only=weights_only)
    assert not marker.exists()
    with pytest.warns(UserWarning, match=r"imports the modules named in the file.*__new__ and __setstate__"):
        ref = disttorch.load(file_with(msgpack.ExtType(11, msgpack.packb("os.system"))), weights_only=False)
    assert ref is os.system and not marker.exists()  # returned, never called
    with pytest.warns(UserWarning):
        assert disttorch.load(io.BytesIO(_saved(Color.RED)), weights_only=False) is Color.RED


def _ext(code, *parts) -> msgpack.ExtType:
    return msgpack.ExtType(code, b"".join(msgpack.packb(p, use_bin_type=True) for p in parts))


MALFORMED = {
    "unknown tag": msgpack.ExtType(42, b"\xc0"),
    "msgpack timestamp": msgpack.Timestamp(1, 0),
    "unknown dtype": _ext(3, "float128"),
    "dtype of an int": _ext(3, 5),
    "tensor of 3 fields": _ext(2, ["t0", False, "cpu"]),
    "tensor of a missing key": _ext(2, ["t9", False, "cpu", None, {}]),
    "tensor with a bad device": _ext(2, ["t0", False, "gpu:x", None, {}]),
    "plain tensor with attributes": _ext(2, ["t0", False, "cpu", None, {"a": 1}]),
    "plain tensor kind with attributes": _ext(2, ["t0", False, "cpu", "disttorch._tensor.Tensor", {"a": 1}]),
    "int tensor requiring grad": _ext(2, ["i0", True, "cpu", None, {}]),
    "tensor kind not a tensor class": _ext(2, ["t0", False, "cpu", "disttorch.nn.parameter._share", {}]),
    "reference before any object": _ext(13, 0),
    "reference of a string": _ext(13, "x"),
    "object dtype scalar": _ext(15, ["|O", b"\x00" * 8]),
    "scalar of the wrong size": _ext(15, ["<f4", b"\x00"]),
    "set of an unhashable": _ext(7, [_ext(7, [1])]),
    "map keyed by a list": {b"k": 1},
    "OrderedDict dunder attribute": _ext(6, [[], {"__class__": 1}]),
    "OrderedDict attribute hiding a method": _ext(6, [[], {"items": 1}]),
    "OrderedDict items not pairs": _ext(6, [[1, 2], {}]),
    "range step 0": _ext(18, [0, 1, 0]),
    "complex of strings": _ext(9, ["a", "b"]),
    "int of letters": _ext(10, "12ab"),
    "Size of floats": _ext(5, [1.5]),
    "object of a function": _ext(12, "disttorch.nn.parameter._share", ["dict", {}, None]),
    "object with a bad state record": _ext(12, "collections.OrderedDict", ["bogus", {}, None]),
    "empty ext": msgpack.ExtType(1, b""),
    "container in a scalar record": _ext(3, [["float32"]]),
    "tagged value in a scalar record": _ext(3, [_ext(1, [1])]),
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_structure_with_a_valid_digest_raises_checkpoint_error(name):
    value = MALFORMED[name]
    if name == "map keyed by a list":
        structure = b"\x81\x91\x01\x02"  # {[1]: 2}
    else:
        structure = msgpack.packb(value, use_bin_type=True)
    tensors = {"t0": np.zeros(2, np.float32), "i0": np.zeros(2, np.int64)}
    blob = C.disttorch_v2(structure, tensors)
    from disttorch.nn.parameter import _share  # a function: allowlisted, still neither a class nor a tensor class
    with serialization.safe_globals([collections.OrderedDict, _share]):
        with pytest.raises(CheckpointError, match=r"corrupted|<file object>: not|does not contain") as info:
            _load(blob)
    assert "Unsupported global" not in str(info.value)


def test_truncated_and_trailing_structures():
    tensors = {"t0": np.zeros(2, np.float32)}
    whole = msgpack.packb({"a": _ext(1, [1, 2])})
    for structure in (whole[:-1], whole + b"\x01", whole[:3], b"\xc1", b""):
        with pytest.raises(CheckpointError):
            _load(C.disttorch_v2(structure, tensors))


def test_checkpoint_options_api(monkeypatch):
    base = serialization.get_checkpoint_options()
    assert base.max_depth == 100 and base.key is None and not base.allow_unsigned
    monkeypatch.setenv("DISTTORCH_CHECKPOINT_MAX_PICKLE_OPS", "123")
    assert serialization.get_checkpoint_options().max_pickle_ops == 123
    serialization.set_checkpoint_options(max_pickle_ops=456)
    try:
        with checkpoint_options(max_pickle_ops=789) as opts:
            assert opts.max_pickle_ops == 789 == serialization.get_checkpoint_options().max_pickle_ops
        assert serialization.get_checkpoint_options().max_pickle_ops == 456
    finally:
        serialization.set_checkpoint_options(max_pickle_ops=None)
    assert serialization.get_checkpoint_options().max_pickle_ops == 123
    monkeypatch.setenv("DISTTORCH_CHECKPOINT_MAX_DEPTH", "many")
    with pytest.raises(ValueError, match="DISTTORCH_CHECKPOINT_MAX_DEPTH='many' is not an integer"):
        serialization.get_checkpoint_options()
    with pytest.raises(TypeError, match="unknown option 'max_dept'"):
        serialization.set_checkpoint_options(max_dept=3)
    with pytest.raises(ValueError, match="at least 16 bytes"):
        serialization.set_checkpoint_options(key=b"short")


def test_sha256_digest_is_over_the_whole_file():
    blob = _saved({"w": disttorch.ones(3)})
    at = blob.index(b"sha256:") + len(b"sha256:")
    zeroed = blob[:at] + b"0" * 64 + blob[at + 64:]
    assert blob[at:at + 64].decode() == hashlib.sha256(zeroed).hexdigest()


def test_the_safetensors_library_reads_the_tensors():
    st = pytest.importorskip("safetensors.numpy", reason="the safetensors package is not installed (optional check)")
    w = np.arange(6, dtype=np.float32).reshape(2, 3)
    got = st.load(_saved({"model": collections.OrderedDict(w=disttorch.tensor(w)), "step": 3}))
    assert list(got) == ["t0"] and got["t0"].dtype == np.float32
    np.testing.assert_array_equal(got["t0"], w)
