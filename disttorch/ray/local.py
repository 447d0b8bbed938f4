"""Which Ray a call runs on: the one already connected, an address, a running local cluster, or an embedded one.

With no address, no RAY_ADDRESS and no Ray running on this machine, :func:`ray_session` starts a local Ray for
the call and stops it afterwards. Its dashboard (needed only for job submission) binds 127.0.0.1. Ray's token
authentication is Ray's own: a new local cluster enables it unless ``RAY_AUTH_MODE`` says otherwise, and a client
reads the token from ``RAY_AUTH_TOKEN``, ``RAY_AUTH_TOKEN_PATH`` or ``~/.ray/auth_token``; nothing here turns it off.
"""
from __future__ import annotations

import contextlib
import os
from typing import Iterator, Optional


def _local_cluster_running() -> bool:
    try:
        from ray._private import services
    except ImportError:  # pragma: no cover - a Ray without the helper: start our own
        return False
    try:
        return bool(services.find_gcs_addresses())
    except Exception:  # ps not available: treat as none running
        return False


@contextlib.contextmanager
def ray_session(address: Optional[str] = None, *, num_cpus: Optional[int] = None, num_gpus: Optional[int] = None,
                dashboard: bool = False) -> Iterator[str]:
    """Connect to Ray for the duration of a ``with`` block.

    Args:
        address: a Ray address (``ray://...``, ``host:port`` or ``auto``); default ``RAY_ADDRESS``, else a Ray
            already running on this machine, else an embedded local Ray started here.
        num_cpus, num_gpus: resources of an embedded Ray (ignored when connecting to a cluster).
        dashboard: start the embedded Ray's dashboard (on 127.0.0.1), which job submission needs.

    Yields:
        How the session was made: ``"connected"`` (already initialised; left running), ``"cluster"`` or
        ``"embedded"`` (both shut down on exit).
    """
    import ray

    if ray.is_initialized():
        yield "connected"
        return
    target = address or os.environ.get("RAY_ADDRESS") or ("auto" if _local_cluster_running() else None)
    if target:
        ray.init(address=target, log_to_driver=True)
        kind = "cluster"
    else:
        # address="local": a fresh Ray even when a stale /tmp/ray/ray_current_cluster names a dead head.
        ray.init(address="local", num_cpus=num_cpus, num_gpus=num_gpus, include_dashboard=dashboard,
                 dashboard_host="127.0.0.1", log_to_driver=True)
        kind = "embedded"
    try:
        yield kind
    finally:
        ray.shutdown()
