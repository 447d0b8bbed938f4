"""The one ZeroMQ messaging layer under the store, the zmq backend's transport and the parameter server.

What every receiver of bytes from the network uses, so that each of them checks the same things the same way:

- **The job secret** (``job_secret``): ``DISTTORCH_JOB_SECRET`` (hex), never empty. Without it a job whose master
  is this host uses a per-user secret file (``$XDG_RUNTIME_DIR/disttorch/job_secret``, else
  ``~/.cache/disttorch/job_secret``; directory 0700, file 0600, published atomically so racing ranks agree);
  under plain ``mpiexec`` rank 0 makes one and broadcasts it over MPI (``use_job_secret``); a job whose master
  is another host and that has no secret is refused (``JobSecretError``).
- **MACs** (``Mac``): HMAC-SHA256 under a per-purpose sub-key of the secret (``subkey``), so that a frame of one
  protocol never verifies as a frame of another. Each signed part is prefixed by its length, so bytes cannot
  move from one part to the next under the same MAC.
- **Replay protection** (``ReplayGuard``, ``nonce``): every signed message carries the receiver's random
  session/incarnation nonce and a per-sender counter; a receiver accepts only its own nonce and counters
  newer than the last it accepted from that sender.
- **Who may connect** (``curve_server``/``curve_client``, ``ZapGate`` with ``plain_server``/``plain_client``):
  a peer without the secret cannot complete the ZeroMQ handshake, so it cannot make a receiver buffer anything
  (``MAXMSGSIZE`` bounds one frame, not a multipart message of many frames). The store uses CURVE (its key pair
  derives from the secret; traffic is encrypted); the transport uses a PLAIN gate, free on the data path.
- **Size limits** (``max_message_bytes``, ``harden``): ``zmq.MAXMSGSIZE`` on every receiving socket, so libzmq
  drops an oversized frame (and disconnects its sender) before buffering it, and a bounded receive queue where
  the protocol allows one.
- **Drops are counted, not shouted** (``DropLog``): every dropped frame increments a counter per reason (and per
  sender where the sender is known); the log gets the first drop of each reason and then at most one summary
  line per reason every ``interval`` seconds.

ZeroMQ itself is imported only inside the functions that need it: ``import disttorch`` stays cheap.
"""
from __future__ import annotations

import collections
import hmac
import ipaddress
import logging
import os
import secrets
import socket
import stat
import struct
import threading
import time
from typing import Callable, Optional

log = logging.getLogger("disttorch.distributed")

SECRET_VAR = "DISTTORCH_JOB_SECRET"
MAX_MESSAGE_VAR = "DISTTORCH_MAX_MESSAGE_BYTES"
MAC_SIZE = 32
NONCE_SIZE = 16
STORE_MAX_MESSAGE = 64 << 20  # the store's default frame limit (keys and small values)
MIN_MAX_MESSAGE = 128 << 10  # below this the backend's small-message paths (< 64 KiB) would not fit
MAKE_SECRET = "python -c 'import secrets; print(secrets.token_hex(16))'"

_LEN = struct.Struct("<Q")
_ONE_SHOT = 16 << 10  # parts of fewer bytes are joined and hashed in one call (Mac.sign)
try:  # what hmac.digest calls for "sha256" when OpenSSL is there, without its Python wrapper
    from _hashlib import hmac_digest as _hmac_digest
except ImportError:  # pragma: no cover - a Python without OpenSSL
    _hmac_digest = hmac.digest


class JobSecretError(RuntimeError):
    """The job has no usable secret (unset for a multi-host job, or an unsafe secret file)."""


# ---------------------------------------------------------------------------------------------------------------
# the job secret

_process_secret: Optional[bytes] = None  # set by use_job_secret (plain mpiexec: broadcast by rank 0)
_file_lock = threading.Lock()


def _decode(text: str) -> bytes:
    try:
        return bytes.fromhex(text)
    except ValueError:
        return text.encode()


def use_job_secret(secret: bytes) -> None:
    """Make ``secret`` this process's job secret where ``DISTTORCH_JOB_SECRET`` is unset (the MPI path)."""
    global _process_secret
    if not secret:
        raise JobSecretError("use_job_secret: the job secret must not be empty")
    _process_secret = bytes(secret)


def is_local_address(host: str) -> bool:
    """Whether ``host`` resolves to this machine: a loopback address or one this host can bind."""
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except OSError:
        return False
    for family, _, _, _, addr in infos:
        ip = addr[0]
        try:
            if ipaddress.ip_address(ip.split("%", 1)[0]).is_loopback:
                return True
        except ValueError:
            continue
        try:
            with socket.socket(family, socket.SOCK_DGRAM) as s:
                s.bind((ip, 0))  # only an address of one of this host's interfaces can be bound
            return True
        except OSError:
            continue
    return False


def is_loopback(address: str) -> bool:
    """Whether the interface address ``address`` (an IP, ``localhost``) is a loopback address."""
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address.strip("[]")).is_loopback
    except ValueError:
        return False


def secret_file_path() -> str:
    """Where a job whose master is this host keeps its secret when ``DISTTORCH_JOB_SECRET`` is unset."""
    run = os.environ.get("XDG_RUNTIME_DIR")
    if run and os.path.isdir(run):
        return os.path.join(run, "disttorch", "job_secret")
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(cache, "disttorch", "job_secret")


def _private_dir(path: str) -> None:
    os.makedirs(path, mode=0o700, exist_ok=True)
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
        raise JobSecretError(f"job secret: {path} is not a directory owned by this user (uid {os.getuid()}); "
                             f"remove it, or set {SECRET_VAR} (make one with {MAKE_SECRET})")
    if st.st_mode & 0o077:
        os.chmod(path, 0o700)  # ours, but readable by others: close it before a secret goes in


def _read_secret_file(path: str) -> bytes:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
            raise JobSecretError(f"job secret: {path} must be a regular file owned by this user with mode 0600 "
                                 f"(it is {oct(st.st_mode & 0o777)}, uid {st.st_uid}); delete it to get a fresh "
                                 f"one, or set {SECRET_VAR}")
        text = os.read(fd, 256).decode(errors="replace").strip()
    finally:
        os.close(fd)
    try:
        secret = bytes.fromhex(text)
    except ValueError:
        secret = b""
    if len(secret) < 16:
        raise JobSecretError(f"job secret: {path} does not hold a hex secret of at least 16 bytes; delete it to "
                             f"get a fresh one, or set {SECRET_VAR}")
    return secret


def _file_secret(path: str) -> bytes:
    """The secret in ``path``, created first if missing. Creation writes a private temporary file (O_EXCL,
    0600) and publishes it with ``link``, which fails if the name exists: racing processes all read the one
    file that won, and nobody ever reads a half-written secret."""
    with _file_lock:
        _private_dir(os.path.dirname(path))
        try:
            return _read_secret_file(path)
        except FileNotFoundError:
            pass
        tmp = f"{path}.{os.getpid()}.{secrets.token_hex(4)}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
        try:
            os.write(fd, (secrets.token_hex(32) + "\n").encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass  # another process won the race: use its secret
        except OSError:  # a file system without hard links: an exclusive rename is the next best thing
            if not os.path.exists(path):
                os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return _read_secret_file(path)


def job_secret(master_addr: Optional[str] = None) -> bytes:
    """The job's key for MACs; never empty.

    Args:
        master_addr: the host serving the rendezvous store (default ``MASTER_ADDR``, else this host).

    Returns:
        ``DISTTORCH_JOB_SECRET`` decoded from hex (its UTF-8 bytes if it is not hex); else the secret this
        process got over MPI (``use_job_secret``); else, when ``master_addr`` is this host, the per-user
        secret file (see ``secret_file_path``).

    Raises:
        JobSecretError: the master is another host and no secret is set, or the secret file is unsafe.
    """
    text = os.environ.get(SECRET_VAR, "")
    if text:
        return _decode(text)
    if _process_secret is not None:
        return _process_secret
    host = master_addr or os.environ.get("MASTER_ADDR") or "127.0.0.1"
    if is_local_address(host):
        return _file_secret(secret_file_path())
    raise JobSecretError(
        f"{SECRET_VAR} is not set and the master ({host}) is not this host: the processes of a multi-host job "
        f"need one shared secret to authenticate their messages. Make one with {MAKE_SECRET} and export "
        f"{SECRET_VAR}=<that value> on every host (`disttorch launch -H/--hostfile` makes and ships one itself).")


# ---------------------------------------------------------------------------------------------------------------
# MACs, nonces, replay protection

def subkey(secret: bytes, purpose: str) -> bytes:
    """A key for one protocol derived from the job secret: ``HMAC-SHA256(secret, f"disttorch {purpose} v1")``.

    Purposes in use: ``store`` (its MACs), ``store curve`` (the store's CURVE secret key, Z85-encoded),
    ``transport`` (the zmq backend's MACs), ``transport plain`` (its PLAIN password, hex)."""
    if not secret:
        raise JobSecretError("the job secret must not be empty")
    return hmac.digest(secret, f"disttorch {purpose} v1".encode(), "sha256")


def nonce() -> bytes:
    """A fresh random session/incarnation nonce (or client id)."""
    return secrets.token_bytes(NONCE_SIZE)


class Mac:
    """HMAC-SHA256 over length-prefixed parts: ``HMAC(key, len(p1) as 8 bytes LE || p1 || len(p2) ...)``. Large
    parts hash with the GIL released (OpenSSL via hashlib), so a communication thread hashing does not stall the
    training thread."""

    __slots__ = ("_key",)

    def __init__(self, key: bytes) -> None:
        if not key:
            raise JobSecretError("Mac: the key must not be empty")
        self._key = key

    def sign(self, *parts) -> bytes:
        if len(parts) == 1 and type(parts[0]) is bytes and len(parts[0]) < _ONE_SHOT:
            # the common case (a header, a store request): one-shot, half the cost of the streaming object
            return _hmac_digest(self._key, _LEN.pack(len(parts[0])) + parts[0], "sha256")
        if len(parts) <= 4:
            pieces, total = [], 0
            for p in parts:
                n = memoryview(p).nbytes
                total += n
                pieces += (_LEN.pack(n), p)
            if total < _ONE_SHOT:  # small messages: joining costs less than the streaming object
                return _hmac_digest(self._key, b"".join(pieces), "sha256")
        h = hmac.new(self._key, digestmod="sha256")
        for p in parts:
            h.update(_LEN.pack(memoryview(p).nbytes))
            h.update(p)
        return h.digest()

    def verify(self, mac, *parts) -> bool:
        return len(mac) == MAC_SIZE and hmac.compare_digest(mac, self.sign(*parts))


class ReplayGuard:
    """The last accepted counter per sender: a message is fresh only if its counter is newer.

    ``fresh`` is a cheap check before the MAC is verified; ``accept`` records the counter once it is."""

    __slots__ = ("_last",)

    def __init__(self) -> None:
        self._last: dict = {}

    def fresh(self, sender, counter: int) -> bool:
        return counter > self._last.get(sender, 0)

    def accept(self, sender, counter: int) -> bool:
        if counter <= self._last.get(sender, 0):
            return False
        self._last[sender] = counter
        return True


# ---------------------------------------------------------------------------------------------------------------
# size limits and sockets

def max_message_bytes(default: int) -> int:
    """The largest frame a receiving socket accepts: ``DISTTORCH_MAX_MESSAGE_BYTES`` if set, else ``default``."""
    raw = os.environ.get(MAX_MESSAGE_VAR, "").strip()
    if not raw:
        return int(default)
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{MAX_MESSAGE_VAR}={raw!r}: expected a number of bytes") from None
    if value < MIN_MAX_MESSAGE:
        raise ValueError(f"{MAX_MESSAGE_VAR}={value}: below the minimum of {MIN_MAX_MESSAGE} bytes")
    return value


def harden(sock, max_bytes: int, rcvhwm: Optional[int] = None) -> None:
    """Receive-side limits for a socket that outside peers may reach: frames above ``max_bytes`` are dropped by
    libzmq before they are buffered (the sender is disconnected); ``rcvhwm`` bounds the queued messages per
    peer; nothing lingers at close."""
    import zmq

    sock.setsockopt(zmq.MAXMSGSIZE, int(max_bytes))
    sock.setsockopt(zmq.LINGER, 0)
    if rcvhwm is not None:
        sock.setsockopt(zmq.RCVHWM, int(rcvhwm))


# ---------------------------------------------------------------------------------------------------------------
# who may connect at all: CURVE (the store) and a PLAIN gate (the transport), keys derived from the secret

_PLAIN_USER = b"disttorch"
ZAP_ENDPOINT = "inproc://zeromq.zap.01"  # where libzmq asks a context's ZAP handler (RFC 27)


def _z85_secret(secret: bytes, purpose: str) -> bytes:
    from zmq.utils import z85

    return z85.encode(subkey(secret, f"{purpose} curve"))


def curve_server(sock, secret: bytes, purpose: str) -> None:
    """Make ``sock`` (before ``bind``) a CURVE server whose key pair derives from the job secret. Its public key
    never travels, so only a process that holds the secret can complete the handshake: anyone else is cut off
    before a single frame of theirs is buffered, and the traffic is encrypted."""
    sock.curve_secretkey = _z85_secret(secret, purpose)
    sock.curve_server = True


def curve_client(sock, secret: bytes, purpose: str) -> None:
    """Configure ``sock`` (before ``connect``) to reach a ``curve_server`` of the same secret and purpose."""
    import zmq

    sock.curve_serverkey = zmq.curve_public(_z85_secret(secret, purpose))
    public, private = zmq.curve_keypair()
    sock.curve_publickey, sock.curve_secretkey = public, private


def _plain_password(secret: bytes, purpose: str) -> bytes:
    return subkey(secret, f"{purpose} plain").hex().encode()


def plain_server(sock) -> None:
    """Make ``sock`` (before ``bind``) accept only connections the context's ``ZapGate`` approves."""
    sock.zap_domain = b"disttorch"
    sock.plain_server = True


def plain_client(sock, secret: bytes, purpose: str) -> None:
    """Give ``sock`` (before ``connect``) the credentials a ``ZapGate`` of the same secret and purpose wants."""
    sock.plain_username = _PLAIN_USER
    sock.plain_password = _plain_password(secret, purpose)


class ZapGate:
    """The ZAP handler of one ZeroMQ context: a connection to a ``plain_server`` socket completes only with the
    PLAIN credentials derived from the job secret, so a peer without them gets no frame buffered at all. Refusals
    count as ``bad_credentials`` in ``drops`` (sender: the peer's address).

    PLAIN sends the password in the clear: that is safe on loopback (only root can sniff it) and elsewhere stops
    everyone but an on-path sniffer, who learns a derived password, not the secret (MACs still apply). The
    handler thread ends when the context terminates.
    """

    def __init__(self, ctx, secret: bytes, purpose: str, drops: "DropLog") -> None:
        import zmq

        self._zmq, self._drops = zmq, drops
        self._password = _plain_password(secret, purpose)
        self._sock = ctx.socket(zmq.REP)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.bind(ZAP_ENDPOINT)
        self.thread = threading.Thread(target=self._serve, name="disttorch-zap", daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        zmq = self._zmq
        try:
            while True:
                try:
                    msg = self._sock.recv_multipart()
                except zmq.ContextTerminated:
                    return
                if len(msg) < 6:
                    continue
                rid, address, mechanism, creds = msg[1], msg[3], msg[5], msg[6:]
                # CURVE asks only after its handshake proved the client knows the server's (secret-derived) key:
                # approve it, so a CURVE server sharing this context (the store) keeps working
                ok = mechanism == b"CURVE" or (
                    mechanism == b"PLAIN" and len(creds) == 2 and hmac.compare_digest(creds[0], _PLAIN_USER)
                    and hmac.compare_digest(creds[1], self._password))
                if not ok:
                    self._drops.drop("bad_credentials", sender=address.decode(errors="replace"),
                                     detail=f"mechanism {mechanism.decode(errors='replace')}")
                try:
                    self._sock.send_multipart([b"1.0", rid, b"200" if ok else b"400", b"OK" if ok else b"denied",
                                               b"", b""])
                except zmq.ContextTerminated:  # the context closed while a handshake was pending
                    return
        finally:
            self._sock.close(0)


# ---------------------------------------------------------------------------------------------------------------
# dropped frames: counted, rate-limited warnings

REASONS = {
    "bad_credentials": "connection refused: no credentials from this job's DISTTORCH_JOB_SECRET",
    "bad_mac": "missing or bad MAC: a process without this job's DISTTORCH_JOB_SECRET, or not of this job",
    "malformed": "malformed frame",
    "replay": "replayed or out-of-order frame (its counter is not newer than the last accepted)",
    "foreign_session": "frame for another session or incarnation (recorded earlier, or from a previous run on "
                       "the same port)",
    "truncated": "payload length differs from the length in its header",
}
_MAX_SENDERS = 1024  # per-sender counters kept; beyond that they count under "other"


class DropLog:
    """Counters of dropped frames per reason (and per sender where known), with rate-limited warnings.

    The first drop of each reason logs one line; later drops of that reason log at most one summary line (with
    the count since the last line) per ``interval`` seconds: on the next drop after the interval, or when the
    owner calls ``tick`` (its idle loop) or ``flush`` (at close). Thread-safe.
    """

    def __init__(self, what: str, interval: float = 10.0, logger: logging.Logger = log,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.what, self.interval, self._log, self._clock = what, float(interval), logger, clock
        self._lock = threading.Lock()
        self._counts: collections.Counter = collections.Counter()
        self._senders: collections.Counter = collections.Counter()
        self._pending: dict = {}  # reason -> drops not yet in a log line
        self._last_line: dict = {}  # reason -> when its last line was written

    def drop(self, reason: str, sender=None, detail: str = "") -> None:
        """Count one dropped frame; ``detail`` goes into the first line of its reason only."""
        with self._lock:
            self._counts[reason] += 1
            if sender is not None:
                key = (reason, sender) if len(self._senders) < _MAX_SENDERS or (reason, sender) in self._senders \
                    else (reason, "other")
                self._senders[key] += 1
            now = self._clock()
            last = self._last_line.get(reason)
            if last is None:
                self._last_line[reason] = now
                line = (f"{self.what}: dropped a frame: {REASONS.get(reason, reason)}"
                        f"{f' ({detail})' if detail else ''}{f' from {sender}' if sender is not None else ''}; "
                        f"further drops are counted and summarised at most every {self.interval:g} s")
            else:
                self._pending[reason] = self._pending.get(reason, 0) + 1
                line = self._summary(reason, now) if now - last >= self.interval else None
        if line:
            self._log.warning(line)

    def _summary(self, reason: str, now: float) -> Optional[str]:
        n = self._pending.pop(reason, 0)
        if not n:
            return None
        self._last_line[reason] = now
        return (f"{self.what}: dropped {n} more frame(s): {REASONS.get(reason, reason)} "
                f"({self._counts[reason]} in all)")

    def due(self) -> Optional[float]:
        """When (``clock`` time) the next summary line is due, or None when nothing is pending."""
        if not self._pending:  # the common case, read without the lock: idle loops call this often
            return None
        with self._lock:
            return min((self._last_line[r] + self.interval for r in self._pending), default=None)

    def tick(self) -> None:
        """Write the summaries that are due."""
        self._write(due_only=True)

    def flush(self) -> None:
        """Write every pending summary now (at close)."""
        self._write(due_only=False)

    def _write(self, due_only: bool) -> None:
        if not self._pending:
            return
        with self._lock:
            now = self._clock()
            lines = [self._summary(r, now) for r in list(self._pending)
                     if not due_only or now - self._last_line[r] >= self.interval]
        for line in lines:
            if line:
                self._log.warning(line)

    def stats(self) -> dict:
        """``{"total": n, "by_reason": {reason: n}, "by_sender": {"reason:sender": n}}``."""
        with self._lock:
            return {"total": sum(self._counts.values()), "by_reason": dict(self._counts),
                    "by_sender": {f"{r}:{s}": n for (r, s), n in self._senders.items()}}
