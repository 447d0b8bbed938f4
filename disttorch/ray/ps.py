"""The parameter-server job on Ray: the scheduler and the servers as Ray actors, the workers as Ray Train workers.

One job is, as under ``disttorch launch --mode ps``: a scheduler, S servers and W workers. The scheduler and each
server are one Ray actor each that runs the library's main loop (``disttorch.distributed.ps.scheduler.main`` /
``...server.main``, what ``python -m`` runs) in the actor's own process, with the launcher's environment contract
(DISTTORCH_PS_ROLE, DISTTORCH_PS_SCHEDULER, DISTTORCH_PS_NUM_SERVERS, DISTTORCH_PS_NUM_WORKERS,
DISTTORCH_PS_SERVER_ID, DISTTORCH_PS_SNAPSHOT_DIR, DISTTORCH_JOB_SECRET, DISTTORCH_INTERFACE when the cluster
has several nodes). The workers are a :class:`TorchTrainer` with ``DisttorchConfig(init_group=False)``: each gets
the ``disttorch launch`` variables from the backend and the same DISTTORCH_PS_* contract with
DISTTORCH_PS_ROLE=worker, so an unchanged ps script works.

The scheduler is pinned to the driver's node and binds its address there (127.0.0.1 when the cluster is this one
node). A job secret is made per job and reaches the actors only as their environment (never a command line).
The scheduler and the servers end by themselves once every worker has left (``ps.shutdown()``); they are
killed when a worker fails, and a scheduler or server that fails kills the workers, so the job fails.
"""
from __future__ import annotations

import logging
import os
import secrets
import shutil
import socket
import tempfile
import threading
from typing import Any, Callable, Optional

import ray

_ROLE_PREFIX_FORMAT = "[{name}] %(message)s"


@ray.remote(num_cpus=0, max_restarts=0)
class ParameterServerRole:
    """One library process of a ps job (the scheduler or server N) living in a Ray actor.

    The library reads its configuration from the environment, as under the launcher; the actor is its own
    process, so setting ``os.environ`` here gives the contract to this role only.
    """

    def __init__(self, role: str, env: dict) -> None:
        self.role = role
        self.name = "scheduler" if role == "scheduler" else f"server {env.get('DISTTORCH_PS_SERVER_ID', '0')}"
        os.environ.update(env)
        if os.environ.pop("_DISTTORCH_PS_BIND_NODE_ADDRESS", None):  # several nodes: serve on this node's address
            os.environ["DISTTORCH_INTERFACE"] = ray.util.get_node_ip_address()
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter(_ROLE_PREFIX_FORMAT.format(name=self.name)))
        root = logging.getLogger()
        root.handlers[:] = [handler]  # the library's basicConfig then keeps this prefixed handler
        root.setLevel(logging.INFO)

    def serve(self) -> int:
        """Run the role's main loop until the job ends; return its exit status (raises what it raises)."""
        if self.role == "scheduler":
            from disttorch.distributed.ps import scheduler as module
        else:
            from disttorch.distributed.ps import server as module
        snap = os.environ.get("DISTTORCH_PS_SNAPSHOT_DIR")
        if self.role == "server" and snap:
            os.makedirs(snap, mode=0o700, exist_ok=True)  # private: snapshots hold the model
        try:
            return int(module.main() or 0)
        finally:
            if self.role == "server" and snap and os.environ.get("_DISTTORCH_PS_REMOVE_SNAPSHOTS"):
                _remove_snapshot(snap, int(os.environ.get("DISTTORCH_PS_SERVER_ID", "0")))


def _remove_snapshot(directory: str, server_id: int) -> None:
    """Remove this server's files from the job's own snapshot directory, then the directory once it is empty.

    Ray restarts no server of a ps job, so nothing would read them; the directory is made per job, never reused.
    """
    mine = f"ps-server{server_id}."  # the snapshot, its port file and their temporary files
    try:
        names = os.listdir(directory)
    except OSError:
        return
    for name in names:
        if name.startswith(mine):
            try:
                os.unlink(os.path.join(directory, name))
            except OSError:
                pass
    try:
        os.rmdir(directory)  # the last server out removes it
    except OSError:
        pass


def _free_port(addr: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((addr, 0))
        return s.getsockname()[1]


def _scheduler_address() -> tuple:
    """(address the scheduler binds, whether the cluster has several nodes): loopback on a one-node cluster."""
    alive = [n for n in ray.nodes() if n.get("Alive")]
    multi = len(alive) > 1
    return (ray.util.get_node_ip_address() if multi else "127.0.0.1"), multi


def ps_environment(scheduler: str, num_servers: int, num_workers: int, secret: str, snapshot_dir: str,
                   heartbeat_timeout: Optional[float] = None, secure: bool = False) -> dict:
    """The DISTTORCH_PS_* variables every process of the job shares (as ``launcher/ps.py``'s ``common_env``).

    Args:
        scheduler: ``host:port`` the scheduler binds and everyone connects to.
        num_servers, num_workers: S and W.
        secret: the job secret (hex).
        snapshot_dir: where servers snapshot their shards.
        heartbeat_timeout: seconds without a heartbeat before a worker is declared dead (None: off).
        secure: serve over ZeroMQ CURVE (keys derived from the secret).

    Returns:
        The environment, without DISTTORCH_PS_ROLE and DISTTORCH_PS_SERVER_ID.
    """
    env = {"DISTTORCH_PS_SCHEDULER": scheduler, "DISTTORCH_PS_NUM_SERVERS": str(num_servers),
           "DISTTORCH_PS_NUM_WORKERS": str(num_workers), "DISTTORCH_PS_SNAPSHOT_DIR": snapshot_dir,
           "DISTTORCH_JOB_SECRET": secret}
    if heartbeat_timeout is not None:
        env["DISTTORCH_PS_HEARTBEAT_TIMEOUT"] = f"{heartbeat_timeout:g}"
    if secure:
        env["DISTTORCH_PS_SECURE"] = "curve"
    return env


def _ps_worker_loop(config: dict) -> Any:
    """A Ray Train worker of a ps job: take the ps contract, say where to kill this worker, run the inner loop."""
    os.environ.update(config["ps_env"])  # replaces the backend's per-start secret with the job's
    os.environ["DISTTORCH_PS_ROLE"] = "worker"
    ray.get(config["members"].put.remote(int(os.environ["RANK"]), ray.get_runtime_context().current_actor))
    return config["inner"](config["inner_config"])


class RoleError(RuntimeError):
    """The scheduler or a server of a ps job failed (its message names the role and carries the remote error)."""


def run_ps_job(loop: Callable[[dict], Any], loop_config: dict, *, num_workers: int, num_servers: int = 1,
               use_gpu: bool = False, backend: Optional[str] = None, run_config=None,
               resources_per_worker: Optional[dict] = None, heartbeat_timeout: Optional[float] = None,
               secure: bool = False, grace_period_s: float = 30.0, role_env: Optional[dict] = None):
    """Run one parameter-server job on the connected Ray: scheduler and servers as actors, ``loop`` on the workers.

    Args:
        loop: the Ray Train loop of each worker, called with ``loop_config`` after the ps environment is set.
        loop_config: its argument.
        num_workers, num_servers: W and S.
        use_gpu: one GPU per worker.
        backend: the workers' disttorch backend name for their own ``init_process_group()`` (zmq/nccl).
        run_config: a ``ray.train.RunConfig`` for the workers' trainer.
        resources_per_worker: Ray resources per worker.
        heartbeat_timeout: DISTTORCH_PS_HEARTBEAT_TIMEOUT (None: the library's default, off).
        secure: DISTTORCH_PS_SECURE=curve.
        grace_period_s: how long the scheduler and servers get to exit after the workers finished.
        role_env: more environment for the scheduler and the servers (e.g. DISTTORCH_PS_RULES, the modules that
            register custom update rules, or DISTTORCH_PS_SNAPSHOT_STEPS); the job's contract wins over it.

    Returns:
        The workers' ``ray.train.Result``.

    Raises:
        ray.train.TrainingFailedError: a worker failed (WorkerGroupError names its rank).
        RoleError: the scheduler or a server failed, or did not end within ``grace_period_s``.
        ValueError: a count is not positive.
        RuntimeError: ``secure`` and this pyzmq has no CURVE support.
    """
    import ray.train

    from .backend import DisttorchConfig
    from .runner import _make_collector
    from .trainer import TorchTrainer

    if num_workers < 1 or num_servers < 1:
        raise ValueError(f"ps job: num_workers={num_workers} and num_servers={num_servers} must be at least 1")
    if secure:
        from disttorch.launcher.ps import check_curve

        check_curve()  # fail here, before any actor starts, when this pyzmq has no CURVE
    addr, multi = _scheduler_address()
    secret = secrets.token_hex(16)
    job_tag = secrets.token_hex(6)
    snap = os.path.join(tempfile.gettempdir(), f"disttorch_ps_ray_{job_tag}")
    env = ps_environment(f"{addr}:{_free_port(addr)}", num_servers, num_workers, secret, snap,
                         heartbeat_timeout, secure)
    here = ray.get_runtime_context().get_node_id()
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    extra = {"_DISTTORCH_PS_REMOVE_SNAPSHOTS": "1", **({"_DISTTORCH_PS_BIND_NODE_ADDRESS": "1"} if multi else {})}
    base = {str(k): str(v) for k, v in (role_env or {}).items()}
    roles = [("scheduler", ParameterServerRole.options(
        scheduling_strategy=NodeAffinitySchedulingStrategy(here, soft=False)).remote(
        "scheduler", {**base, **env, "DISTTORCH_PS_ROLE": "scheduler"}))]
    for sid in range(num_servers):
        roles.append((f"server {sid}", ParameterServerRole.remote(
            "server", {**base, **env, **extra, "DISTTORCH_PS_ROLE": "server", "DISTTORCH_PS_SERVER_ID": str(sid)})))
    members = _make_collector()
    refs = {actor.serve.remote(): name for name, actor in roles}
    outcome: dict = {}

    def fit() -> None:
        trainer = TorchTrainer(
            _ps_worker_loop,
            train_loop_config={"ps_env": env, "members": members, "inner": loop, "inner_config": loop_config},
            backend_config=DisttorchConfig(backend=backend, init_group=False),
            scaling_config=ray.train.ScalingConfig(num_workers=num_workers, use_gpu=use_gpu,
                                                   resources_per_worker=resources_per_worker),
            run_config=run_config)
        try:
            outcome["result"] = trainer.fit()
        except BaseException as e:  # handed to the caller's thread
            outcome["error"] = e

    trainer_thread = threading.Thread(target=fit, name="disttorch-ps-trainer", daemon=True)
    trainer_thread.start()
    role_failure = None
    killed: set = set()
    try:
        pending = list(refs)
        while trainer_thread.is_alive():
            if role_failure is None and pending:
                done, pending = ray.wait(pending, num_returns=1, timeout=0.5)
                for ref in done:
                    role_failure = role_failure or _role_failure(refs[ref], ref)
            else:
                trainer_thread.join(0.5)
            if role_failure is not None:
                # The workers would wait for the dead role until their own timeouts: end them (also those that
                # register late), so the trainer fails now.
                for rank, handle in ray.get(members.get.remote()).items():
                    if rank not in killed:
                        killed.add(rank)
                        ray.kill(handle, no_restart=True)
        trainer_thread.join()
        if role_failure is not None:
            raise role_failure from outcome.get("error")
        if "error" in outcome:
            raise outcome["error"]
        done, pending = ray.wait(pending, num_returns=len(pending), timeout=grace_period_s) if pending else ([], [])
        for ref in done:
            failure = _role_failure(refs[ref], ref)
            if failure is not None:
                raise failure
        if pending:
            names = ", ".join(refs[r] for r in pending)
            raise RoleError(f"ps job: the workers finished but {names} did not exit within {grace_period_s:g} s "
                            "(a worker that never called ps.init() or ps.shutdown()?); stopped")
        return outcome["result"]
    finally:
        for _, actor in roles:
            ray.kill(actor, no_restart=True)
        ray.kill(members, no_restart=True)
        shutil.rmtree(snap, ignore_errors=True)  # the driver's node: the scheduler's, and maybe servers'


def _role_failure(name: str, ref) -> Optional[RoleError]:
    """A RoleError when the role's ``serve`` raised or returned a non-zero status; None when it ended well."""
    try:
        status = ray.get(ref)
    except Exception as e:  # noqa: BLE001 - the remote error, with its traceback, goes into the message
        return RoleError(f"ps job: {name} failed: {e}")
    return None if status == 0 else RoleError(f"ps job: {name} exited with status {status}")
