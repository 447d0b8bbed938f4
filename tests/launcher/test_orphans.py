"""Workers end when their launcher dies: `disttorch launch` SIGKILLed for real, and the worker-side parent
watch on its own (tests/launcher/orphan_worker.py). Launches over ssh: test_ssh.py."""
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from launch_helpers import (ORPHAN, PY, Procs, alive, clean_env, read_json, sigkill_and_check,  # noqa: E402
                            start_launcher, wait_until)

from disttorch.launcher import mpi, ssh  # noqa: E402
from disttorch.launcher.config import resolve  # noqa: E402
from disttorch.launcher.reaper import PARENT_GRACE_VAR, PARENT_PID_VAR  # noqa: E402


@pytest.fixture
def procs():
    """Kills, at the end of the test, whatever of the processes it noted still runs."""
    tracked = Procs()
    yield tracked
    tracked.kill_all()


@pytest.mark.timeout(60)
def test_sigkilled_launcher_takes_workers_dataloader_workers_and_children_along(tmp_path, procs):
    # rank 0 imports disttorch and runs a DataLoader; rank 1 never imports disttorch (only the reaper acts)
    p = start_launcher(tmp_path, procs, "--nproc-per-node", "2", ORPHAN, "mixed", str(tmp_path))
    pids = []
    for r in range(2):
        pids += procs.note(*read_json(tmp_path / f"pids_{r}", 50, p))
    # rank 0: worker, 2 DataLoader workers, a child, a child in a group of its own; rank 1: the same but
    # the DataLoader workers
    assert len(set(pids)) == 8 and all(alive(q) for q in pids)
    sigkill_and_check(p, tmp_path, pids)


@pytest.mark.timeout(60)
def test_sigkilled_launcher_takes_no_python_workers_along(tmp_path, procs):
    script = tmp_path / "worker.sh"
    script.write_text('#!/bin/sh\nsleep 120 &\necho "[$$, $!]" > "$1/pids_$RANK.tmp"\n'
                      'mv "$1/pids_$RANK.tmp" "$1/pids_$RANK"\nwait\n')
    script.chmod(0o755)
    p = start_launcher(tmp_path, procs, "--nproc-per-node", "2", "--no-python", str(script), str(tmp_path))
    pids = [q for r in range(2) for q in procs.note(*read_json(tmp_path / f"pids_{r}", proc=p))]
    assert len(set(pids)) == 4
    sigkill_and_check(p, tmp_path, pids)


@pytest.mark.timeout(60)
def test_ctrl_c_still_stops_the_job_through_the_launcher(tmp_path, procs):
    """SIGINT to the launcher's process group (a terminal's Ctrl-C): the launcher forwards it and stops the
    workers itself; the reaper, in a session of its own, is told "done" and stops nothing."""
    p = start_launcher(tmp_path, procs, "--nproc-per-node", "2", ORPHAN, "plain", str(tmp_path))
    pids = [q for r in range(2) for q in procs.note(*read_json(tmp_path / f"pids_{r}", proc=p))]
    os.killpg(p.pid, signal.SIGINT)
    assert p.wait(20) == 128 + signal.SIGINT
    assert not [q for q in pids if alive(q)]
    err = (tmp_path / "launcher.err").read_text()  # the launcher waited for the reaper: its output is complete
    assert "received SIGINT" in err and "reaper" not in err


@pytest.mark.timeout(60)
def test_worker_ends_its_group_when_its_parent_dies_and_leaves_the_rest_alone(tmp_path, procs):
    """No launcher, no reaper: only the worker-side watch (disttorch/_parent_watch.py) acts here; the group
    leader watches without a pidfd (its once-a-second fallback), the other worker with one."""
    fake = subprocess.Popen([PY, ORPHAN, "fake-launcher", str(tmp_path)], env=clean_env(), start_new_session=True)
    procs.note(fake.pid)
    f = read_json(tmp_path / "fake")
    procs.note(*f.values())
    lead, member = (read_json(tmp_path / n) for n in ("lead", "member"))
    procs.note(*lead["children"])
    assert lead["watched"] == member["watched"] == fake.pid
    doomed = [lead["pid"], *lead["children"], member["pid"]]
    assert all(alive(q) for q in doomed + [f["bystander"]])
    fake.kill()
    fake.wait(10)
    assert wait_until(lambda: not [q for q in doomed if alive(q)], 15), [q for q in doomed if alive(q)]
    # the member did not lead its group (the fake launcher's): it ended itself, not its group
    assert alive(f["bystander"])


def test_watch_is_off_unless_the_parent_is_the_named_pid():
    """A worker's children (DataLoader workers, subprocesses importing disttorch) inherit the variable with
    the launcher's pid, which is not their parent: they do not watch; nor does any process outside a launch."""
    import disttorch._parent_watch as watch

    child = subprocess.Popen([PY, "-c", "import threading; threading.Event().wait(30)"])
    try:
        # not a pid, init, this process (never its own parent), a child of this process
        for value in ("", "x", "1", str(os.getpid()), str(child.pid)):
            assert watch.start({PARENT_PID_VAR: value}) is False
    finally:
        child.kill()
        child.wait()
    assert watch.start({}) is False and watch.watched_parent() is None
    assert (watch.PARENT_PID_VAR, watch.PARENT_GRACE_VAR) == (PARENT_PID_VAR, PARENT_GRACE_VAR)


def _term_blocker(procs):
    """A process in a session of its own that blocks SIGTERM: a SIGTERM sent to it stays pending, visible at
    once in /proc (no waiting to see whether it was signalled); it only dies by SIGKILL."""
    p = subprocess.Popen([PY, "-c", "import signal, threading; signal.pthread_sigmask(signal.SIG_BLOCK, "
                          "{signal.SIGTERM}); print('ready', flush=True); threading.Event().wait(30)"],
                         stdout=subprocess.PIPE, text=True, start_new_session=True)
    procs.note(p.pid)
    assert p.stdout.readline() == "ready\n"
    return p


def _term_pending(pid):
    with open(f"/proc/{pid}/status") as f:
        pending = next(int(line.split()[1], 16) for line in f if line.startswith("ShdPnd:"))
    return bool(pending & (1 << (signal.SIGTERM - 1)))


def test_a_reused_pid_is_left_alone(procs):
    """The reaper identifies a leader by pid and start time: the same pid with another start time is an
    unrelated process (the leader's group is empty then), and nothing is signalled."""
    from disttorch.launcher.reaper import Leader, any_alive, start_time, stop, target_groups

    p = _term_blocker(procs)
    impostor = Leader(p.pid, start_time(p.pid) + 1)
    assert target_groups([impostor]) == set() and not any_alive([impostor])
    assert stop([impostor], grace=0.1) == 0 and not _term_pending(p.pid)
    real = Leader(p.pid, start_time(p.pid))
    assert target_groups([real]) == {p.pid} and any_alive([real])
    t0 = time.monotonic()
    assert stop([real], grace=0.5) == 1
    assert p.wait(5) == -signal.SIGKILL and time.monotonic() - t0 >= 0.45  # SIGTERM ignored: SIGKILL at the end


def test_reaper_protocol_done_stops_nothing_end_of_file_stops_the_registered(procs):
    import io
    import json

    from disttorch.launcher.reaper import serve, start_time

    p = _term_blocker(procs)
    add = json.dumps({"add": p.pid, "start": start_time(p.pid), "term": "session"}).encode() + b"\n"
    assert serve(io.BytesIO(add + b'{"done": true}\n'), grace=0.2, launcher=0) == 0
    assert serve(io.BytesIO(add + json.dumps({"drop": p.pid}).encode() + b"\n"), grace=0.2, launcher=0) == 0
    assert not _term_pending(p.pid)
    # lines cut short or malformed are skipped; the end of the stream without "done" stops the process
    assert serve(io.BytesIO(b'[1]\n{"add": "x"}\n' + add + b'{"ad'), grace=0.2, launcher=0) == 0
    assert p.wait(5) == -signal.SIGKILL


def _have_mpiexec():
    return os.access(os.path.join(os.path.dirname(PY), "mpiexec"), os.X_OK) or shutil.which("mpiexec")


@pytest.mark.mpi
@pytest.mark.timeout(60)
def test_sigkilled_launcher_takes_mpi_ranks_along(tmp_path, procs):
    """The reaper sends SIGTERM to mpiexec, which forwards it; then SIGKILL to every group of its session."""
    if not _have_mpiexec():
        pytest.skip("no mpiexec (install the mpi extra)")
    p = start_launcher(tmp_path, procs, "--backend", "mpi", "-n", "2", ORPHAN, "plain", str(tmp_path))
    pids = [q for r in range(2) for q in procs.note(*read_json(tmp_path / f"pids_{r}", proc=p))]
    assert len(set(pids)) == 6
    sigkill_and_check(p, tmp_path, pids)


@pytest.mark.mpi
@pytest.mark.timeout(60)
def test_ranks_end_when_mpiexec_is_sigkilled(tmp_path, procs):
    """Open MPI leaves the ranks of a SIGKILLed mpiexec running; the rank shim names mpiexec as the ranks'
    parent, so ranks that import disttorch end their groups themselves (no launcher, no reaper here)."""
    if not _have_mpiexec():
        pytest.skip("no mpiexec (install the mpi extra)")
    cfg = resolve({"nproc_per_node": "2", "backend": "mpi", "script": ORPHAN,
                   "script_args": ["watch", str(tmp_path), "rank{rank}"]}, environ={})
    [spec] = mpi.build_specs(cfg, master_port=29999, restart_count=0, run_id="t", secret=None)
    mpx = subprocess.Popen(list(spec.argv), env={**clean_env(), **spec.env}, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, start_new_session=True)
    procs.note(mpx.pid)
    ranks = [read_json(tmp_path / f"rank{r}") for r in range(2)]
    pids = [q for info in ranks for q in procs.note(info["pid"], *info["children"])]
    assert [info["watched"] for info in ranks] == [mpx.pid, mpx.pid]
    mpx.kill()
    mpx.wait(10)
    assert wait_until(lambda: not [q for q in pids if alive(q)], 15), [q for q in pids if alive(q)]


@pytest.mark.timeout(30)
@pytest.mark.parametrize("shell", ["sh", "bash"])
def test_ssh_kill_and_stop_commands_reach_the_group_in_dash_and_bash(shell, procs):
    if not shutil.which(shell):
        pytest.skip(f"no {shell}")
    # The remote side of ssh.kill_command/stop_command, run by a local shell instead of through ssh.
    group = subprocess.Popen([shell, "-c", "sleep 60 & sleep 60"], start_new_session=True)
    stubborn = subprocess.Popen([shell, "-c", "trap '' TERM; sleep 60 & sleep 60"], start_new_session=True)
    procs.note(group.pid, stubborn.pid)
    assert wait_until(lambda: len(_group_members(group.pid)) == 3 and len(_group_members(stubborn.pid)) == 3, 10)
    members = procs.note(*_group_members(group.pid))
    subprocess.run(ssh.kill_command((shell, "-c"), group.pid, "TERM"), check=True, timeout=10)
    assert wait_until(lambda: not [q for q in members if alive(q)], 5)
    members = procs.note(*_group_members(stubborn.pid))
    t0 = time.monotonic()
    subprocess.run(ssh.stop_command((shell, "-c"), stubborn.pid, 0.5), check=True, timeout=10)
    assert time.monotonic() - t0 >= 0.4  # it waited out the grace period: SIGTERM is ignored here
    assert wait_until(lambda: not [q for q in members if alive(q)], 5)
    group.wait(5)
    stubborn.wait(5)


def _group_members(pgid):
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat", "rb") as f:
                    rest = f.read().rsplit(b")", 1)[1].split()
            except OSError:
                continue
            if int(rest[2]) == pgid and rest[0] not in (b"Z", b"X"):
                out.append(int(name))
    return out
