"""Workers for the fault tests (tests/distributed/test_faults.py), started by `disttorch launch` or directly.

    fault_worker.py ddp K R -- ARGS   run examples/ddp_digits.py ARGS unchanged, except that on the first attempt
                                      (TORCHELASTIC_RESTART_COUNT=0) rank R, once the checkpoint of epoch K is
                                      saved, prints "FAULT_POINT rank=R pid=PID" and blocks, so that the test can
                                      SIGKILL it at a known point of the training (the other ranks block in the
                                      next epoch's first collective). K=0 disables the pause.
    fault_worker.py init SECONDS      init_process_group(timeout=SECONDS) from the environment; prints one JSON
                                      line with the exception type, message and elapsed seconds (or "ok").
    fault_worker.py allreduce         all_reduce of rank-dependent data; prints the result and the IPv4 addresses
                                      this process listens on and is connected to (read from /proc, not from disttorch).
"""
import json
import os
import runpy
import sys
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
mode = sys.argv[1]


def socket_addresses():
    """This process's TCP sockets, read from /proc: (listening IPv4 addresses, remote IPv4 addresses of its
    connections), its socket inodes matched in /proc/net/tcp."""
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    listen, peers = set(), set()

    def ip(col):
        h = col.split(":")[0]
        return ".".join(str(int(h[i:i + 2], 16)) for i in (6, 4, 2, 0))  # little-endian

    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            cols = line.split()
            if cols[9] not in inodes:
                continue
            if cols[3] == "0A":  # LISTEN
                listen.add(ip(cols[1]))
            elif cols[3] == "01":  # ESTABLISHED
                peers.add(ip(cols[2]))
    return sorted(listen), sorted(peers)


if mode == "ddp":
    after, bad = int(sys.argv[2]), int(sys.argv[3])
    args = sys.argv[sys.argv.index("--") + 1:]
    from disttorch.distributed import elastic

    save = elastic.Checkpointer.save

    def save_then_pause(self, state):
        save(self, state)
        if (after and elastic.restart_count() == 0 and state["epoch"] == after
                and int(os.environ["RANK"]) == bad):
            print(f"FAULT_POINT rank={bad} pid={os.getpid()}", flush=True)
            threading.Event().wait(120)
            sys.exit("fault_worker: nobody killed this rank")

    elastic.Checkpointer.save = save_then_pause
    example = os.path.join(REPO, "examples", "ddp_digits.py")
    sys.argv = [example, *args]
    runpy.run_path(example, run_name="__main__")
elif mode == "init":
    from datetime import timedelta

    import disttorch.distributed as dist

    t0 = time.monotonic()
    try:
        dist.init_process_group("zmq", timeout=timedelta(seconds=float(sys.argv[2])))
        result = {"type": "ok"}
    except Exception as e:  # noqa: BLE001 - the test checks the type
        result = {"type": type(e).__name__, "is_runtime_error": isinstance(e, RuntimeError), "msg": str(e)}
    result["elapsed"] = time.monotonic() - t0
    print("INIT " + json.dumps(result), flush=True)
elif mode == "allreduce":
    import disttorch as torch
    import disttorch.distributed as dist

    dist.init_process_group()
    rank, world = dist.get_rank(), dist.get_world_size()
    t = torch.tensor([float(rank + 1), float(rank * rank)], dtype=torch.float64)
    dist.all_reduce(t)
    listen, peers = socket_addresses()
    info = {"rank": rank, "world": world, "result": t.tolist(), "listen": listen, "peers": peers,
            "interface": os.environ.get("DISTTORCH_INTERFACE")}
    print("ALLREDUCE " + json.dumps(info), flush=True)
    dist.barrier()  # see tests/launcher/allreduce_worker.py: keeps the last collective's messages from being lost
    dist.destroy_process_group()
else:
    sys.exit(f"unknown mode {mode}")
