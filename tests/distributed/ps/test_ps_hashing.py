"""The server's hashing threads (large messages verified and signed off the loop) and the client's two ways of
driving its sockets (from the calling thread, or from the communication thread), against a server thread."""
from __future__ import annotations

import os
import sys
import threading
import time

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from ps_support import ServerThread  # noqa: E402

from disttorch.distributed.ps import KVClient  # noqa: E402
from disttorch.distributed.ps import protocol as P  # noqa: E402
from disttorch.distributed.ps.endpoint import Peer, hash_threads_default  # noqa: E402

pytest.importorskip("zmq")

THRESHOLD = 4096  # bytes: the "large" payloads below (32 KiB) go to the hashing threads, the small ones do not
BIG = 4096  # float64 elements


@pytest.fixture
def server():
    # every large hash on the pool, as when several clients keep the loop busy (by default the loop hashes
    # itself when nothing else is waiting)
    s = ServerThread(num_workers=1, hash_threads=2, hash_threshold=THRESHOLD, always_offload=True)
    assert s.server._pool is not None
    yield s
    s.close()


def _signed(peer: Peer, header: dict, arrays) -> list:
    peer.counter += 1
    peer._outstanding.add(peer.counter)
    return P.encode(peer.mac, dict(header, n=peer.counter, f=peer.id, x=peer.session), arrays)


def _replies_in_arrival_order(peer: Peer, count: int, timeout: float = 20.0) -> list:
    """``count`` replies as ``(header, arrays)``, in the order the socket delivered them."""
    out = []
    while len(out) < count:
        assert peer.sock.poll(int(timeout * 1000)), f"only {len(out)} of {count} replies arrived"
        frames = peer.sock.recv_multipart(copy=False)
        out.append(P.decode(peer.mac, frames))
    return out


def test_large_payload_with_a_bad_mac_is_rejected_and_a_good_one_accepted(server):
    kv = KVClient([server.address], server.secret, rank=0, timeout=20)
    peer = Peer(kv.ctx, server.address, server.secret, "ps server", False)
    try:
        start = np.arange(BIG, dtype=np.float64)
        assert kv.init("w", start, rule="add")
        peer.hello(10)
        grad = np.full(BIG, 2.0)
        bad = _signed(peer, {"t": "push", "k": "w", "c": 0, "w": 0}, [grad])
        bad[0] = bytes([bad[0][0] ^ 0x80]) + bad[0][1:]
        peer.sock.send_multipart(bad)  # a valid message but for one MAC bit
        tampered = _signed(peer, {"t": "push", "k": "w", "c": 0, "w": 0}, [grad])
        payload = bytearray(memoryview(tampered[2]))
        payload[-1] ^= 1  # one payload bit: the MAC over the payload no longer verifies
        tampered[2] = bytes(payload)
        peer.sock.send_multipart(tampered)
        # answered only after both messages above were handled: same connection, handled in arrival order
        peer.call("stats", timeout=20)
        assert kv.stats()["drops"].get("bad_mac") == 2
        np.testing.assert_array_equal(kv.pull("w")._data, start)  # neither was applied
        good = peer.call("pushpull", {"k": "w", "c": 0, "w": 0, "min": 0}, [grad], timeout=20)
        np.testing.assert_array_equal(good[1][0], start + 2.0)
        # the large reply was signed on a hashing thread: the client verified it (else no reply at all)
        np.testing.assert_array_equal(kv.pull("w")._data, start + 2.0)
    finally:
        peer.close()
        kv.close()


class _GatedMac:
    """The server's MAC, but the check of a large message waits for ``gate``: it stands for slow hashing, and
    proves that large messages are checked off the loop (the loop goes on receiving meanwhile)."""

    def __init__(self, mac, gate: threading.Event) -> None:
        self.mac, self.gate = mac, gate

    def verify(self, sig, *parts) -> bool:
        if sum(memoryview(p).nbytes for p in parts[1:]) >= THRESHOLD:
            assert self.gate.wait(30), "the test never opened the gate"
        return self.mac.verify(sig, *parts)

    def sign(self, *parts) -> bytes:
        return self.mac.sign(*parts)


def _wait_for(condition, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


def test_replies_keep_the_order_of_requests_mixing_large_and_small(server):
    kv = KVClient([server.address], server.secret, rank=0, timeout=20)
    peer = Peer(kv.ctx, server.address, server.secret, "ps server", False)
    srv = server.server
    gate = threading.Event()
    try:
        kv.init("big", np.zeros(BIG), rule="assign")
        kv.init("small", np.zeros(3), rule="assign")
        peer.hello(10)
        received = []
        inner = srv._receive
        srv._receive = lambda frames: (received.append(1), inner(frames))
        srv.mac = _GatedMac(srv.mac, gate)
        sent, expect = [], []  # expect: (request counter, key, the value a pull must see)
        small_now = 0.0
        for step in range(12):
            big_now, small_before, small_now = float(step + 1), small_now, float(-step - 1)
            sent += [_signed(peer, {"t": "push", "k": "big", "c": 0, "w": 0}, [np.full(BIG, big_now)]),
                     _signed(peer, {"t": "pull", "k": "small", "min": 0}, []),
                     _signed(peer, {"t": "push", "k": "small", "c": 0, "w": 0}, [np.full(3, small_now)]),
                     _signed(peer, {"t": "pull", "k": "big", "min": 0}, [])]
            n0 = peer.counter - 3
            expect += [(n0, None, None), (n0 + 1, "small", small_before), (n0 + 2, None, None),
                       (n0 + 3, "big", big_now)]
        for f in sent:  # all pipelined before any reply is read
            peer.sock.send_multipart(f)
        _wait_for(lambda: len(received) == len(sent))  # the loop received everything while the hashes wait
        assert not peer.sock.poll(0), "a reply left before the large message in front of it was checked"
        gate.set()
        replies = _replies_in_arrival_order(peer, len(sent))
        assert [h["r"] for h, _ in replies] == [n for n, _, _ in expect]  # replies leave in request order
        for (h, arrays), (n, key, value) in zip(replies, expect):
            assert h["t"] == "ok", h
            if key is not None:  # each pull sees exactly the pushes sent before it
                assert arrays[0].shape == ((BIG,) if key == "big" else (3,))
                assert np.all(arrays[0] == value), (n, key, arrays[0][:3], value)
        np.testing.assert_array_equal(kv.pull("small")._data, np.full(3, small_now))
    finally:
        gate.set()
        peer.close()
        kv.close()


def test_two_peers_large_messages_interleave_without_loss(server):
    kv = KVClient([server.address], server.secret, rank=0, timeout=20)
    try:
        kv.init("acc", np.zeros(BIG), rule="add")
        peers = [Peer(kv.ctx, server.address, server.secret, "ps server", False) for _ in range(2)]
        for p in peers:
            p.hello(10)
        total = np.zeros(BIG)
        counts = []
        for i in range(8):
            for j, p in enumerate(peers):
                g = np.full(BIG, float(1 + i + 10 * j))
                total += g
                p.sock.send_multipart(_signed(p, {"t": "push", "k": "acc", "c": 0, "w": 0}, [g]))
        for p in peers:
            counts.append(len(_replies_in_arrival_order(p, 8)))
            p.close()
        assert counts == [8, 8]
        np.testing.assert_array_equal(kv.pull("acc")._data, total)
    finally:
        kv.close()


def test_client_calls_beside_pipelined_requests_from_another_thread():
    """Synchronous calls (driven from the calling thread when the sockets are free) and pipelined requests
    (driven by the communication thread) on one client, from two threads at once: every reply reaches its
    caller and the server applies every push once."""
    s = ServerThread(num_workers=1, hash_threads=0)
    kv = KVClient([s.address], s.secret, rank=0, timeout=30)
    try:
        kv.init("a", np.zeros(4), rule="add")
        kv.init("b", np.zeros(4), rule="add")
        errors = []

        def pipelined():
            try:
                for _ in range(25):
                    handles = [kv.send("push", "b", {"c": 0, "w": 0}, [np.ones(4)]) for _ in range(4)]
                    for h in handles:
                        kv.wait(h)
            except BaseException as e:  # noqa: BLE001 - reported by the main thread
                errors.append(e)

        t = threading.Thread(target=pipelined)
        t.start()
        for i in range(100):
            got = kv.push_pull("a", np.full(4, 1.0))
            assert np.all(got._data == i + 1)
        t.join(60)
        assert not t.is_alive() and not errors, errors
        np.testing.assert_array_equal(kv.pull("b")._data, np.full(4, 100.0))
    finally:
        kv.close()
        s.close()


def test_hash_threads_setting(monkeypatch):
    monkeypatch.setenv("DISTTORCH_PS_HASH_THREADS", "3")
    assert hash_threads_default() == 3
    monkeypatch.setenv("DISTTORCH_PS_HASH_THREADS", "many")
    with pytest.raises(ValueError, match="DISTTORCH_PS_HASH_THREADS"):
        hash_threads_default()
    monkeypatch.delenv("DISTTORCH_PS_HASH_THREADS")
    assert 1 <= hash_threads_default() <= 4
