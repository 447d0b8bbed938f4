"""Round-trip shortcuts: large hashes on the server's loop when nothing else waits (on the pool otherwise), pull
replies that send the live value under a lease (copy on write), and client tensors kept in the reply frame."""
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
from disttorch.distributed.ps.endpoint import Peer  # noqa: E402
from disttorch.distributed.ps.rules import Rule  # noqa: E402
from disttorch.distributed.ps.server import _Key  # noqa: E402

pytest.importorskip("zmq")

THRESHOLD = 4096
BIG = 16384  # float64 elements: 128 KiB, above the hashing threshold and the lending/owning thresholds


def _wait_for(condition, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


def _signed(peer: Peer, header: dict, arrays) -> list:
    peer.counter += 1
    peer._outstanding.add(peer.counter)
    return P.encode(peer.mac, dict(header, n=peer.counter, f=peer.id, x=peer.session), arrays)


@pytest.mark.parametrize("always_offload", [False, True], ids=["inline", "offloaded"])
def test_bad_mac_rejected_whether_hashed_inline_or_offloaded(always_offload):
    s = ServerThread(num_workers=1, hash_threads=2, hash_threshold=THRESHOLD, always_offload=always_offload)
    srv = s.server
    kv = KVClient([s.address], s.secret, rank=0, timeout=20)
    peer = Peer(kv.ctx, s.address, s.secret, "ps server", False)
    try:
        start = np.arange(BIG, dtype=np.float64)
        kv.init("w", start, rule="add")
        peer.hello(10)
        before = srv.offloaded
        for i, flip in enumerate(("mac", "payload")):
            frames = _signed(peer, {"t": "push", "k": "w", "c": 0, "w": 0}, [np.full(BIG, 2.0)])
            if flip == "mac":
                frames[0] = bytes([frames[0][0] ^ 0x80]) + frames[0][1:]
            else:
                payload = bytearray(memoryview(frames[2]))
                payload[-1] ^= 1
                frames[2] = bytes(payload)
            peer.sock.send_multipart(frames)
            # one message at a time: nothing else waits on the socket while it is checked
            _wait_for(lambda: srv.drops.stats()["by_reason"].get("bad_mac") == i + 1)
        assert (srv.offloaded > before) == always_offload
        np.testing.assert_array_equal(kv.pull("w")._data, start)  # neither was applied
        got = kv.push_pull("w", np.full(BIG, 2.0))  # a good one is applied; its large reply verifies
        np.testing.assert_array_equal(got._data, start + 2.0)
        assert (srv.offloaded > before) == always_offload
    finally:
        peer.close()
        kv.close()
        s.close()


class _Pending:
    """A lease whose message ZeroMQ still reads."""

    def done(self) -> bool:
        return False


def test_key_copies_on_write_only_while_its_value_is_lent():
    value = np.zeros(BIG)
    key = _Key(value, Rule("add", value, {}), "async", 0)
    sent, lease = key.reply_value()
    assert sent is value and lease is not None  # no copy for a large value of a rule without optimizer
    key.lent[0] = _Pending()
    key.before_write()
    key.rule.apply(np.ones(BIG))
    np.testing.assert_array_equal(sent, np.zeros(BIG))  # what was being sent did not change
    np.testing.assert_array_equal(key.value, np.ones(BIG))
    assert key.value is not value and key.rule.param is key.value
    sent2, lease2 = key.reply_value()
    lease2.sent = True  # sent, no tracked frame left: done
    key.before_write()
    key.rule.apply(np.ones(BIG))
    assert key.value is sent2  # written in place: nobody read it any more
    np.testing.assert_array_equal(sent2, np.full(BIG, 2.0))


def test_assign_takes_a_large_private_array_and_copies_the_others():
    value = np.zeros(BIG)
    key = _Key(value, Rule("assign", value, {}), "async", 0)
    small = np.zeros(8)
    small_key = _Key(small, Rule("assign", small, {}), "async", 0)
    pushed = np.full(BIG, 5.0)  # writable, aligned, contiguous: as a received frame
    key.update(pushed)
    assert key.value is pushed and key.rule.param is pushed
    frozen = np.full(BIG, 6.0)
    frozen.flags.writeable = False  # not ours to keep: copied into the value
    key.update(frozen)
    assert key.value is pushed and np.all(pushed == 6.0)
    tiny = np.full(8, 7.0)
    small_key.update(tiny)
    assert small_key.value is small and np.all(small == 7.0)
    added = np.zeros(BIG)
    add_key = _Key(added, Rule("add", added, {}), "async", 0)
    add_key.update(np.ones(BIG))
    assert add_key.value is added and np.all(added == 1.0)


def test_small_or_optimizer_values_are_copied_for_replies():
    small = np.zeros(8)
    key = _Key(small, Rule("add", small, {}), "async", 0)
    sent, lease = key.reply_value()
    assert lease is None and sent is not small
    big = np.zeros(BIG)
    key = _Key(big, Rule("sgd", big, {"lr": 0.1}), "async", 0)
    sent, lease = key.reply_value()
    assert lease is None and sent is not big


class _GatedSign:
    """The server's MAC, but signing a large reply waits for ``gate``: the reply's value stays lent meanwhile."""

    def __init__(self, mac, gate: threading.Event) -> None:
        self.mac, self.gate = mac, gate

    def verify(self, sig, *parts) -> bool:
        return self.mac.verify(sig, *parts)

    def sign(self, *parts) -> bytes:
        if sum(memoryview(p).nbytes for p in parts[1:]) >= THRESHOLD:
            assert self.gate.wait(30), "the test never opened the gate"
        return self.mac.sign(*parts)


@pytest.mark.parametrize("rule,final", [("add", 6.0), ("assign", 3.0)])
def test_lent_reply_keeps_its_value_while_others_push(rule, final):
    """A pull's reply waits for its signature (the live value is lent to it), then another client pushes (``add``
    writes the value in place, ``assign`` takes the pushed array): the first client still gets the value of its
    own pull, under a MAC that verifies."""
    s = ServerThread(num_workers=1, hash_threads=2, hash_threshold=THRESHOLD, always_offload=True)
    srv = s.server
    kv = KVClient([s.address], s.secret, rank=0, timeout=30)
    peer = Peer(kv.ctx, s.address, s.secret, "ps server", False)
    gate = threading.Event()
    try:
        kv.init("w", np.zeros(BIG), rule=rule)
        kv.push("w", np.full(BIG, 1.0))
        peer.hello(10)
        srv.mac = _GatedSign(srv.mac, gate)
        peer.sock.send_multipart(_signed(peer, {"t": "pull", "k": "w", "min": 0}, []))
        _wait_for(lambda: srv.keys["w"].lent)  # answered with the live value; its signature waits
        for v in (2.0, 3.0):
            kv.push("w", np.full(BIG, v))
        assert not peer.sock.poll(0)
        gate.set()
        assert np.all(kv.pull("w")._data == final)
        assert peer.sock.poll(20000)
        header, arrays = P.decode(peer.mac, peer.sock.recv_multipart(copy=False))
        assert header["t"] == "ok" and arrays[0].shape == (BIG,)
        assert np.all(arrays[0] == 1.0)
    finally:
        gate.set()
        peer.close()
        kv.close()
        s.close()


def test_large_pulled_tensor_is_writable_and_independent():
    s = ServerThread(num_workers=1, hash_threads=0)
    kv = KVClient([s.address], s.secret, rank=0, timeout=20)
    try:
        start = np.arange(BIG, dtype=np.float32)
        kv.init("w", start, rule="add")
        a, b = kv.pull("w"), kv.pull("w")
        a.add_(1.0)  # in place: the tensor owns writable memory
        np.testing.assert_array_equal(a._data, start + 1.0)
        np.testing.assert_array_equal(b._data, start)
        np.testing.assert_array_equal(kv.pull("w")._data, start)
    finally:
        kv.close()
        s.close()
