"""Fuzz the two network receivers of a job: a live TCPStore server (in its own process) and the zmq transport of
a running two-rank job. Each gets random frames (hypothesis) and mutations of frames captured from real traffic
(bit flips, truncation, extra and missing frames, wrong MACs, replays), plus correctly signed garbage; afterwards
the normal operations must still give exactly the expected results, every fuzz frame must have been dropped and
counted, and nothing may have crashed or been left in a receive buffer.

Example counts scale with ``fuzz_support.examples`` (``make fuzz`` runs 50x).
"""
from __future__ import annotations

import hashlib
import hmac
import importlib.util
import os
import struct
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from fuzz_support import examples, settings_for
from hypothesis import given
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[2]
SECRET = "5c" * 16


def _load(name: str):
    """A test module of tests/distributed (its helpers: the store process, taps, the in-process pair)."""
    spec = importlib.util.spec_from_file_location(f"_fuzz_{name}", ROOT / "tests" / "distributed" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _poll_until(cond, seconds: float = 20.0, what: str = "condition"):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.01)
    raise AssertionError(f"timed out after {seconds} s waiting for {what}")


def _mutations(message: list, data) -> list:
    """One mutation of a captured multipart message (chosen by hypothesis)."""
    kind = data.draw(st.sampled_from(["flip", "truncate", "extend", "extra", "missing", "mac", "replay", "swap"]))
    frames = [bytes(f) for f in message]
    i = data.draw(st.integers(0, len(frames) - 1))
    f = bytearray(frames[i])
    if kind == "flip" and f:
        bit = data.draw(st.integers(0, 8 * len(f) - 1))
        f[bit // 8] ^= 1 << (bit % 8)
        frames[i] = bytes(f)
    elif kind == "truncate":
        frames[i] = bytes(f[:data.draw(st.integers(0, max(0, len(f) - 1)))])
    elif kind == "extend":
        frames[i] = bytes(f) + data.draw(st.binary(min_size=1, max_size=64))
    elif kind == "extra":
        frames.insert(data.draw(st.integers(0, len(frames))), data.draw(st.binary(max_size=64)))
    elif kind == "missing" and len(frames) > 1:
        del frames[i]
    elif kind == "mac":
        frames[min(i, len(frames) - 1)] = os.urandom(32)
    elif kind == "swap" and len(frames) > 1:
        frames[0], frames[-1] = frames[-1], frames[0]
    return frames  # "replay": the message as captured


_random_frames = st.lists(st.binary(max_size=300), min_size=1, max_size=5)
_msgpack_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**63, 2**64 - 1) | st.floats() | st.text(max_size=20)
    | st.binary(max_size=40),
    lambda inner: st.lists(inner, max_size=4), max_leaves=12)


# ---------------------------------------------------------------------------------------------------------------
# the store

def _store_mac(secret_hex: str, payload: bytes) -> bytes:
    key = hmac.new(bytes.fromhex(secret_hex), b"disttorch store v1", hashlib.sha256).digest()
    return hmac.new(key, struct.pack("<Q", len(payload)) + payload, hashlib.sha256).digest()


@pytest.mark.timeout(60 + examples(300) // 10)
def test_fuzz_store_server(monkeypatch):
    import msgpack

    from disttorch.distributed.store import TCPStore

    ts = _load("test_store")  # its taps and raw sockets hold its secret (CURVE keys and all)
    monkeypatch.setenv("DISTTORCH_JOB_SECRET", ts.SECRET)
    server = ts._StoreProcess(env={"DISTTORCH_JOB_SECRET": ts.SECRET})
    tap = ts._Tap(server.port)
    tap.start()
    raw = ts._raw(server.port)
    client = TCPStore("127.0.0.1", server.port, None, False, timedelta(seconds=20))
    try:
        # real traffic through the tap: every kind of request, captured with its replies
        recorder = TCPStore("127.0.0.1", tap.port, None, False, timedelta(seconds=20))
        recorder.set("rec/a", b"1")
        recorder.add("rec/n", 3)
        recorder.get("rec/a")
        recorder.compare_set("rec/a", b"1", b"2")
        recorder.multi_set(["rec/b", "rec/c"], [b"x", b"y"])
        recorder.wait(["rec/b"])
        recorder.append("rec/b", b"z")
        recorder.delete_key("rec/c")
        recorder.close()
        captured = tap.requests + tap.replies
        assert len(tap.requests) == 9
        for message in captured:  # every captured frame replayed once, whatever hypothesis picks below
            raw.send_multipart(message)

        @settings_for(300)
        @given(data=st.data())
        def fuzz(data):
            choice = data.draw(st.sampled_from(["random", "mutated", "signed"]))
            if choice == "random":
                frames = data.draw(_random_frames)
            elif choice == "mutated":
                frames = _mutations(data.draw(st.sampled_from(captured)), data)
            else:  # correctly signed, but garbage inside (a key holder's bug): answered or dropped, never a crash
                kind = data.draw(st.sampled_from(["req", "hello", "rep", "welcome", "other"]))
                body = [kind] + data.draw(st.lists(_msgpack_values, max_size=6))
                payload = msgpack.packb(body, use_bin_type=True)
                frames = [_store_mac(ts.SECRET, payload), payload]
            raw.send_multipart(frames)

        fuzz()
        # the server answers signed hellos and signed requests (with errors); drain those answers
        while raw.poll(200):
            raw.recv_multipart()
        assert server.alive()
        # normal operations give exactly the expected results
        client.set("k", "v")
        assert client.get("k") == b"v"
        assert client.add("ctr", 5) == 5 and client.add("ctr", -2) == 3
        assert client.compare_set("k", "v", "w") == b"w"
        client.multi_set(["m1", "m2"], [b"1", b"2"])
        assert client.multi_get(["m1", "m2", "rec/a"]) == [b"1", b"2", b"2"]
        assert client.get("rec/b") == b"xz" and not client.check(["rec/c"]) and client.get("rec/n") == b"3"
        stats = server.stats()["stats"]
        assert stats["total"] >= min(examples(300), 50) // 2, stats
        assert set(stats["by_reason"]) <= {"bad_mac", "malformed", "replay", "foreign_session"}
        assert server.alive()
    finally:
        client.close()
        raw.close(0)
        tap.stop()
        server.close()


# ---------------------------------------------------------------------------------------------------------------
# the zmq transport of a running job

@pytest.mark.timeout(60 + examples(400) // 10)
def test_fuzz_zmq_transport(monkeypatch):
    from disttorch.distributed.backends import _zmq_transport as T
    from disttorch.distributed.process_group import ReduceOp

    monkeypatch.setenv("DISTTORCH_JOB_SECRET", SECRET)
    monkeypatch.delenv("DISTTORCH_ZMQ_MAC_PAYLOAD", raising=False)
    monkeypatch.setenv("DISTTORCH_ZMQ_SHM", "0")  # the pair's collectives must cross the TCP wire fuzzed here
    tw = _load("test_wire")
    pair = tw._Pair()
    raws = [pair.raw_to(pair.t0), pair.raw_to(pair.t1)]
    sent = [0, 0]
    try:
        # real traffic: collectives of every path, point to point (several pieces), a mismatch abort
        tw._allreduce_pair(pair, 10)
        tw._allreduce_pair(pair, 300_000)
        x = np.arange(T.CHUNK // 4 + 7, dtype=np.float32)
        out = np.zeros_like(x)
        w = pair.pg1.recv(out, 0, tag=2)
        pair.pg0.send(x, 1, tag=2).wait()
        w.wait()
        b0, b1 = np.arange(6.0), np.zeros(6)
        w0, w1 = pair.pg0.broadcast([b0], 0), pair.pg1.broadcast([b1], 0)
        w0.wait()
        w1.wait()
        captured = list(pair.tap.messages)
        assert len(captured) >= 5 and np.array_equal(out, x) and np.array_equal(b1, b0)
        for message in captured:  # every captured frame replayed once, whatever hypothesis picks below
            raws[1].send_multipart(message)
            sent[1] += 1
        key = hmac.new(bytes.fromhex(SECRET), b"disttorch transport v1", hashlib.sha256).digest()
        hdr = struct.Struct("<B16sQQqIQQQQ")

        def signed(header: bytes, payload: bytes) -> list:
            mac = hmac.new(key, struct.pack("<Q", len(header)) + header, hashlib.sha256).digest()
            return [header, mac, payload]

        @settings_for(400)
        @given(data=st.data())
        def fuzz(data):
            to = data.draw(st.integers(0, 1))
            choice = data.draw(st.sampled_from(["random", "mutated", "signed"]))
            if choice == "random":
                frames = data.draw(_random_frames)
            elif choice == "mutated":
                frames = _mutations(data.draw(st.sampled_from(captured)), data)
            else:  # authentic headers that must still be refused: a stranger's rank, another incarnation
                t = (pair.t0, pair.t1)[to]
                stranger = data.draw(st.booleans())
                payload = data.draw(st.binary(max_size=64))
                # mostly well-formed otherwise (header-only MAC, matching length), so that only the sender's
                # rank or the incarnation is wrong
                fields = (data.draw(st.sampled_from([0, 0, 1]) | st.integers(0, 255)),
                          t.incarnation if stranger else os.urandom(16),
                          data.draw(st.integers(1, 2**64 - 1)), data.draw(st.integers(0, 2**64 - 1)),
                          data.draw(st.integers(-2**63, 2**63 - 1)),
                          data.draw(st.integers(2, 2**32 - 1)) if stranger else data.draw(st.integers(0, 1)),
                          data.draw(st.integers(0, 2**64 - 1)),
                          len(payload) if data.draw(st.booleans()) else data.draw(st.integers(0, 64)),
                          data.draw(st.integers(0, 2**64 - 1)), data.draw(st.integers(0, 2**64 - 1)))
                frames = signed(hdr.pack(*fields) + data.draw(st.binary(max_size=40)), payload)
            raws[to].send_multipart(frames)
            sent[to] += 1

        fuzz()
        # every fuzz frame is dropped and counted, none is buffered, both communication threads live on
        for i, t in enumerate((pair.t0, pair.t1)):
            _poll_until(lambda t=t, i=i: t.stats()["total"] == sent[i], what=f"rank {i} to count {sent[i]} drops")
            stats = t.stats()
            assert stats["buffered"] == {"coll": 0, "p2p": 0, "partial": 0, "early": 0}, stats
            assert set(stats["by_reason"]) <= {"bad_mac", "malformed", "replay", "foreign_session", "truncated"}
            assert t.thread.is_alive()
        # and the job's operations still give exactly the expected results
        tw._allreduce_pair(pair, 1000)
        tw._allreduce_pair(pair, 300_000)
        y = np.arange(50, dtype=np.int64)
        got = np.zeros_like(y)
        w = pair.pg0.recv(got, 1, tag=5)
        pair.pg1.send(y * 3, 0, tag=5).wait()
        w.wait()
        assert np.array_equal(got, y * 3)
        g0, g1 = [np.zeros(4), np.zeros(4)], [np.zeros(4), np.zeros(4)]
        w0, w1 = pair.pg0.allgather(g0, np.full(4, 1.0)), pair.pg1.allgather(g1, np.full(4, 2.0))
        w0.wait()
        w1.wait()
        assert [a.tolist() for a in g0] == [a.tolist() for a in g1] == [[1.0] * 4, [2.0] * 4]
        s0 = pair.pg0.allreduce([np.ones(3)], ReduceOp.SUM)
        s1 = pair.pg1.allreduce([np.ones(3)], ReduceOp.SUM)
        assert s0.wait() and s1.wait()
    finally:
        for r in raws:
            r.close(0)
        pair.close()
