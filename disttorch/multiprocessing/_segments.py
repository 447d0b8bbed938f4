"""Shared-memory segments behind ``Tensor.share_memory_()``, and moving a tensor's memory into one in place.

A segment is a ``MAP_SHARED`` mapping (a :class:`SharedSegment`) that NumPy arrays are built over, so
``is_shared()`` is one walk up an array's ``.base`` chain. Two kinds, as PyTorch's two sharing strategies:

* ``file_descriptor`` (Linux default): an anonymous ``memfd`` (no name anywhere, nothing in ``/dev/shm``).
  It travels to other processes as a file descriptor (inherited by ``fork``, passed by ``spawn`` /
  ``forkserver`` at start, ``SCM_RIGHTS`` through ``multiprocessing.resource_sharer`` otherwise). The kernel
  frees it when the last descriptor and mapping are gone, so a process killed by SIGKILL leaks nothing.
* ``file_system``: a named file in ``/dev/shm`` (``disttorch_<pid>_<random>``) whose first 64 bytes hold a
  reference count, updated under ``flock``. Every process that maps it holds one reference (dropped when
  its last array goes or at exit; pickling takes one for the message in flight, as PyTorch's
  ``_shared_incref``); the process that drops the count to zero unlinks the file. References of a process
  that was killed cannot be dropped: the segment is also registered with multiprocessing's resource
  tracker, which unlinks what is left when the last process of the job has exited (the role of
  PyTorch's ``torch_shm_manager``).

Moving in place: ``share_tensors`` copies the bytes that a tensor and its aliases (views, ``.data``,
``detach()``, which share its version counter) span into a new segment and re-points every alias's
``_data`` at the same offset and strides, so views, Parameters and optimizers keep their objects.
"""
from __future__ import annotations

import ctypes
import errno
import fcntl
import gc
import mmap
import os
import re
import secrets
import struct
import sys
import threading
import weakref
from multiprocessing import resource_tracker, util

import numpy as np

try:
    import _posixshmem  # what multiprocessing.shared_memory uses: shm_open / shm_unlink
except ImportError:  # pragma: no cover - no POSIX shared memory: only the file_descriptor strategy
    _posixshmem = None

_PREFIX = "disttorch_"
_NAME_RE = re.compile(r"^disttorch_[0-9]+_[0-9a-f]{16}$")
_HEADER = 64  # file_system: int64 reference count, padded so the data starts 64-byte aligned
_COUNT = struct.Struct("<q")

_lock = threading.RLock()
_cache: "weakref.WeakValueDictionary" = weakref.WeakValueDictionary()  # key -> SharedSegment mapped here
_local = threading.local()  # .busy: this thread holds a segment's flock (see _release)
_deferred: list = []  # releases that arrived while this process held a flock


# Forks wait for the sections that hold a descriptor or a flock of their own: a child must not inherit one
# (an inherited flock would stay held by the child's copy and deadlock its next reference update).
def _before_fork() -> None:
    _lock.acquire()


def _after_fork_in_parent() -> None:
    _lock.release()


def _after_fork_in_child() -> None:
    global _lock
    _lock = threading.RLock()
    _local.busy = False


os.register_at_fork(before=_before_fork, after_in_parent=_after_fork_in_parent, after_in_child=_after_fork_in_child)


_libc = ctypes.CDLL(None, use_errno=True)
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long)
_libc.munmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t)
_MAP_FAILED = ctypes.c_void_p(-1).value


def _map(fd: int, size: int, what: str) -> int:
    # libc's mmap, not Python's mmap.mmap: the latter keeps a dup() of the descriptor for its whole life,
    # which would cost the 'file_system' strategy one descriptor per segment and keep flocks held.
    addr = _libc.mmap(None, size, mmap.PROT_READ | mmap.PROT_WRITE, mmap.MAP_SHARED, fd, 0)
    if addr is None or addr == _MAP_FAILED:
        err = ctypes.get_errno()
        raise OSError(err, f"shared tensor: mmap of {size} bytes of {what} failed: {os.strerror(err)}")
    return addr


class SharedSegment:
    """One ``MAP_SHARED`` mapping, unmapped when the last array over it goes.

    NumPy arrays are made over it through ``__array_interface__`` (:meth:`array`), so it ends their
    ``.base`` chain. Attributes: ``strategy``; ``fd`` (file_descriptor kind: this process's descriptor,
    kept to pass it on; -1 otherwise); ``name`` (file_system kind); ``key`` (identity across processes);
    ``addr``/``size`` (the mapping in this process); ``offset``/``nbytes`` (where the data starts, its room).
    """

    __slots__ = ("strategy", "fd", "name", "key", "addr", "size", "offset", "nbytes", "__weakref__")

    def __init__(self, strategy: str, fd: int, name, key, addr: int, size: int, offset: int) -> None:
        self.strategy, self.fd, self.name, self.key = strategy, fd, name, key
        self.addr, self.size, self.offset, self.nbytes = addr, size, offset, size - offset

    @property
    def __array_interface__(self) -> dict:
        return {"version": 3, "shape": (self.size,), "typestr": "|u1", "data": (self.addr, False)}

    def array(self):
        """The whole mapping as a uint8 array whose ``.base`` is this segment."""
        return np.asarray(self)

    def __del__(self) -> None:
        addr, fd = self.addr, self.fd
        self.addr, self.fd = 0, -1
        try:
            if addr:
                _libc.munmap(addr, self.size)
            if fd >= 0:
                os.close(fd)
        except Exception:  # interpreter shutdown: the process is going away anyway
            pass


def _finish(seg: SharedSegment) -> SharedSegment:
    _cache[seg.key] = seg
    return seg


def _reserve(fd: int, size: int, what: str) -> None:
    # Reserve the pages now: tmpfs that runs out of room later would kill the process with SIGBUS
    # on first touch instead of raising here.
    os.ftruncate(fd, size)
    try:
        os.posix_fallocate(fd, 0, size)
    except OSError as e:
        if e.errno in (errno.ENOSPC, errno.ENOMEM):
            raise RuntimeError(f"share_memory_: cannot allocate {size} bytes of shared memory for {what} "
                               f"({os.strerror(e.errno)}); free memory, or for the 'file_system' strategy raise "
                               "the size of /dev/shm (e.g. docker run --shm-size=2g)") from None
        if e.errno not in (errno.EOPNOTSUPP, errno.EINVAL):
            raise


def fd_id(fd: int) -> tuple:
    """What identifies a descriptor's file across processes: ``(st_ino, st_dev)``, as PyTorch's ``fd_id``."""
    st = os.fstat(fd)
    return (st.st_ino, st.st_dev)


def new_segment(nbytes: int, strategy: str) -> SharedSegment:
    """A zero-filled segment with room for ``nbytes`` bytes, of the given sharing strategy."""
    size = max(int(nbytes), 1)  # mmap cannot map 0 bytes
    if strategy == "file_descriptor":
        try:
            fd = os.memfd_create(f"{_PREFIX}{os.getpid()}", os.MFD_CLOEXEC)
        except OSError as e:
            if e.errno != errno.EMFILE:
                raise
            import resource

            limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
            raise RuntimeError(f"share_memory_: too many open files (limit {limit}): each tensor shared with the "
                               "'file_descriptor' strategy keeps one descriptor; raise the limit (ulimit -n, "
                               "resource.setrlimit) or call torch.multiprocessing.set_sharing_strategy('file_system')"
                               ) from None
        try:
            _reserve(fd, size, "a memfd segment")
            seg = SharedSegment(strategy, fd, None, ("fd",) + fd_id(fd), _map(fd, size, "a memfd segment"), size, 0)
        except BaseException:
            os.close(fd)
            raise
        return _finish(seg)
    if strategy != "file_system":
        raise ValueError(f"unknown sharing strategy {strategy!r}; expected 'file_descriptor' or 'file_system'")
    name = f"{_PREFIX}{os.getpid()}_{secrets.token_hex(8)}"
    with _lock:
        seg = _finish(_create_named(name, _HEADER + size))
    _own_reference(seg)
    return seg


def _create_named(name: str, size: int) -> SharedSegment:
    fd = _posixshmem.shm_open("/" + name, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        _track("REGISTER", name)  # before anything can fail half-way: the tracker removes it if we die
        try:
            _reserve(fd, size, f"/dev/shm/{name}")
            os.pwrite(fd, _COUNT.pack(1), 0)
            seg = SharedSegment("file_system", -1, name, ("fs", name), _map(fd, size, f"/dev/shm/{name}"), size,
                                _HEADER)
        except BaseException:
            _posixshmem.shm_unlink("/" + name)
            _track("UNREGISTER", name)
            raise
    finally:
        os.close(fd)
    return seg


# ---- file_system reference counts --------------------------------------------------------------------
def _track(cmd: str, name: str) -> None:
    (resource_tracker.register if cmd == "REGISTER" else resource_tracker.unregister)("/" + name, "shared_memory")


def _open_named(name: str) -> int:
    if not _NAME_RE.match(name):
        raise RuntimeError(f"shared tensor: {name!r} is not a disttorch shared-memory segment name")
    try:
        return _posixshmem.shm_open("/" + name, os.O_RDWR, 0o600)
    except FileNotFoundError:
        raise RuntimeError(f"shared tensor: /dev/shm/{name} no longer exists: every process that held it released "
                           "it (or was killed) before this one received it; keep the sending process and its "
                           "tensor alive until the receiver has it") from None


def _add_ref(name: str, delta: int, attach: bool = False):
    """Add ``delta`` to ``name``'s count under an exclusive flock; unlink at zero. With ``attach``, also map it."""
    with _lock:
        try:
            fd = _open_named(name)
        except RuntimeError:
            if delta < 0:
                return None  # already gone (its tracker cleaned it up): nothing left to release
            raise
        _local.busy = True
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            (count,) = _COUNT.unpack(os.pread(fd, _COUNT.size, 0))
            if count <= 0:
                raise RuntimeError(f"shared tensor: /dev/shm/{name} was released by every process before this one "
                                   "received it; keep the sending process and its tensor alive until it is received")
            count += delta
            if count <= 0:
                _posixshmem.shm_unlink("/" + name)
                _track("UNREGISTER", name)
            os.pwrite(fd, _COUNT.pack(count), 0)
            if attach:
                size = os.fstat(fd).st_size
                if size <= _HEADER:
                    raise RuntimeError(f"shared tensor: /dev/shm/{name} is {size} bytes, too small to be a segment")
                return SharedSegment("file_system", -1, name, ("fs", name), _map(fd, size, f"/dev/shm/{name}"), size,
                                     _HEADER)
            return None
        finally:
            _local.busy = False
            # Unlock explicitly: a mapping made from this descriptor keeps its open file (and a flock on it)
            # alive after close().
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
            while _deferred:
                _release(_deferred.pop())


def _release(name: str) -> None:
    if getattr(_local, "busy", False):
        # A finalizer that ran (garbage collection) while this thread holds a flock: taking a second one on
        # the same file here would wait for ourselves. The holder drains the list when it is done.
        _deferred.append(name)
        return
    try:
        _add_ref(name, -1)
    except Exception:  # at exit or in a finalizer: never raise; the tracker removes what is left
        pass


def _own_reference(seg: SharedSegment, forked: bool = False) -> None:
    # This process's reference: dropped when the segment's last array goes, or at exit (multiprocessing's
    # finalizers also run in forked children, where atexit does not).
    util.Finalize(seg, _release, args=(seg.name,), exitpriority=0)
    if not forked:  # a forked child inherits this registration along with the segment
        util.register_after_fork(seg, _after_fork)


def _after_fork(seg: SharedSegment) -> None:
    # A forked child inherits the mapping but not the parent's finalizer: take a reference of its own.
    try:
        _add_ref(seg.name, +1)
    except RuntimeError:
        return
    _track("REGISTER", seg.name)
    _own_reference(seg, forked=True)


def add_message_ref(seg: SharedSegment) -> None:
    """A reference for a pickled handle in flight (file_system), dropped by the receiver after it maps it."""
    _add_ref(seg.name, +1)


def attach_named(name: str) -> SharedSegment:
    """This process's mapping of ``/dev/shm/<name>``, taking a reference, then dropping the message's one."""
    with _lock:
        seg = _cache.get(("fs", name))
        if seg is None:
            seg = _finish(_add_ref(name, +1, attach=True))
            _track("REGISTER", name)  # idempotent; lets any process that drops the last reference unregister it
            _own_reference(seg)
    _add_ref(name, -1)
    return seg


def attach_fd(handle) -> SharedSegment:
    """This process's mapping of the memfd behind ``handle`` (a ``DupFd``); its descriptor is taken over:
    closed when this process already maps that memfd, else kept by the segment."""
    with _lock:  # no fork in between may inherit the received descriptor
        fd = handle.detach()
        key = ("fd",) + fd_id(fd)
        seg = _cache.get(key)
        if seg is not None:
            os.close(fd)
            return seg
        try:
            size = os.fstat(fd).st_size
            seg = SharedSegment("file_descriptor", fd, None, key, _map(fd, size, "a received memfd"), size, 0)
        except BaseException:
            os.close(fd)
            raise
        return _finish(seg)


# ---- arrays and tensors ------------------------------------------------------------------------------
def root_of(arr):
    """The object at the end of an array's ``.base`` chain (the array itself when it owns its memory)."""
    while isinstance(arr, np.ndarray) and arr.base is not None:
        arr = arr.base
    return arr


def segment_of(arr):
    """The :class:`SharedSegment` an array lives in, or None."""
    r = root_of(arr)
    return r if isinstance(r, SharedSegment) else None


def _address(arr) -> int:
    return arr.__array_interface__["data"][0]


def _bounds(arr) -> tuple:
    """The byte range ``[lo, hi)`` an array's elements occupy (empty for an empty array)."""
    lo = hi = _address(arr)
    if arr.size == 0:
        return lo, lo
    for n, s in zip(arr.shape, arr.strides):
        if s >= 0:
            hi += (n - 1) * s
        else:
            lo += (n - 1) * s
    return lo, hi + arr.itemsize


def array_in(seg: SharedSegment, arr, byte_offset: int, copy: bool = False):
    """An array with ``arr``'s shape, dtype and strides over ``seg``, ``byte_offset`` bytes into its data
    (with ``copy``, holding ``arr``'s values)."""
    out = np.ndarray(arr.shape, arr.dtype, buffer=seg.array(), offset=seg.offset + byte_offset, strides=arr.strides)
    if copy:
        np.copyto(out, arr)
    if not arr.flags.writeable:
        out.flags.writeable = False
    return out


def _aliases(t, root) -> list:
    """Tensors other than ``t`` that share its memory and version counter (views, ``.data``, ``detach()``)."""
    vc = t._vc
    # References to vc: t's slot, the local name and getrefcount's argument. More means someone else
    # (an alias, an autograd record) holds it: only then pay for a scan of the heap.
    if sys.getrefcount(vc) <= 3:
        return []
    from .._tensor import Tensor

    return [r for r in gc.get_referrers(vc) if isinstance(r, Tensor) and r is not t and r._vc is vc
            and isinstance(r._data, np.ndarray) and root_of(r._data) is root]


def share_tensors(tensors, strategy: str) -> None:
    """Move each CPU tensor's memory (with its aliases) into a new segment, in place; shared ones stay."""
    with _lock:
        for t in tensors:
            arr = t._data
            if not isinstance(arr, np.ndarray):
                continue  # CUDA tensors: a no-op, as PyTorch
            root = root_of(arr)
            if isinstance(root, SharedSegment):
                continue
            group = [t] + _aliases(t, root)
            spans = [b for b in (_bounds(a._data) for a in group) if b[1] > b[0]]
            lo = min((b[0] for b in spans), default=0)
            hi = max((b[1] for b in spans), default=0)
            seg = new_segment(hi - lo, strategy)
            # Each alias copies the elements it sees (overlaps twice, harmlessly); bytes no alias sees are unused.
            for a in group:
                a._data = array_in(seg, a._data, _address(a._data) - lo if a._data.size else 0, copy=True)
