"""Object collectives decode peer bytes with disttorch.load's checks: a crafted message from any rank raises
CheckpointError naming the op and the sending rank, and never crashes the receiver (checked in a subprocess,
on the main thread and on a thread with a 1 MiB stack)."""
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import msgpack
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parents[1]))
import checkpoint_craft as C  # noqa: E402

from disttorch.distributed import _objects  # noqa: E402
from disttorch.serialization import CheckpointError, UnsupportedGlobalError  # noqa: E402


def _decode(blob: bytes):
    return _objects._decode(np.frombuffer(blob, np.uint8), "broadcast_object_list", 3)


def test_round_trip_and_crafted_messages_name_the_op_and_rank():
    obj = {"epoch": 3, "pair": (1, "a"), "t": np.arange(3)}
    got = _objects._decode(_objects._encode(obj, "all_gather_object"), "all_gather_object", 1)
    assert got["pair"] == (1, "a") and got["epoch"] == 3 and got["t"].tolist() == [0, 1, 2]
    bad = {
        "damaged": bytes(_objects._encode(obj, "x")[:-1]),
        "unknown tag": C.disttorch_v2(msgpack.packb(msgpack.ExtType(77, b"\x01"))),
        "truncated structure": C.disttorch_v2(msgpack.packb([1, 2, 3])[:-1]),
    }
    for name, blob in bad.items():
        with pytest.raises(CheckpointError, match=r"broadcast_object_list \(the object from rank 3\)"):
            _decode(blob)
    with pytest.raises(UnsupportedGlobalError, match="os.system"):
        _decode(C.disttorch_v2(msgpack.packb(msgpack.ExtType(11, msgpack.packb("os.system")))))


def test_nesting_limit_applies_to_messages():
    x = 1
    for _ in range(101):
        x = [x]
    with pytest.raises(CheckpointError, match="disttorch.save: nesting depth exceeds the limit max_depth=100"):
        _objects._encode(x, "all_gather_object")
    with pytest.raises(CheckpointError, match=r"rank 3\): nesting depth exceeds the limit max_depth=100"):
        _decode(C.disttorch_v2(msgpack.packb(x)))


_RECEIVER = textwrap.dedent("""
    import json, sys, threading
    sys.path.insert(0, sys.argv[1])
    import msgpack, numpy as np
    import checkpoint_craft as C
    from disttorch.distributed import _objects
    from disttorch.serialization import CheckpointError
    b = msgpack.packb(1)
    for _ in range(3000):  # 3000 nested tuples: about 1.3 KB of message
        b = msgpack.packb(msgpack.ExtType(1, b"\\x91" + b))
    message = np.frombuffer(C.disttorch_v2(b), np.uint8)
    out = {}
    def receive(where):
        try:
            _objects._decode(message, "broadcast_object_list", 1)
            out[where] = "decoded"
        except CheckpointError as e:
            out[where] = str(e)
    receive("main")
    threading.stack_size(1 << 20)
    t = threading.Thread(target=receive, args=("thread",))
    t.start(); t.join()
    print(json.dumps(out))
""")


def test_a_deeply_nested_message_from_a_peer_cannot_crash_the_receiver():
    proc = subprocess.run([sys.executable, "-c", _RECEIVER, str(Path(__file__).parents[1])], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, f"receiver died: rc={proc.returncode} {proc.stderr[-2000:]}"
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    for where in ("main", "thread"):
        assert "(the object from rank 1): nesting depth exceeds the limit max_depth=100" in out[where], out
