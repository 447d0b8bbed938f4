"""The PyTorch .pt reader against hostile files: views outside storages, expansion and decompression bombs,
pickle resource limits, malformed pickles, nesting. Every refusal is a CheckpointError naming what is wrong."""
import io
import json
import pickle
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import disttorch
from disttorch.serialization import CheckpointError, UnsupportedGlobalError, checkpoint_options

sys.path.insert(0, str(Path(__file__).parent))
import checkpoint_craft as C  # noqa: E402

STORAGE = np.arange(1000, dtype=np.float32)


def _load(blob: bytes):
    return disttorch.load(io.BytesIO(blob))


def _view(offset, size, stride, numel=1000, storage=STORAGE.tobytes(), **kw) -> bytes:
    return C.pt_zip(C.rebuild_pickle(offset, size, stride, numel, **kw), {"0": storage})


def test_hand_made_view_loads_exact_values():
    # The crafted files below differ from this one only in the field under test.
    got = _load(_view(2, [3, 2], [4, 1]))
    np.testing.assert_array_equal(got.numpy(), [[2, 3], [6, 7], [10, 11]])
    assert got.dtype == disttorch.float32


@pytest.mark.parametrize("offset,size,stride,what", [
    (-1, [1000], [1], "non-negative"),  # reads one element before the buffer on the old reader
    (0, [2], [-100000000], "non-negative"),  # segfaulted the old reader
    (998, [3], [1], "reaches element 1000"),
    (0, [10, 200], [100, 1], "reaches element 1099"),
    (0, [2 ** 20, 2 ** 20], [2 ** 20, 1], "reaches element"),  # a bare MemoryError on the old reader
    (0, [3], [1, 1], "as many strides as sizes"),
    (True, [3], [1], "non-negative ints"),
    (0, [2.0], [1], "non-negative ints"),
])
def test_view_outside_its_storage_is_refused(offset, size, stride, what):
    blob = C.pt_zip(C.rebuild_pickle(0, [1], [1], 1000).replace(b"K\x00(K\x01t(K\x01t", _args(offset, size, stride)),
                    {"0": STORAGE.tobytes()})
    with pytest.raises(CheckpointError, match=what):
        _load(blob)


def _args(offset, size, stride) -> bytes:
    def item(x):
        if x is True:
            return b"\x88"
        if isinstance(x, float):
            return b"G" + struct.pack(">d", x)
        return C._ser_int(x)
    return item(offset) + b"(" + b"".join(map(item, size)) + b"t(" + b"".join(map(item, stride)) + b"t"


def test_stride_zero_expansion_is_capped_and_the_cap_is_configurable():
    four_bytes = np.array([7.5], np.float32).tobytes()
    blob = _view(0, [2 ** 27], [0], numel=1, storage=four_bytes)  # 512 MiB from 4 bytes on the old reader
    with pytest.raises(CheckpointError, match=r"exceeds the limit max_expand_bytes=268435456 \(set "
                                              r"DISTTORCH_CHECKPOINT_MAX_EXPAND_BYTES"):
        _load(blob)
    small = _view(0, [2 ** 18], [0], numel=1, storage=four_bytes)  # 1 MiB: within the default
    got = _load(small)
    assert got.shape == (2 ** 18,) and float(got.numpy().min()) == 7.5 == float(got.numpy().max())
    with checkpoint_options(max_expand_bytes=1 << 19):
        with pytest.raises(CheckpointError, match="max_expand_bytes=524288"):
            _load(small)


def test_identical_views_share_memory_and_distinct_overlapping_views_count():
    one = C.rebuild_pickle(0, [1000], [1], 1000)[2:-1]  # the REDUCE expression without PROTO / STOP
    pair = b"\x80\x02(" + one + one + b"t."
    a, b = _load(C.pt_zip(pair, {"0": STORAGE.tobytes()}))
    assert a is not b and np.shares_memory(a.numpy(), b.numpy())  # tied weights, as in PyTorch
    np.testing.assert_array_equal(b.numpy(), STORAGE)
    shifted = C.rebuild_pickle(1, [999], [1], 1000)[2:-1]
    many = b"\x80\x02(" + one + shifted + b"t."
    with checkpoint_options(max_expand_bytes=1000):  # 4000 + 3996 bytes built from a 4000-byte storage
        with pytest.raises(CheckpointError, match="max_expand_bytes=1000"):
            _load(C.pt_zip(many, {"0": STORAGE.tobytes()}))
    x, y = _load(C.pt_zip(many, {"0": STORAGE.tobytes()}))
    assert not np.shares_memory(x.numpy(), y.numpy()) and y.numpy()[0] == 1.0


@pytest.mark.parametrize("payload,option,what", [
    (b"\x80\x02N" + b"q\x00" * 3000 + b".", "max_pickle_ops", "pickle opcodes"),
    (b"\x80\x02N" + b"".join(b"r" + struct.pack("<I", i) for i in range(3000)) + b".", "max_pickle_memo",
     "pickle memo entries"),
    (b"\x80\x02" + b"N" * 3000 + b".", "max_pickle_stack", "pickle stack entries"),
    (b"\x80\x02" + b"(" * 3000 + b"N.", "max_pickle_stack", "pickle stack entries"),
])
def test_pickle_resource_limits(payload, option, what):
    blob = C.pt_zip(payload)
    assert _load(blob) is None  # within the defaults
    with checkpoint_options(**{option: 1000}):
        with pytest.raises(CheckpointError, match=rf"{what} \(\d+\) exceeds the limit {option}=1000 \(set "
                                                  rf"DISTTORCH_CHECKPOINT_{option.upper()} or"):
            _load(blob)


def test_data_pkl_size_is_checked_before_reading():
    blob = C.pt_zip(b"\x80\x02" + b"N" * 5000 + b".")
    with checkpoint_options(max_pickle_bytes=4096):
        with pytest.raises(CheckpointError, match=r"size of archive/data.pkl \(5003\) exceeds the limit "
                                                  "max_pickle_bytes=4096"):
            _load(blob)


def test_refused_global_is_an_unpickling_error_and_a_checkpoint_error():
    blob = C.pt_zip(b"\x80\x02cos\nsystem\nX\x04\x00\x00\x00echo\x85R.")
    with pytest.raises(UnsupportedGlobalError, match="global os.system is not allowed") as info:
        _load(blob)
    assert isinstance(info.value, pickle.UnpicklingError) and isinstance(info.value, CheckpointError)


def test_result_nesting_and_cycles_are_bounded():
    deep = C.pt_zip(b"\x80\x02N" + b"\x85" * 5000 + b".")
    with pytest.raises(CheckpointError, match=r"nesting depth exceeds the limit max_depth=100 at root\[0\]"):
        _load(deep)
    ok = _load(C.pt_zip(b"\x80\x02N" + b"\x85" * 100 + b"."))
    for _ in range(100):
        assert type(ok) is tuple and len(ok) == 1
        ok = ok[0]
    assert ok is None
    with pytest.raises(CheckpointError, match="contains itself"):
        _load(C.pt_zip(b"\x80\x02]q\x00h\x00a."))


_TENSOR_CALL = b"ctorch._utils\n_rebuild_tensor_v2\n"
MALFORMED = {
    "empty stack": b"\x80\x02.",
    "odd SETITEMS": b"\x80\x02}(K\x01u.",
    "unhashable key": b"\x80\x02}]K\x01s.",
    "missing memo": b"\x80\x02h\x05.",
    "MARK never opened": b"\x80\x02t.",
    "truncated": b"\x80\x02X\xff\x00\x00\x00ab",
    "bad utf-8": b"\x80\x02X\x02\x00\x00\x00\xff\xfe.",
    "unknown protocol": b"\x80\x09N.",
    "STACK_GLOBAL of ints": b"\x80\x02K\x01K\x02\x93.",
    "OrderedDict of ints": b"\x80\x02ccollections\nOrderedDict\n(K\x01K\x02K\x03tR.",
    "set of an unhashable": b"\x80\x02cbuiltins\nset\n(]]\x85tR.",
    "rebuild with two args": b"\x80\x02" + _TENSOR_CALL + b"(K\x01K\x02tR.",
    "Size of strings": b"\x80\x02ctorch\nSize\n(X\x01\x00\x00\x00at\x85R.",
    "device of a list": b"\x80\x02ctorch\ndevice\n(]tR.",
    "BUILD on a list": b"\x80\x02]}b.",
    "BUILD dunder on OrderedDict": b"\x80\x02ccollections\nOrderedDict\n)R}X\x09\x00\x00\x00__class__K\x01sb.",
    "BUILD hiding a method": b"\x80\x02ccollections\nOrderedDict\n)R}X\x05\x00\x00\x00itemsK\x01sb.",
    "SETITEM on a list": b"\x80\x02]K\x01K\x02s.",
    "APPEND on a dict": b"\x80\x02}K\x01a.",
    "bare global": b"\x80\x02ccollections\nOrderedDict\n.",
    "storage tuple leaks": b"\x80\x02(X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x000"
                           b"X\x03\x00\x00\x00cpuK\x01tQ.",
    "persistent id of ints": b"\x80\x02(K\x01K\x02K\x03K\x04K\x05tQ.",
    "parameter of an int": b"\x80\x02ctorch._utils\n_rebuild_parameter\n(K\x01\x89ccollections\nOrderedDict\n)RtR.",
    "storage numel mismatch": C.rebuild_pickle(0, [3], [1], 999),
    "storage type mismatch": b"\x80\x02(" + C.rebuild_pickle(0, [3], [1], 1000)[2:-1]
                             + C.rebuild_pickle(0, [3], [1], 1000, storage="LongStorage")[2:-1] + b"t.",
    "missing storage": C.rebuild_pickle(0, [3], [1], 1000, key="7"),
    "int tensor requiring grad": C.rebuild_pickle(0, [3], [1], 1000, storage="IntStorage", requires_grad=True),
    "invalid location": C.rebuild_pickle(0, [3], [1], 1000, location="#pu"),
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_pickle_raises_checkpoint_error(name):
    with pytest.raises(CheckpointError):
        _load(C.pt_zip(MALFORMED[name], {"0": STORAGE.tobytes()}))


def test_malformed_archives_raise_checkpoint_error():
    pkl = C.rebuild_pickle(0, [3], [1], 1000)
    good = C.pt_zip(pkl, {"0": STORAGE.tobytes()})
    assert _load(good).tolist() == [0.0, 1.0, 2.0]
    bzip2 = C.zip_file([C.stored("archive/data.pkl", pkl), ("archive/data/0", 12, b"BZh9", 0, 4000)])
    two_pkl = C.zip_file([C.stored("a/data.pkl", pkl), C.stored("b/data.pkl", pkl)])
    overlap = _overlapping_storages()
    lying_stored = C.zip_file([C.stored("archive/data.pkl", pkl),
                               ("archive/data/0", C.STORED, STORAGE.tobytes()[:400], 0, 4000)])
    byteorder = C.zip_file([C.stored("archive/data.pkl", pkl), C.stored("archive/byteorder", b"middle")])
    cd = good.index(b"PK\x01\x02")  # central directory: 'version needed to extract' at +6 set to 19.2
    new_version = good[:cd + 6] + struct.pack("<H", 192) + good[cd + 8:]
    cases = [(new_version, r"NotImplementedError: zip file version 19.2"), (bzip2, "compression method 12"),
             (two_pkl, "2 data.pkl"),
             (overlap, r"stored members hold \d+ bytes in a \d+-byte file"),
             (lying_stored, "corrupted zip archive"), (byteorder, "byteorder"), (good[:-30], "zip")]
    for blob, what in cases:
        with pytest.raises(CheckpointError, match=what):
            _load(blob)


def _overlapping_storages() -> bytes:
    """Storage 0's stored bytes are storage 1's local header and data: two members, one copy of the bytes."""
    import zlib
    name1 = b"archive/data/1"
    head1 = struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 0, 0, 0x21, zlib.crc32(STORAGE.tobytes()), 4000, 4000,
                        len(name1), 0) + name1
    inner = head1 + STORAGE.tobytes()
    pkl = (b"\x80\x02(" + C.rebuild_pickle(0, [3], [1], len(inner) // 4)[2:-1]
           + C.rebuild_pickle(0, [3], [1], 1000, key="1")[2:-1] + b"t.")
    blob = C.zip_file([C.stored("archive/data.pkl", pkl), C.stored("archive/data/0", inner)])
    # point a second central-directory entry (storage 1) into storage 0's data
    eocd = blob.rindex(b"PK\x05\x06")
    cd_size, cd_offset = struct.unpack("<II", blob[eocd + 12:eocd + 20])
    offset1 = blob.index(head1)
    entry = struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, 0, 0, 0x21, zlib.crc32(STORAGE.tobytes()), 4000,
                        4000, len(name1), 0, 0, 0, 0, 0, offset1) + name1
    central = blob[cd_offset:cd_offset + cd_size] + entry
    return blob[:cd_offset] + central + struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 3, 3, len(central), cd_offset, 0)


def test_saved_device_missing_here_is_a_checkpoint_error_and_map_location_helps():
    blob = C.pt_zip(C.rebuild_pickle(0, [3], [1], 1000, location="meta"), {"0": STORAGE.tobytes()})
    with pytest.raises(CheckpointError, match="saved on 'meta'.*map_location='cpu'"):
        _load(blob)
    assert disttorch.load(io.BytesIO(blob), map_location="cpu").tolist() == [0.0, 1.0, 2.0]


def test_big_endian_file_is_swapped():
    pkl = C.rebuild_pickle(0, [3], [1], 3)
    blob = C.zip_file([C.stored("archive/data.pkl", pkl), C.stored("archive/byteorder", b"big"),
                       C.stored("archive/data/0", np.array([1.5, -2.0, 3.0], ">f4").tobytes())])
    assert _load(blob).tolist() == [1.5, -2.0, 3.0]


_BOMB_RUNNER = textwrap.dedent("""
    import json, resource, sys, time
    import disttorch
    from disttorch.serialization import CheckpointError
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    out = {}
    for path in sys.argv[1:]:
        t0 = time.perf_counter()
        try:
            disttorch.load(path)
            err = "loaded"
        except CheckpointError as e:
            err = "CheckpointError: " + str(e)
        out[path] = [err, time.perf_counter() - t0]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"results": out, "grew_kib": peak - base}))
""")


def test_decompression_and_pickle_bombs_are_refused_fast_with_bounded_memory(tmp_path):
    gib = 1 << 30
    zeros, zcrc, zsize = C.deflate_repeat(b"", b"\0", gib, b"")
    nones, ncrc, nsize = C.deflate_repeat(b"\x80\x02", b"N", gib, b".")
    pkl = C.rebuild_pickle(0, [gib // 4], [1], gib // 4)
    files = {
        # 1 MB files holding a 1 GiB storage / a data.pkl of 2**30 NONE opcodes, sizes declared honestly ...
        "storage_bomb.pt": [C.stored("archive/data.pkl", pkl), ("archive/data/0", C.DEFLATED, zeros, zcrc, zsize)],
        "none_bomb.pt": [("archive/data.pkl", C.DEFLATED, nones, ncrc, nsize)],
        # ... or lying: a small declared size that the stream exceeds
        "storage_liar.pt": [C.stored("archive/data.pkl", C.rebuild_pickle(0, [1000], [1], 1000)),
                            ("archive/data/0", C.DEFLATED, zeros, zcrc, 4000)],
        "none_liar.pt": [("archive/data.pkl", C.DEFLATED, nones, ncrc, 4096)],
    }
    for name, members in files.items():
        (tmp_path / name).write_bytes(C.zip_file(members))
        assert (tmp_path / name).stat().st_size < 1_100_000
    proc = subprocess.run([sys.executable, "-c", _BOMB_RUNNER] + [str(tmp_path / n) for n in files],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    results = {Path(k).name: v for k, v in report["results"].items()}
    assert "max_decompressed_bytes=268435456" in results["storage_bomb.pt"][0]
    assert "max_pickle_bytes=67108864" in results["none_bomb.pt"][0]
    assert "CRC" in results["storage_liar.pt"][0] and "CRC" in results["none_liar.pt"][0]
    for name, (err, seconds) in results.items():
        assert err.startswith("CheckpointError"), (name, err)
        assert seconds < 5, (name, seconds)
    assert report["grew_kib"] < 64 * 1024, report  # far below the 1 GiB the bombs would take
