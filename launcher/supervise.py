"""Start the process specs, pump their output, and supervise them.

- Each process starts in its own session (so its process group and session id are its pid): tearing down a
  worker signals its whole group, and the other groups of its session, which reaches its own children
  (DataLoader workers, subprocesses, also those that made a process group of their own) too. Remote
  workers are signalled through ssh (ssh.kill_command). mpiexec gets SIGTERM alone (it forwards it to its
  ranks and reports their exit); the final SIGKILL reaches every group of its session, its ranks included.
- Output: every line gets ``[rank N] `` (carriage-return updates such as progress bars stay in place);
  --log-dir/--redirects/--tee/--local-ranks-filter decide where each stream goes, as in torchrun.
- The first worker that exits non-zero is the root cause: every other worker gets SIGTERM, SIGKILL after the
  grace period, and the launcher prints one summary (rank, host, exit code or signal, stderr tail).
- SIGINT/SIGTERM to the launcher go to every worker. --max-restarts restarts the whole group with
  TORCHELASTIC_RESTART_COUNT + 1 and a fresh MASTER_PORT.
- --mode ps: a server or a worker that fails while restarts remain is restarted by itself (same spec and host,
  TORCHELASTIC_RESTART_COUNT = the job's restarts so far) while the others run on; ps.restart_alone decides.
  A server resumes from its snapshot on its old port, a worker rejoins. The scheduler failing restarts the
  whole group. Each restart, alone or of the group, counts against --max-restarts.

When the launcher itself dies (SIGKILL, a crash, a hangup of its terminal), its workers end too, through two
independent mechanisms:

- The reaper (reaper.py): a small process the launcher starts in a session of its own. The launcher tells
  it, through a pipe, each process it starts and each remote worker's stop command; if the pipe closes
  without a clean "done", the reaper does the teardown above (SIGTERM, the grace period, SIGKILL; mpiexec
  gets SIGTERM and forwards it; remote workers are stopped through ssh) and exits. This covers every worker,
  whether or not it imports disttorch (``--no-python`` scripts included).
- The worker's own check (disttorch/_parent_watch.py): the launcher sets DISTTORCH_PARENT_PID to the pid
  that should be the worker's parent (the launcher; for mpi ranks the MPI daemon that starts them; for ssh
  workers the remote sshd). ``import disttorch`` in a process whose parent is that pid starts a daemon
  thread that waits on the parent (a pidfd, or a once-a-second check of os.getppid()); when the parent is
  gone it ends the worker's process group from a short-lived guardian process (SIGTERM, the grace period,
  SIGKILL), or, for a worker that does not lead its group, the worker alone (which also gets the Linux
  parent-death signal, SIGTERM). Any other process, including the worker's own children, ignores the
  variable. This covers workers the reaper cannot reach: ranks of a killed mpiexec, workers on other hosts.

Not covered: processes that start a session of their own (``setsid``, ``start_new_session=True``), as with
torchrun; a remote worker whose pid the launcher had not yet read when it died, if it does not import
disttorch (the reaper still kills its ssh client).
"""
from __future__ import annotations

import collections
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, TextIO

from disttorch.launcher import ps
from disttorch.launcher.config import LaunchConfig, std_for
from disttorch.launcher.local import ProcessSpec
from disttorch.launcher.reaper import PARENT_GRACE_VAR, PARENT_PID_VAR, Leader, Reaper, signal_groups, \
    start_time, target_groups
from disttorch.launcher.ssh import PID_MARK, kill_command, stop_command

TAIL_LINES = 20
_EOL = re.compile(rb"\r\n|\n|\r")
_OMPI_TAG = re.compile(r"\[\d+,(\d+)\]<(stdout|stderr)>: ?(.*)", re.S)
_MPICH_TAG = re.compile(r"\[(\d+)\] ?(.*)", re.S)


def _say(msg: str) -> None:
    print(f"disttorch launch: {msg}", file=sys.stderr, flush=True)


@dataclass
class Failure:
    """The root cause of a failed attempt."""

    rank: int | None
    local_rank: int | None
    host: str
    pid: int | None
    exitcode: int | None  # None when killed by a signal
    signal: int | None
    when: float
    stderr_tail: list[str] = field(default_factory=list)
    note: str = ""
    role: str = "worker"  # --mode ps: "scheduler" or "server" for a library process
    label: str = ""  # how the summary names a library process ("server 1")

    def cause(self) -> str:
        if self.signal is not None:
            try:
                name = signal.Signals(self.signal).name
            except ValueError:
                name = f"signal {self.signal}"
            return f"killed by signal {name} ({self.signal})"
        return f"exit code {self.exitcode}" + (f" ({self.note})" if self.note else "")

    def launcher_exit_code(self) -> int:
        return 128 + self.signal if self.signal is not None else (self.exitcode or 1)


class _Output:
    """Routes workers' lines to the console and the per-rank log files (one lock: whole lines, no mixing)."""

    def __init__(self, cfg: LaunchConfig, log_dir: str | None, attempt: int,
                 stdout: TextIO | None = None, stderr: TextIO | None = None):
        self.cfg = cfg
        self.log_dir = log_dir
        self.attempt = attempt
        self.console = {1: stdout or sys.stdout, 2: stderr or sys.stderr}
        self.lock = threading.Lock()
        self.files: dict[int | str, TextIO] = {}
        self.restart_of: dict[int | str, int] = {}  # a process restarted alone: the restart its file is at
        self.log_all = cfg.log_dir is not None and cfg.redirects == 0 and cfg.tee == 0

    def _open(self, key: int | str, name: str) -> TextIO:
        f = self.files.get(key)
        if f is None:
            attempt = self.restart_of.get(key, self.attempt)
            path = os.path.join(self.log_dir, name)
            f = self.files[key] = open(path, "a" if attempt else "w", encoding="utf-8", errors="replace")
            if attempt:
                f.write(f"--- restart {attempt} ---\n")
        return f

    def _file(self, rank: int) -> TextIO:
        return self._open(rank, f"rank_{rank}.log")

    def restarted(self, key: int | str, restart: int) -> None:
        """The process writing to ``key`` (a worker's rank, a library process's label) was restarted alone:
        its log file continues after a ``--- restart N ---`` line."""
        with self.lock:
            f = self.files.pop(key, None)
            if f is not None:
                f.close()
            self.restart_of[key] = restart

    def write(self, rank: int | None, key: int | None, bit: int, text: str, term: str) -> None:
        if rank is None:  # the launcher's or mpiexec's own message
            with self.lock:
                self.console[bit].write(text + term)
                self.console[bit].flush()
            return
        redirect = std_for(self.cfg.redirects, key) & bit
        to_file = self.log_dir is not None and (redirect or std_for(self.cfg.tee, key) & bit or self.log_all)
        flt = self.cfg.local_ranks_filter
        to_console = not redirect and (flt is None or key in flt)
        with self.lock:
            if to_file:
                f = self._file(rank)
                f.write(text + term)
                f.flush()
            if to_console and (text or term == "\n"):
                self.console[bit].write(f"[rank {rank}] {text}{term}")
                self.console[bit].flush()

    def write_library(self, label: str, bit: int, text: str, term: str) -> None:
        """A --mode ps scheduler's or server's line: ``[server 1] ...`` on the console, and with a log
        directory into ``server_1.log`` (console filters and redirects are per worker rank: not these)."""
        with self.lock:
            if self.log_dir is not None:
                f = self._open(label, label.replace(" ", "_") + ".log")
                f.write(text + term)
                f.flush()
            if text or term == "\n":
                self.console[bit].write(f"[{label}] {text}{term}")
                self.console[bit].flush()

    def close(self) -> None:
        with self.lock:
            for f in self.files.values():
                f.close()
            self.files.clear()


class Worker:
    """One started process (a worker, an ssh client running one, or mpiexec) and its output pumps."""

    def __init__(self, spec: ProcessSpec, out: _Output, filter_key: int | None, reaper: Reaper | None = None,
                 grace: float = 5.0):
        self.spec = spec
        self.out = out
        self.key = filter_key
        self.reaper = reaper
        self.grace = grace
        self.popen: subprocess.Popen | None = None
        self.leader: Leader | None = None
        self.remote_key: str | None = None
        self.tails: dict[int | None, collections.deque] = collections.defaultdict(
            lambda: collections.deque(maxlen=TAIL_LINES))
        self.remote_pid: int | None = None
        self.remote_pid_seen = threading.Event()
        self.threads: list[threading.Thread] = []
        self.helpers: list[subprocess.Popen] = []  # ssh kill commands
        self.start_error: str | None = None

    def start(self, events: queue.Queue) -> None:
        spec = self.spec
        env = {**os.environ, **spec.env}
        env.pop(PARENT_PID_VAR, None)  # ours to set: a launcher started by a worker must not pass its own on
        if spec.kind == "local":  # mpi ranks get theirs from mpi.rank_shim, ssh workers from ssh.remote_command
            env[PARENT_PID_VAR] = str(os.getpid())
            env[PARENT_GRACE_VAR] = f"{self.grace:g}"
        try:
            self.popen = subprocess.Popen(
                list(spec.argv), env=env, cwd=spec.cwd, start_new_session=True,
                stdin=subprocess.PIPE if spec.stdin_text is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        except OSError as e:
            self.start_error = f"cannot start {spec.argv[0]}: {e.strerror or e}"
            self.tails[spec.rank].append(self.start_error)
            events.put((self, 127))
            return
        # Read before the waiter thread can reap it: until then the pid cannot name another process.
        pid = self.popen.pid
        self.leader = Leader(pid, start_time(pid), term_session=spec.kind != "mpi")
        if self.reaper is not None:
            self.reaper.add(self.leader)
        if spec.stdin_text is not None:
            try:
                self.popen.stdin.write(spec.stdin_text.encode())
                self.popen.stdin.close()
            except OSError:
                pass
        for stream, bit in ((self.popen.stdout, 1), (self.popen.stderr, 2)):
            t = threading.Thread(target=self._pump, args=(stream, bit), daemon=True)
            t.start()
            self.threads.append(t)
        waiter = threading.Thread(target=lambda: events.put((self, self.popen.wait())), daemon=True)
        waiter.start()

    # -- output
    def _pump(self, stream, bit: int) -> None:
        fd = stream.fileno()
        buf = b""
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                chunk = b""
            if not chunk:
                break
            buf = self._emit(buf + chunk, bit, eof=False)
        self._emit(buf, bit, eof=True)
        stream.close()

    def _emit(self, buf: bytes, bit: int, eof: bool) -> bytes:
        pos = 0
        for m in _EOL.finditer(buf):
            if m.group() == b"\r" and m.end() == len(buf) and not eof:
                break  # may be the first half of \r\n
            self._line(buf[pos:m.start()].decode("utf-8", "replace"), "\r" if m.group() == b"\r" else "\n", bit)
            pos = m.end()
        rest = buf[pos:]
        if rest and (eof or len(rest) > 1 << 20):
            self._line(rest.decode("utf-8", "replace"), "\n", bit)
            rest = b""
        return rest

    def _line(self, text: str, term: str, bit: int) -> None:
        spec = self.spec
        rank, key = spec.rank, self.key
        if spec.kind == "ssh" and bit == 2 and self.remote_pid is None and text.startswith(PID_MARK):
            try:
                self.remote_pid = int(text[len(PID_MARK):].strip())
            except ValueError:
                pass
            else:
                if self.reaper is not None:
                    self.remote_key = f"{spec.host}:{self.remote_pid}"
                    self.reaper.remote(self.remote_key, stop_command(spec.ssh_base, self.remote_pid, self.grace))
            self.remote_pid_seen.set()
            return
        if spec.role != "worker":
            if bit == 2 and term == "\n":
                self.tails[rank].append(text)
            self.out.write_library(spec.label, bit, text, term)
            return
        if spec.kind == "mpi":
            m = _OMPI_TAG.match(text) or _MPICH_TAG.match(text)
            if m is None:
                rank = key = None  # mpiexec's own message
            else:
                rank = key = int(m.group(1))
                text = m.group(m.lastindex)
                if m.re is _OMPI_TAG:
                    bit = 2 if m.group(2) == "stderr" else bit
        if (bit == 2 or rank is None) and term == "\n":
            self.tails[rank].append(text)
        self.out.write(rank, key, bit, text, term)

    # -- signals
    def signal(self, sig: int) -> None:
        """Signal this worker's process groups (remote workers: through ssh as well).

        SIGKILL reaches every group of the worker's session; other signals the worker's own group, and the
        session's other groups too unless the worker is mpiexec (which forwards them to its ranks).
        """
        if self.popen is None or self.leader is None:
            return
        if self.spec.kind == "ssh":
            if self.remote_pid is None and self.popen.poll() is None:
                self.remote_pid_seen.wait(2.0)
            if self.remote_pid is not None:
                try:
                    self.helpers.append(subprocess.Popen(
                        kill_command(self.spec.ssh_base, self.remote_pid, signal.Signals(sig).name[3:]),
                        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                        start_new_session=True))
                except OSError:
                    pass
            if sig != signal.SIGKILL and self.remote_pid is not None:
                return  # keep the ssh client: it carries the remote output and exit status until the end
        signal_groups(target_groups([self.leader], whole_session=True if sig == signal.SIGKILL else None), sig)

    def reap_helpers(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for h in self.helpers:
            try:
                h.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                h.kill()
                h.wait()
        self.helpers.clear()

    def join_output(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for t in self.threads:
            t.join(max(0.0, deadline - time.monotonic()))


def _local_hostname(host: str) -> str:
    return socket.gethostname() if host in ("localhost", "127.0.0.1", "local") else host


def _failure(w: Worker, rc: int) -> Failure:
    spec = w.spec
    f = Failure(rank=spec.rank, local_rank=spec.local_rank, host=_local_hostname(spec.host),
                pid=w.popen.pid if w.popen else None, exitcode=rc if rc >= 0 else None,
                signal=-rc if rc < 0 else None, when=time.time(), stderr_tail=list(w.tails[spec.rank]),
                role=spec.role, label=spec.label if spec.role != "worker" else "")
    if w.start_error:
        f.note = w.start_error
    elif spec.kind == "ssh":
        f.pid = w.remote_pid
        if rc == 255:
            f.note = "ssh could not connect, the connection broke, or the remote process was killed by a signal"
        elif rc > 128:
            try:
                f.note = f"the remote shell reports: killed by {signal.Signals(rc - 128).name}"
            except ValueError:
                pass
    elif spec.kind == "mpi":
        _mpi_root_cause(w, f)
    return f


def _mpi_root_cause(w: Worker, f: Failure) -> None:
    """Find the first failed rank in mpiexec's own report (Open MPI / PRRTE wording)."""
    text = " ".join(" ".join(w.tails[None]).split())
    m = re.search(r"process rank (\d+) with PID (\d+) on node (\S+) exited on signal (\d+)", text)
    if m:
        f.rank, f.pid, f.host = int(m.group(1)), int(m.group(2)), m.group(3)
        f.signal, f.exitcode = int(m.group(4)), None
    else:
        m = re.search(r"Process name: \[\S*?,(\d+)\]\s+Exit code: (\d+)", text)
        if m:
            f.rank, f.exitcode, f.signal, f.pid = int(m.group(1)), int(m.group(2)), None, None
        elif f.exitcode and f.exitcode > 128:  # mpiexec's own status for a signalled rank
            f.signal, f.exitcode = f.exitcode - 128, None
    if f.rank is None:  # unknown: report the rank that wrote to stderr last
        ranks = [r for r in w.tails if r is not None and w.tails[r]]
        f.rank = ranks[-1] if ranks else None
    f.stderr_tail = list(w.tails[f.rank]) if f.rank is not None else list(w.tails[None])


def format_summary(f: Failure, *, total: int, restart: int, max_restarts: int, will_restart: bool,
                   alone: bool = False) -> str:
    """The one root-cause report of a failed attempt (``alone``: of a --mode ps process restarted by itself)."""
    who = f.label or (f"rank {f.rank}" if f.rank is not None else "a worker")
    if f.local_rank is not None and not f.label:
        who += f" (local_rank {f.local_rank})"
    pid = f", pid {f.pid}" if f.pid else ""
    bar = "=" * 72
    lines = [bar, f"disttorch launch: {f.role} failure (attempt {restart + 1} of {max_restarts + 1})",
             f"  first failure : {who} on host {f.host}{pid}",
             f"  cause         : {f.cause()}",
             f"  time          : {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(f.when))}",
             (f"  other {'workers ' if f.role == 'worker' else 'processes'}: "
              f"{'still running' if alone else 'terminated'} ({total - 1} of {total} processes)") if total > 1 else ""]
    if f.stderr_tail:
        lines.append(f"  last {len(f.stderr_tail)} line(s) of {who.split(' (')[0]}'s stderr:")
        lines += [f"    | {line}" for line in f.stderr_tail]
    else:
        lines.append("  (it wrote nothing to stderr)")
    if will_restart:
        lines.append(f"  restarting {who.split(' (')[0]} alone" if alone else "  restarting the whole group")
        lines[-1] += f": restart {restart + 1} of {max_restarts}"
    else:
        lines.append("  giving up" + (f" after {max_restarts} restart(s)" if max_restarts else ""))
    lines.append(bar)
    return "\n".join(line for line in lines if line)


@dataclass
class Outcome:
    ok: bool
    failure: Failure | None = None
    signal: int | None = None


class Supervisor:
    """Runs attempts of a job; owns the launcher's SIGINT/SIGTERM handling."""

    def __init__(self, cfg: LaunchConfig, stdout: TextIO | None = None, stderr: TextIO | None = None):
        self.cfg = cfg
        self.stdout, self.stderr = stdout, stderr
        self.received: int | None = None
        self.processes = 0  # processes of the last attempt (the failure summary counts them)
        self.restarts = 0  # restarts of the job so far, alone (--mode ps) or of the whole group: one budget
        self.log_dir = cfg.log_dir
        if self.log_dir is None and (cfg.redirects or cfg.tee):
            self.log_dir = tempfile.mkdtemp(prefix="disttorch_launch_")
        if self.log_dir is not None:
            os.makedirs(self.log_dir, exist_ok=True)

    def _on_signal(self, signum, _frame) -> None:
        if self.received is None:
            self.received = signum

    def run_attempt(self, specs: list[ProcessSpec], restart: int, reaper: Reaper | None = None) -> Outcome:
        cfg = self.cfg
        out = _Output(cfg, self.log_dir, restart, self.stdout, self.stderr)
        events: queue.Queue = queue.Queue()
        by_global = bool(cfg.hosts)  # one launcher for all hosts: filter/log by global rank
        workers = [Worker(s, out, s.rank if by_global else s.local_rank, reaper, cfg.grace_period) for s in specs]
        library = sum(1 for s in specs if s.role != "worker")
        self.processes = library + (cfg.world_size if cfg.hosts else cfg.nproc_per_node)
        failed: tuple[Worker, int, float] | None = None
        failure: Failure | None = None
        try:
            for w in workers:
                if self.received is not None:
                    break
                w.start(events)
            pending = len(workers)
            # --mode ps: the scheduler and servers end by themselves once the workers are done; they get the
            # grace period for it, then the teardown below stops them.
            users = sum(1 for w in workers if w.spec.role == "worker")
            library_deadline = None
            while pending and self.received is None:
                if library_deadline is not None and time.monotonic() > library_deadline:
                    break
                try:
                    w, rc = events.get(timeout=0.1)
                except queue.Empty:
                    continue
                pending -= 1
                if rc != 0:
                    if cfg.mode == "ps" and self.received is None and ps.restart_alone(
                            w.spec, restarts_used=self.restarts, max_restarts=cfg.max_restarts,
                            workers_running=users):
                        workers.append(self._restart_alone(w, rc, out, events, reaper))
                        pending += 1
                        continue
                    failed = (w, rc, time.time())
                    break
                if w.spec.role == "worker":
                    users -= 1
                    if users == 0 and pending and library_deadline is None:
                        library_deadline = time.monotonic() + cfg.grace_period
            self._teardown(workers, self.received or signal.SIGTERM, grace=cfg.grace_period)
            if reaper is not None:
                for w in workers:
                    if w.leader is not None:
                        reaper.drop(w.leader.pid)
                    if w.remote_key is not None:
                        reaper.unremote(w.remote_key)
            for w in workers:
                w.join_output(2.0)  # the stderr tail (and mpiexec's report) are complete after this
            if failed is not None:
                failure = _failure(failed[0], failed[1])
                failure.when = failed[2]
        finally:
            out.close()
        if self.received is not None:
            return Outcome(False, failure, self.received)
        return Outcome(failure is None, failure)

    def _restart_alone(self, w: Worker, rc: int, out: _Output, events: queue.Queue,
                       reaper: Reaper | None) -> Worker:
        """Restart the failed --mode ps process ``w`` by itself (one restart of the job's budget): end what is
        left of its session, print its summary, start its spec again; the other processes run on."""
        when = time.time()
        self.restarts += 1
        w.signal(signal.SIGKILL)  # its children (and, through ssh, a remote worker whose connection broke)
        w.reap_helpers(3.0)
        w.join_output(2.0)  # its stderr tail is complete after this
        if reaper is not None:
            if w.leader is not None:
                reaper.drop(w.leader.pid)
            if w.remote_key is not None:
                reaper.unremote(w.remote_key)
        f = _failure(w, rc)
        f.when = when
        print(format_summary(f, total=self.processes, restart=self.restarts - 1, max_restarts=self.cfg.max_restarts,
                             will_restart=True, alone=True), file=sys.stderr, flush=True)
        spec = w.spec
        out.restarted(spec.rank if spec.role == "worker" else spec.label, self.restarts)
        again = Worker(ps.restarted_spec(self.cfg, spec, self.restarts), out, w.key, reaper, self.cfg.grace_period)
        again.start(events)  # registers its pid with the reaper
        return again

    def _teardown(self, workers: list[Worker], sig: int, grace: float) -> None:
        """sig to every process group (also of exited workers: their children may live on), wait up to
        ``grace`` for the workers, then SIGKILL every group."""
        live = [w for w in workers if w.popen is not None]
        if any(w.popen.poll() is None for w in live):
            for w in live:
                w.signal(sig)
            deadline = time.monotonic() + grace
            for w in live:
                try:
                    w.popen.wait(max(0.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    pass
        for w in live:
            if w.spec.kind == "ssh":
                w.reap_helpers(3.0)
            w.signal(signal.SIGKILL)
        for w in live:
            try:
                w.popen.wait(5.0)
            except subprocess.TimeoutExpired:
                pass
            w.reap_helpers(3.0)

    def run(self, plan: Callable[[int, int], list[ProcessSpec]], pick_port: Callable[[], int]) -> int:
        """All attempts; returns the launcher's exit status (0, the first failure's code, or 128+signal)."""
        cfg = self.cfg
        handlers = {}
        if threading.current_thread() is threading.main_thread():
            for s in (signal.SIGINT, signal.SIGTERM):
                handlers[s] = signal.signal(s, self._on_signal)
        reaper = Reaper(cfg.grace_period)
        clean = False  # an exception leaves the teardown to the reaper: workers may still run
        try:
            while True:
                port = cfg.master_port if cfg.master_port is not None else pick_port()
                outcome = self.run_attempt(plan(self.restarts, port), self.restarts, reaper)
                clean = True
                if outcome.signal is not None:
                    _say(f"received {signal.Signals(outcome.signal).name}: forwarded it to every worker, "
                         "and stopped them")
                    return 128 + outcome.signal
                if outcome.ok:
                    return 0
                f = outcome.failure
                again = self.restarts < cfg.max_restarts
                print(format_summary(f, total=self.processes, restart=self.restarts,
                                     max_restarts=cfg.max_restarts, will_restart=again), file=sys.stderr, flush=True)
                if not again:
                    return f.launcher_exit_code()
                self.restarts += 1
                clean = False
        finally:
            reaper.close(clean)
            for s, h in handlers.items():
                signal.signal(s, h)
