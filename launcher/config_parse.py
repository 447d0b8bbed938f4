"""Parsers of launch settings: one per flag value (shared by flags, environment variables and the cluster YAML),
host lists (``-H``), MPI-style hostfiles, and the cluster YAML file itself (:func:`load_cluster_config`).

Each parser takes ``(value, where)`` and raises :class:`ConfigError` naming ``where`` (flag, variable or YAML
field) and the bad value.
"""
from __future__ import annotations

import os
import shlex
import socket
from typing import Any, Callable, Mapping

from disttorch.launcher.config_types import BACKENDS, MODES, SECURE, ConfigError, HostSpec

# ----------------------------------------------------------------------------------------------- parsers

def _int(name: str, lo: int = 0, hi: int | None = None) -> Callable[[Any, str], int]:
    def parse(v: Any, where: str) -> int:
        if isinstance(v, bool) or not isinstance(v, (int, str)):
            raise ConfigError(f"{where}: expected an integer, got {v!r}")
        try:
            iv = int(v)
        except ValueError:
            raise ConfigError(f"{where}: expected an integer, got {v!r}") from None
        if iv < lo or (hi is not None and iv > hi):
            rng = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
            raise ConfigError(f"{where}: must be {rng}, got {iv}")
        return iv
    return parse


def _float(v: Any, where: str) -> float:
    try:
        f = float(v)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: expected a number of seconds, got {v!r}") from None
    if f < 0:
        raise ConfigError(f"{where}: must be >= 0, got {f}")
    return f


def _str(v: Any, where: str) -> str:
    if not isinstance(v, (str, int)) or isinstance(v, bool) or v == "":
        raise ConfigError(f"{where}: expected a non-empty string, got {v!r}")
    return str(v)


def _bool(v: Any, where: str) -> bool:
    if isinstance(v, bool):
        return v
    s = str(v).strip().lower()
    if s in ("1", "true", "yes", "on"):
        return True
    if s in ("0", "false", "no", "off", ""):
        return False
    raise ConfigError(f"{where}: expected a boolean (1/0, true/false), got {v!r}")


def _argv(v: Any, where: str) -> tuple[str, ...]:
    """A command line given as one string (split like a shell) or as a list of words."""
    if isinstance(v, str):
        try:
            return tuple(shlex.split(v))
        except ValueError as e:
            raise ConfigError(f"{where}: cannot split {v!r}: {e}") from None
    if isinstance(v, (list, tuple)) and all(isinstance(x, (str, int)) for x in v):
        return tuple(str(x) for x in v)
    raise ConfigError(f"{where}: expected a string or a list of strings, got {v!r}")


def _nproc(v: Any, where: str) -> int:
    s = str(v).strip().lower()
    if s in ("auto", "cpu"):
        return os.cpu_count() or 1
    if s == "gpu":  # one worker per visible GPU; CUDA_VISIBLE_DEVICES is passed on unchanged, as by torchrun
        from .gpus import visible_gpus

        n, how = visible_gpus()
        if n == 0:
            raise ConfigError(f"{where}: 'gpu' asked for one worker per GPU, but no GPU is visible ({how}); give a "
                              "number of workers instead, or run on a machine with an NVIDIA GPU")
        return n
    return _int("nproc_per_node", 1)(v, where)


def _nnodes(v: Any, where: str) -> int:
    s = str(v).strip()
    if ":" in s:
        lo, _, hi = s.partition(":")
        if lo.strip() != hi.strip():
            raise ConfigError(f"{where}: elastic ranges (MIN:MAX = {s}) are not supported; give one number of nodes")
        s = lo
    return _int("nnodes", 1)(s, where)


def _backend(v: Any, where: str) -> str:
    s = str(v).strip().lower()
    if s not in BACKENDS:
        raise ConfigError(f"{where}: expected one of {', '.join(BACKENDS)}, got {v!r}")
    return s


def _choice(options: tuple[str, ...]) -> Callable[[Any, str], str]:
    def parse(v: Any, where: str) -> str:
        s = str(v).strip().lower()
        if s not in options:
            raise ConfigError(f"{where}: expected one of {', '.join(options)}, got {v!r}")
        return s
    return parse


def parse_ps_section(v: Any, where: str, base: str) -> dict[str, Any]:
    """The cluster YAML's ``ps:`` section: ``servers`` (where servers run: ``host:count`` strings or
    ``{host, count}`` mappings), ``num_servers``, ``snapshot_dir`` (relative to the YAML) and
    ``heartbeat_timeout`` (seconds)."""
    known = ("servers", "num_servers", "snapshot_dir", "heartbeat_timeout")
    if not isinstance(v, dict):
        raise ConfigError(f"{where}: expected a mapping with {', '.join(known)}, got {v!r}")
    bad = sorted(set(v) - set(known))
    if bad:
        raise ConfigError(f"{where}: unknown field(s) {bad} (known: {', '.join(known)})")
    out: dict[str, Any] = {}
    servers = v.get("servers")
    if servers is not None:
        if not isinstance(servers, (list, tuple)) or not servers:
            raise ConfigError(f"{where}.servers: expected a list of host:count or {{host, count}}, got {servers!r}")
        placed = []
        for i, item in enumerate(servers):
            w = f"{where}.servers[{i}]"
            if isinstance(item, str):
                host, sep, count = item.strip().rpartition(":") if ":" in item else (item.strip(), "", "")
                n = _int("count", 1)(count, f"{w}.count") if sep else 1
            elif isinstance(item, dict):
                unknown = sorted(set(item) - {"host", "count"})
                if unknown:
                    raise ConfigError(f"{w}: unknown field(s) {unknown} (known: host, count)")
                if "host" not in item:
                    raise ConfigError(f"{w}.host: missing (every server entry needs a host name or address)")
                host = _str(item["host"], f"{w}.host")
                n = _int("count", 1)(item.get("count", 1), f"{w}.count")
            else:
                raise ConfigError(f"{w}: expected host:count or a mapping with host/count, got {item!r}")
            if not host:
                raise ConfigError(f"{w}: expected host or host:count, got {item!r}")
            placed.append((host, n))
        out["ps_servers"] = tuple(placed)
    if v.get("num_servers") is not None:
        out["num_servers"] = _int("num_servers", 1)(v["num_servers"], f"{where}.num_servers")
    if v.get("snapshot_dir") is not None:
        out["ps_snapshot_dir"] = os.path.join(base, os.path.expanduser(_str(v["snapshot_dir"], f"{where}.snapshot_dir")))
    if v.get("heartbeat_timeout") is not None:
        t = _float(v["heartbeat_timeout"], f"{where}.heartbeat_timeout")
        if t <= 0:
            raise ConfigError(f"{where}.heartbeat_timeout: must be > 0 seconds, got {t}")
        out["ps_heartbeat_timeout"] = t
    return out


def parse_std(v: Any, where: str) -> Mapping[int, int] | int:
    """torchrun's --redirects/--tee value: ``3`` for every local rank, or ``0:1,1:2`` per local rank
    (0 none, 1 stdout, 2 stderr, 3 both)."""
    s = str(v).strip()
    try:
        if ":" not in s:
            n = int(s)
            if n not in (0, 1, 2, 3):
                raise ValueError
            return n
        out = {}
        for part in s.split(","):
            r, _, n = part.partition(":")
            out[int(r)] = int(n)
            if out[int(r)] not in (0, 1, 2, 3) or int(r) < 0:
                raise ValueError
        return out
    except ValueError:
        raise ConfigError(f"{where}: expected 0-3 (0 none, 1 stdout, 2 stderr, 3 both) or LOCAL_RANK:N,..., "
                          f"got {v!r}") from None


def std_for(spec: Mapping[int, int] | int, local_rank: int) -> int:
    """The Std bits that a parsed --redirects/--tee value gives ``local_rank``."""
    return spec if isinstance(spec, int) else spec.get(local_rank, 0)


def _ranks(v: Any, where: str) -> tuple[int, ...]:
    items = v if isinstance(v, (list, tuple)) else str(v).split(",")
    try:
        out = tuple(int(x) for x in items if str(x).strip() != "")
    except ValueError:
        raise ConfigError(f"{where}: expected comma-separated ranks such as 0,1, got {v!r}") from None
    if not out or min(out) < 0:
        raise ConfigError(f"{where}: expected comma-separated ranks such as 0,1, got {v!r}")
    return out


def parse_hosts(v: Any, where: str) -> tuple[HostSpec, ...]:
    """``host1:2,host2:2`` (horovodrun's -H) or a YAML list of strings / mappings."""
    items = v.split(",") if isinstance(v, str) else v
    if not isinstance(items, (list, tuple)) or not items:
        raise ConfigError(f"{where}: expected host:slots,... or a list of hosts, got {v!r}")
    out = []
    for i, item in enumerate(items):
        w = f"{where}[{i}]"
        if isinstance(item, str):
            item = item.strip()
            host, sep, slots = item.rpartition(":") if ":" in item else (item, "", "")
            if not host:
                raise ConfigError(f"{w}: expected host or host:slots, got {item!r}")
            out.append(HostSpec(host, _int("slots", 1)(slots, f"{w}.slots") if sep else None))
        elif isinstance(item, dict):
            unknown = set(item) - {"host", "slots", "ssh_port", "user", "interface"}
            if unknown:
                raise ConfigError(f"{w}: unknown field(s) {sorted(unknown)} (known: host, slots, ssh_port, user, "
                                  "interface)")
            if "host" not in item:
                raise ConfigError(f"{w}.host: missing (every host entry needs a host name or address)")
            out.append(HostSpec(
                host=_str(item["host"], f"{w}.host"),
                slots=_int("slots", 1)(item["slots"], f"{w}.slots") if item.get("slots") is not None else None,
                ssh_port=_int("ssh_port", 1, 65535)(item["ssh_port"], f"{w}.ssh_port") if item.get("ssh_port") else None,
                user=_str(item["user"], f"{w}.user") if item.get("user") else None,
                interface=_str(item["interface"], f"{w}.interface") if item.get("interface") else None))
        else:
            raise ConfigError(f"{w}: expected host:slots or a mapping with host/slots, got {item!r}")
    return tuple(out)


def read_hostfile(path: str, where: str) -> tuple[HostSpec, ...]:
    """An MPI-style hostfile: ``host slots=N`` (or ``host:N``, or ``host``) per line, ``#`` comments."""
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except OSError as e:
        raise ConfigError(f"{where}: cannot read hostfile {path!r}: {e.strerror}") from None
    hosts = []
    for n, line in enumerate(lines, 1):
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        w = f"{path}:{n}"
        slots = None
        for word in words[1:]:
            key, _, val = word.partition("=")
            if key == "slots":
                slots = _int("slots", 1)(val, f"{w}: slots")
            elif key not in ("max_slots", "max-slots"):
                raise ConfigError(f"{w}: unknown hostfile attribute {word!r} (expected slots=N)")
        host = words[0]
        if ":" in host and slots is None:
            host, _, s = host.rpartition(":")
            slots = _int("slots", 1)(s, f"{w}: slots")
        hosts.append(HostSpec(host, slots))
    if not hosts:
        raise ConfigError(f"{where}: hostfile {path!r} lists no hosts")
    return tuple(hosts)


def is_local_host(name: str) -> bool:
    """Hosts the launcher starts workers on directly (no ssh). Other loopback aliases such as 127.0.0.2
    count as remote on purpose: they stand in for other machines in tests."""
    if name in ("localhost", "127.0.0.1", "::1", "local"):
        return True
    try:
        return name in (socket.gethostname(), socket.getfqdn())
    except OSError:
        return False


# -------------------------------------------------------------------------------------- the cluster YAML

# field -> (flag spelling for messages, parser). The env variables are DISTTORCH_<FIELD> and PET_<FIELD>.
_FLAGS: dict[str, tuple[str, Callable[[Any, str], Any]]] = {
    "nproc_per_node": ("--nproc-per-node", _nproc),
    "nnodes": ("--nnodes", _nnodes),
    "node_rank": ("--node-rank", _int("node_rank", 0)),
    "master_addr": ("--master-addr", _str),
    "master_port": ("--master-port", _int("master_port", 1, 65535)),
    "max_restarts": ("--max-restarts", _int("max_restarts", 0)),
    "log_dir": ("--log-dir", _str),
    "timeline": ("--timeline", _str),
    "redirects": ("--redirects", parse_std),
    "tee": ("--tee", parse_std),
    "local_ranks_filter": ("--local-ranks-filter", _ranks),
    "standalone": ("--standalone", _bool),
    "module": ("--module", _bool),
    "no_python": ("--no-python", _bool),
    "hosts": ("-H/--hosts", parse_hosts),
    "hostfile": ("--hostfile", _str),
    "backend": ("--backend", _backend),
    "mpi_args": ("--mpi-args", _argv),
    "dry_run": ("--dry-run", _bool),
    "interface": ("--interface", _str),
    "grace_period": ("--grace-period", _float),
    "mode": ("--mode", _choice(MODES)),
    "num_servers": ("--num-servers", _int("num_servers", 1)),
    "secure": ("--secure", _choice(SECURE)),
}

# YAML-only fields (besides the flag fields above, which YAML may also set).
_YAML_ONLY = {
    "env": None, "python": _str, "workdir": _str, "ssh": None, "mpiexec": _str, "ps": None,
    "forward_env": lambda v, w: _argv(v, w),
}
_SSH_FIELDS = {
    "command": _argv, "user": _str, "port": _int("port", 1, 65535), "identity": _str,
    "options": lambda v, w: _argv(v, w) if isinstance(v, (list, tuple)) else (_str(v, w),),
    "remote_prefix": _argv,
}
_NOT_IN_YAML = {"dry_run", "standalone"}


def load_cluster_config(path: str) -> dict[str, Any]:
    """Read and validate a cluster YAML; returns LaunchConfig field values (paths made absolute)."""
    import yaml  # only when a cluster config is used: keeps `disttorch launch` start-up cheap

    try:
        with open(path) as f:
            data = yaml.safe_load(f)
    except OSError as e:
        raise ConfigError(f"--cluster-config: cannot read {path!r}: {e.strerror}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of fields at the top level, got {type(data).__name__}")
    known = (set(_FLAGS) - _NOT_IN_YAML) | set(_YAML_ONLY)
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"{path}: unknown field(s) {unknown}; known fields: {', '.join(sorted(known))}")
    base = os.path.dirname(os.path.abspath(path))
    out: dict[str, Any] = {}
    for key, val in data.items():
        where = f"{path}: {key}"
        if val is None:
            continue
        if key == "env":
            if not isinstance(val, dict) or not all(isinstance(k, str) and k for k in val):
                raise ConfigError(f"{where}: expected a mapping NAME: value, got {val!r}")
            bad = [k for k, v in val.items() if isinstance(v, (dict, list))]
            if bad:
                raise ConfigError(f"{where}.{bad[0]}: expected a string or number, got {val[bad[0]]!r}")
            out["env"] = {k: ("1" if v is True else "0" if v is False else str(v)) for k, v in val.items()}
        elif key == "ssh":
            if not isinstance(val, dict):
                raise ConfigError(f"{where}: expected a mapping with {', '.join(_SSH_FIELDS)}, got {val!r}")
            bad = sorted(set(val) - set(_SSH_FIELDS))
            if bad:
                raise ConfigError(f"{where}: unknown field(s) {bad} (known: {', '.join(_SSH_FIELDS)})")
            ssh = {k: _SSH_FIELDS[k](v, f"{where}.{k}") for k, v in val.items() if v is not None}
            if "identity" in ssh:
                ssh["identity"] = os.path.join(base, os.path.expanduser(ssh["identity"]))
            out["ssh"] = ssh
        elif key == "ps":
            out["ps"] = parse_ps_section(val, where, base)
        elif key in _YAML_ONLY:
            out[key] = _YAML_ONLY[key](val, where)
        else:
            out[key] = _FLAGS[key][1](val, where)
    if "hostfile" in out:
        out["hostfile"] = os.path.join(base, out["hostfile"])
    if "hosts" in out and "hostfile" in out:
        raise ConfigError(f"{path}: hosts and hostfile: give one of them, not both")
    return out
