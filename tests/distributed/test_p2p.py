"""Point-to-point ordering on the zmq backend: a receive posted first must not block later sends or collectives;
a tensor above the message limit arrives exactly, in pieces."""
import pathlib
import signal
import subprocess
import sys

import pytest

WORKER = pathlib.Path(__file__).with_name("p2p_worker.py")


@pytest.mark.timeout(90)
@pytest.mark.parametrize("n,limit", [(2, str(128 << 10)), (3, None)])
def test_irecv_before_isend_and_pending_receives(n, limit):
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith(("DISTTORCH_", "PET_"))}
    env["DISTTORCH_COLLECTIVE_TIMEOUT"] = "20"
    if limit:  # the 1.2 MB tensor then goes as 10 messages under ZeroMQ's frame limit
        env["DISTTORCH_MAX_MESSAGE_BYTES"] = limit
    p = subprocess.Popen([sys.executable, "-m", "disttorch.launcher.cli", "launch", "--nproc-per-node", str(n),
                          "--backend", "zmq", str(WORKER)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, env=env)
    try:
        out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:  # the launcher stops its own workers on SIGTERM
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
    assert p.returncode == 0, f"{out}\n{err}"
    assert sorted(line.split()[-1] for line in out.splitlines() if "] ok " in line) == [str(r) for r in range(n)]
