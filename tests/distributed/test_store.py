"""Rendezvous stores: TCPStore (master here, clients in two real processes), PrefixStore, HashStore, and the
server's defences: unauthenticated, replayed, foreign and oversized frames, rate-limited drop warnings.

This file is also a script: ``python test_store.py RANK PORT`` runs one client and prints JSON;
``python test_store.py serve`` serves a store, prints ``PORT n`` and answers ``stats`` lines on stdin.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from datetime import timedelta

import pytest

HERE = os.path.abspath(__file__)
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
SECRET = "a1b2c3d4" * 4


def _client(rank: int, port: int) -> None:
    from disttorch.distributed.store import DistStoreError, PrefixStore, TCPStore

    s = TCPStore("127.0.0.1", port, 3, False, timedelta(seconds=20))
    out = {}
    s.set(f"k{rank}", f"v{rank}")
    out["add"] = s.add("counter", 10 * rank)
    s.wait(["k1", "k2"])
    out["other"] = s.get(f"k{3 - rank}").decode()
    out["check"] = [s.check(["k1", "k2"]), s.check(["k1", "nope"])]
    # only one client wins the compare_set race; both see the winner's value
    out["cas"] = s.compare_set("lock", "", f"owner{rank}").decode()
    p = PrefixStore("job", s)
    p.set(f"p{rank}", b"\x00\xff")
    out["prefixed"] = s.get(f"job/p{rank}").hex()
    s.set(f"ready{rank}", "1")
    out["late"] = s.get(f"late{rank}").decode()  # parked on the server until the master sets it
    s.set_timeout(timedelta(seconds=0.3))
    try:
        s.get("missing")
    except DistStoreError as e:
        out["timeout"] = str(e)
    try:
        s.wait(["missing2"], timedelta(seconds=0.2))
    except RuntimeError as e:
        out["wait_timeout"] = str(e)
    print(json.dumps(out), flush=True)


def _free_port() -> int:
    with socket.socket() as sk:
        sk.bind(("127.0.0.1", 0))
        return sk.getsockname()[1]


@pytest.fixture(autouse=True)
def private_secret_file(monkeypatch, tmp_path):
    """Tests without DISTTORCH_JOB_SECRET use a per-user secret file: keep it out of the real home."""
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))


@pytest.fixture
def secret_env(monkeypatch):
    monkeypatch.setenv("DISTTORCH_JOB_SECRET", SECRET)


@pytest.mark.timeout(60)
def test_tcpstore_master_and_two_clients(secret_env):
    from disttorch.distributed.store import TCPStore

    port = _free_port()
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    procs = [subprocess.Popen([sys.executable, HERE, str(r), str(port)], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for r in (1, 2)]
    master = None
    try:
        # the clients started first: the master's constructor returns once all 3 processes have registered
        master = TCPStore("127.0.0.1", port, 3, True, timedelta(seconds=30), wait_for_workers=True)
        assert master.get("init/") == b"3"
        master.wait(["ready1", "ready2"])
        master.set("late1", "one")
        master.set("late2", b"two")
        results = [p.communicate(timeout=40) for p in procs]
        for p, (out, err) in zip(procs, results):
            assert p.returncode == 0, err[-3000:]
        r1, r2 = (json.loads(out.strip().splitlines()[-1]) for out, _ in results)
        assert {r1["add"], r2["add"]} in ({10, 30}, {20, 30})
        assert master.add("counter", 0) == 30 and master.get("counter") == b"30"
        assert (r1["other"], r2["other"]) == ("v2", "v1")
        assert r1["check"] == r2["check"] == [True, False]
        assert r1["cas"] == r2["cas"] and r1["cas"] in ("owner1", "owner2")
        assert (r1["prefixed"], r2["prefixed"]) == ("00ff", "00ff")
        assert (r1["late"], r2["late"]) == ("one", "two")
        for r in (r1, r2):
            assert "missing" in r["timeout"] and "0.3 s" in r["timeout"]
            assert "missing2" in r["wait_timeout"] and "0.2 s" in r["wait_timeout"]
        # keys: init/, counter, k1, k2, lock, job/p1, job/p2, ready1, ready2, late1, late2
        assert master.num_keys() == 11
        assert master.delete_key("lock") is True and master.delete_key("lock") is False
        assert master.num_keys() == 10
        assert master.compare_set("lock", "x", "y") == b"x"  # absent and expected not empty: unchanged
        assert not master.check(["lock"])
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        if master is not None:
            master.close()


# ---------------------------------------------------------------------------------------------------------------
# the wire protocol, spoken by hand from store.py's docstring (an independent implementation to test against)

def _store_key(secret_hex: str = SECRET) -> bytes:
    return hmac.new(bytes.fromhex(secret_hex), b"disttorch store v1", hashlib.sha256).digest()


def _mac(key: bytes, payload: bytes) -> bytes:
    return hmac.new(key, struct.pack("<Q", len(payload)) + payload, hashlib.sha256).digest()


def _curve_secret(secret_hex: str = SECRET) -> bytes:
    """The store's CURVE secret key (Z85), derived from the job secret as store.py's docstring says."""
    from zmq.utils import z85

    return z85.encode(hmac.new(bytes.fromhex(secret_hex), b"disttorch store curve v1", hashlib.sha256).digest())


def _raw(port: int, keys: bool = True):
    """A DEALER to the store; with ``keys`` it has the job secret's CURVE keys (a key holder), else none."""
    import zmq

    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    if keys:
        sock.curve_serverkey = zmq.curve_public(_curve_secret())
        sock.curve_publickey, sock.curve_secretkey = zmq.curve_keypair()
    sock.connect(f"tcp://127.0.0.1:{port}")
    return sock


def _poll_until(cond, seconds: float = 10.0, what: str = "condition"):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        got = cond()
        if got:
            return got
        time.sleep(0.01)
    raise AssertionError(f"timed out after {seconds} s waiting for {what}")


class _Tap(threading.Thread):
    """A man in the middle that holds the job secret (the worst case for replays): a client connects to ``.port``;
    frames go on to the store and back, decrypted, and are recorded.
    With ``stale_replies`` it first hands the client the previous reply again before each new request's."""

    def __init__(self, store_port: int, stale_replies: bool = False) -> None:
        import zmq

        super().__init__(daemon=True)
        ctx = zmq.Context.instance()
        self.front = ctx.socket(zmq.ROUTER)  # it holds the secret: it can pose as the store (CURVE server)
        self.front.setsockopt(zmq.LINGER, 0)
        self.front.curve_secretkey = _curve_secret()
        self.front.curve_server = True
        self.port = self.front.bind_to_random_port("tcp://127.0.0.1")
        self.back = _raw(store_port)
        self.requests, self.replies = [], []
        self.stale_replies = stale_replies
        self._halt = threading.Event()

    def run(self) -> None:
        import zmq

        poller = zmq.Poller()
        poller.register(self.front, zmq.POLLIN)
        poller.register(self.back, zmq.POLLIN)
        ident = None
        while not self._halt.is_set():
            events = dict(poller.poll(20))
            if self.front in events:
                ident, *frames = self.front.recv_multipart()
                self.requests.append(frames)
                if self.stale_replies and self.replies:
                    self.front.send_multipart([ident, *self.replies[-1]])
                self.back.send_multipart(frames)
            if self.back in events:
                frames = self.back.recv_multipart()
                self.replies.append(frames)
                self.front.send_multipart([ident, *frames])
        self.front.close(0)
        self.back.close(0)

    def stop(self) -> None:
        self._halt.set()
        self.join(5)


def _decode(frames):
    import msgpack

    return msgpack.unpackb(frames[1], raw=False)


@pytest.mark.timeout(30)
def test_unauthenticated_frames_are_dropped_and_the_server_keeps_serving(secret_env, caplog):
    import msgpack
    import zmq

    from disttorch.distributed.store import TCPStore

    master = TCPStore("127.0.0.1", 0, None, True, timedelta(seconds=5))
    master.set("secret", "data")
    raw = _raw(master.port)
    key = _store_key()
    try:
        cid, mine = os.urandom(16), os.urandom(16)
        hello = msgpack.packb(["hello", cid, mine], use_bin_type=True)
        for frames in ([b"garbage"], [b"\x00" * 32, b"\xc1\xc1"], [_mac(b"not the job secret", hello), hello],
                       [b"", hello], [_mac(b"", hello), hello],  # the empty key signs nothing any more
                       [hmac.new(bytes.fromhex(SECRET), hello, hashlib.sha256).digest(), hello],  # not the store key
                       [_mac(key, hello), hello, b"extra"], [_mac(key, b"\xc1"), b"\xc1"]):
            raw.send_multipart(frames)
        # a correctly signed hello is the first message this socket gets an answer to
        raw.send_multipart([_mac(key, hello), hello])
        assert raw.poll(5000, zmq.POLLIN)
        frames = raw.recv_multipart()
        assert frames[0] == _mac(key, frames[1])
        kind, cid2, mine2, session = _decode(frames)
        assert (kind, cid2, mine2, len(session)) == ("welcome", cid, mine, 16)
        # a signed request for an unknown operation gets an error reply, bound to its client id and counter
        bad = msgpack.packb(["req", session, cid, 1, "no_such_op", []], use_bin_type=True)
        raw.send_multipart([_mac(key, bad), bad])
        assert raw.poll(5000, zmq.POLLIN)
        frames = raw.recv_multipart()
        assert frames[0] == _mac(key, frames[1])
        kind, cid3, counter, ok, text = _decode(frames)
        assert (kind, cid3, counter, ok) == ("rep", cid, 1, False) and "no_such_op" in text
        assert raw.poll(0, zmq.POLLIN) == 0
        stats = master._server.stats()
        assert stats["by_reason"] == {"malformed": 3, "bad_mac": 5}, stats
        master.set("after", "1")
        assert master.get("secret") == b"data"
        assert master.get("after") == b"1"
    finally:
        raw.close(0)
        master.close()
    lines = [r.getMessage() for r in caplog.records if "dropped" in r.getMessage()]
    assert 2 <= len(lines) <= 4, lines  # a first line per reason (+ a summary per reason at close), not one per frame


@pytest.mark.timeout(30)
def test_drop_warnings_are_rate_limited_and_counted(secret_env, caplog):
    from disttorch.distributed.store import TCPStore

    master = TCPStore("127.0.0.1", 0, None, True, timedelta(seconds=5))
    raw = _raw(master.port)
    try:
        for i in range(300):
            raw.send_multipart([os.urandom(32), b"request %d" % i])
        _poll_until(lambda: master._server.stats()["total"] >= 300, what="300 drops")
        assert master._server.stats()["by_reason"] == {"bad_mac": 300}
        master.set("k", "v")
        assert master.get("k") == b"v"
        lines = [r.getMessage() for r in caplog.records if "dropped" in r.getMessage()]
        assert len(lines) == 1 and "MAC" in lines[0], lines
    finally:
        raw.close(0)
        master.close()
    summary = [r.getMessage() for r in caplog.records if "dropped 299 more" in r.getMessage()]
    assert len(summary) == 1 and "300 in all" in summary[0]  # the count arrives at close at the latest


@pytest.mark.timeout(30)
def test_replayed_requests_are_applied_once(secret_env):
    from disttorch.distributed.store import TCPStore

    master = TCPStore("127.0.0.1", 0, None, True, timedelta(seconds=5))
    tap = _Tap(master.port)
    tap.start()
    client = TCPStore("127.0.0.1", tap.port, None, False, timedelta(seconds=5))
    raw = _raw(master.port)
    try:
        assert client.add("counter", 1) == 1
        adds = [f for f in tap.requests if _decode(f)[0] == "req" and _decode(f)[4] == "add"]
        assert len(adds) == 1
        for _ in range(5):  # five byte-identical copies of the recorded request
            raw.send_multipart(adds[0])
        _poll_until(lambda: master._server.stats()["by_reason"].get("replay") == 5, what="5 replays dropped")
        assert master.get("counter") == b"1"
        assert raw.poll(200) == 0  # and nobody got an answer
        assert client.add("counter", 1) == 2  # the real client goes on
    finally:
        raw.close(0)
        client.close()
        tap.stop()
        master.close()


@pytest.mark.timeout(30)
def test_requests_recorded_against_an_earlier_store_are_dropped(secret_env):
    from disttorch.distributed.store import TCPStore

    first = TCPStore("127.0.0.1", 0, None, True, timedelta(seconds=5))
    port = first.port
    tap = _Tap(port)
    tap.start()
    client = TCPStore("127.0.0.1", tap.port, None, False, timedelta(seconds=5))
    client.set("planted", "x")
    sets = [f for f in tap.requests if _decode(f)[0] == "req" and _decode(f)[4] == "set"]
    client.close()
    tap.stop()
    first.close()
    second = TCPStore("127.0.0.1", port, None, True, timedelta(seconds=5))  # a restart on the same port
    raw = _raw(port)
    try:
        raw.send_multipart(sets[0])
        _poll_until(lambda: second._server.stats()["by_reason"].get("foreign_session") == 1,
                    what="the foreign request dropped")
        assert not second.check(["planted"])
    finally:
        raw.close(0)
        second.close()


@pytest.mark.timeout(30)
def test_replayed_replies_are_ignored(secret_env):
    from disttorch.distributed.store import TCPStore

    master = TCPStore("127.0.0.1", 0, None, True, timedelta(seconds=5))
    tap = _Tap(master.port, stale_replies=True)
    tap.start()
    client = TCPStore("127.0.0.1", tap.port, None, False, timedelta(seconds=5))
    try:
        assert client.add("n", 5) == 5
        assert client.add("n", 10) == 15  # the tap handed the client the reply "5" first
        assert client.get("n") == b"15"
        assert len(tap.replies) == 4  # welcome, 3 replies: the stale ones were really delivered
    finally:
        client.close()
        tap.stop()
        master.close()


@pytest.mark.timeout(60)
def test_oversized_frame_is_dropped_before_it_is_buffered(secret_env):
    import numpy as np
    import zmq

    from disttorch.distributed.store import TCPStore

    server = _StoreProcess()
    holder = _raw(server.port)
    client = None
    try:
        before = server.stats()["maxrss_kb"]
        # a stranger speaking ZMTP 3.0 without the secret (NULL mechanism): a multipart message of 8 frames of
        # 60 MiB, each under the limit, would all be buffered before delivery; the CURVE server hangs up first
        greeting = b"\xff" + b"\x00" * 8 + b"\x7f" + bytes([3, 0]) + b"NULL".ljust(20, b"\x00") + b"\x00" * 32
        sent = 0
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as tcp:
            try:
                tcp.sendall(greeting)
                chunk = bytes(1 << 20)
                for i in range(8):
                    tcp.sendall((b"\x03" if i < 7 else b"\x02") + struct.pack(">Q", 60 << 20))
                    for _ in range(60):
                        tcp.sendall(chunk)
                        sent += len(chunk)
            except OSError:  # reset or broken pipe: the server closed the connection
                pass
        assert sent < 64 << 20, sent
        # a peer with the secret (past the handshake): a frame above the limit is dropped before it is buffered
        frame = np.zeros(256 << 20, np.uint8)  # 4x the default limit of 64 MiB (calloc'd: costs us no memory)
        tracker = holder.send(memoryview(frame), copy=False, track=True)
        _poll_until(lambda: tracker.done, 30, "the big frame handed to the network")
        client = TCPStore("127.0.0.1", server.port, None, False, timedelta(seconds=10))
        client.set("after", "big")
        assert client.get("after") == b"big"
        after = server.stats()
        assert after["maxrss_kb"] - before < 32 << 10, (before, after)  # < 32 MiB for a 256 MiB frame
        assert after["stats"]["total"] == 0  # nothing reached the server's code
        assert holder.poll(0, zmq.POLLIN) == 0
    finally:
        holder.close(0)
        if client is not None:
            client.close()
        server.close()


@pytest.mark.timeout(30)
def test_requests_above_the_limit_fail_on_the_client(secret_env, monkeypatch):
    from disttorch.distributed.store import DistStoreError, TCPStore

    monkeypatch.setenv("DISTTORCH_MAX_MESSAGE_BYTES", str(256 << 10))
    master = TCPStore("127.0.0.1", 0, None, True, timedelta(seconds=5))
    try:
        with pytest.raises(DistStoreError, match=r"set: .* above the store's message limit of 262144 .*"
                                                 r"DISTTORCH_MAX_MESSAGE_BYTES"):
            master.set("big", b"x" * (300 << 10))
        master.set("small", b"x" * (200 << 10))
        master.append("small", b"y" * (100 << 10))  # the stored value grows past the limit: its reply cannot go
        with pytest.raises(DistStoreError, match="reply is .* above the store's message limit"):
            master.get("small")
    finally:
        master.close()


class _StoreProcess:
    """A TCPStore master in a child process (``python test_store.py serve``); ``stats()`` asks it for its drop
    counters and peak RSS; ``close()`` ends it by its pid."""

    def __init__(self, env=None) -> None:
        e = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""), **(env or {}))
        self.proc = subprocess.Popen([sys.executable, HERE, "serve"], env=e, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        assert line.startswith("PORT "), line
        self.port = int(line.split()[1])

    def stats(self) -> dict:
        self.proc.stdin.write("stats\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def alive(self) -> bool:
        return self.proc.poll() is None

    def close(self) -> None:
        try:
            self.proc.stdin.close()
            self.proc.wait(10)
        except (OSError, subprocess.TimeoutExpired):
            pass
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def _serve() -> None:
    import resource

    from disttorch.distributed.store import TCPStore

    store = TCPStore("127.0.0.1", 0, None, True, timedelta(seconds=30))
    print(f"PORT {store.port}", flush=True)
    for line in sys.stdin:
        if line.strip() == "stats":
            print(json.dumps({"stats": store._server.stats(),
                              "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}), flush=True)
    store.close()


@pytest.mark.timeout(30)
def test_unreachable_master_fails_within_the_timeout():
    from disttorch.distributed.store import DistStoreError, TCPStore

    with pytest.raises(DistStoreError, match="no answer from the store at 127.0.0.1:.*within 0.5 s"):
        TCPStore("127.0.0.1", _free_port(), 2, False, timedelta(seconds=0.5))


@pytest.mark.timeout(30)
def test_master_port_in_use_is_a_clear_error():
    from disttorch.distributed.store import DistNetworkError, TCPStore

    a = TCPStore("127.0.0.1", 0, None, True, timedelta(seconds=5))
    try:
        with pytest.raises(DistNetworkError, match=f"cannot bind .*127.0.0.1:{a.port}"):
            TCPStore("127.0.0.1", a.port, None, True, timedelta(seconds=5))
        b = TCPStore("127.0.0.1", a.port, None, True, timedelta(seconds=5), multi_tenant=True)
        b.set("shared", "yes")
        assert a.get("shared") == b"yes"
        b.close()
    finally:
        a.close()


@pytest.mark.timeout(30)
@pytest.mark.parametrize("kind", ["hash", "tcp", "prefix"])
def test_store_semantics(kind):
    from disttorch.distributed.store import DistStoreError, HashStore, PrefixStore, TCPStore

    owner = TCPStore("127.0.0.1", 0, None, True, timedelta(seconds=5)) if kind != "hash" else None
    s = {"hash": lambda: HashStore(), "tcp": lambda: owner, "prefix": lambda: PrefixStore("pre", owner)}[kind]()
    try:
        s.set("a", "x")
        s.set("b", b"\x00\x01")
        assert s.get("a") == b"x" and s.get("b") == b"\x00\x01"
        assert s.add("n", 5) == 5 and s.add("n", -2) == 3 and s.get("n") == b"3"
        s.append("a", "yz")
        assert s.get("a") == b"xyz"
        assert s.compare_set("a", "xyz", "new") == b"new" and s.compare_set("a", "zzz", "q") == b"new"
        assert s.compare_set("fresh", "", "v") == b"v"
        assert s.multi_get(["a", "fresh"]) == [b"new", b"v"]
        s.multi_set(["m1", "m2"], ["1", b"2"])
        assert s.check(["m1", "m2"]) and not s.check(["m1", "zz"])
        with pytest.raises(TypeError):
            s.check("m1")
        if kind != "prefix":
            assert s.num_keys() == 6
        assert s.delete_key("m1") and not s.check(["m1"])
        # a blocking get is woken by a set from another thread
        got = []
        t = threading.Thread(target=lambda: got.append(s.get("later")))
        t.start()
        s.set("later", "now")
        t.join(10)
        assert got == [b"now"]
        s.set_timeout(timedelta(seconds=0.2))
        assert s.timeout == timedelta(seconds=0.2)
        with pytest.raises(DistStoreError, match=r"0.2 s .*never'"):
            s.get("never")
        with pytest.raises(RuntimeError, match="never2"):
            s.wait(["a", "never2"], timedelta(seconds=0.1))
        s.wait(["a"])
        with pytest.raises(TypeError, match="str or bytes"):
            s.set("c", 3)
    finally:
        if owner is not None:
            owner.close()


def test_job_secret_and_interface(monkeypatch, tmp_path):
    from disttorch.distributed.store import default_interface, job_secret

    monkeypatch.setenv("DISTTORCH_JOB_SECRET", "00ff")
    assert job_secret() == b"\x00\xff"
    monkeypatch.delenv("DISTTORCH_JOB_SECRET")
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    secret = job_secret("127.0.0.1")  # a loopback master: the per-user secret file, never the empty key
    assert len(secret) == 32 and secret == job_secret()
    assert (tmp_path / "disttorch" / "job_secret").read_text().strip() == secret.hex()
    monkeypatch.delenv("DISTTORCH_INTERFACE", raising=False)
    assert default_interface("127.0.0.1") == "127.0.0.1"
    assert default_interface("localhost") == "127.0.0.1"
    monkeypatch.setenv("DISTTORCH_INTERFACE", "127.0.0.2")
    assert default_interface("127.0.0.1") == "127.0.0.2"


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        _serve()
    else:
        _client(int(sys.argv[1]), int(sys.argv[2]))
