"""The jobs `disttorch doctor` runs to check this machine for real: a 2-rank all-reduce on a backend, and a
parameter-server push/pull. Prints one line ``DOCTOR-OK <what>`` on success (rank 0 / the worker)."""
import sys


def allreduce() -> None:
    import disttorch
    import disttorch.distributed as dist

    dist.init_process_group()
    t = disttorch.ones(1000) * (dist.get_rank() + 1)
    dist.all_reduce(t)
    n = dist.get_world_size()
    expect = n * (n + 1) / 2
    if not bool((t == expect).all()):
        raise SystemExit(f"all_reduce gave {t[0].item()} instead of {expect}")
    if dist.get_rank() == 0:
        print(f"DOCTOR-OK all_reduce on {n} ranks over {dist.get_backend()}", flush=True)
    dist.destroy_process_group()


def ps() -> None:
    import disttorch
    from disttorch.distributed import ps

    ps.init()
    kv = ps.KVClient()
    kv.init("doctor", disttorch.zeros(4), rule="add")
    kv.push("doctor", disttorch.ones(4))
    got = kv.pull("doctor", min_version=1)
    if not bool((got == 1).all()):
        raise SystemExit(f"parameter server: pulled {got.tolist()} after pushing ones into zeros")
    print("DOCTOR-OK parameter-server push/pull", flush=True)
    kv.close()
    ps.shutdown()


if __name__ == "__main__":
    {"allreduce": allreduce, "ps": ps}[sys.argv[1]]()
