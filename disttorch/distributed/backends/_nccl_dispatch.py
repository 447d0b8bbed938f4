"""``DeviceDispatchGroup``: one group over two backends, CPU tensors to one and CUDA tensors to nccl.

This is what ``init_process_group(backend=None)`` builds where CUDA and NCCL are usable, and what
``backend="cpu:gloo,cuda:nccl"`` builds anywhere, as PyTorch does: each call goes to the backend of its
arrays' device. The CPU backend is created at once; the nccl one on the first CUDA collective (every rank
reaches that collective, so the unique-id exchange it starts is matched), so a job that only ever moves CPU
tensors never touches NCCL, and one on a machine without a GPU fails only when it asks for CUDA collectives.
Fingerprint checks, barriers and object collectives run on the CPU backend.
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from ..process_group import ProcessGroup, ReduceOp, Work

__all__ = ["DeviceDispatchGroup"]


class DeviceDispatchGroup(ProcessGroup):
    """A group whose CPU arrays go to ``cpu`` (a ProcessGroup) and whose CUDA arrays go to a lazily created
    nccl group (``make_cuda()`` builds it)."""

    name = "dispatch"

    def __init__(self, cpu: ProcessGroup, make_cuda, store, key: str, timeout: float) -> None:
        super().__init__(cpu.rank, cpu.size, cpu.global_ranks)
        self._cpu, self._make_cuda, self._cuda = cpu, make_cuda, None
        self._store, self._key, self._timeout = store, key, float(timeout)
        self._subgroups = 0

    @classmethod
    def create(cls, store, rank: int, world_size: int, timeout: float, options: dict) -> "DeviceDispatchGroup":
        """Options: ``cpu_backend`` (a ProcessGroup class, required); the rest goes to both backends."""
        from . import nccl as N

        options = dict(options)
        cpu_cls = options.pop("cpu_backend")
        cpu = cpu_cls.create(store, rank, world_size, timeout, options)

        def make_cuda():
            return N.NCCLProcessGroup.create(store, rank, world_size, timeout, options)
        return cls(cpu, make_cuda, store, "world", timeout)

    def _pick(self, a) -> ProcessGroup:
        if a.__class__ is np.ndarray:
            return self._cpu
        if self._cuda is None:
            self._cuda = self._make_cuda()
        return self._cuda

    # every method goes to the backend of its arrays' device; barrier and (through allreduce/allgather of
    # NumPy digests) the fingerprint check run on the CPU one
    def allreduce(self, arrays: list, op: ReduceOp) -> Work:
        return self._pick(arrays[0]).allreduce(arrays, op)

    def broadcast(self, arrays: list, src: int) -> Work:
        return self._pick(arrays[0]).broadcast(arrays, src)

    def reduce(self, array, dst: int, op: ReduceOp) -> Work:
        return self._pick(array).reduce(array, dst, op)

    def allgather(self, outputs: list, array) -> Work:
        return self._pick(array).allgather(outputs, array)

    def reduce_scatter(self, output, inputs: list, op: ReduceOp) -> Work:
        return self._pick(output).reduce_scatter(output, inputs, op)

    def gather(self, outputs: Optional[list], array, dst: int) -> Work:
        return self._pick(array).gather(outputs, array, dst)

    def scatter(self, output, inputs: Optional[list], src: int) -> Work:
        return self._pick(output).scatter(output, inputs, src)

    def alltoall(self, outputs: list, inputs: list) -> Work:
        return self._pick(inputs[0]).alltoall(outputs, inputs)

    def barrier(self) -> Work:
        return self._cpu.barrier()

    def send(self, array, dst: int, tag: int = 0) -> Work:
        return self._pick(array).send(array, dst, tag)

    def recv(self, array, src: Optional[int], tag: int = 0) -> Work:
        return self._pick(array).recv(array, src, tag)

    def new_subgroup(self, ranks: Sequence[int]) -> Optional["DeviceDispatchGroup"]:
        """The CPU subgroup now; the nccl one, among the members only, on their first CUDA collective."""
        from . import nccl as N

        ranks = [int(r) for r in ranks]
        self._subgroups += 1
        key = f"{self._key}/sub{self._subgroups}"
        sub = self._cpu.new_subgroup(ranks)
        if sub is None:
            return None
        store, timeout, mine = self._store, self._timeout, ranks.index(self.rank)
        gr = [self.global_ranks[r] for r in ranks]

        def make_cuda():
            return N.subgroup(None, store, f"nccl/{key}", mine, len(ranks), gr, timeout)
        return DeviceDispatchGroup(sub, make_cuda, store, key, timeout)

    def shutdown(self) -> None:
        if self._cuda is not None:
            self._cuda.shutdown()
        self._cpu.shutdown()
