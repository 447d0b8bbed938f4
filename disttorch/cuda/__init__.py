"""``disttorch.cuda``: device queries, seeds, streams, events and memory statistics, as ``torch.cuda``.

CUDA tensors run on CuPy. Without CuPy, a driver or a device, every name behaves as in PyTorch's CPU build: the
queries answer (``is_available()`` False, ``device_count()`` 0, memory counters 0, seeding a no-op) and what
needs a device raises :class:`CudaUnavailableError` (an AssertionError, as PyTorch's "Torch not compiled with
CUDA enabled", and a RuntimeError) whose message says why CUDA is unavailable here and what fixes it.
"""
from __future__ import annotations

from typing import Callable

_SEED_MASK = (1 << 64) - 1

# CUDA is probed (CuPy imported, devices counted) once, on first use. Calls made before that (manual_seed) wait
# in _QUEUED and run right after a successful probe; on a machine without CUDA they are dropped, as PyTorch's.
_probed = False
_cupy_module = None
_reason: str | None = None
_QUEUED: list = []


def _probe():
    """``(cupy, None)`` when CUDA is usable here, else ``(None, reason)``: why not, and the fix."""
    try:
        import cupy
    except ImportError as exc:
        return None, (f"CuPy is not installed ({exc}); install disttorch[cuda12x] (or the cupy-cuda11x/12x package "
                      "matching your CUDA driver) on a machine with an NVIDIA GPU")
    try:
        count = int(cupy.cuda.runtime.getDeviceCount())
    except Exception as exc:  # noqa: BLE001 - CUDARuntimeError and friends: the driver cannot be used
        return None, (f"CuPy is installed but the CUDA driver could not be used ({type(exc).__name__}: {exc}); "
                      "install or update the NVIDIA driver (check that `nvidia-smi` works)")
    if count <= 0:
        return None, ("CuPy and the CUDA driver are installed but no CUDA device is visible; check `nvidia-smi` "
                      "and that CUDA_VISIBLE_DEVICES does not hide every GPU")
    return cupy, None


def _cupy():
    """The cupy module when CUDA is usable here, else None (probed once)."""
    global _probed, _cupy_module, _reason
    if not _probed:
        _probed = True
        _cupy_module, _reason = _probe()
        queued, _QUEUED[:] = list(_QUEUED), []
        if _cupy_module is not None:
            for fn in queued:
                fn(_cupy_module)
    return _cupy_module


class CudaUnavailableError(AssertionError, RuntimeError):
    """Raised where PyTorch's CPU build raises ``AssertionError("Torch not compiled with CUDA enabled")``.

    It is both an AssertionError (PyTorch's type) and a RuntimeError (what disttorch raised before), and its
    message says why CUDA is unavailable here and how to fix it.
    """


def _unavailable(what: str) -> CudaUnavailableError:
    """The error for ``what`` (an op or device) needing CUDA where there is none, naming the reason."""
    _cupy()
    reason = _reason if _reason is not None else _probe()[1]  # probed state reset by a test: probe again
    return CudaUnavailableError(f"{what}: CUDA is not available: {reason}")


def _require(what: str):
    """The cupy module, or :class:`CudaUnavailableError` naming why CUDA is unavailable."""
    cp = _cupy()
    if cp is None:
        raise _unavailable(what)
    return cp


def _lazy_call(fn: Callable) -> None:
    """Run ``fn(cupy)`` now if CUDA is initialised, else when it is (never on a machine without CUDA)."""
    if _probed:
        if _cupy_module is not None:
            fn(_cupy_module)
    else:
        _QUEUED.append(fn)


def is_initialized() -> bool:
    """Whether CUDA has been initialised in this process (as ``torch.cuda.is_initialized``)."""
    return _probed and _cupy_module is not None


def init() -> None:
    """Initialise CUDA, as ``torch.cuda.init`` (raises :class:`CudaUnavailableError` without CUDA)."""
    _require("torch.cuda.init")


def is_available() -> bool:
    """True when CuPy is installed and at least one NVIDIA GPU is visible."""
    return _cupy() is not None


def device_count() -> int:
    """The number of visible GPUs (0 without CUDA)."""
    cp = _cupy()
    return 0 if cp is None else int(cp.cuda.runtime.getDeviceCount())


def current_device() -> int:
    """The index of the current GPU."""
    return int(_require("current_device").cuda.runtime.getDevice())


def _device_index(device, optional: bool = True) -> int:
    """PyTorch's ``_get_device_index`` for CUDA: an int, ``'cuda:N'`` or ``device('cuda', N)``; None means current."""
    from .._device import device as _device_cls

    if isinstance(device, str):
        device = _device_cls(device)
    if isinstance(device, _device_cls):
        if device.type != "cuda":
            raise ValueError(f"Expected a cuda device, but got: {device}")
        device = device.index
    if device is None:
        if not optional:
            raise ValueError("Expected a cuda device with a specified index or an integer, but got: None")
        return current_device()
    return int(device)


def set_device(device) -> None:
    """Select the current GPU, as ``torch.cuda.set_device`` (a negative index is a no-op, as in PyTorch)."""
    idx = _device_index(device)
    if idx < 0:
        return
    _require(f"set_device({device})").cuda.runtime.setDevice(idx)


class device:
    """Context manager that makes ``device`` the current GPU, as ``torch.cuda.device``.

    A negative index or None is a no-op (PyTorch documents None as a no-op; its CPU build raises TypeError).
    """

    def __init__(self, device) -> None:
        self.idx = -1 if device is None else _device_index(device)
        self.prev_idx = -1

    def __enter__(self):
        if self.idx >= 0:
            cp = _require(f"torch.cuda.device({self.idx})")
            self.prev_idx = int(cp.cuda.runtime.getDevice())
            if self.prev_idx != self.idx:
                cp.cuda.runtime.setDevice(self.idx)
        return self

    def __exit__(self, *exc) -> bool:
        if self.idx >= 0 and self.prev_idx != self.idx:
            _cupy().cuda.runtime.setDevice(self.prev_idx)
        return False


def get_device_properties(device=None):
    """The properties of a GPU: CuPy's ``getDeviceProperties`` dict as an object (``name``, ``total_memory``,
    ``major``, ``minor``, ``multi_processor_count`` as in PyTorch, plus CuPy's own keys)."""
    import types

    cp = _require("get_device_properties")
    props = dict(cp.cuda.runtime.getDeviceProperties(_device_index(device)))
    name = props.get("name", b"")
    props["name"] = name.decode() if isinstance(name, bytes) else str(name)
    props["total_memory"] = int(props.get("totalGlobalMem", 0))
    props["multi_processor_count"] = int(props.get("multiProcessorCount", 0))
    return types.SimpleNamespace(**props)


def get_device_name(device=None) -> str:
    """The name of a GPU (e.g. ``'NVIDIA H100 80GB HBM3'``)."""
    _require("get_device_name")
    return get_device_properties(device).name


def get_device_capability(device=None) -> tuple[int, int]:
    """The (major, minor) compute capability of a GPU."""
    _require("get_device_capability")
    props = get_device_properties(device)
    return int(props.major), int(props.minor)


def synchronize(device=None) -> None:
    """Wait for all work on a GPU to finish; a deferred device check that failed raises here (as a CUDA
    device-side assert), with the message the CPU path raises at once."""
    cp = _require("synchronize")
    with cp.cuda.Device(_device_index(device)):
        cp.cuda.runtime.deviceSynchronize()
    _checks.flush()  # as a CUDA device-side assert, a failed deferred check surfaces at the synchronisation


def manual_seed(seed: int) -> None:
    """Seed the random number generator of the current GPU, as ``torch.cuda.manual_seed``.

    It seeds the device's default generator (``default_generators[i]``, the one ``disttorch.rand(...,
    device="cuda")`` and the other samplers draw from on the device) and CuPy's ``cupy.random`` of that device.
    The call is lazy, as PyTorch's: before CUDA is initialised the seed is remembered and applied to the
    then-current device when CUDA first starts; on a machine without CUDA it is a no-op.

    Args:
        seed: the seed (an int in [-2**63, 2**64); negative values wrap around as in PyTorch).
    """
    seed = int(seed) & _SEED_MASK
    _INITIAL_SEED[0] = seed

    def apply(cp) -> None:
        from ..ops.random import seed_cuda_generators

        seed_cuda_generators(seed, int(cp.cuda.runtime.getDevice()))
        cp.random.seed(seed)

    _lazy_call(apply)


def manual_seed_all(seed: int) -> None:
    """Seed the random number generator of every GPU, as ``torch.cuda.manual_seed_all`` (lazy like
    :func:`manual_seed`: applied when CUDA initialises; a no-op on a machine without CUDA)."""
    from ..ops.random import seed_cuda_generators

    seed = int(seed) & _SEED_MASK
    _INITIAL_SEED[0] = seed
    seed_cuda_generators(seed)  # every device's default generator, now and those made later (no CUDA needed)

    def apply(cp) -> None:
        for i in range(int(cp.cuda.runtime.getDeviceCount())):
            with cp.cuda.Device(i):
                cp.random.seed(seed)

    _lazy_call(apply)


_INITIAL_SEED = [0]


def _random_seed() -> int:
    import os

    return int.from_bytes(os.urandom(8), "little")


def seed() -> None:
    """Seed the current GPU's generator with a random number (lazy; a no-op without CUDA)."""
    manual_seed(_random_seed())


def seed_all() -> None:
    """Seed every GPU's generator with one random number (lazy; a no-op without CUDA)."""
    manual_seed_all(_random_seed())


def initial_seed() -> int:
    """The seed of the current GPU's default generator (as ``torch.cuda.initial_seed``)."""
    cp = _require("initial_seed")
    from ..ops.random import cuda_default_generator

    return cuda_default_generator(int(cp.cuda.runtime.getDevice())).initial_seed()


def _default_generator(device="cuda"):
    from ..ops.random import cuda_default_generator

    _require("default generator")
    return cuda_default_generator(_device_index(device))


def get_rng_state(device="cuda"):
    """The state of a GPU's default generator: a 16-byte uint8 CPU tensor (seed, then Philox offset)."""
    return _default_generator(device).get_state()


def set_rng_state(new_state, device="cuda") -> None:
    """Restore a GPU's default generator from :func:`get_rng_state`."""
    _default_generator(device).set_state(new_state)


def get_rng_state_all() -> list:
    """The states of every GPU's default generator."""
    return [get_rng_state(i) for i in range(device_count())]


def set_rng_state_all(new_states) -> None:
    """Restore every GPU's default generator from :func:`get_rng_state_all`."""
    for i, st in enumerate(new_states):
        set_rng_state(st, i)


def __getattr__(name: str):
    if name == "default_generators":  # torch.cuda.default_generators: one per visible device
        from ..ops.random import cuda_default_generator

        return tuple(cuda_default_generator(i) for i in range(device_count()))
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def is_bf16_supported(including_emulation: bool = True) -> bool:
    """Whether bfloat16 is supported (False without CUDA, as in PyTorch's CPU build)."""
    return is_available()


from .memory import (  # noqa: E402,F401
    empty_cache, max_memory_allocated, max_memory_reserved, memory_allocated, memory_reserved, memory_stats,
    reset_peak_memory_stats)
from .streams import Event, Stream, current_stream, default_stream, stream  # noqa: E402,F401
from . import amp  # noqa: E402,F401 - torch.cuda.amp is an attribute of torch.cuda
from . import _checks  # noqa: E402 - pending device-side checks (flushed by synchronize and host transfers)
