"""Helpers shared by the launcher tests that run `disttorch launch` for real (not a test module)."""
import json
import os
import pathlib
import signal
import subprocess
import sys

WORKER = str(pathlib.Path(__file__).with_name("worker.py"))
ALLREDUCE = str(pathlib.Path(__file__).with_name("allreduce_worker.py"))
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
