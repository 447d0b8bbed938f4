"""DistributedDataParallel's constructor checks, as PyTorch 2.13 makes them (messages recorded from PyTorch),
without processes: a fake one-rank ``disttorch.distributed``."""
from __future__ import annotations

import warnings

import pytest

import disttorch as torch
import disttorch.nn.parallel.distributed as ddp_mod
from disttorch.distributed.process_group import Work
from disttorch.nn.parallel import DistributedDataParallel as DDP

CPU_IDS = ("DistributedDataParallel device_ids and output_device arguments only work with single-device/multiple-"
           "device GPU modules or CPU modules, but got device_ids {}, output_device {}, and module parameters "
           "{{device(type='cpu')}}.")
BROADCAST_DEPRECATED = ("`broadcast_buffers` is deprecated. Use `forward_sync_buffers` instead. IMPORTANT: unlike "
                        "`broadcast_buffers=False`, `forward_sync_buffers=False` still syncs buffers at init. If you "
                        "rely on buffers NOT being synced at init (e.g. rank-local buffers), keep using "
                        "`broadcast_buffers=False` until `init_sync_buffers` is available.")


class OneRank:
    """The world of one rank: collectives are no-ops; records broadcasts."""

    def __init__(self, initialized: bool = True, world: int = 1) -> None:
        self.initialized, self.world, self.broadcasts = initialized, world, []

    def is_initialized(self):
        return self.initialized

    def get_rank(self, group=None):
        return 0

    def get_world_size(self, group=None):
        return self.world

    def broadcast(self, t, src=0, group=None, async_op=False):
        self.broadcasts.append(tuple(t.shape))
        return Work.completed() if async_op else None

    def all_reduce(self, t, op=None, group=None, async_op=False):
        return Work.completed() if async_op else None


@pytest.fixture
def dist(monkeypatch):
    d = OneRank()
    monkeypatch.setattr(ddp_mod, "_dist", lambda: d)
    return d


def _no_warnings(fn):
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        out = fn()
    assert [str(w.message) for w in rec] == []
    return out


def test_cpu_module_with_device_ids_raises(dist):
    lin = torch.nn.Linear(2, 2)
    for ids, out_dev in (([0], None), ([0], 0), (["cpu"], None)):
        with pytest.raises(ValueError) as e:
            DDP(lin, device_ids=ids, output_device=out_dev)
        assert str(e.value) == CPU_IDS.format(ids, out_dev)
    for ids in (None, []):  # accepted, as in PyTorch
        assert _no_warnings(lambda: DDP(lin, device_ids=ids)).device_ids is None
    assert DDP(lin, output_device=0).output_device is None  # a falsy output_device alone passes too
    with pytest.raises(ValueError, match="^device_ids can only be None or contain a single element.$"):
        DDP(lin, device_ids=[0, 1])


def test_other_constructor_checks(dist):
    lin = torch.nn.Linear(2, 2)
    msg = "^delay_all_reduce_named_params and param_to_hook_all_reduce need to be set at the same time.$"
    with pytest.raises(ValueError, match=msg):
        DDP(lin, delay_all_reduce_named_params=[])
    with pytest.raises(ValueError, match=msg):
        DDP(lin, param_to_hook_all_reduce=lin.weight)
    with pytest.raises(RuntimeError, match="^Cannot specify both process_group and device_mesh arguments.$"):
        DDP(lin, process_group=object(), device_mesh=object())
    with pytest.raises(RuntimeError, match="doesn't have any parameter that requires a gradient"):
        DDP(torch.nn.Linear(2, 2).requires_grad_(False))
    with pytest.warns(FutureWarning, match="^The `check_reduction` argument in `DistributedDataParallel` module is "
                                           "deprecated. Please avoid using it.$"):
        DDP(lin, check_reduction=True)
    dist.initialized = False
    with pytest.raises(ValueError, match="^Default process group has not been initialized, please make sure to call "
                                         "init_process_group.$"):
        DDP(lin)


def test_buffer_sync_arguments(dist):
    dist.world = 2
    net = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.BatchNorm1d(3))
    n_params = 3 * 3 + 3 + 3 + 3  # Linear weight and bias, BatchNorm weight and bias: one float32 broadcast
    with pytest.warns(FutureWarning) as rec:
        model = DDP(net, broadcast_buffers=False)
    assert str(rec[0].message) == BROADCAST_DEPRECATED
    assert model.forward_sync_buffers is False and dist.broadcasts == [(n_params,)]  # parameters only at init
    dist.broadcasts.clear()
    model = _no_warnings(lambda: DDP(net, forward_sync_buffers=False))
    # buffers too: running mean and var join the float32 broadcast, num_batches_tracked (int64) has its own
    assert model.forward_sync_buffers is False and dist.broadcasts == [(n_params + 6,), (1,)]
    with pytest.warns(FutureWarning, match="Both `broadcast_buffers` and `forward_sync_buffers` were specified"):
        assert DDP(net, broadcast_buffers=False, forward_sync_buffers=True).forward_sync_buffers is True
    assert _no_warnings(lambda: DDP(net)).forward_sync_buffers is True


def test_bucket_caps(dist):
    net = torch.nn.Sequential(*[torch.nn.Linear(64, 64) for _ in range(4)])  # 4 x (16 KiB + 256 B)
    assert len(DDP(net, bucket_cap_mb=0)._buckets) == 8  # PyTorch accepts 0: one tensor per bucket
    sizes = [len(b.params) for b in DDP(net, bucket_cap_mb_list=[0.001, 1])._buckets]
    assert sizes == [2, 6]  # first bucket: the last bias (256 B < 1 KB) and weight; then the rest (< 1 MiB)
    assert DDP(net, bucket_cap_mb_list=[0.001, 1]).bucket_bytes_cap == 1024 * 1024
