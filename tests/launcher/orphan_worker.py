"""Workers for tests/launcher/test_orphans.py: each writes the pids it wants checked to DIR/pids_<rank> as one
JSON list (atomically), then blocks.

    orphan_worker.py torch DIR      imports disttorch; a DataLoader with 2 workers (iterator alive), a plain
                                    child, and a child that leads a process group of its own
    orphan_worker.py plain DIR      never imports disttorch; a plain child and a child in its own group
    orphan_worker.py mixed DIR      rank 0 as "torch", the other ranks as "plain"
    orphan_worker.py fake-launcher DIR
                                    stands in for the launcher (no reaper): starts a worker leading its own
                                    session ("watch DIR lead", without os.pidfd_open) and one in this
                                    process's group ("watch DIR member") with DISTTORCH_PARENT_PID set to
                                    this pid, and a bystander in this group without it; writes their pids
                                    to DIR/fake, blocks
    orphan_worker.py watch DIR NAME imports disttorch; writes {"pid", "watched", "children"} to DIR/NAME
                                    ("{rank}" in NAME becomes RANK); "lead" and "rank..." start the two
                                    children of "plain"
"""
import json
import os
import subprocess
import sys
import threading
import time

if os.environ.get("ORPHAN_NO_PIDFD") == "1" and hasattr(os, "pidfd_open"):
    del os.pidfd_open  # the parent watch then takes its fallback: a once-a-second check of os.getppid()
mode, d = sys.argv[1], sys.argv[2]
rank = os.environ.get("RANK", "0")
SLEEPER = [sys.executable, "-c", "import threading; threading.Event().wait(120)"]


def write(name, obj):
    tmp = os.path.join(d, name + ".tmp")
    with open(tmp, "w") as f:
        json.dump(obj, f)
    os.replace(tmp, os.path.join(d, name))


def children():
    plain = subprocess.Popen(SLEEPER)
    # leaves the worker's process group, not its session
    new_group = {"process_group": 0} if sys.version_info >= (3, 11) else {"preexec_fn": os.setpgrp}
    own_group = subprocess.Popen(SLEEPER, **new_group)
    return [plain.pid, own_group.pid]


if mode == "mixed":  # rank 0 imports disttorch, the others never do
    mode = "torch" if rank == "0" else "plain"
if mode == "torch":
    import disttorch
    from disttorch.utils.data import DataLoader, Dataset

    class Slow(Dataset):
        def __len__(self):
            return 1000

        def __getitem__(self, i):
            return disttorch.tensor([float(i)])

    def init(worker_id):
        write(f"dl_{rank}_{worker_id}", os.getpid())

    it = iter(DataLoader(Slow(), batch_size=1, num_workers=2, worker_init_fn=init))
    next(it)
    names = [os.path.join(d, f"dl_{rank}_{w}") for w in range(2)]
    deadline = time.monotonic() + 30
    while not all(os.path.exists(n) for n in names):  # the second worker may not have started yet
        if time.monotonic() > deadline:
            sys.exit(f"rank {rank}: DataLoader workers did not start within 30 s")
        time.sleep(0.02)
    dl = [int(open(n).read()) for n in names]
    write(f"pids_{rank}", [os.getpid(), *dl, *children()])
elif mode == "plain":
    write(f"pids_{rank}", [os.getpid(), *children()])
elif mode == "fake-launcher":
    me = __file__
    env = {**os.environ, "DISTTORCH_PARENT_PID": str(os.getpid()), "DISTTORCH_PARENT_GRACE": "2"}
    lead = subprocess.Popen([sys.executable, me, "watch", d, "lead"], env={**env, "ORPHAN_NO_PIDFD": "1"},
                            start_new_session=True)
    member = subprocess.Popen([sys.executable, me, "watch", d, "member"], env=env)
    bystander = subprocess.Popen(SLEEPER)
    write("fake", {"lead": lead.pid, "member": member.pid, "bystander": bystander.pid})
elif mode == "watch":
    import disttorch._parent_watch as watch

    name = sys.argv[3].replace("{rank}", os.environ.get("RANK", "0"))
    info = {"pid": os.getpid(), "watched": watch.watched_parent()}
    if name == "lead" or name.startswith("rank"):
        info["children"] = children()
    write(name, info)
else:
    sys.exit(f"unknown mode {mode}")
threading.Event().wait(120)
