"""Tiny worker for the launcher tests (plain Python: it does not import disttorch).

    worker.py env                 print the environment contract as one JSON line
    worker.py fail R CODE DIR     rank R exits CODE once the other ranks started a grandchild; they block
    worker.py sigkill R DIR       rank R kills itself with SIGKILL once the others are up; they block
    worker.py restart             rank 1 fails on restart 0, every rank succeeds on restart 1
    worker.py wait DIR            print "ready", block; on SIGTERM write DIR/term_<rank> and exit 0
"""
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time

KEYS = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "GROUP_RANK", "GROUP_WORLD_SIZE", "ROLE_RANK",
        "ROLE_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "TORCHELASTIC_RESTART_COUNT", "OMP_NUM_THREADS",
        "DISTTORCH_BACKEND", "DISTTORCH_JOB_SECRET", "DISTTORCH_INTERFACE", "EXTRA_FROM_YAML")
rank = int(os.environ.get("RANK", "-1"))
mode = sys.argv[1]


def block(seconds=60.0):
    threading.Event().wait(seconds)


def wait_for(paths, seconds=20.0):
    deadline = time.monotonic() + seconds
    while not all(os.path.exists(p) for p in paths):
        if time.monotonic() > deadline:
            sys.exit(f"rank {rank}: timed out waiting for {paths}")
        time.sleep(0.02)


if mode == "env":
    print("ENV " + json.dumps({k: os.environ.get(k) for k in KEYS} | {"cwd": os.getcwd(), "argv": sys.argv[2:]}))
    print(f"hello from rank {rank}", file=sys.stderr)
elif mode in ("fail", "sigkill"):
    bad = int(sys.argv[2])
    d = sys.argv[-1]
    world = int(os.environ["WORLD_SIZE"])
    if rank == bad:
        wait_for([os.path.join(d, f"gc_{r}") for r in range(world) if r != bad])
        for i in range(30):
            print(f"rank {rank} diagnostic line {i}", file=sys.stderr)
        if mode == "sigkill":
            os.kill(os.getpid(), signal.SIGKILL)
        sys.exit(int(sys.argv[3]))
    child = subprocess.Popen([sys.executable, "-c", "import threading; threading.Event().wait(120)"])
    with open(os.path.join(d, f"gc_{rank}.tmp"), "w") as f:
        f.write(f"{os.getpid()} {child.pid}")
    os.replace(os.path.join(d, f"gc_{rank}.tmp"), os.path.join(d, f"gc_{rank}"))
    block()
elif mode == "restart":
    n = int(os.environ["TORCHELASTIC_RESTART_COUNT"])
    print(f"attempt restart={n} port={os.environ['MASTER_PORT']}", flush=True)
    # rank 1 fails only once rank 0 has printed: else the teardown may stop rank 0 before its line
    mark = os.path.join(tempfile.gettempdir(), f"disttorch_test_restart_{os.environ['TORCHELASTIC_RUN_ID']}")
    if n == 0 and rank == 0:
        open(mark, "w").close()
    if n == 0 and rank == 1:
        wait_for([mark])
        os.unlink(mark)
        sys.exit("rank 1 fails on the first attempt")
elif mode == "wait":
    d = sys.argv[2]

    def on_term(signum, frame):
        with open(os.path.join(d, f"term_{rank}"), "w") as f:
            f.write(signal.Signals(signum).name)
        sys.exit(0)

    signal.signal(signal.SIGTERM, on_term)
    print("ready", flush=True)
    block()
else:
    sys.exit(f"unknown mode {mode}")
