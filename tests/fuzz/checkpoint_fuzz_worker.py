"""The checkpoint fuzz batches, run in their own process by test_checkpoint_fuzz.py (a crash is an exit code).

Inputs are mutations (hypothesis-chosen) of real files: disttorch checkpoints (version 2, signed and unsigned,
and version 1), the PyTorch .pt fixtures in tests/data/, a plain safetensors file and crafted .pt zips. Raw
mutations mostly stop at the digest or the zip CRC, so batches also mutate *behind* them: the msgpack
structure of a disttorch file re-signed with a valid digest, and data.pkl or a storage inside a re-built zip
with valid CRCs. Every input must load or raise CheckpointError; anything else fails the batch.

Usage: python checkpoint_fuzz_worker.py [batch ...]   (no argument: every batch)
"""
from __future__ import annotations

import base64
import collections
import io
import json
import os
import struct
import sys
import warnings
import zipfile
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TESTS))

import msgpack  # noqa: E402
import numpy as np  # noqa: E402
from fuzz_support import settings_for  # noqa: E402
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import checkpoint_craft as C  # noqa: E402
import disttorch  # noqa: E402
from disttorch.serialization import CheckpointError, checkpoint_options  # noqa: E402

KEY = bytes(range(16, 48))


def _save(obj, key=None) -> bytes:
    buf = io.BytesIO()
    with checkpoint_options(key=key):
        disttorch.save(obj, buf)
    return buf.getvalue()


def _corpus() -> dict:
    od = collections.OrderedDict([("weight", disttorch.arange(6.0).reshape(2, 3)), ("bias", disttorch.zeros(2))])
    od._metadata = {"": {"version": 1}}
    obj = {"model": od, "step": 7, "tup": (1, 2.5, None, "s"), "nested": [{"a": [1, (2, 3)]}, b"\x00\x01"],
           "set": {1, 2}, "big": 2 ** 70, "c": 1 + 2j, "dtype": disttorch.float16, "i": disttorch.tensor([1, 2])}
    files = {"v2": _save(obj), "v2_signed": _save(obj, KEY), "v2_tiny": _save({"x": (1,)})}
    structure = msgpack.packb({"w": msgpack.ExtType(2, msgpack.packb(["t0", False, "cpu", None, {}])),
                               "t": msgpack.ExtType(1, msgpack.packb([1, "a"]))})
    arr = np.array([1.0, 2.0], np.float32)
    header = {"t0": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
              "__metadata__": {"format": "disttorch", "version": "1",
                               "structure": base64.b64encode(structure).decode(),
                               "data_crc32": str(__import__("zlib").crc32(arr.tobytes()))}}
    raw = json.dumps(header).encode()
    files["v1"] = struct.pack("<Q", len(raw)) + raw + arr.tobytes()
    plain = json.dumps({"__metadata__": {"format": "pt"}, "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                        "b": {"dtype": "I64", "shape": [1], "data_offsets": [8, 16]}}).encode()
    files["safetensors"] = struct.pack("<Q", len(plain)) + plain + arr.tobytes() + np.int64(5).tobytes()
    for name in ("torch_checkpoint.pt", "torch_linear_state_dict.pt"):
        files[name] = (TESTS / "data" / name).read_bytes()
    storage = np.arange(12, dtype=np.float32).tobytes()
    files["crafted.pt"] = C.pt_zip(b"\x80\x02(" + C.rebuild_pickle(1, [2, 3], [4, 1], 12)[2:-1]
                                   + C.rebuild_pickle(0, [12], [1], 12)[2:-1] + b"t.", {"0": storage})
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("archive/data.pkl", C.rebuild_pickle(0, [3, 4], [1, 3], 12))
        z.writestr("archive/data/0", storage)
    files["deflated.pt"] = buf.getvalue()
    return files


CORPUS = _corpus()
NAMES = sorted(CORPUS)


RUNS = collections.Counter()


def _check(blob: bytes) -> None:
    """The property: the input loads, or the loader refuses it with CheckpointError."""
    RUNS["inputs"] += 1
    for weights_only in (True, False):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                with checkpoint_options(key=KEY, allow_unsigned=True):
                    disttorch.load(io.BytesIO(blob), weights_only=weights_only)
        except CheckpointError:
            pass


def _mutate(blob: bytes, data) -> bytes:
    """1-3 mutations; positions and sizes from a hypothesis-seeded Random, so they spread over the whole file
    (hypothesis's own integers favour small values and would keep hitting the first bytes)."""
    rnd = data.draw(st.randoms(use_true_random=True), label="rng")
    b = bytearray(blob)
    for _ in range(rnd.randint(1, 3)):
        kind = data.draw(st.sampled_from(["flip", "byte", "truncate", "splice", "delete", "duplicate", "length"]))
        n = len(b)
        if n == 0:
            break
        pos = rnd.randrange(n)
        if kind == "flip":
            b[pos] ^= 1 << rnd.randrange(8)
        elif kind == "byte":
            b[pos] = rnd.choice([0, 1, 0x7F, 0x80, 0xC0, 0xC1, 0xFF, rnd.randrange(256)])
        elif kind == "truncate":
            del b[pos:]
        elif kind == "splice":
            donor = CORPUS[rnd.choice(NAMES)]
            start = rnd.randrange(len(donor))
            piece = donor[start:start + rnd.randint(1, 64)]
            b[pos:pos + (len(piece) if rnd.random() < 0.5 else 0)] = piece
        elif kind == "delete":
            del b[pos:pos + rnd.randint(1, 32)]
        elif kind == "duplicate":
            b[pos:pos] = b[pos:pos + rnd.randint(1, 32)]
        else:
            _edit_length(b, rnd)
    return bytes(b)


def _edit_length(b: bytearray, rnd) -> None:
    """Rewrite a length field: the safetensors header length, or a zip size/offset/name-length field."""
    sigs = [i for sig in (b"PK\x03\x04", b"PK\x01\x02", b"PK\x05\x06") for i in _find_all(b, sig)]
    if not sigs or rnd.random() < 0.3:
        if len(b) >= 8:
            (old,) = struct.unpack("<Q", b[:8])
            new = rnd.randrange(2 ** 64) if rnd.random() < 0.3 else max(0, old + rnd.randint(-16, 16))
            b[:8] = struct.pack("<Q", new)
        return
    at = rnd.choice(sigs)
    # (offset in the record, width): local header sizes / name length; central sizes, name length, local offset;
    # end record counts, central directory size and offset
    fields = {b"PK\x03\x04": [(18, 4), (22, 4), (26, 2)], b"PK\x01\x02": [(20, 4), (24, 4), (28, 2), (42, 4)],
              b"PK\x05\x06": [(8, 2), (10, 2), (12, 4), (16, 4)]}[bytes(b[at:at + 4])]
    off, width = rnd.choice(fields)
    if at + off + width <= len(b):
        old = int.from_bytes(b[at + off:at + off + width], "little")
        new = rnd.randrange(2 ** (8 * width)) if rnd.random() < 0.3 else max(0, old + rnd.randint(-8, 8))
        b[at + off:at + off + width] = (new % 2 ** (8 * width)).to_bytes(width, "little")


def _find_all(b: bytes, sig: bytes) -> list:
    out, i = [], b.find(sig)
    while i >= 0:
        out.append(i)
        i = b.find(sig, i + 1)
    return out


def _resign(blob: bytes, structure: bytes | None = None, key: bytes | None = None) -> bytes:
    """The disttorch file ``blob`` with its structure replaced (if given) and a valid digest again."""
    (hlen,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + hlen])
    meta = header.pop("__metadata__")
    tensors = {}
    data = blob[8 + hlen:]
    codes = {"F32": np.float32, "F64": np.float64, "I64": np.int64, "F16": np.float16, "U8": np.uint8}
    for name, e in header.items():
        lo, hi = e["data_offsets"]
        if e["dtype"] in codes and e["dtype"] != "F16":
            tensors[name] = np.frombuffer(data[lo:hi], codes[e["dtype"]]).reshape(e["shape"])
    if structure is None:
        structure = base64.b64decode(meta["structure"])
    return C.disttorch_v2(structure, tensors, key=key)


# ------------------------------------------------------------------------------------------------------------
def fuzz_raw(n: int) -> None:
    @settings(settings_for(n), database=None)
    @given(st.sampled_from(NAMES), st.data())
    def run(name, data):
        _check(_mutate(CORPUS[name], data))
    run()


class _Ext:
    """A tagged value kept as its code and payload items, so a mutation can change either."""

    def __init__(self, code: int, items: list) -> None:
        self.code, self.items = code, items


def _tree(data: bytes):
    up = msgpack.Unpacker(None, ext_hook=lambda code, payload: _Ext(code, list(_items(payload))), raw=False,
                          strict_map_key=False, max_buffer_size=len(data) + 1)
    up.feed(data)
    return up.unpack()


def _items(payload: bytes):
    up = msgpack.Unpacker(None, ext_hook=lambda code, p: _Ext(code, list(_items(p))), raw=False,
                          strict_map_key=False, max_buffer_size=len(payload) + 1)
    up.feed(payload)
    return list(up)


def _pack(value) -> bytes:
    def default(o):
        if isinstance(o, _Ext):
            return msgpack.ExtType(o.code, b"".join(_pack(i) for i in o.items))
        raise TypeError(type(o))
    return msgpack.packb(value, default=default, use_bin_type=True, strict_types=False)


_REPLACEMENTS = [None, True, False, 0, -1, 2 ** 63, -2 ** 63, 1.5, float("inf"), "", "cpu", "cuda:9", "gpu", "t0",
                 "t99", "float32", "bogus", "os.system", "disttorch._tensor.Tensor", "collections.OrderedDict",
                 "setstate", "dict", "list", "__class__", b"", b"\x00" * 4, [], {}, [1, 2], {"a": 1}, {"__dict__": 1}]


def _mutate_tree(structure: bytes, rnd) -> bytes:
    """Decode the structure (tags kept as nodes), change one node, encode: framing stays valid, meaning breaks."""
    root = [_tree(structure)]
    slots = []  # (container, index or key) of every value
    stack = [root]
    while stack:
        node = stack.pop()
        if isinstance(node, _Ext):
            node = node.items
        if isinstance(node, list):
            slots += [(node, i) for i in range(len(node))]
            stack += node
        elif isinstance(node, dict):
            slots += [(node, k) for k in node]
            stack += list(node.values())
    for _ in range(rnd.randint(1, 2)):
        container, at = rnd.choice(slots)
        old = container[at]
        how = rnd.random()
        if how < 0.5:
            new = rnd.choice(_REPLACEMENTS)
        elif how < 0.7 and isinstance(old, _Ext):
            new = _Ext(rnd.choice([rnd.randint(1, 18), old.code]), list(old.items))
            if new.items and rnd.random() < 0.5:
                del new.items[rnd.randrange(len(new.items))]
        elif how < 0.85:
            new = _Ext(rnd.randint(1, 18), [rnd.choice(_REPLACEMENTS) for _ in range(rnd.randint(0, 5))])
        else:
            new = [old] if rnd.random() < 0.5 else (old, old)
        try:
            container[at] = new
        except TypeError:
            pass
    return _pack(root[0])


def fuzz_structure(n: int) -> None:
    """Mutated msgpack structures with a valid digest: what a peer rank or a forger can send."""
    @settings(settings_for(n), database=None)
    @given(st.sampled_from(["v2", "v2_tiny", "v2_signed"]), st.sampled_from(["tree"] * 6 + ["bytes"] * 3 + ["random"]),
           st.data())
    def run(name, how, data):
        blob = CORPUS[name]
        (hlen,) = struct.unpack("<Q", blob[:8])
        structure = base64.b64decode(json.loads(blob[8:8 + hlen])["__metadata__"]["structure"])
        if how == "tree":
            mutated = _mutate_tree(structure, data.draw(st.randoms(use_true_random=True)))
        elif how == "bytes":
            mutated = _mutate(structure, data)
        else:
            mutated = data.draw(st.binary(max_size=64))
        _check(_resign(blob, mutated, KEY if name == "v2_signed" else None))
    run()


def fuzz_pickle(n: int) -> None:
    """Mutated data.pkl and storages inside zips with valid CRCs: what reaches the pickle interpreter."""
    opcodes = [b"N", b"}", b"]", b")", b"(", b"t", b"\x85", b"\x86", b"\x87", b"s", b"u", b"a", b"e", b"R", b"b",
               b"Q", b"q\x00", b"h\x00", b"K\x01", b"\x88", b"\x94", b"X\x01\x00\x00\x00a", b"."]

    @settings(settings_for(n), database=None)
    @given(st.sampled_from(["torch_checkpoint.pt", "torch_linear_state_dict.pt", "crafted.pt", "deflated.pt"]),
           st.data())
    def run(name, data):
        z = zipfile.ZipFile(io.BytesIO(CORPUS[name]))
        members = {i.filename: z.read(i) for i in z.infolist()}
        target = data.draw(st.sampled_from(sorted(members)))
        if target.endswith("data.pkl") and data.draw(st.booleans()):
            pkl = bytearray(members[target])
            rnd = data.draw(st.randoms(use_true_random=True))
            for _ in range(rnd.randint(1, 4)):
                pos = rnd.randrange(len(pkl) + 1)
                pkl[pos:pos] = rnd.choice(opcodes)
            members[target] = bytes(pkl)
        else:
            members[target] = _mutate(members[target], data)
        _check(C.zip_file([C.stored(k, v) for k, v in members.items()]))
    run()


def fuzz_round_trip(n: int) -> None:
    """Generated nested values: save and load give back exactly the value, or save refuses (too deep)."""
    leaves = st.one_of(st.none(), st.booleans(), st.integers(-2 ** 70, 2 ** 70), st.floats(allow_nan=False),
                       st.text(max_size=5), st.binary(max_size=5))
    values = st.recursive(leaves, lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.tuples(inner, inner), st.dictionaries(st.text(max_size=3), inner, max_size=3),
        st.builds(lambda d: collections.OrderedDict(d), st.dictionaries(st.integers(0, 9), inner, max_size=3))),
        max_leaves=30)

    @settings(settings_for(n), database=None)
    @given(values)
    def run(value):
        RUNS["inputs"] += 1
        assert disttorch.load(io.BytesIO(_save(value))) == value
    run()


# examples per batch at scale 1 (about 15 s for all four on an idle core)
BATCHES = {"raw": (fuzz_raw, 2500), "structure": (fuzz_structure, 2500), "pickle": (fuzz_pickle, 2000),
           "round_trip": (fuzz_round_trip, 400)}

if __name__ == "__main__":
    for batch in sys.argv[1:] or list(BATCHES):
        fn, count = BATCHES[batch]
        RUNS.clear()
        fn(count)
        print(f"batch {batch}: ok ({RUNS['inputs']} inputs)", flush=True)
    os._exit(0)
