"""Rendezvous key-value stores, as ``torch.distributed`` has them: ``TCPStore``, ``PrefixStore``, ``HashStore``.

``TCPStore`` runs over ZeroMQ: the master process serves a ROUTER socket from a daemon thread and every
process (the master too) talks to it through DEALER sockets, one per thread. Blocking calls (``get``, ``wait``)
are parked on the server until the key is set, so nobody polls.

Every frame is authenticated, numbered and size-limited; a peer without the job secret cannot even connect.
The wire protocol lives in ``_tcpstore.py`` (server thread and client sockets), on the messaging layer ``_wire``.

Keys are ``str``; values are ``bytes`` (a ``str`` value is stored UTF-8 encoded). ``add`` stores its counter as
the decimal text of the integer, as PyTorch does.
"""
from __future__ import annotations

import logging
import os
import socket
import threading
from datetime import timedelta
from typing import Optional, Sequence, Union

from . import _wire
from ._wire import JobSecretError, job_secret

__all__ = ["Store", "TCPStore", "PrefixStore", "HashStore", "DistStoreError", "DistNetworkError",
           "JobSecretError", "job_secret", "default_interface"]

log = logging.getLogger("disttorch.distributed")

_DEFAULT_TIMEOUT = timedelta(seconds=300)
_INIT_KEY = "init/"  # counts connected clients; PyTorch's num_keys() counts it too


class DistStoreError(RuntimeError):
    """A store operation failed or timed out (``torch.distributed.DistStoreError``)."""


class DistNetworkError(RuntimeError):
    """The store could not bind or reach its address (``torch.distributed.DistNetworkError``)."""


def default_interface(master_addr: Optional[str] = None) -> str:
    """The local IP address to bind to: ``DISTTORCH_INTERFACE``, else the address that routes to ``master_addr``
    (found with a UDP ``connect``, which sends nothing), ``127.0.0.1`` when the master is loopback."""
    iface = os.environ.get("DISTTORCH_INTERFACE")
    if iface:
        return iface
    master_addr = master_addr or os.environ.get("MASTER_ADDR", "127.0.0.1")
    try:
        ip = socket.gethostbyname(master_addr)
    except OSError:
        return "127.0.0.1"
    if ip.startswith("127."):
        return "127.0.0.1"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect((ip, 9))
            return s.getsockname()[0]
        except OSError:
            return "127.0.0.1"


def _seconds(timeout) -> float:
    if isinstance(timeout, timedelta):
        return timeout.total_seconds()
    return float(timeout)


def _bytes(value: Union[str, bytes, bytearray, memoryview]) -> bytes:
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    raise TypeError(f"Store value must be str or bytes, got {type(value).__name__}")


def _keys(keys) -> list:
    if isinstance(keys, str):
        raise TypeError("Store.wait/check: keys must be a list of str, got a str")
    return [str(k) for k in keys]


def _timeout_error(keys, seconds: float) -> DistStoreError:
    return DistStoreError(f"Timeout after {seconds:g} s waiting for store key(s) {list(keys)} "
                          f"(the store's timeout: raise it with timeout= or set_timeout)")


class Store:
    """Base class of the key-value stores: the methods of ``torch.distributed.Store``."""

    def __init__(self, timeout: Union[timedelta, float] = _DEFAULT_TIMEOUT) -> None:
        self._timeout = timeout if isinstance(timeout, timedelta) else timedelta(seconds=float(timeout))

    @property
    def timeout(self) -> timedelta:
        return self._timeout

    def set_timeout(self, timeout: Union[timedelta, float]) -> None:
        """Set the default timeout of ``get`` and ``wait``."""
        self._timeout = timeout if isinstance(timeout, timedelta) else timedelta(seconds=float(timeout))

    def set(self, key: str, value: Union[str, bytes]) -> None:
        raise NotImplementedError

    def get(self, key: str) -> bytes:
        """The value of ``key``, waiting until it is set (DistStoreError after the store's timeout)."""
        raise NotImplementedError

    def add(self, key: str, amount: int) -> int:
        """Add ``amount`` to the integer counter at ``key`` (created at 0) and return the new value."""
        raise NotImplementedError

    def append(self, key: str, value: Union[str, bytes]) -> None:
        """Append ``value`` to the bytes at ``key`` (set it if absent)."""
        raise NotImplementedError

    def compare_set(self, key: str, expected_value: Union[str, bytes], desired_value: Union[str, bytes]) -> bytes:
        """Set ``key`` to ``desired_value`` if it currently holds ``expected_value`` (or is absent and
        ``expected_value`` is empty); return the value now stored (``expected_value`` if absent and not set)."""
        raise NotImplementedError

    def wait(self, keys: Sequence[str], timeout: Optional[Union[timedelta, float]] = None) -> None:
        """Block until every key is set (DistStoreError after ``timeout``, default the store's timeout)."""
        raise NotImplementedError

    def check(self, keys: Sequence[str]) -> bool:
        """True if every key is set (does not wait)."""
        raise NotImplementedError

    def delete_key(self, key: str) -> bool:
        """Delete ``key``; True if it existed."""
        raise NotImplementedError

    def num_keys(self) -> int:
        raise NotImplementedError

    def multi_get(self, keys: Sequence[str]) -> list:
        return [self.get(k) for k in keys]

    def multi_set(self, keys: Sequence[str], values: Sequence[Union[str, bytes]]) -> None:
        for k, v in zip(keys, values):
            self.set(k, v)

    def has_extended_api(self) -> bool:
        return True


# ---------------------------------------------------------------------------------------------------------------
# The key-value table with parked waiters: shared by HashStore (in process) and the TCPStore server thread.

class _Table:
    """Keys -> bytes, plus requests parked until their keys exist. Not thread-safe: callers serialise."""

    def __init__(self) -> None:
        self.data: dict = {}
        self.parked: list = []  # [keys, min_value, reply(ok, value), deadline]

    def apply(self, op: str, args: list):
        d = self.data
        if op == "set":
            d[args[0]] = args[1]
        elif op == "add":
            value = int(d.get(args[0], b"0")) + int(args[1])
            d[args[0]] = str(value).encode()
            self._wake(args[0])
            return value
        elif op == "append":
            d[args[0]] = d.get(args[0], b"") + args[1]
        elif op == "compare_set":
            key, expected, desired = args
            cur = d.get(key)
            if cur is None:
                if expected:
                    return expected
                d[key] = desired
            elif cur == expected:
                d[key] = desired
            else:
                return cur
            self._wake(key)
            return desired
        elif op == "check":
            return all(k in d for k in args[0])
        elif op == "delete_key":
            return d.pop(args[0], None) is not None
        elif op == "num_keys":
            return len(d)
        elif op == "multi_set":
            for k, v in zip(args[0], args[1]):
                d[k] = v
            for k in args[0]:
                self._wake(k)
            return None
        else:
            raise ValueError(f"unknown store operation {op!r}")
        self._wake(args[0])
        return None

    def ready(self, keys: list, min_value: Optional[int]) -> bool:
        d = self.data
        if min_value is not None:
            return int(d.get(keys[0], b"0")) >= min_value
        return all(k in d for k in keys)

    def park(self, keys: list, min_value: Optional[int], reply, deadline: float) -> None:
        self.parked.append([keys, min_value, reply, deadline])

    def _wake(self, key: str) -> None:
        if not self.parked:
            return
        keep = []
        for p in self.parked:
            if key in p[0] and self.ready(p[0], p[1]):
                p[2](True, [self.data[k] for k in p[0]])
            else:
                keep.append(p)
        self.parked = keep

    def expire(self, now: float) -> Optional[float]:
        """Drop parked requests past their deadline (their clients time out themselves); the next deadline."""
        if not self.parked:
            return None
        self.parked = [p for p in self.parked if p[3] > now]
        return min((p[3] for p in self.parked), default=None)


class HashStore(Store):
    """An in-process store (``torch.distributed.HashStore``), safe to share between threads."""

    def __init__(self) -> None:
        super().__init__()
        self._table = _Table()
        self._cond = threading.Condition()

    def _op(self, op: str, *args):
        with self._cond:
            r = self._table.apply(op, list(args))
            self._cond.notify_all()
            return r

    def _wait(self, keys: list, timeout: float, min_value: Optional[int] = None) -> None:
        with self._cond:
            if not self._cond.wait_for(lambda: self._table.ready(keys, min_value), timeout):
                raise _timeout_error(keys, timeout)

    def set(self, key, value):
        self._op("set", str(key), _bytes(value))

    def get(self, key):
        key = str(key)
        self._wait([key], self._timeout.total_seconds())
        with self._cond:
            return self._table.data[key]

    def add(self, key, amount):
        return self._op("add", str(key), int(amount))

    def append(self, key, value):
        self._op("append", str(key), _bytes(value))

    def compare_set(self, key, expected_value, desired_value):
        return self._op("compare_set", str(key), _bytes(expected_value), _bytes(desired_value))

    def wait(self, keys, timeout=None):
        self._wait(_keys(keys), _seconds(timeout) if timeout is not None else self._timeout.total_seconds())

    def check(self, keys):
        return self._op("check", _keys(keys))

    def delete_key(self, key):
        return self._op("delete_key", str(key))

    def num_keys(self):
        return self._op("num_keys")


class PrefixStore(Store):
    """Wraps a store and prefixes every key with ``prefix + "/"`` (``torch.distributed.PrefixStore``)."""

    def __init__(self, prefix: str, store: Store) -> None:
        super().__init__(store.timeout)
        self._prefix = f"{prefix}/"
        self._store = store

    @property
    def underlying_store(self) -> Store:
        return self._store

    @property
    def timeout(self) -> timedelta:
        return self._store.timeout

    def set_timeout(self, timeout) -> None:
        self._store.set_timeout(timeout)

    def _k(self, key) -> str:
        return self._prefix + str(key)

    def set(self, key, value):
        self._store.set(self._k(key), value)

    def get(self, key):
        return self._store.get(self._k(key))

    def add(self, key, amount):
        return self._store.add(self._k(key), amount)

    def append(self, key, value):
        self._store.append(self._k(key), value)

    def compare_set(self, key, expected_value, desired_value):
        return self._store.compare_set(self._k(key), expected_value, desired_value)

    def wait(self, keys, timeout=None):
        self._store.wait([self._k(k) for k in _keys(keys)], timeout)

    def check(self, keys):
        return self._store.check([self._k(k) for k in _keys(keys)])

    def delete_key(self, key):
        return self._store.delete_key(self._k(key))

    def num_keys(self):
        return self._store.num_keys()

    def multi_get(self, keys):
        return self._store.multi_get([self._k(k) for k in keys])

    def multi_set(self, keys, values):
        self._store.multi_set([self._k(k) for k in keys], values)


_servers: dict = {}  # (address, port) -> [server, refcount], for multi_tenant
_servers_lock = threading.Lock()


class TCPStore(Store):
    """A store served by the master process over ZeroMQ (``torch.distributed.TCPStore``'s signature).

    Args:
        host_name: the master's host name or address; the master binds there (or to ``DISTTORCH_INTERFACE``).
        port: the master's port; 0 on the master picks a free one (read it back from ``.port``).
        world_size: number of processes using the store (master included); None for unknown.
        is_master: whether this process serves the store.
        timeout: default timeout of ``get``/``wait`` and of the constructor.
        wait_for_workers: the master's constructor waits until ``world_size`` processes have connected.
        multi_tenant: several TCPStore objects in one process share one server on the same address.
        master_listen_fd, use_libuv: accepted for PyTorch compatibility; a listening fd is not supported.

    Raises:
        JobSecretError: ``DISTTORCH_JOB_SECRET`` is unset and ``host_name`` is another host (see ``job_secret``).
    """

    def __init__(self, host_name: str, port: int, world_size: Optional[int] = None, is_master: bool = False,
                 timeout: timedelta = _DEFAULT_TIMEOUT, wait_for_workers: bool = True, multi_tenant: bool = False,
                 master_listen_fd: Optional[int] = None, use_libuv: bool = True) -> None:
        import zmq

        from . import _tcpstore

        super().__init__(timeout)
        if master_listen_fd is not None:
            raise NotImplementedError("TCPStore: master_listen_fd is not supported by the ZeroMQ store")
        self.host, self._world_size, self._is_master = host_name, world_size, is_master
        self._secret = job_secret(host_name)
        self._drops = _wire.DropLog(f"TCPStore client of {host_name}:{port}")
        self._server = None
        self._server_key = None
        self._ctx = zmq.Context.instance()
        self._pid = os.getpid()
        self._local = threading.local()
        self._clients: list = []
        self._clients_lock = threading.Lock()
        if is_master:
            address = os.environ.get("DISTTORCH_INTERFACE") or self._resolve(host_name)
            with _servers_lock:
                entry = _servers.get((address, port)) if multi_tenant and port else None
                if entry is None:
                    entry = [_tcpstore.Server(self._ctx, address, port, self._secret), 0]
                    _servers[(address, entry[0].port)] = entry
                entry[1] += 1
                self._server, self._server_key = entry[0], (address, entry[0].port)
            port = self._server.port
            connect_host = address if address not in ("0.0.0.0", "*") else "127.0.0.1"
        else:
            connect_host = self._resolve(host_name)
        self.port = port
        self._endpoint = f"tcp://{connect_host}:{port}"
        if world_size is not None:
            self._request("add", [_INIT_KEY, 1], self._timeout.total_seconds(), "register with the store")
            if is_master and wait_for_workers:
                t = self._timeout.total_seconds()
                try:
                    self._request("wait_ge", [[_INIT_KEY, world_size], t], t + 1.0, "wait for workers")
                except DistStoreError:
                    n = int(self._request("get", [[_INIT_KEY], 0], t, "count workers")[0])
                    raise DistStoreError(f"TCPStore: only {n} of {world_size} processes connected to the store at "
                                         f"{host_name}:{port} within {t:g} s") from None

    @staticmethod
    def _resolve(host: str) -> str:
        try:
            return socket.gethostbyname(host)
        except OSError as e:
            raise DistNetworkError(f"TCPStore: cannot resolve host name {host!r}: {e}") from None

    @property
    def world_size(self) -> Optional[int]:
        return self._world_size

    @property
    def libuvBackend(self) -> bool:
        return False

    def _client(self):
        from . import _tcpstore

        c = getattr(self._local, "client", None)
        if c is None or self._pid != os.getpid():
            if self._pid != os.getpid():  # forked: the parent's context and sockets are not ours
                import zmq

                self._pid, self._ctx, self._clients = os.getpid(), zmq.Context(), []
                self._local = threading.local()
            c = _tcpstore.Client(self._ctx, self._endpoint, self._secret, self._drops)
            self._local.client = c
            with self._clients_lock:
                self._clients.append(c)
        return c

    def _request(self, op: str, args: list, wait_s: float, what: str):
        try:
            return self._client().request(op, args, wait_s, what)
        except TimeoutError:
            if op in ("get", "wait", "wait_ge"):
                keys = args[0][:1] if op == "wait_ge" else args[0]
                raise _timeout_error(keys, args[1]) from None
            raise DistStoreError(f"TCPStore: no answer from the store at {self._endpoint[6:]} within {wait_s:g} s "
                                 f"({what}); is the master process running and reachable?") from None

    def set(self, key, value):
        self._request("set", [str(key), _bytes(value)], self._timeout.total_seconds(), f"set {key!r}")

    def get(self, key):
        t = self._timeout.total_seconds()
        return self._request("get", [[str(key)], t], t, f"get {key!r}")[0]

    def add(self, key, amount):
        return self._request("add", [str(key), int(amount)], self._timeout.total_seconds(), f"add {key!r}")

    def append(self, key, value):
        self._request("append", [str(key), _bytes(value)], self._timeout.total_seconds(), f"append {key!r}")

    def compare_set(self, key, expected_value, desired_value):
        return self._request("compare_set", [str(key), _bytes(expected_value), _bytes(desired_value)],
                             self._timeout.total_seconds(), f"compare_set {key!r}")

    def wait(self, keys, timeout=None):
        t = _seconds(timeout) if timeout is not None else self._timeout.total_seconds()
        self._request("wait", [_keys(keys), t], t, "wait")

    def check(self, keys):
        return self._request("check", [_keys(keys)], self._timeout.total_seconds(), "check")

    def delete_key(self, key):
        return self._request("delete_key", [str(key)], self._timeout.total_seconds(), f"delete_key {key!r}")

    def num_keys(self):
        return self._request("num_keys", [], self._timeout.total_seconds(), "num_keys")

    def multi_get(self, keys):
        t = self._timeout.total_seconds()
        return self._request("get", [[str(k) for k in keys], t], t, "multi_get")

    def multi_set(self, keys, values):
        self._request("multi_set", [[str(k) for k in keys], [_bytes(v) for v in values]],
                      self._timeout.total_seconds(), "multi_set")

    def close(self) -> None:
        """Close this process's sockets and, on the master, stop serving (not in PyTorch; tests use it)."""
        with self._clients_lock:
            clients, self._clients = self._clients, []
        if self._pid == os.getpid():
            for c in clients:
                c.close()
        self._local = threading.local()
        if self._server is not None:
            with _servers_lock:
                entry = _servers.get(self._server_key)
                if entry is not None:
                    entry[1] -= 1
                    if entry[1] == 0:
                        del _servers[self._server_key]
                        entry[0].close()
            self._server = None


def secret_of(store: Store) -> bytes:
    """The job secret a store authenticates with (a ``PrefixStore``'s underlying ``TCPStore``), so that the
    backends built on the store use the same key; ``job_secret()`` for other stores."""
    while isinstance(store, PrefixStore):
        store = store.underlying_store
    secret = getattr(store, "_secret", None) if isinstance(store, TCPStore) else None
    return secret or job_secret()
