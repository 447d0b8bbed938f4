"""End-to-end worker: rendezvous from the launcher's environment, one all_reduce with rank-dependent data."""
import disttorch as torch
import disttorch.distributed as dist

dist.init_process_group()  # backend=None: DISTTORCH_BACKEND from the launcher
rank, world = dist.get_rank(), dist.get_world_size()
t = torch.tensor([float(rank + 1), 10.0 * rank])
dist.all_reduce(t)
print(f"ALLREDUCE backend={dist.get_backend()} rank={rank} world={world} result={t.tolist()}")
# The barrier works around a zmq-backend bug (reported to the coordinator): a rank that exits right after its
# last collective can drop that collective's final messages to its ring neighbour, which then waits forever.
dist.barrier()
dist.destroy_process_group()
