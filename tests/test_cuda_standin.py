"""disttorch.cuda's CUDA path wired to a stand-in ``cupy`` (no GPU here): each call reaches the CuPy function
it should, with the right device/stream/event. The stand-in only checks the wiring, not CuPy itself."""
import sys
import types

import pytest

import disttorch.cuda as cuda
import disttorch.cuda.memory as cmem


class _Obj:
    def __init__(self, **kw):
        self.__dict__.update(kw)


def _make_cupy(log):
    rt = types.SimpleNamespace()
    state = {"device": 0}
    rt.getDeviceCount = lambda: 2
    rt.getDevice = lambda: state["device"]
    rt.setDevice = lambda i: (log.append(("setDevice", i)), state.__setitem__("device", i))
    rt.deviceSynchronize = lambda: log.append(("sync", state["device"]))
    rt.getDeviceProperties = lambda i: {"name": b"Fake GPU %d" % i, "major": 9, "minor": 0,
                                        "totalGlobalMem": 80 << 30, "multiProcessorCount": 132}

    class Device:
        def __init__(self, i=None):
            self.i = state["device"] if i is None else i

        def __enter__(self):
            self.prev = state["device"]
            state["device"] = self.i

        def __exit__(self, *exc):
            state["device"] = self.prev

    class Stream:
        def __init__(self, priority=0):
            self.ptr, self.done, self.priority = id(self), True, priority

        def wait_event(self, ev):
            log.append(("wait", self.ptr, ev))

        def synchronize(self):
            log.append(("stream_sync", self.ptr))

        def __enter__(self):
            log.append(("enter", self.ptr))

        def __exit__(self, *exc):
            log.append(("exit", self.ptr))

    Stream.null = Stream()

    class Event:
        def __init__(self, block=False, disable_timing=False, interprocess=False):
            self.timing, self.done, self.stream = not disable_timing, False, "unrecorded"

        def record(self, stream=None):
            self.stream = stream

        def synchronize(self):
            self.done = True

    pool = _Obj(used=0, total=0)
    pool.used_bytes = lambda: pool.used
    pool.total_bytes = lambda: pool.total
    pool.free_all_blocks = lambda: setattr(pool, "total", pool.used)

    class MemoryHook:
        def __enter__(self):
            log.append(("hook",))

    mod = types.ModuleType("cupy")
    mod.cuda = types.SimpleNamespace(runtime=rt, Device=Device, Stream=Stream, Event=Event,
                                     get_current_stream=lambda: Stream.null,
                                     get_elapsed_time=lambda a, b: 2.5 if a.timing and b.timing else None)
    mod.get_default_memory_pool = lambda: pool
    mod.random = types.SimpleNamespace(seed=lambda s: log.append(("seed", s)))
    hook_mod = types.ModuleType("cupy.cuda.memory_hook")
    hook_mod.MemoryHook = MemoryHook
    mod.cuda.memory_hook = hook_mod
    return mod, hook_mod, pool, state


@pytest.fixture
def fake(monkeypatch):
    log = []
    mod, hook_mod, pool, state = _make_cupy(log)
    monkeypatch.setattr(cuda, "_probed", False)
    monkeypatch.setattr(cuda, "_cupy_module", None)
    monkeypatch.setattr(cuda, "_QUEUED", [])
    monkeypatch.setattr(cuda, "_reason", None)
    monkeypatch.setattr(cmem, "_hook", None)
    monkeypatch.setattr(cmem, "_PEAK", {"allocated": 0, "reserved": 0})
    monkeypatch.setitem(sys.modules, "cupy", mod)
    monkeypatch.setitem(sys.modules, "cupy.cuda", mod.cuda)
    monkeypatch.setitem(sys.modules, "cupy.cuda.memory_hook", hook_mod)
    return types.SimpleNamespace(log=log, pool=pool, state=state, mod=mod)


def test_device_queries_and_context(fake):
    assert cuda.is_available() and cuda.device_count() == 2 and cuda.current_device() == 0
    assert cuda.get_device_name(1) == "Fake GPU 1" and cuda.get_device_capability("cuda:0") == (9, 0)
    assert cuda.get_device_properties(0).total_memory == 80 << 30
    with cuda.device(1):
        assert cuda.current_device() == 1
    assert cuda.current_device() == 0
    cuda.set_device("cuda:1")
    assert fake.state["device"] == 1
    cuda.synchronize(0)
    assert ("sync", 0) in fake.log and fake.state["device"] == 1
    cuda.manual_seed(3)
    assert cuda.initial_seed() == 3 and ("seed", 3) in fake.log


def test_streams_and_events(fake):
    s = cuda.Stream()
    with cuda.stream(s) as got:
        assert got is s
    assert fake.log[-2:] == [("enter", s.cuda_stream), ("exit", s.cuda_stream)]
    start, end = cuda.Event(enable_timing=True), cuda.Event(enable_timing=True)
    start.record(s)
    end.record()
    assert start.cupy_event.stream is s.cupy_stream and end.cupy_event.stream is None
    assert start.elapsed_time(end) == 2.5 and not end.query()
    end.synchronize()
    assert end.query() and s.query()
    s.wait_event(start)
    assert fake.log[-1] == ("wait", s.cuda_stream, start.cupy_event)
    other = cuda.Stream(priority=-1)
    s.wait_stream(other)
    assert fake.log[-1][:2] == ("wait", s.cuda_stream) and fake.log[-1][2].stream is other.cupy_stream
    assert cuda.current_stream() == cuda.default_stream()


def test_memory_statistics_follow_the_pool(fake):
    fake.pool.used, fake.pool.total = 100, 512
    assert cuda.memory_allocated() == 100 and cuda.memory_reserved() == 512
    fake.pool.used, fake.pool.total = 40, 512
    assert cuda.max_memory_allocated() == 100 and cuda.memory_allocated() == 40
    cuda.reset_peak_memory_stats()
    assert cuda.max_memory_allocated() == 40
    cuda.empty_cache()
    assert cuda.memory_reserved() == 40 and cuda.max_memory_reserved() == 512
    stats = cuda.memory_stats()
    assert stats["allocated_bytes.all.current"] == 40 and stats["reserved_bytes.all.current"] == 40
    assert fake.log.count(("hook",)) == 1
