"""Free TCP ports for the rendezvous (MASTER_PORT).

The kernel hands out a port that no socket holds when we bind to port 0 on the master address. The
launcher closes its socket just before the workers start, and rank 0 binds the port a moment later. Ports
handed out by this process are remembered, so a restart (which needs a fresh MASTER_PORT, like torchrun)
never gets the previous attempt's port back while its sockets may linger in TIME_WAIT.
"""
from __future__ import annotations

import socket

_handed_out: set[int] = set()


def is_local_address(addr: str) -> bool:
    """Whether ``addr`` names an address of this machine (one we can bind to)."""
    try:
        infos = socket.getaddrinfo(addr, None, type=socket.SOCK_STREAM)
    except OSError:
        return False
    for family, _, _, _, sockaddr in infos:
        try:
            with socket.socket(family, socket.SOCK_STREAM) as s:
                s.bind((sockaddr[0], 0))
            return True
        except OSError:
            continue
    return False


def _bind_free(host: str) -> int:
    infos = socket.getaddrinfo(host or None, 0, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    last: OSError | None = None
    for family, _, _, _, sockaddr in infos:
        try:
            with socket.socket(family, socket.SOCK_STREAM) as s:
                s.bind(sockaddr[:2] if family == socket.AF_INET else sockaddr)
                return s.getsockname()[1]
        except OSError as e:
            last = e
    raise OSError(f"cannot bind a port on {host!r}: {last}")


def free_port(master_addr: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``master_addr`` (on every local address when it is not one of ours).

    Args:
        master_addr: the address the rendezvous store will listen on.
    """
    host = master_addr if is_local_address(master_addr) else ""
    for _ in range(64):
        port = _bind_free(host)
        if port not in _handed_out:
            _handed_out.add(port)
            return port
    raise OSError("no free port found after 64 tries")
