"""The ``torch.distributed`` API over the ProcessGroup interface: process groups, init, queries.

Every collective here unwraps tensors to C-contiguous arrays (a copy only for non-contiguous tensors),
checks arguments (dtype, shape, device, reduce op) with errors that name the op, the rank and the shapes,
computes a fingerprint ``"seq=12 all_reduce(float32[4, 3], SUM)"`` (sequence number per group) and has
every rank verify it (``pg.verify``; ``DISTTORCH_CHECK_COLLECTIVES=0`` skips that), then calls the backend.
Results are written in place and bump the tensors' version counters, as in-place ops do. Waits use the
collective timeout (``timeout=`` of ``init_process_group``/``new_group``, else ``DISTTORCH_COLLECTIVE_TIMEOUT``,
default 300 s); a collective that outlives it raises ``RuntimeError`` naming the ranks that have not
arrived and where each rank is (see ``_watchdog.py``, which also warns about stalls).

Layers, each importing only from those below it: ``process_group.py`` (the backend interface, ReduceOp, Work),
``groups.py`` (group handles and the world), ``runner.py`` (sequence numbers, fingerprints, timeouts, the
watchdog, argument checks, copy-back), ``collectives.py`` (tensor collectives) and ``_objects.py`` (object
collectives), then this module (init, groups, queries, re-exporting the collectives) and the package
``__init__``. ``tests/distributed/test_layering.py`` holds that order.

These collectives are not differentiable (as in PyTorch); ``disttorch.distributed.nn.functional`` has
the differentiable ones.
"""
from __future__ import annotations

import os
from datetime import timedelta
from typing import Optional

import numpy as np

from . import runner
from ._objects import (all_gather_object, broadcast_object_list, gather_object, recv_object_list,
                       scatter_object_list, send_object_list)
from .collectives import (all_gather, all_gather_into_tensor, all_reduce, all_to_all, all_to_all_single, barrier,
                          batch_isend_irecv, broadcast, gather, irecv, isend, monitored_barrier, P2POp, recv, reduce,
                          reduce_scatter, reduce_scatter_tensor, scatter, send)
from .groups import GroupMember, group, not_initialized, ProcessGroup, resolve_group, seconds
from .groups import world as _W  # the process's World (tests read c10d._W)
from .process_group import BACKENDS, backend_class, ReduceOp, Work

__all__ = [
    "Backend", "GroupMember", "group", "ProcessGroup", "ReduceOp", "Work", "P2POp",
    "init_process_group", "destroy_process_group", "is_initialized", "is_available", "is_mpi_available",
    "is_nccl_available", "is_gloo_available", "is_ucc_available", "is_backend_available", "is_torchelastic_launched",
    "get_rank", "get_world_size", "get_backend", "new_group", "get_group_rank", "get_global_rank",
    "get_process_group_ranks", "all_reduce", "broadcast", "reduce", "all_gather", "all_gather_into_tensor",
    "reduce_scatter", "reduce_scatter_tensor", "gather", "scatter", "all_to_all", "all_to_all_single", "barrier",
    "monitored_barrier", "send", "recv", "isend", "irecv", "batch_isend_irecv", "all_gather_object",
    "broadcast_object_list", "gather_object", "recv_object_list", "scatter_object_list", "send_object_list",
    "get_default_backend_for_device",
]

_MPI_ENV = ("OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK")


# ------------------------------------------------------------------------------------------------------------
# backends
# ------------------------------------------------------------------------------------------------------------
class Backend(str):
    """Backend names, as ``torch.distributed.Backend``: ``Backend("GLOO") == "gloo"``. disttorch runs ``gloo``
    on its ``zmq`` backend."""

    UNDEFINED = "undefined"
    GLOO = "gloo"
    NCCL = "nccl"
    MPI = "mpi"
    UCC = "ucc"
    ZMQ = "zmq"
    backend_list = ["undefined", "gloo", "nccl", "mpi", "zmq"]

    def __new__(cls, name: str) -> "Backend":
        if not isinstance(name, str):
            raise ValueError(f"Backend constructor parameter must be string-ish, got {type(name).__name__}")
        value = name.lower()
        if value not in cls.backend_list and ":" not in value:
            raise ValueError(f"Invalid backend: '{name}'")
        return str.__new__(cls, value)


# ------------------------------------------------------------------------------------------------------------
# availability
# ------------------------------------------------------------------------------------------------------------
def is_available() -> bool:
    """True: the zmq backend is always there (mpi and nccl when their packages are installed)."""
    return True


def is_initialized() -> bool:
    """Whether the default process group has been initialised."""
    return _W.default is not None


def _has_module(name: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def is_mpi_available() -> bool:
    """Whether mpi4py is installed (checked without importing it, which would initialise MPI)."""
    return _has_module("mpi4py")


def is_nccl_available() -> bool:
    """Whether the nccl backend can run here (CuPy and the backend module are installed)."""
    return _has_module("cupy") and _has_module(BACKENDS["nccl"][0])


def is_gloo_available() -> bool:
    """True: ``gloo`` runs on the zmq backend."""
    return True


def is_ucc_available() -> bool:
    return False


def is_backend_available(backend: str) -> bool:
    b = str(backend).lower()
    return {"gloo": True, "zmq": True, "mpi": is_mpi_available(), "nccl": is_nccl_available()}.get(b, False)


def is_torchelastic_launched() -> bool:
    return os.environ.get("TORCHELASTIC_RUN_ID") is not None


def get_default_backend_for_device(device) -> str:
    """The backend ``init_process_group`` would pick for tensors on ``device``, as PyTorch's function.

    ``"cuda"`` gives ``"nccl"``; ``"cpu"`` gives disttorch's default CPU backend, the one ``backend=None``
    picks: ``"mpi"`` in a process an MPI launcher started (with mpi4py installed), else ``"zmq"`` (PyTorch
    answers ``"gloo"``, which disttorch runs on ``zmq``).

    Args:
        device: a device type or device (``"cpu"``, ``"cuda:1"``, ``disttorch.device("cuda")``).

    Raises:
        ValueError: no backend is registered for that device type.
    """
    from .._device import device as _device

    kind = device.type if isinstance(device, _device) else _device(device).type
    if kind == "cpu":
        return _cpu_part(_choose_backend(None))
    if kind == "cuda":
        return "nccl"
    raise ValueError(f"Default backend not registered for device : {device}")


# ------------------------------------------------------------------------------------------------------------
# init / destroy
# ------------------------------------------------------------------------------------------------------------
def _cuda_nccl_usable() -> bool:
    """Whether CUDA tensors could use nccl in this process (CuPy with NCCL and a GPU; imports CuPy if installed)."""
    from .backends import nccl

    return nccl.usable()


def _cpu_backend(name: str, given) -> str:
    b = "zmq" if name == "gloo" else name
    if b not in ("zmq", "mpi"):
        raise ValueError(f"Invalid backend: '{given}': CPU tensors need 'gloo' (disttorch's 'zmq') or 'mpi', not "
                         f"'{name}'")
    return b


def _choose_backend(backend) -> str:
    """The backend name for ``backend=``: ``"zmq"``, ``"mpi"``, ``"nccl"``, or ``"cpu:<zmq|mpi>,cuda:nccl"`` for a
    group that sends each tensor to the backend of its device (``backends/_nccl_dispatch.py``)."""
    if backend is None or str(backend).lower() == "undefined":
        by_mpi = any(v in os.environ for v in _MPI_ENV)
        cpu = "mpi" if by_mpi and is_mpi_available() else "zmq"
        # as PyTorch: CPU tensors to the CPU backend and, where CUDA and NCCL work, CUDA tensors to nccl
        return f"cpu:{cpu},cuda:nccl" if _cuda_nccl_usable() else cpu
    b = str(backend).lower()
    if "," in b or ":" in b:  # "cpu:gloo,cuda:nccl"
        pairs = dict(p.strip().split(":", 1) for p in b.split(",") if ":" in p)
        unknown = set(pairs) - {"cpu", "cuda"}
        if unknown or not pairs:
            raise ValueError(f"Invalid backend: '{backend}': expected device:backend pairs for cpu and cuda, e.g. "
                             "'cpu:gloo,cuda:nccl'")
        cuda = pairs.get("cuda")
        if cuda is not None and cuda != "nccl":
            raise ValueError(f"Invalid backend: '{backend}': CUDA tensors need 'nccl' in disttorch, not '{cuda}'")
        if "cpu" not in pairs:
            return "nccl"
        cpu = _cpu_backend(pairs["cpu"], backend)
        return f"cpu:{cpu},cuda:nccl" if cuda else cpu
    if b == "gloo":
        return "zmq"
    if b not in BACKENDS:
        raise ValueError(f"Invalid backend: '{backend}'; disttorch has 'zmq' (alias 'gloo'), 'mpi' and 'nccl'")
    return b


def _cpu_part(name: str) -> str:
    """The CPU backend of a backend name (``"cpu:mpi,cuda:nccl"`` -> ``"mpi"``; ``"nccl"`` -> ``"nccl"``)."""
    return name.split(",", 1)[0].split(":", 1)[1] if "," in name else name


def _load_backend(name: str):
    if "," in name:  # cpu:X,cuda:nccl: the nccl part is loaded on the first CUDA collective
        from .backends._nccl_dispatch import DeviceDispatchGroup

        _load_backend(_cpu_part(name))
        return DeviceDispatchGroup
    if name == "nccl":
        from .backends import nccl

        nccl._load()  # raises now, naming what is missing (CuPy, NCCL, a driver or a GPU)
    try:
        return backend_class(name)
    except ImportError as e:
        if name == "nccl":
            raise RuntimeError("Distributed package doesn't have NCCL built in: disttorch's nccl backend needs CuPy "
                               "with NCCL and a CUDA GPU and is not available on this machine (" + str(e) +
                               "). Use backend='zmq' (or 'gloo') for CPU tensors.") from None
        if name == "mpi":
            raise RuntimeError("Distributed package doesn't have MPI built in: the mpi backend needs mpi4py (pip "
                               f"install 'disttorch[mpi]'); {e}. Use backend='zmq' (or 'gloo') instead.") from None
        raise


def _create_group(name: str, cls, store, rank: int, world_size: int, timeout: float, options: dict):
    """``cls.create(...)``; a device-dispatching group also gets its CPU backend's class."""
    options = dict(options)
    if "," in name:
        options["cpu_backend"] = _load_backend(_cpu_part(name))
    return cls.create(store, rank, world_size, timeout, options)


def _env_error(var: str) -> ValueError:
    return ValueError(f"Error initializing torch.distributed using env:// rendezvous: environment variable {var} "
                      "expected, but not set")


def _env_int(var: str, given: int) -> int:
    if given is not None and given >= 0:
        return int(given)
    raw = os.environ.get(var)
    if raw is None:
        raise _env_error(var)
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"Error initializing torch.distributed using env:// rendezvous: environment variable "
                         f"{var} must be an integer, got {raw!r}") from None


def _make_store(host: str, port: int, rank: int, world_size: int, timeout: float):
    from .store import TCPStore

    return TCPStore(host, port, world_size, is_master=rank == 0, timeout=timedelta(seconds=timeout))


def _rendezvous(init_method: str, rank: int, world_size: int, timeout: float) -> tuple:
    from urllib.parse import parse_qs, urlparse

    url = urlparse(init_method)
    query = {k: v[-1] for k, v in parse_qs(url.query).items()}
    if "rank" in query and rank < 0:
        rank = int(query["rank"])
    if "world_size" in query and world_size < 0:
        world_size = int(query["world_size"])
    if url.scheme == "env":
        rank = _env_int("RANK", rank)
        world_size = _env_int("WORLD_SIZE", world_size)
        addr = os.environ.get("MASTER_ADDR")
        if not addr:
            raise _env_error("MASTER_ADDR")
        port = _env_int("MASTER_PORT", -1)
    elif url.scheme == "tcp":
        if rank < 0:
            raise ValueError("Error initializing torch.distributed using tcp:// rendezvous: rank parameter missing")
        if world_size < 0:
            raise ValueError("Error initializing torch.distributed using tcp:// rendezvous: world_size parameter "
                             "missing")
        if not url.hostname or url.port is None:
            raise ValueError(f"Error initializing torch.distributed using tcp:// rendezvous: {init_method!r} needs "
                             "tcp://host:port")
        addr, port = url.hostname, url.port
    elif url.scheme == "file":
        raise ValueError(f"init_method {init_method!r}: file:// rendezvous is not supported by disttorch; use "
                         "env:// (MASTER_ADDR/MASTER_PORT) or tcp://host:port")
    else:
        raise ValueError(f"No rendezvous handler for {url.scheme}://")
    if not 0 <= rank < world_size:
        raise ValueError(f"Invalid rank {rank}: it must be in [0, {world_size}) for world_size {world_size}")
    return _make_store(addr, port, rank, world_size, timeout), rank, world_size


def _mpi_world() -> tuple:
    from mpi4py import MPI

    return MPI.COMM_WORLD.Get_rank(), MPI.COMM_WORLD.Get_size()


def _host_identity() -> str:
    """This host as seen by a loopback socket: the host name plus, on Linux, the boot and network namespace ids
    (containers on one machine may share a host name but not their loopback interface)."""
    import socket

    ident = socket.gethostname()
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            ident += "/" + f.read().strip()
        ident += f"/netns:{os.stat('/proc/self/ns/net').st_ino}"
    except OSError:
        pass
    return ident


def _mpi_store(rank: int, world_size: int, timeout: float):
    """A store for processes mpiexec started without MASTER_ADDR: rank 0 serves it, MPI tells the rest where.

    MPI is the job's own channel, so it also carries the job secret when ``DISTTORCH_JOB_SECRET`` is unset
    (rank 0 draws one). The store listens on loopback when every rank runs on this host, else on
    ``DISTTORCH_INTERFACE``; without it a multi-host job is refused rather than served on every interface.
    """
    import secrets

    from mpi4py import MPI

    from . import _wire
    from .store import TCPStore

    comm = MPI.COMM_WORLD
    # every rank takes part (a rank whose environment differs must not leave the others waiting in Bcast); rank 0
    # sends its DISTTORCH_JOB_SECRET, or a fresh one, and the ranks without the variable use it
    key = np.zeros(257, np.uint8)
    if rank == 0:
        mine = _wire.job_secret() if os.environ.get(_wire.SECRET_VAR) else secrets.token_bytes(32)
        mine = mine[:256]
        key[0] = len(mine)
        key[1:1 + len(mine)] = np.frombuffer(mine, np.uint8)
    comm.Bcast(key, root=0)
    if not os.environ.get(_wire.SECRET_VAR):
        _wire.use_job_secret(key[1:1 + int(key[0])].tobytes())
    width = 512
    mine = np.zeros(width, np.uint8)
    enc = _host_identity().encode()[:width]
    mine[:len(enc)] = np.frombuffer(enc, np.uint8)
    everyone = np.zeros((world_size, width), np.uint8)
    comm.Allgather(mine, everyone)
    hosts = {bytes(row).rstrip(b"\0").decode(errors="replace") for row in everyone}
    buf = np.zeros(1024, np.uint8)
    store = err = None
    if rank == 0:
        try:
            if len(hosts) == 1:
                host = "127.0.0.1"
            elif os.environ.get("DISTTORCH_INTERFACE"):
                host = os.environ["DISTTORCH_INTERFACE"]
            else:
                names = sorted({h.split("/", 1)[0] for h in hosts})
                raise RuntimeError(
                    f"init_process_group(backend='mpi'): the {world_size} ranks run on {len(hosts)} hosts "
                    f"({', '.join(names[:8])}) and neither MASTER_ADDR nor DISTTORCH_INTERFACE is set, so rank 0 "
                    "has no address to serve the rendezvous store on (it will not listen on every interface). "
                    "Set DISTTORCH_INTERFACE to each host's address on the network the ranks share (mpiexec -x "
                    "DISTTORCH_INTERFACE, or `disttorch launch --interface`), or MASTER_ADDR/MASTER_PORT.")
            store = TCPStore(host, 0, None, is_master=True, timeout=timedelta(seconds=timeout))
            enc = f"OK {host}:{store.port}".encode()
        except Exception as e:  # noqa: BLE001 - every rank must raise, not wait for a store that never comes
            err = e
            enc = f"ERR rank 0: {type(e).__name__}: {e}".encode()[:buf.size]
        buf[:len(enc)] = np.frombuffer(enc, np.uint8)
    comm.Bcast(buf, root=0)
    word, _, rest = bytes(buf).rstrip(b"\0").decode(errors="replace").partition(" ")
    if err is not None:
        raise err
    if word != "OK":
        raise RuntimeError(rest)
    if rank != 0:
        host, port = rest.rsplit(":", 1)
        store = TCPStore(host, int(port), None, is_master=False, timeout=timedelta(seconds=timeout))
    return store


def _debug_store(store, generation: int):
    """A second client of the rendezvous store for the watchdog, with a short timeout of its own."""
    from .store import PrefixStore, TCPStore

    base = store
    if isinstance(store, TCPStore):
        try:
            host, port = store._endpoint[len("tcp://"):].rsplit(":", 1)
            base = TCPStore(host, int(port), None, is_master=False, timeout=timedelta(seconds=10))
        except Exception:  # fall back to sharing the store (its clients are per thread)
            base = store
    return PrefixStore(f"disttorch/debug/{generation}/", base)


def init_process_group(backend: Optional[str] = None, init_method: Optional[str] = None,
                       timeout: Optional[timedelta] = None, world_size: int = -1, rank: int = -1, store=None,
                       group_name: str = "", pg_options=None, device_id=None) -> None:
    """Initialise the default process group, as ``torch.distributed.init_process_group``.

    Args:
        backend: ``"zmq"`` (alias ``"gloo"``), ``"mpi"``, ``"nccl"``, or ``"cpu:gloo,cuda:nccl"`` (each tensor
            goes to the backend of its device; the nccl part starts on the first CUDA collective). None picks
            mpi when an MPI launcher started this process and mpi4py is installed, else zmq, for CPU tensors,
            plus nccl for CUDA tensors where CuPy with NCCL and a GPU are usable.
        init_method: ``"env://"`` (default: RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT) or ``"tcp://host:port"``.
        timeout: collective timeout (default ``DISTTORCH_COLLECTIVE_TIMEOUT`` seconds, else 300 s).
        world_size, rank: override the environment (required with ``tcp://`` and ``store``).
        store: an already connected ``Store`` shared by all ranks (instead of ``init_method``).
        pg_options: a dict of backend options (e.g. ``{"interface": "10.0.0.2"}``).

    Example:
        >>> dist.init_process_group()          # under `disttorch launch`
        >>> dist.all_reduce(t)
    """
    if _W.default is not None:
        raise ValueError("trying to initialize the default process group twice!")
    if store is not None:
        if init_method is not None:
            raise ValueError("Cannot specify both init_method and store.")
        if world_size <= 0:
            raise ValueError("world_size must be positive if using store")
        if rank < 0:
            raise ValueError("rank must be non-negative if using store")
    timeout_s = runner.collective_timeout(timeout)
    name = _choose_backend(backend)
    cls = _load_backend(name)
    own = None
    started_by_mpi = any(v in os.environ for v in _MPI_ENV) and is_mpi_available()
    # mpiexec decides ranks for mpi, and for nccl when it started this process (NCCL's id then goes over MPI)
    if _cpu_part(name) == "mpi" or (name == "nccl" and started_by_mpi and store is None and init_method is None):
        mrank, msize = _mpi_world()
        if (rank >= 0 and rank != mrank) or (world_size > 0 and world_size != msize):
            raise ValueError(f"init_process_group(backend={name!r}): rank={rank}, world_size={world_size} disagree "
                             f"with MPI's rank {mrank} of {msize}")
        rank, world_size = mrank, msize
        if store is None and init_method is None and not (os.environ.get("MASTER_ADDR")
                                                          and os.environ.get("MASTER_PORT")):
            store = own = _mpi_store(rank, world_size, timeout_s)
    if store is None:
        store, rank, world_size = _rendezvous(init_method or "env://", rank, world_size, timeout_s)
        own = store
    from .store import PrefixStore

    _W.generation += 1
    gname = group_name or "0"
    options = dict(pg_options) if isinstance(pg_options, dict) else {}
    try:
        pg = _create_group(name, cls, PrefixStore(f"pg/{_W.generation}/{gname}/", store), rank, world_size,
                           timeout_s, options)
    except BaseException:
        if own is not None and hasattr(own, "close"):
            own.close()
        raise
    g = ProcessGroup(pg, name, gname, list(range(world_size)), timeout_s)
    _W.default, _W.groups, _W.count, _W.aux = g, {gname: g}, 0, {}
    _W.store, _W.own_store, _W.rank = store, own, rank
    runner.configure(_debug_store(store, _W.generation) if world_size > 1 else None, rank, world_size)
    if os.environ.get("DISTTORCH_TIMELINE_DIR"):  # disttorch launch --timeline: this rank records its events
        from ..profiler import _timeline

        _timeline.start_from_env(rank)


def destroy_process_group(group=None) -> None:
    """Shut down ``group`` (None: every group and the default one, after which ``init_process_group`` may run
    again)."""
    if group is None or group is _W.default:
        if _W.default is None:
            raise not_initialized()
        runner.shutdown()
        pgs = [g._pg for g in _W.groups.values() if g is not _W.default] + list(_W.aux.values())
        pgs.append(_W.default._pg)
        for pg in pgs:
            pg.shutdown()
        own = _W.own_store
        _W.default, _W.groups, _W.aux, _W.store, _W.own_store = None, {}, {}, None, None
        if own is not None and hasattr(own, "close"):
            own.close()
        return
    g = resolve_group(group, "destroy_process_group")
    if g is None:
        return
    g._pg.shutdown()
    _W.groups.pop(g.group_name, None)


# ------------------------------------------------------------------------------------------------------------
# queries
# ------------------------------------------------------------------------------------------------------------
def get_rank(group=None) -> int:
    """This process's rank in ``group`` (default: the world); -1 when it is not a member."""
    g = resolve_group(group, "")
    return -1 if g is None else g._pg.rank


def get_world_size(group=None) -> int:
    """Number of ranks in ``group`` (default: the world); -1 when this process is not a member."""
    g = resolve_group(group, "")
    return -1 if g is None else g._pg.size


def get_backend(group=None) -> str:
    """The backend name of ``group``: ``"zmq"``, ``"mpi"`` or ``"nccl"``."""
    g = resolve_group(group, "")
    if g is None:
        raise ValueError("Invalid process group specified")
    return Backend(g._backend)


def get_group_rank(group, global_rank: int) -> int:
    """The rank within ``group`` of global rank ``global_rank``."""
    g = resolve_group(group, "")
    if g is None:
        raise ValueError("Invalid process group specified")
    r = g._rank_of.get(global_rank)
    if r is None:
        raise ValueError(f"Global rank {global_rank} is not part of group {g.group_name} (ranks {g._ranks})")
    return r


def get_global_rank(group, group_rank: int) -> int:
    """The global rank of rank ``group_rank`` of ``group``."""
    g = resolve_group(group, "")
    if g is None:
        raise ValueError("Invalid process group specified")
    if not 0 <= group_rank < len(g._ranks):
        raise ValueError(f"Group rank {group_rank} is not part of group {g.group_name} (size {len(g._ranks)})")
    return g._ranks[group_rank]


def get_process_group_ranks(group) -> list:
    """The global ranks of ``group``'s members."""
    g = resolve_group(group, "")
    if g is None:
        raise ValueError("Invalid process group specified")
    return list(g._ranks)


def new_group(ranks=None, timeout: Optional[timedelta] = None, backend: Optional[str] = None, pg_options=None,
              use_local_synchronization: bool = False, group_desc: Optional[str] = None, device_id=None):
    """Create a group of the given global ranks (all ranks must call it, in the same order).

    Returns the group on members and ``GroupMember.NON_GROUP_MEMBER`` on the other ranks.

    Example:
        >>> evens = dist.new_group([0, 2])
        >>> if dist.get_rank() in (0, 2):
        ...     dist.all_reduce(t, group=evens)
    """
    world = _W.default
    if world is None:
        raise not_initialized()
    n = world.size()
    members = sorted(set(int(r) for r in ranks)) if ranks is not None and len(ranks) else list(range(n))
    if ranks is not None and len(ranks) != len(members):
        raise ValueError(f"ranks list must not contain duplicate entries, got {list(ranks)}")
    for r in members:
        if not 0 <= r < n:
            raise ValueError(f"new_group: rank {r} is out of range: the new group's ranks must be within the "
                             f"world_size ({n}) set by init_process_group")
    name = _choose_backend(backend) if backend is not None else world._backend
    base = world._pg
    if name != world._backend:
        base = _W.aux.get(name)
        if base is None:
            from .store import PrefixStore

            store = PrefixStore(f"pg/{_W.generation}/aux-{name}/", _W.store)
            base = _W.aux[name] = _create_group(name, _load_backend(name), store, world.rank(), n, world._timeout, {})
    _W.count += 1
    gname = str(_W.count)
    sub = base.new_subgroup(members)
    if sub is None:
        return GroupMember.NON_GROUP_MEMBER
    g = ProcessGroup(sub, name, gname, members, seconds(timeout) if timeout is not None else world._timeout)
    if timeout is not None and hasattr(sub, "timeout"):  # the backend's own deadlines (a call it runs inline)
        sub.timeout = g._timeout
    _W.groups[gname] = g
    return g
