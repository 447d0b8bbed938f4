"""The messaging layer (disttorch/distributed/_wire.py) and what it protects: the job secret (never empty,
per-user file, refusal for a remote master, MPI broadcast with a loopback store), rate-limited drop counters,
and the zmq transport's replay protection, payload MAC and size limits.

This file is also the MPI worker: ``mpiexec -n 2 python test_wire.py mpi-store`` (see test_plain_mpiexec...).
"""
from __future__ import annotations

import hashlib
import hmac
import importlib.util
import json
import logging
import os
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).resolve()
ROOT = HERE.parents[2]


def _poll_until(cond, seconds: float = 10.0, what: str = "condition"):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        got = cond()
        if got:
            return got
        time.sleep(0.01)
    raise AssertionError(f"timed out after {seconds} s waiting for {what}")


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DISTTORCH_", "PET_", "TORCHELASTIC_"))
           and k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env.update(extra)
    return env


# ---------------------------------------------------------------------------------------------------------------
# drop counters

class _Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_drop_log_counts_everything_and_logs_once_per_reason_per_interval(caplog):
    from disttorch.distributed._wire import DropLog

    clock = _Clock()
    d = DropLog("unit", interval=10.0, clock=clock)
    with caplog.at_level(logging.WARNING, logger="disttorch.distributed"):
        for _ in range(50):
            d.drop("bad_mac")
        d.drop("replay", sender=3)
        d.drop("replay", sender=3)
        d.drop("replay", sender=5)
        assert len(caplog.records) == 2  # the first of each reason
        assert d.due() == 110.0
        clock.t = 109.0
        d.tick()
        d.drop("bad_mac")
        assert len(caplog.records) == 2  # still within the interval
        clock.t = 110.5
        d.tick()  # 50 bad_mac and 2 replay drops are pending since the first lines
        lines = [r.getMessage() for r in caplog.records[2:]]
        assert sorted(lines) == sorted(["unit: dropped 50 more frame(s): missing or bad MAC: a process without this "
                                        "job's DISTTORCH_JOB_SECRET, or not of this job (51 in all)",
                                        "unit: dropped 2 more frame(s): replayed or out-of-order frame (its counter "
                                        "is not newer than the last accepted) (3 in all)"])
        assert d.due() is None
        d.drop("replay", sender=5)
        d.flush()
        assert caplog.records[-1].getMessage().startswith("unit: dropped 1 more frame(s): replayed")
    assert d.stats() == {"total": 55, "by_reason": {"bad_mac": 51, "replay": 4},
                         "by_sender": {"replay:3": 2, "replay:5": 2}}


def test_mac_binds_part_boundaries_and_purposes():
    from disttorch.distributed._wire import Mac, subkey

    key = subkey(b"k" * 16, "transport")
    assert key == hmac.new(b"k" * 16, b"disttorch transport v1", hashlib.sha256).digest()
    assert key != subkey(b"k" * 16, "store")
    m = Mac(key)
    want = hmac.new(key, (3).to_bytes(8, "little") + b"abc" + (2).to_bytes(8, "little") + b"de",
                    hashlib.sha256).digest()
    assert m.sign(b"abc", b"de") == want and m.verify(want, b"abc", memoryview(b"de"))
    assert not m.verify(want, b"abcd", b"e") and not m.verify(want[:16], b"abc", b"de")
    with pytest.raises(RuntimeError, match="empty"):
        subkey(b"", "store")


# ---------------------------------------------------------------------------------------------------------------
# the job secret

def _secret_in_child(xdg: str, master: str = "127.0.0.1") -> subprocess.Popen:
    # _wire.py loads on its own (no package import): the four children start within milliseconds of each other
    path = ROOT / "disttorch" / "distributed" / "_wire.py"
    code = ("import importlib.util, sys; s = importlib.util.spec_from_file_location('w', sys.argv[1]); "
            "w = importlib.util.module_from_spec(s); s.loader.exec_module(w); "
            f"sys.stdout.write(w.job_secret({master!r}).hex())")
    return subprocess.Popen([sys.executable, "-c", code, str(path)], env=_env(XDG_RUNTIME_DIR=xdg), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


@pytest.mark.timeout(60)
def test_racing_processes_agree_on_one_private_secret_file(tmp_path):
    procs = [_secret_in_child(str(tmp_path)) for _ in range(4)]
    try:
        outs = [p.communicate(timeout=40) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                os.kill(p.pid, signal.SIGKILL)
                p.wait()
    assert all(p.returncode == 0 for p in procs), [e for _, e in outs]
    secrets_seen = {o for o, _ in outs}
    assert len(secrets_seen) == 1 and len(bytes.fromhex(secrets_seen.pop())) == 32
    d, f = tmp_path / "disttorch", tmp_path / "disttorch" / "job_secret"
    assert stat.S_IMODE(d.stat().st_mode) == 0o700 and stat.S_IMODE(f.stat().st_mode) == 0o600
    assert sorted(p.name for p in d.iterdir()) == ["job_secret"]  # no temporary file left behind


def test_unsafe_secret_files_are_refused(tmp_path, monkeypatch):
    from disttorch.distributed._wire import JobSecretError, job_secret

    monkeypatch.delenv("DISTTORCH_JOB_SECRET", raising=False)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    (tmp_path / "disttorch").mkdir(mode=0o755)
    f = tmp_path / "disttorch" / "job_secret"
    f.write_text("ab" * 32)
    f.chmod(0o644)  # readable by other users
    with pytest.raises(JobSecretError, match=r"job_secret must be a regular file .* mode 0600 .*0o644"):
        job_secret("127.0.0.1")
    f.chmod(0o600)
    f.write_text("too short")
    with pytest.raises(JobSecretError, match="does not hold a hex secret of at least 16 bytes"):
        job_secret("127.0.0.1")
    f.unlink()
    (tmp_path / "elsewhere").write_text("ab" * 32)
    f.symlink_to(tmp_path / "elsewhere")  # a link planted where the secret goes is not followed
    with pytest.raises(OSError):
        job_secret("127.0.0.1")
    f.unlink()
    assert len(job_secret("127.0.0.1")) == 32
    assert stat.S_IMODE((tmp_path / "disttorch").stat().st_mode) == 0o700  # tightened before the secret went in


@pytest.mark.timeout(30)
def test_a_remote_master_without_a_secret_is_refused(tmp_path, monkeypatch):
    from disttorch.distributed._wire import is_local_address, job_secret
    from disttorch.distributed.store import JobSecretError, TCPStore

    monkeypatch.delenv("DISTTORCH_JOB_SECRET", raising=False)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    remote = "192.0.2.1"  # TEST-NET-1: never an address of this host
    assert not is_local_address(remote) and is_local_address("127.0.0.1") and is_local_address("localhost")
    for call in (lambda: job_secret(remote), lambda: TCPStore(remote, 29500, 2, False, timedelta(seconds=1))):
        with pytest.raises(JobSecretError) as e:
            call()
        assert "DISTTORCH_JOB_SECRET is not set" in str(e.value) and "192.0.2.1" in str(e.value)
        assert "python -c 'import secrets; print(secrets.token_hex(16))'" in str(e.value)
    assert not (tmp_path / "disttorch").exists()  # and no file was made for it
    monkeypatch.setenv("MASTER_ADDR", remote)
    with pytest.raises(JobSecretError):
        job_secret()
    monkeypatch.setenv("DISTTORCH_JOB_SECRET", "cd" * 16)
    assert job_secret(remote) == b"\xcd" * 16


# ---------------------------------------------------------------------------------------------------------------
# the zmq transport: replay protection, payload MAC, size limits (two ranks in this process)

class _Done:
    done = True

    def wait(self, timeout=None):
        return True


class _SendTap:
    """Stands in for a PUSH socket: records every message sent through it, forwards it unless ``hold``."""

    def __init__(self, sock) -> None:
        self.sock, self.messages, self.held, self.hold, self._cur = sock, [], [], False, []

    def send(self, data, flags=0, copy=True, track=False):
        import zmq

        self._cur.append(bytes(data))
        if not flags & zmq.SNDMORE:
            self._deliver(self._cur)
            self._cur = []
        return _Done() if track else None

    def send_multipart(self, parts, **kw):
        self._deliver([bytes(p) for p in parts])

    def _deliver(self, message: list) -> None:
        self.messages.append(message)
        if self.hold:
            self.held.append(message)
        else:
            self.sock.send_multipart(message)

    def close(self, linger=None):
        self.sock.close(linger=linger)


class _Pair:
    """Ranks 0 and 1 of a zmq world in this process (each with its own transport and thread), over a store."""

    def __init__(self, timeout: float = 10.0) -> None:
        from disttorch.distributed.backends.zmq import ZMQProcessGroup
        from disttorch.distributed.store import PrefixStore, TCPStore

        self.store = TCPStore("127.0.0.1", 0, None, True, timedelta(seconds=10))
        made, errors = {}, []

        def make(r):
            try:
                made[r] = ZMQProcessGroup.create(PrefixStore("w", self.store), r, 2, timeout,
                                                 {"interface": "127.0.0.1"})
            except BaseException as e:  # noqa: BLE001
                errors.append(e)

        threads = [threading.Thread(target=make, args=(r,)) for r in (0, 1)]
        [t.start() for t in threads]
        [t.join(30) for t in threads]
        if errors or len(made) != 2:
            self.close(made.values())
            raise RuntimeError(f"pair: {errors}")
        self.pg0, self.pg1 = made[0], made[1]
        self.t0, self.t1 = self.pg0._t, self.pg1._t
        self.tap = _SendTap(self.t0._push(1).sock)
        self.t0.pushes[1].sock = self.tap

    def raw_to(self, t, credentials: bool = True, password: bytes = b""):
        """A PUSH socket to ``t``; with ``credentials`` it passes the PLAIN gate (derived here from the secret
        as _wire's docstring says: a key holder), else it is a stranger (with ``password``, a PLAIN one)."""
        import zmq

        sock = zmq.Context.instance().socket(zmq.PUSH)
        sock.setsockopt(zmq.LINGER, 0)
        if password:
            sock.plain_username, sock.plain_password = b"disttorch", password
        if credentials:
            secret = bytes.fromhex(os.environ["DISTTORCH_JOB_SECRET"])
            sock.plain_username = b"disttorch"
            sock.plain_password = hmac.new(secret, b"disttorch transport plain v1", hashlib.sha256).hexdigest().encode()
        sock.connect(t.address)
        return sock

    def close(self, pgs=None) -> None:
        for pg in pgs if pgs is not None else (self.pg0, self.pg1):
            pg.shutdown()
        self.store.close()


@pytest.fixture
def secret(monkeypatch):
    monkeypatch.setenv("DISTTORCH_JOB_SECRET", "7e" * 16)
    monkeypatch.delenv("DISTTORCH_ZMQ_MAC_PAYLOAD", raising=False)
    monkeypatch.setenv("DISTTORCH_ZMQ_SHM", "0")  # the pair's collectives must cross the TCP wire tested here


def _allreduce_pair(pair, n: int) -> None:
    from disttorch.distributed.process_group import ReduceOp

    a, b = np.arange(n, dtype=np.float64), np.arange(n, dtype=np.float64) * 3
    wa, wb = pair.pg0.allreduce([a], ReduceOp.SUM), pair.pg1.allreduce([b], ReduceOp.SUM)
    wa.wait()
    wb.wait()
    want = np.arange(n, dtype=np.float64) * 4
    assert np.array_equal(a, want) and np.array_equal(b, want)


@pytest.mark.timeout(60)
def test_recorded_frames_replay_nothing(secret):
    pair = _Pair()
    raw = pair.raw_to(pair.t1)
    try:
        x = np.arange(5, dtype=np.float32)
        buf = np.zeros(5, np.float32)
        w = pair.pg1.recv(buf, 0, tag=3)
        pair.pg0.send(x, 1, tag=3).wait()
        w.wait()
        assert np.array_equal(buf, x)
        p2p = list(pair.tap.messages)
        pair.tap.messages.clear()
        _allreduce_pair(pair, 10)  # direct path
        _allreduce_pair(pair, 300_000)  # ring path, several sub-chunks
        coll = list(pair.tap.messages)
        assert len(p2p) == 1 and len(coll) >= 3
        # a recorded point-to-point frame re-sent does not complete a receive the sender never issued
        buf2 = np.zeros(5, np.float32)
        w2 = pair.pg1.recv(buf2, 0, tag=3)
        for m in p2p:
            raw.send_multipart(m)
        _poll_until(lambda: pair.t1.stats()["by_reason"].get("replay") == len(p2p), what="p2p replay dropped")
        assert not w2.is_completed() and not buf2.any()
        # old collective frames are dropped and do not grow the buffers
        for m in coll:
            raw.send_multipart(m)
        _poll_until(lambda: pair.t1.stats()["by_reason"].get("replay") == len(p2p) + len(coll),
                    what="collective replays dropped")
        stats = pair.t1.stats()
        assert stats["buffered"] == {"coll": 0, "p2p": 0, "partial": 0, "early": 0}, stats
        assert stats["by_sender"] == {"replay:0": len(p2p) + len(coll)} and stats["total"] == len(p2p) + len(coll)
        # the job goes on: the real second message completes the pending receive, collectives stay exact
        pair.pg0.send(x * 7, 1, tag=3).wait()
        w2.wait()
        assert np.array_equal(buf2, x * 7)
        _allreduce_pair(pair, 1000)
    finally:
        raw.close(0)
        pair.close()


@pytest.mark.timeout(60)
def test_frames_recorded_against_an_earlier_incarnation_are_dropped(secret):
    first = _Pair()
    try:
        _allreduce_pair(first, 100)
        recorded = list(first.tap.messages)
    finally:
        first.close()
    second = _Pair()
    raw = second.raw_to(second.t1)
    try:
        for m in recorded:
            raw.send_multipart(m)
        _poll_until(lambda: second.t1.stats()["by_reason"].get("foreign_session") == len(recorded),
                    what="foreign frames dropped")
        assert second.t1.stats()["buffered"]["coll"] == 0
        _allreduce_pair(second, 100)
    finally:
        raw.close(0)
        second.close()


@pytest.mark.timeout(60)
def test_peers_without_credentials_cannot_queue_anything(secret):
    import socket
    import struct

    pair = _Pair()
    stranger, holder = pair.raw_to(pair.t1, credentials=False), pair.raw_to(pair.t1)
    stranger.close(0)
    stranger = pair.raw_to(pair.t1, credentials=False, password=b"another job's password")
    try:
        stranger.send(b"x", 1)  # NOBLOCK: it never gets a connection to queue on
        _poll_until(lambda: pair.t1.stats()["by_reason"].get("bad_credentials", 0) >= 1, what="a refused peer")
        assert "bad_credentials:127.0.0.1" in pair.t1.stats()["by_sender"]
        # a stranger writing ZMTP by hand (NULL mechanism) and a big multipart message: hung up on at once
        host, port = pair.t1.address[len("tcp://"):].rsplit(":", 1)
        greeting = b"\xff" + b"\x00" * 8 + b"\x7f" + bytes([3, 0]) + b"NULL".ljust(20, b"\x00") + b"\x00" * 32
        sent = 0
        with socket.create_connection((host, int(port)), timeout=10) as tcp:
            try:
                tcp.sendall(greeting)
                for _ in range(64):
                    tcp.sendall(b"\x03" + struct.pack(">Q", 1 << 20) + bytes(1 << 20))
                    sent += 1 << 20
            except OSError:
                pass
        assert sent < 8 << 20, sent
        holder.send_multipart([b"h" * 40, b"m" * 32, b"p"])  # a key holder's garbage gets to the MAC check
        _poll_until(lambda: pair.t1.stats()["by_reason"].get("malformed") == 1, what="the holder's frame")
        stats = pair.t1.stats()
        assert set(stats["by_reason"]) == {"bad_credentials", "malformed"}, stats
        assert stats["buffered"] == {"coll": 0, "p2p": 0, "partial": 0, "early": 0}
        _allreduce_pair(pair, 1000)
    finally:
        stranger.close(0)
        holder.close(0)
        pair.close()


def test_payload_mac_is_on_by_default_off_loopback(monkeypatch):
    from disttorch.distributed.backends._zmq_transport import _payload_mac_policy

    monkeypatch.delenv("DISTTORCH_ZMQ_MAC_PAYLOAD", raising=False)
    assert [_payload_mac_policy(a) for a in ("127.0.0.1", "127.0.0.3", "::1", "10.1.2.3", "192.168.0.5")] == \
        [False, False, False, True, True]
    monkeypatch.setenv("DISTTORCH_ZMQ_MAC_PAYLOAD", "0")
    assert not _payload_mac_policy("10.1.2.3")
    monkeypatch.setenv("DISTTORCH_ZMQ_MAC_PAYLOAD", "1")
    assert _payload_mac_policy("127.0.0.1")


@pytest.mark.timeout(60)
def test_a_forged_payload_under_a_copied_header_is_dropped(secret, monkeypatch):
    monkeypatch.setenv("DISTTORCH_ZMQ_MAC_PAYLOAD", "1")  # as on a multi-host (non-loopback) interface
    pair = _Pair()
    raw = pair.raw_to(pair.t1)
    try:
        assert pair.t1.mac_payload and pair.t0.pushes[1].mac_payload
        buf = np.zeros(4, np.int64)
        w = pair.pg1.recv(buf, 0, tag=9)
        pair.tap.hold = True  # an attacker who sniffs the wire and races the real frame
        pair.pg0.send(np.array([1, 2, 3, 4], np.int64), 1, tag=9).wait()
        hdr, mac, payload = pair.tap.held[0]
        raw.send_multipart([hdr, mac, np.array([6, 6, 6, 6], np.int64).tobytes()])
        raw.send_multipart([hdr, mac[:32], payload])  # the header MAC alone is not enough either
        _poll_until(lambda: pair.t1.stats()["by_reason"].get("bad_mac") == 2, what="forged frames dropped")
        assert not w.is_completed()
        pair.t0.pushes[1].sock.sock.send_multipart(pair.tap.held[0])  # the real frame arrives late
        w.wait()
        assert buf.tolist() == [1, 2, 3, 4]
        pair.tap.hold = False
        _allreduce_pair(pair, 300_000)
    finally:
        raw.close(0)
        pair.close()


@pytest.mark.timeout(60)
def test_large_p2p_above_a_lowered_limit_arrives_exactly(secret, monkeypatch):
    import zmq

    from disttorch.distributed.backends import _zmq_transport as T

    monkeypatch.setenv("DISTTORCH_MAX_MESSAGE_BYTES", str(128 << 10))
    limit, chunk = T._limits()
    assert (limit, chunk) == (128 << 10, (128 << 10) - 4096)
    monkeypatch.setattr(T, "LIMIT", limit)
    monkeypatch.setattr(T, "CHUNK", chunk)
    pair = _Pair()
    raw = pair.raw_to(pair.t1)
    try:
        assert pair.t1.pull.getsockopt(zmq.MAXMSGSIZE) == limit
        rng = np.random.default_rng(0)
        big = rng.standard_normal(1_000_003).astype(np.float32)  # ~4 MB: 32 messages under the limit
        odd = rng.integers(0, 255, 300_007).astype(np.uint8)
        out_big, out_odd, out_empty = np.zeros_like(big), np.zeros_like(odd), np.zeros(0, np.float64)
        works = [pair.pg1.recv(out_big, 0, tag=1), pair.pg1.recv(out_odd, 0, tag=2),
                 pair.pg1.recv(out_empty, 0, tag=3)]  # posted before the sends
        pair.tap.messages.clear()
        for w in (pair.pg0.send(big, 1, tag=1), pair.pg0.send(odd, 1, tag=2),
                  pair.pg0.send(np.zeros(0, np.float64), 1, tag=3)):
            w.wait()
        for w in works:
            w.wait()
        assert np.array_equal(out_big, big) and np.array_equal(out_odd, odd)
        assert max(len(m[2]) for m in pair.tap.messages) <= chunk
        assert len(pair.tap.messages) == -(-big.nbytes // chunk) + -(-odd.nbytes // chunk) + 1
        raw.send(np.zeros(limit + 1, np.uint8))  # libzmq drops a frame above the limit and disconnects its sender
        back = np.zeros(3)
        w = pair.pg0.recv(back, 1, tag=4)
        pair.pg1.send(np.ones(3), 0, tag=4).wait()
        w.wait()
        assert back.tolist() == [1.0, 1.0, 1.0] and pair.t1.stats()["total"] == 0
    finally:
        raw.close(0)
        pair.close()


def test_every_collective_frame_fits_the_limit():
    from disttorch.distributed.backends import _zmq_transport as T
    from disttorch.distributed.backends import zmq as zb

    assert zb._SUB == T.CHUNK and T.CHUNK + 16 <= T.LIMIT and zb._SMALL <= T.LIMIT
    for n, itemsize in [(1, 1), (1 << 20, 1), (T.CHUNK // 8 * 5 + 3, 8), (T.CHUNK // 16 * 3 + 1, 16)]:
        assert all((b - a) * itemsize <= T.LIMIT for a, b in zb._subs(n, itemsize))


# ---------------------------------------------------------------------------------------------------------------
# plain mpiexec: the secret comes over MPI, the store binds loopback on one host, several hosts need an interface

def _mpiexec():
    beside = Path(sys.executable).with_name("mpiexec")
    return str(beside) if beside.exists() else shutil.which("mpiexec")


@pytest.mark.mpi
@pytest.mark.timeout(120)
@pytest.mark.skipif(importlib.util.find_spec("mpi4py") is None or _mpiexec() is None,
                    reason="mpi4py or mpiexec is not installed (the mpi extra)")
def test_plain_mpiexec_store_is_loopback_with_a_broadcast_secret(tmp_path):
    env = _env(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", OMP_NUM_THREADS="1",
               XDG_RUNTIME_DIR=str(tmp_path))
    proc = subprocess.Popen([_mpiexec(), "-n", "2", "--oversubscribe", sys.executable, str(HERE), "mpi-store"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=100)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    assert proc.returncode == 0, f"{out}\n{err[-4000:]}"
    res = {r["rank"]: r for r in (json.loads(line[5:]) for line in out.splitlines() if line.startswith("JSON "))}
    assert sorted(res) == [0, 1], out
    for r in res.values():
        assert "DISTTORCH_INTERFACE" in r["spanning_error"] and "2 hosts" in r["spanning_error"], r
        assert r["spanning_with_interface"] == "127.0.0.2"
        assert r["secret_len"] == 32 and r["allreduce"] == [3.0, 3.0]
    assert res[0]["secret_digest"] == res[1]["secret_digest"]
    assert res[0]["bound"] == "127.0.0.1" and res[0]["connect"] == res[1]["connect"]
    assert res[0]["empty_key_answered"] is False and res[0]["planted"] is False
    assert not (tmp_path / "disttorch").exists()  # the MPI secret, not the per-user file


def _mpi_store_worker() -> None:
    import msgpack
    import zmq

    import disttorch as torch
    import disttorch.distributed as dist
    from disttorch.distributed import distributed_c10d as c10d

    rank = int(os.environ.get("OMPI_COMM_WORLD_RANK", "0"))
    out = {"rank": rank}
    real = c10d._host_identity
    c10d._host_identity = lambda: f"host{rank}"  # as if each rank ran on its own host
    try:
        dist.init_process_group("mpi")
        out["spanning_error"] = "initialised"
    except RuntimeError as e:
        out["spanning_error"] = str(e)
    os.environ["DISTTORCH_INTERFACE"] = "127.0.0.2"
    dist.init_process_group("mpi")
    out["spanning_with_interface"] = c10d._W.own_store._endpoint[len("tcp://"):].rsplit(":", 1)[0]
    dist.destroy_process_group()
    del os.environ["DISTTORCH_INTERFACE"]
    c10d._host_identity = real
    dist.init_process_group("mpi")
    store = c10d._W.own_store
    secret = store._secret
    out["secret_len"] = len(secret)
    out["secret_digest"] = hashlib.sha256(secret).hexdigest()
    out["connect"] = store._endpoint
    t = torch.ones(2) * (rank + 1)
    dist.all_reduce(t)
    out["allreduce"] = t.tolist()
    if rank == 0:
        out["bound"] = store._server_key[0]
        sock = zmq.Context.instance().socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(store._endpoint)
        empty = hmac.new(b"", b"disttorch store v1", hashlib.sha256).digest()  # the old default key, derived
        hello = msgpack.packb(["hello", b"c" * 16, b"n" * 16], use_bin_type=True)
        old = msgpack.packb([0, "set", ["planted", b"x"]], use_bin_type=True)  # the old wire format
        for key, payload in ((empty, hello), (b"", hello), (b"", old)):
            for mac in (hmac.new(key, len(payload).to_bytes(8, "little") + payload, hashlib.sha256).digest(),
                        hmac.new(key, payload, hashlib.sha256).digest()):
                sock.send_multipart([mac, payload])
        out["empty_key_answered"] = bool(sock.poll(1000))
        out["planted"] = store.check(["planted"])
        sock.close(0)
    dist.barrier()
    dist.destroy_process_group()
    print("JSON " + json.dumps(out), flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "mpi-store":
        _mpi_store_worker()
