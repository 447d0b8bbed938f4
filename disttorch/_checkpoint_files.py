"""Atomic checkpoint files: write a temporary file beside the target, fsync, rename over the target.

- The new file gets the permission bits ``open()`` would give it (0o666 less the umask), or, when it replaces a
  file, that file's permission bits.
- A symlink is written through: the file it points to is replaced atomically in its own directory, the link
  stays a link.
- Temporary files are named ``.<name>.<host>.<pid>.<random>.tmp``. One left behind by a killed save is removed
  by the next save to the same target on the same host once its process is gone; a live saver's file (in this
  or another process, or on another host sharing the directory) is never touched.
"""
from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import socket
import stat
from typing import BinaryIO, Callable

_BASE_CHARS = 100  # of the target's name in a temp name: keeps the name under NAME_MAX


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname()) or "host"


def _pid_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except (PermissionError, OverflowError):
        return False
    try:  # a killed process that its parent has not reaped yet is a zombie: gone for our purpose
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[-1].split()[0] == b"Z"
    except (OSError, IndexError):
        return False


def remove_stale_temps(folder: str, base: str) -> list:
    """Remove temporary files of ``folder/base`` left by saves on this host whose process is gone; returns them."""
    pattern = re.compile(rf"\.{re.escape(base[:_BASE_CHARS])}\.{re.escape(_host())}\.(\d+)\.[0-9a-f]{{8}}\.tmp")
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        m = pattern.fullmatch(entry.name)
        if m is None or int(m.group(1)) == os.getpid() or not _pid_gone(int(m.group(1))):
            continue
        with contextlib.suppress(OSError):
            os.unlink(entry.path)
            removed.append(entry.path)
    return removed


def _target(path: str) -> str:
    """The file a save to ``path`` replaces: ``path`` itself, or the file its symlinks lead to."""
    target = os.path.realpath(path)
    if os.path.islink(target):
        raise OSError(errno.ELOOP, "too many levels of symbolic links", path)
    return target


def atomic_write(path, write: Callable[[BinaryIO], None]) -> None:
    """Run ``write(file)`` on a temporary file, fsync it and rename it over ``path`` (through symlinks)."""
    target = _target(os.fspath(path))
    folder, base = os.path.split(target)
    remove_stale_temps(folder, base)
    try:
        mode = stat.S_IMODE(os.stat(target).st_mode)
    except FileNotFoundError:
        mode = None
    tmp = os.path.join(folder, f".{base[:_BASE_CHARS]}.{_host()}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    # 0o666 through the umask, exactly as open(path, "wb") creates a file.
    out = os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666), "wb")
    try:
        with out:
            if mode is not None:
                os.fchmod(out.fileno(), mode)
            write(out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):  # make the rename itself durable
        dfd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
