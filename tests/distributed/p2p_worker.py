"""Worker for test_p2p.py: irecv posted before isend on every rank, receives pending across a collective, any-source,
and a tensor larger than one message (DISTTORCH_MAX_MESSAGE_BYTES) that travels in pieces."""
import disttorch as torch
import disttorch.distributed as dist
dist.init_process_group("zmq")
r, n = dist.get_rank(), dist.get_world_size()
peer = (r + 1) % n
prev = (r - 1) % n
# irecv posted before isend on every rank: must not deadlock
buf = torch.zeros(4)
rq = dist.irecv(buf, src=prev)
sq = dist.isend(torch.full((4,), float(r)), dst=peer)
rq.wait()
sq.wait()
assert buf.tolist() == [float(prev)] * 4, buf
# a collective while a receive is pending
buf2 = torch.zeros(2)
rq = dist.irecv(buf2, src=prev, tag=7)
t = torch.ones(3) * (r + 1)
dist.all_reduce(t)
dist.send(torch.full((2,), 10.0 + r), dst=peer, tag=7)
rq.wait()
assert t.tolist() == [n * (n + 1) / 2] * 3 and buf2.tolist() == [10.0 + prev] * 2
# a tensor of ~1.2 MB: several messages when the test lowers the message limit, reassembled exactly
big = torch.zeros(300_001)
rq = dist.irecv(big, src=prev, tag=11)
sq = dist.isend(torch.arange(300_001, dtype=torch.float32) * (r + 1), dst=peer, tag=11)
rq.wait()
sq.wait()
assert torch.equal(big, torch.arange(300_001, dtype=torch.float32) * (prev + 1)), big[:4]
# any-source recv
if r == 0:
    got = torch.zeros(1)
    srcs = set()
    for _ in range(n - 1):
        srcs.add(dist.recv(got))
    assert srcs == set(range(1, n)), srcs
else:
    dist.send(torch.ones(1) * r, dst=0)
dist.barrier()
print("ok", r, flush=True)
dist.destroy_process_group()
