"""``DistributedOptimizer``: the optimizer runs on the servers; a worker pushes gradients and pulls parameters.

Parameters are split into shards by ``plan_shards`` (large tensors sliced, so servers carry balanced bytes);
every worker computes the same plan from the parameter shapes. Rank 0's initial values seed the servers and
every worker then pulls them, so workers need not share a seed.
"""
from __future__ import annotations

import functools
from typing import List, NamedTuple

import numpy as np

from ... import _internals
from ...optim.optimizer import Optimizer
from . import client as C
from .rules import _HP_TYPES

MODES = ("sync", "ssp", "async")
MIN_SLICE_BYTES = 64 << 10  # below this a tensor is never sliced: a message costs more than its bytes
_instances = 0  # optimizers made in this process: every worker makes them in the same order, so keys agree


class Shard(NamedTuple):
    """Elements ``[start, stop)`` of the flattened parameter ``param`` live on server ``server``."""
    param: int
    start: int
    stop: int
    server: int


def plan_shards(sizes: List[tuple], num_servers: int, min_slice_bytes: int = MIN_SLICE_BYTES) -> List[Shard]:
    """Place parameters on servers by bytes.

    Args:
        sizes: ``(numel, itemsize)`` of each parameter, in order.
        num_servers: how many servers there are.
        min_slice_bytes: slices are never smaller than this (except a tensor's last one).

    Returns:
        Shards ordered by (param, start). Each tensor is cut into slices of at most
        ``max(min_slice_bytes, total / (4 * num_servers))`` bytes, and slices go, largest first, to the server
        with the fewest bytes so far: no server carries more than the mean plus one slice.
    """
    total = sum(n * b for n, b in sizes)
    limit = max(int(min_slice_bytes), -(-total // (4 * max(1, num_servers))))
    pieces = []
    for i, (n, b) in enumerate(sizes):
        step = max(1, limit // max(1, b))
        starts = list(range(0, n, step)) or [0]
        for s in starts:
            pieces.append((i, s, min(n, s + step), b))
    load = [0] * num_servers
    placed = []
    for i, s, e, b in sorted(pieces, key=lambda p: (-(p[2] - p[1]) * p[3], p[0], p[1])):
        srv = min(range(num_servers), key=lambda k: (load[k], k))
        load[srv] += (e - s) * b
        placed.append(Shard(i, s, e, srv))
    return sorted(placed, key=lambda x: (x.param, x.start))


def _wire_hparams(group: dict) -> dict:
    out = {}
    for k, v in group.items():
        if k == "params" or k == "param_names":
            continue
        if isinstance(v, tuple):
            v = list(v)
        if isinstance(v, _HP_TYPES) or (isinstance(v, list) and all(isinstance(x, _HP_TYPES) for x in v)):
            out[k] = v
    return out


class DistributedOptimizer(Optimizer):
    """An optimizer whose update runs on the parameter servers, as ``ps.DistributedOptimizer``.

    Args:
        params: tensors or param-group dicts, as for any ``disttorch.optim`` optimizer.
        name: the update rule: a ``disttorch.optim`` name in lower case (``"sgd"``, ``"adam"``, ...).
        mode: ``"sync"`` (the servers average one gradient per worker per step), ``"ssp"`` (a worker runs at
            most ``staleness`` steps ahead of the slowest; 0 equals sync) or ``"async"`` (each push is applied as
            it arrives).
        staleness: the bound for ``"ssp"``.
        client: a ``KVClient`` (default: one for the job joined by ``ps.init()``).
        overlap: push each gradient from a post-accumulate-grad hook as soon as backward produces it, so
            communication overlaps the rest of backward. Then changes made to ``.grad`` between ``backward()``
            and ``step()`` (clipping) do not reach the servers, and gradients must not accumulate over several
            backward passes per step: pass ``overlap=False`` for either.
        min_slice_bytes: tensors are sliced across servers in pieces no smaller than this (see ``plan_shards``).
        **kwargs: the optimizer's keyword arguments (``lr=0.1, momentum=0.9``...).

    Example:
        >>> opt = ps.DistributedOptimizer(model.parameters(), "sgd", lr=0.1, mode="sync")
        >>> opt.zero_grad(); loss.backward(); opt.step()
    """

    def __init__(self, params, name: str = "sgd", mode: str = "sync", staleness: int = 0, client=None,
                 overlap: bool = True, min_slice_bytes: int = MIN_SLICE_BYTES, **kwargs) -> None:
        if mode not in MODES:
            raise ValueError(f"DistributedOptimizer: mode must be one of {MODES}, not {mode!r}")
        if mode != "ssp" and staleness:
            raise ValueError(f"DistributedOptimizer: staleness applies to mode='ssp' only (mode={mode!r})")
        if int(staleness) < 0:
            raise ValueError(f"DistributedOptimizer: staleness must be >= 0, not {staleness}")
        super().__init__(params, dict(kwargs))
        self.name, self.mode, self.staleness = name, mode, int(staleness)
        if client is None:
            job = C._require()
            if job.client is None:
                job.client = C.KVClient()
            client = job.client
        self.client = client
        self.rank = client.rank
        self.clock = 0
        self._params = [p for g in self.param_groups for p in g["params"]]
        self._group_of = [gi for gi, g in enumerate(self.param_groups) for _ in g["params"]]
        arrays = [C._array(p) for p in self._params]
        self.shards = plan_shards([(a.size, a.dtype.itemsize) for a in arrays], len(client.peers),
                                  min_slice_bytes)
        global _instances
        _instances += 1
        self._keys = []
        for sh in self.shards:
            key = f"dopt{_instances}:{sh.param}:{sh.start}"
            client.placement[key] = sh.server
            self._keys.append(key)
        self._sent = [_wire_hparams(g) for g in self.param_groups]
        if self.rank == 0:
            handles = [client.send("init", key, {"rule": name, "mode": mode, "s": self.staleness,
                                                 "hp": self._sent[self._group_of[sh.param]]},
                                   [arrays[sh.param].reshape(-1)[sh.start:sh.stop]])
                       for key, sh in zip(self._keys, self.shards)]
            for h in handles:
                client.wait(h)
        if C._job is not None and not C._job.rejoined:  # the others passed this barrier long ago
            C._job.barrier("ps-optimizer-init")
        versions = self._pull(0)
        if mode != "async":
            # a restarted worker goes on at the job's current step (0 in a fresh job); where a step is half
            # applied, from its start: shards that applied it already ignore the repeated push
            self.clock = min(versions, default=0)
        self.overlap = bool(overlap)
        self._by_param: dict = {}
        for j, sh in enumerate(self.shards):
            self._by_param.setdefault(sh.param, []).append(j)
        self._inflight: dict = {}  # shard index -> handle of this step's pushpull
        self._pushed: set = set()  # params pushed this step
        self._hp_sent = False
        if self.overlap:
            for i, p in enumerate(self._params):
                if p.requires_grad:
                    p.register_post_accumulate_grad_hook(functools.partial(self._on_grad, i))

    # ---- the data path --------------------------------------------------------------------------------------
    def _write(self, replies) -> None:
        for sh, (_, arrays) in zip(self.shards, replies):
            p = self._params[sh.param]
            data = _internals.array(p)
            if data.flags.c_contiguous:
                data.reshape(-1)[sh.start:sh.stop] = _to_module(arrays[0], data)
            else:  # a non-contiguous parameter: assemble, then copy in
                full = np.array(C._array(p)).reshape(-1)
                full[sh.start:sh.stop] = arrays[0]
                data[...] = _to_module(full.reshape(data.shape), data)
            _internals.bump_version(p)  # an in-place write, as an optimizer's step

    def _pull(self, min_version: int) -> list:
        handles = [self.client.send("pull", key, {"min": min_version}) for key in self._keys]
        replies = [self.client.wait(h) for h in handles]
        self._write(replies)
        return [h.get("ver", 0) for h, _ in replies]

    def _send_hparams(self) -> None:
        for gi, g in enumerate(self.param_groups):
            now = _wire_hparams(g)
            diff = {k: v for k, v in now.items() if self._sent[gi].get(k) != v}
            if not diff:
                continue
            handles = [self.client.send("hp", key, {"hp": diff})
                       for key, sh in zip(self._keys, self.shards) if self._group_of[sh.param] == gi]
            for h in handles:
                self.client.wait(h)
            self._sent[gi] = now

    def _target(self) -> int:
        """How many applied steps a pull after pushing clock ``self.clock`` waits for."""
        if self.mode == "sync":
            return self.clock + 1
        if self.mode == "ssp":
            return max(0, self.clock + 1 - self.staleness)
        return 0

    def _on_grad(self, i: int, param) -> None:
        if i in self._pushed:
            raise RuntimeError(f"ps.DistributedOptimizer(overlap=True): the gradient of parameter {i} "
                               f"(shape {list(param.shape)}) was produced twice before step(): its first value is "
                               f"already pushed. Accumulating gradients over several backward passes needs "
                               f"overlap=False")
        self._push_param(i)

    def _push_param(self, i: int) -> None:
        if not self._hp_sent:  # param_groups changes (schedulers) reach the servers before this step's pushes
            self._send_hparams()
            self._hp_sent = True
        p = self._params[i]
        g = (np.ascontiguousarray(C._array(p.grad)).reshape(-1) if p.grad is not None
             else np.zeros(p.numel(), C._array(p).dtype))
        fields = {"c": self.clock, "w": self.rank, "min": self._target()}
        for j in self._by_param[i]:
            sh = self.shards[j]
            self._inflight[j] = self.client.send("pushpull", self._keys[j], fields, [g[sh.start:sh.stop]])
        self._pushed.add(i)

    def step(self, closure=None):
        """Push the gradients not pushed yet during backward (zeros where a parameter has none), wait for every
        reply and write the updated parameters."""
        loss = self._closure_loss(closure) if closure is not None else None
        try:
            for i in range(len(self._params)):
                if i not in self._pushed:
                    self._push_param(i)
            replies = [self.client.wait(self._inflight[j]) for j in range(len(self.shards))]
        finally:
            self._inflight, self._pushed, self._hp_sent = {}, set(), False
        self.clock += 1
        self._write(replies)
        return loss

    def synchronize(self) -> None:
        """Wait until this worker's pushes are applied and pull the latest parameters."""
        self._pull(self.clock if self.mode != "async" else 0)

    # ---- checkpoints ----------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """PyTorch's optimizer state dict, the per-parameter state gathered from the servers' shards."""
        handles = [self.client.send("state", key) for key in self._keys]
        replies = [self.client.wait(h) for h in handles]
        import disttorch

        self.state.clear()
        by_param: dict = {}
        for sh, (h, arrays) in zip(self.shards, replies):
            by_param.setdefault(sh.param, []).append((sh, dict(zip(h["names"], arrays[1:]))))
        for i, parts in by_param.items():
            p, st = self._params[i], {}
            for name in parts[0][1]:
                vals = [d[name] for _, d in parts]
                if name != "step" and vals[0].size == parts[0][0].stop - parts[0][0].start:
                    st[name] = disttorch.from_numpy(np.concatenate([v.reshape(-1) for v in vals]).reshape(
                        tuple(p.shape)))
                else:  # a scalar such as Adam's step: the same on every slice
                    st[name] = disttorch.from_numpy(np.array(vals[0]))
            if st:
                self.state[p] = st
        return super().state_dict()

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore a ``state_dict()``: hyperparameters and per-parameter state go to the servers' shards."""
        super().load_state_dict(state_dict)
        self._send_hparams()
        handles = []
        for key, sh in zip(self._keys, self.shards):
            p = self._params[sh.param]
            st = self.state.get(p, {})
            names, arrays = [], [C._array(p).reshape(-1)[sh.start:sh.stop]]
            for name, v in st.items():
                a = C._array(v)
                names.append(name)
                sliced = name != "step" and a.shape == tuple(p.shape)
                arrays.append(np.ascontiguousarray(a).reshape(-1)[sh.start:sh.stop] if sliced else a)
            handles.append(self.client.send("load", key, {"names": names}, arrays))
        for h in handles:
            self.client.wait(h)


def _to_module(arr: np.ndarray, like):
    if like.__class__ is np.ndarray:
        return arr
    import cupy  # a CUDA parameter: the pulled values go back to its device

    return cupy.asarray(arr)
