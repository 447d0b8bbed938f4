"""Parameter-server wire protocol against a server thread in this process: round trips, MACs, bad input."""
from __future__ import annotations

import os
import secrets
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from ps_support import ServerThread  # noqa: E402

from disttorch.distributed import _wire  # noqa: E402
from disttorch.distributed.ps import KVClient, plan_shards  # noqa: E402
from disttorch.distributed.ps import protocol as P  # noqa: E402
from disttorch.distributed.ps.endpoint import Peer, RemoteError  # noqa: E402

pytest.importorskip("zmq")

DTYPES = ["float16", "bfloat16", "float32", "float64", "complex64", "complex128", "int8", "int16", "int32",
          "int64", "uint8", "bool"]


def _sample(name: str, shape) -> np.ndarray:
    dt = P.dtype_table()[name]
    rng = np.random.default_rng(7)
    raw = rng.integers(0, 256, size=int(np.prod(shape, dtype=np.int64)) * dt.itemsize, dtype=np.uint8)
    if name == "bool":
        raw = raw % 2
    return raw.view(dt).reshape(shape)


@pytest.fixture
def server():
    s = ServerThread(num_workers=2)
    yield s
    s.close()


@pytest.fixture
def kv(server):
    c = KVClient([server.address], server.secret, rank=0, timeout=20)
    yield c
    c.close()


@pytest.mark.parametrize("name", DTYPES)
def test_encode_decode_every_dtype(name):
    mac = P.make_mac(b"k" * 16)
    for shape in [(), (0,), (3, 0, 2), (5,), (2, 3)]:
        a = _sample(name, shape)
        frames = P.encode(mac, {"t": "x", "n": 1, "f": b"\0" * 16}, [a])
        header, arrays = P.decode(mac, [bytes(memoryview(f)) for f in frames])
        assert header["t"] == "x" and arrays[0].dtype == a.dtype and arrays[0].shape == a.shape
        assert arrays[0].tobytes() == a.tobytes()


def test_round_trip_through_server_every_dtype(kv):
    for i, name in enumerate(DTYPES):
        for j, shape in enumerate([(), (0,), (4, 3)]):
            key = f"{name}/{j}"
            zero = np.zeros(shape, P.dtype_table()[name])
            assert kv.init(key, zero, rule="assign", mode="async")
            a = _sample(name, shape)
            got = kv.push_pull(key, a)
            assert got._data.dtype == a.dtype and got._data.shape == a.shape
            assert got._data.tobytes() == a.tobytes(), key
            assert kv.pull(key)._data.tobytes() == a.tobytes()


def test_sync_two_workers_average_then_sgd(server):
    a = KVClient([server.address], server.secret, rank=0, timeout=20)
    b = KVClient([server.address], server.secret, rank=1, timeout=20)
    try:
        w0 = np.array([1.0, -2.0, 3.0])
        a.init("w", w0, rule="sgd", mode="sync", lr=0.5, momentum=0.9)
        g = [np.array([0.1, 0.2, 0.3]), np.array([0.3, 0.0, -0.1])]
        ha = a.send("pushpull", "w", {"c": 0, "w": 0, "min": 1}, [g[0]])
        hb = b.send("pushpull", "w", {"c": 0, "w": 1, "min": 1}, [g[1]])
        ra, rb = a.wait(ha)[1][0], b.wait(hb)[1][0]
        expect = w0 - 0.5 * (g[0] + g[1]) / 2  # first momentum step: buf = grad
        np.testing.assert_allclose(ra, expect, rtol=0, atol=1e-15)
        np.testing.assert_array_equal(ra, rb)
        # second step: buf = 0.9 buf + g
        g2 = [np.array([1.0, 1.0, 1.0]), np.array([0.0, 2.0, -1.0])]
        ha = a.send("pushpull", "w", {"c": 1, "w": 0, "min": 2}, [g2[0]])
        hb = b.send("pushpull", "w", {"c": 1, "w": 1, "min": 2}, [g2[1]])
        buf = 0.9 * (g[0] + g[1]) / 2 + (g2[0] + g2[1]) / 2
        np.testing.assert_allclose(a.wait(ha)[1][0], expect - 0.5 * buf, rtol=0, atol=1e-15)
        after2 = b.wait(hb)[1][0]
        # resends (after a reconnection) count once: an applied clock, or a clock pushed twice
        b.push("w", g2[1], clock=1)
        b.push("w", g2[1], clock=2)
        b.push("w", np.full(3, 100.0), clock=2)
        a.push("w", g2[0], clock=2)
        buf = 0.9 * buf + (g2[0] + g2[1]) / 2
        np.testing.assert_allclose(a.pull("w", min_version=3)._data, after2 - 0.5 * buf, rtol=0, atol=1e-15)
        with pytest.raises(RemoteError, match="outside"):
            a.push("w", g2[0], clock=10 ** 6)
    finally:
        a.close()
        b.close()


def test_bad_input_gets_error_and_state_unchanged(kv):
    kv.init("k", np.arange(4.0), rule="assign")
    for bad, match in [(np.zeros(4, np.float32), "float32"), (np.zeros(5), r"\[5\]"), (np.zeros((2, 2)), r"\[2, 2\]")]:
        with pytest.raises(RemoteError, match=match):
            kv.push("k", bad)
    with pytest.raises(RemoteError, match="never initialised"):
        kv.pull("missing")
    with pytest.raises(RemoteError, match="unknown update rule"):
        kv.init("k2", np.zeros(2), rule="nope")
    with pytest.raises(RemoteError, match="L-BFGS"):
        kv.init("k3", np.zeros(2), rule="lbfgs")
    np.testing.assert_array_equal(kv.pull("k")._data, np.arange(4.0))
    assert kv.stats()["drops"].get("malformed", 0) >= 5


def test_hmac_rejection(server, kv):
    kv.init("k", np.arange(3.0))
    intruder = Peer(kv.ctx, server.address, secrets.token_bytes(16), "ps server", False)
    try:
        with pytest.raises(TimeoutError):
            intruder.hello(0.5)  # no welcome for a wrong MAC: nothing comes back
        peer = Peer(kv.ctx, server.address, server.secret, "ps server", False)
        peer.hello(10)
        # a correctly signed push with its MAC flipped: dropped, never applied
        frames = P.encode(peer.mac, {"t": "push", "k": "k", "c": 0, "w": 0, "n": 10 ** 6, "f": peer.id,
                                     "x": peer.session}, [np.ones(3)])
        frames[0] = bytes([frames[0][0] ^ 1]) + frames[0][1:]
        peer.sock.send_multipart(frames)
        missing = P.encode(peer.mac, {"t": "push", "k": "k", "n": 10 ** 6 + 1, "f": peer.id, "x": peer.session},
                           [np.ones(3)])[1:]
        peer.sock.send_multipart([b"", *missing])
        peer.call("stats", timeout=10)  # same connection: every frame above is through
        np.testing.assert_array_equal(kv.pull("k")._data, np.arange(3.0))
        drops = kv.stats()["drops"]
        assert drops.get("bad_mac", 0) >= 3, drops
        peer.close()
    finally:
        intruder.close()


def test_replay_and_foreign_session_dropped(server, kv):
    kv.init("k", np.zeros(2), rule="add")
    peer = Peer(kv.ctx, server.address, server.secret, "ps server", False)
    peer.hello(10)
    frames = P.encode(peer.mac, {"t": "push", "k": "k", "c": 0, "w": 0, "n": peer.counter + 1, "f": peer.id,
                                 "x": peer.session}, [np.ones(2)])
    peer.counter += 1
    peer._outstanding.add(peer.counter)
    raw = [bytes(memoryview(f)) for f in frames]
    peer.sock.send_multipart(raw)
    peer.wait(peer.counter, 10)
    peer.sock.send_multipart(raw)  # the same bytes again: a replay
    other = P.encode(peer.mac, {"t": "push", "k": "k", "c": 0, "w": 0, "n": 10 ** 9, "f": peer.id,
                                "x": _wire.nonce()}, [np.ones(2)])
    peer.sock.send_multipart(other)
    peer.call("stats", timeout=10)  # same connection: every frame above is through
    peer.close()
    np.testing.assert_array_equal(kv.pull("k")._data, np.ones(2))  # added once
    drops = kv.stats()["drops"]
    assert drops.get("replay") == 1 and drops.get("foreign_session") == 1, drops


def test_truncated_payload_and_header_limits():
    mac = P.make_mac(b"s" * 16)
    frames = [bytes(memoryview(f)) for f in P.encode(mac, {"t": "x", "n": 1, "f": b"\0" * 16}, [np.ones(4)])]
    short = frames[2][:-8]
    resigned = [mac.sign(frames[1], short), frames[1], short]
    with pytest.raises(P.ProtocolError) as e:
        P.decode(mac, resigned)
    assert e.value.reason == "truncated"
    big = P.encode(mac, {"t": "x", "n": 1, "f": b"\0" * 16, "pad": "x" * (P.MAX_HEADER + 1)})
    with pytest.raises(P.ProtocolError, match="header of"):
        P.decode(mac, big)
    for shape in ([-1], [2 ** 60], ["a"], [1] * (P.MAX_NDIM + 1)):
        hdr = __import__("msgpack").packb({"v": 1, "t": "x", "n": 1, "f": b"\0" * 16, "a": [["float64", shape]]})
        with pytest.raises(P.ProtocolError):
            P.decode(mac, [mac.sign(hdr, b""), hdr, b""])


def test_plan_shards_balance():
    sizes = [(1_000_000, 4), (10, 4), (300_000, 8), (0, 4), (1, 8), (50_000, 2)]
    total = sum(n * b for n, b in sizes)
    for servers in (1, 2, 3, 4):
        plan = plan_shards(sizes, servers)
        covered = {}
        for sh in plan:
            covered.setdefault(sh.param, []).append((sh.start, sh.stop))
        for i, (n, _) in enumerate(sizes):  # every element exactly once, in order
            spans = sorted(covered[i])
            assert spans[0][0] == 0 and spans[-1][1] == n
            assert all(a[1] == b[0] for a, b in zip(spans, spans[1:]))
        load = [0] * servers
        for sh in plan:
            load[sh.server] += (sh.stop - sh.start) * sizes[sh.param][1]
        largest = max((sh.stop - sh.start) * sizes[sh.param][1] for sh in plan)
        assert max(load) <= total / servers + largest
        assert max(load) <= 1.3 * total / servers


def test_curve_server_accepts_the_job_and_rejects_others():
    s = ServerThread(num_workers=1, secure=True)
    try:
        good = KVClient([s.address], s.secret, rank=0, secure=True, timeout=20)
        try:
            good.init("k", np.arange(3.0), rule="add")
            np.testing.assert_array_equal(good.push_pull("k", np.ones(3))._data, np.arange(3.0) + 1)
            for secret, secure in [(secrets.token_bytes(16), True), (s.secret, False)]:
                with pytest.raises(TimeoutError):  # a wrong key, or no CURVE at all: no handshake, no reply
                    KVClient([s.address], secret, rank=0, secure=secure, timeout=0.5)
            assert good.stats()["drops"] == {}  # cut off before a frame of theirs reached the server
        finally:
            good.close()
    finally:
        s.close()


def test_oversized_frame_is_dropped_before_buffering(monkeypatch):
    monkeypatch.setenv(_wire.MAX_MESSAGE_VAR, str(_wire.MIN_MAX_MESSAGE))
    s = ServerThread(num_workers=1)
    try:
        kv = KVClient([s.address], s.secret, rank=0, timeout=20)
        try:
            kv.init("small", np.zeros(4))
            big = np.zeros(_wire.MIN_MAX_MESSAGE // 8 + 1)
            with pytest.raises(ValueError, match="message limit"):  # the client refuses to send it
                kv.init("big", big)
            raw = Peer(kv.ctx, s.address, s.secret, "ps server", False)
            raw.hello(10)
            raw.sock.send_multipart(P.encode(raw.mac, {"t": "init", "k": "big", "n": 5, "f": raw.id,
                                                       "x": raw.session}, [big]))
            np.testing.assert_array_equal(kv.push_pull("small", np.ones(4))._data, np.ones(4))
            with pytest.raises(RemoteError, match="never initialised"):
                kv.pull("big")
            raw.close()
        finally:
            kv.close()
    finally:
        s.close()


def test_custom_update_rule(kv):
    from disttorch.distributed.ps import register_update_rule

    def scaled_add(param, grad, state, hp):
        state["calls"] = state.get("calls", 0) + 1
        param += hp["scale"] * grad

    register_update_rule("test_scaled_add", scaled_add)
    kv.init("c", np.array([1.0, 2.0]), rule="test_scaled_add", scale=0.5)
    np.testing.assert_array_equal(kv.push_pull("c", np.array([2.0, 4.0]))._data, [2.0, 4.0])
    kv.wait(kv.send("hp", "c", {"hp": {"scale": -1.0}}))
    np.testing.assert_array_equal(kv.push_pull("c", np.array([2.0, 4.0]))._data, [0.0, 0.0])
    with pytest.raises(TypeError, match="callable"):
        register_update_rule("x", 3)


def test_ssp_bounds_how_far_a_worker_runs_ahead(server):
    s = 2
    a = KVClient([server.address], server.secret, rank=0, timeout=20)
    b = KVClient([server.address], server.secret, rank=1, timeout=20)
    try:
        a.init("w", np.zeros(2), rule="sgd", mode="ssp", staleness=s, lr=1.0)
        for c in range(s):  # clocks 0..s-1 need no update from the slow worker
            h = a.send("pushpull", "w", {"c": c, "w": 0, "min": max(0, c + 1 - s)}, [np.ones(2)])
            np.testing.assert_array_equal(a.wait(h)[1][0], np.zeros(2))
        ahead = a.send("pushpull", "w", {"c": s, "w": 0, "min": 1}, [np.ones(2)])
        a.stats()  # answered after the server handled the pushpull above (same connection, in order)
        assert not ahead.done()  # s + 1 clocks ahead of the slowest: it must wait
        b.push("w", np.full(2, 3.0), clock=0)  # the slow worker's clock 0 completes clock 0
        header, arrays = a.wait(ahead)
        assert header["ver"] == 1
        np.testing.assert_array_equal(arrays[0], -np.full(2, 2.0))  # mean of 1 and 3, lr 1
    finally:
        a.close()
        b.close()
