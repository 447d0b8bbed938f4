"""Helpers shared by the launcher tests that run `disttorch launch` for real (not a test module)."""
import json
import os
import pathlib
import signal
import subprocess
import sys
import time

from disttorch.launcher.reaper import start_time

WORKER = str(pathlib.Path(__file__).with_name("worker.py"))
ALLREDUCE = str(pathlib.Path(__file__).with_name("allreduce_worker.py"))
ORPHAN = str(pathlib.Path(__file__).with_name("orphan_worker.py"))
PY = sys.executable


def clean_env(**extra):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DISTTORCH_", "PET_")) and k != "OMP_NUM_THREADS"}
    env.update(extra)
    return env


def start(*args, env=None):
    return subprocess.Popen([PY, "-m", "disttorch.launcher.cli", "launch", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env or clean_env())


def stop(p):
    """End a launcher we started, by pid: SIGTERM first (it then stops its workers), SIGKILL if it hangs."""
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(15)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def launch(*args, timeout=60, env=None):
    p = start(*args, env=env)
    try:
        out, err = p.communicate(timeout=timeout)
    finally:
        stop(p)
    return p.returncode, out, err


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")  # a zombie is dead (nobody may reap it in a container)


def env_lines(out):
    envs = {}
    for line in out.splitlines():
        assert line.startswith("[rank "), f"unprefixed output line: {line!r}"
        if "] ENV " in line:
            e = json.loads(line.split("] ENV ", 1)[1])
            assert line.startswith(f"[rank {e['RANK']}] ")
            envs[int(e["RANK"])] = e
    return envs


def pids_of(d, ranks):
    out = []
    for r in ranks:
        worker, child = (d / f"gc_{r}").read_text().split()
        out += [int(worker), int(child)]
    return out


def wait_until(cond, seconds):
    deadline = time.monotonic() + seconds
    while not cond():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)  # polling processes this test did not start: nothing to block on
    return True


class Procs:
    """Every pid a test learns, with its start time, so that cleanup kills only those very processes."""

    def __init__(self):
        self.seen = {}

    def note(self, *pids):
        for p in pids:
            self.seen.setdefault(p, start_time(p))
        return list(pids)

    def kill_all(self):
        for p, t in self.seen.items():
            if t is not None and start_time(p) == t and alive(p):
                try:
                    os.kill(p, signal.SIGKILL)
                except OSError:
                    pass


def read_json(path, seconds=40, proc=None):
    """The JSON a worker wrote to ``path``; fails early when ``proc`` (the launcher) has already exited."""
    assert wait_until(lambda: path.exists() or (proc is not None and proc.poll() is not None), seconds), \
        f"{path.name} did not appear within {seconds} s"
    assert path.exists(), f"the launcher exited ({proc.returncode}) before {path.name} appeared: " + \
        (path.parent / "launcher.err").read_text()[-3000:]
    return json.loads(path.read_text())


def start_launcher(tmp_path, procs, *args):
    """`disttorch launch --grace-period 2 ARGS` in a session of its own, stderr to tmp_path/launcher.err."""
    err = open(tmp_path / "launcher.err", "w")
    p = subprocess.Popen([PY, "-m", "disttorch.launcher.cli", "launch", "--grace-period", "2", *args],
                         stdout=subprocess.DEVNULL, stderr=err, env=clean_env(), start_new_session=True)
    err.close()
    procs.note(p.pid)
    return p


def sigkill_and_check(p, tmp_path, pids, seconds=15):
    """SIGKILL the launcher ``p``: every pid must end within ``seconds``, and the reaper must say so."""
    p.kill()
    p.wait(10)
    assert wait_until(lambda: not [q for q in pids if alive(q)], seconds), \
        f"still alive {seconds} s after the launcher's SIGKILL: {[q for q in pids if alive(q)]}"
    err = tmp_path / "launcher.err"
    assert wait_until(lambda: "ended without stopping its workers" in err.read_text(), 10), err.read_text()
