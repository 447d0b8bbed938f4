"""Rendezvous stores: TCPStore (master here, clients in two real processes), PrefixStore, HashStore, and the
server's defence against unauthenticated frames.

This file is also the client script: ``python test_store.py RANK PORT`` runs one client and prints JSON.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import socket
import subprocess
import sys
import threading
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


@pytest.mark.timeout(30)
def test_unauthenticated_frames_are_dropped_and_the_server_keeps_serving(secret_env, caplog):
    import msgpack
    import zmq

    from disttorch.distributed.store import TCPStore

    master = TCPStore("127.0.0.1", 0, None, True, timedelta(seconds=5))
    master.set("secret", "data")
    raw = zmq.Context.instance().socket(zmq.DEALER)
    raw.setsockopt(zmq.LINGER, 0)
    raw.connect(f"tcp://127.0.0.1:{master.port}")
    try:
        request = msgpack.packb([0, "get", [["secret"], 1.0]], use_bin_type=True)
        wrong = hmac.new(b"not the job secret", request, hashlib.sha256).digest()
        for frames in ([b"garbage"], [b"\x00" * 32, b"\xc1\xc1"], [wrong, request], [b"", request],
                       [hmac.new(bytes.fromhex(SECRET), b"x", hashlib.sha256).digest(), request, b"extra"]):
            raw.send_multipart(frames)
        # a correctly signed malformed request on the same connection gets an error reply (not a crash), and
        # it is the first reply this socket sees: none of the frames before it was answered
        bad = msgpack.packb([1, "no_such_op", []], use_bin_type=True)
        raw.send_multipart([hmac.new(bytes.fromhex(SECRET), bad, hashlib.sha256).digest(), bad])
        assert raw.poll(5000, zmq.POLLIN)
        rid, ok, _ = msgpack.unpackb(raw.recv_multipart()[1], raw=False)
        assert (rid, ok) == (1, False)
        assert raw.poll(0, zmq.POLLIN) == 0
        assert sum("MAC" in r.getMessage() for r in caplog.records) >= 4
        master.set("after", "1")
        assert master.get("secret") == b"data"
        assert master.get("after") == b"1"
    finally:
        raw.close(0)
        master.close()


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


def test_job_secret_and_interface(monkeypatch):
    from disttorch.distributed.store import default_interface, job_secret

    monkeypatch.setenv("DISTTORCH_JOB_SECRET", "00ff")
    assert job_secret() == b"\x00\xff"
    monkeypatch.delenv("DISTTORCH_JOB_SECRET")
    assert job_secret() == b""
    monkeypatch.delenv("DISTTORCH_INTERFACE", raising=False)
    assert default_interface("127.0.0.1") == "127.0.0.1"
    assert default_interface("localhost") == "127.0.0.1"
    monkeypatch.setenv("DISTTORCH_INTERFACE", "127.0.0.2")
    assert default_interface("127.0.0.1") == "127.0.0.2"


if __name__ == "__main__":
    _client(int(sys.argv[1]), int(sys.argv[2]))
