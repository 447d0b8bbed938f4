"""Generators and seeding behind ``disttorch.random`` and the samplers of ``random.py``.

A CPU :class:`Generator` wraps NumPy's PCG64; a CUDA one holds a Philox (seed, offset) pair that
``random_device.py`` draws from on the device. This module also keeps the default generators (one CPU, one per
CUDA device), ``manual_seed``/``seed``/``fork_rng``, and the host samplers that map a NumPy generator's output to
disttorch's dtypes (``_uniform01``, ``_normal01``, ``_integers``). See ``random.py``'s docstring for how the streams
relate to PyTorch's.
"""
from __future__ import annotations

import contextlib
import math
import os

import numpy as np

from .. import _dtype as D
from .. import _tensor as T
from .._device import device as _device_cls
from .._device import to_host
from .inplace import _type_name
from .random_device import DeviceSampler

__all__ = ["Generator", "default_generator", "manual_seed", "seed", "initial_seed", "get_rng_state",
           "set_rng_state", "fork_rng", "cuda_default_generator", "seed_cuda_generators"]

_DEFAULT_SEED = 67280421310721  # PyTorch's seed for a new Generator(); the default generator gets a random one
_U64 = 0xFFFF_FFFF_FFFF_FFFF
_STATE_BYTES = 56
_F32, _F64 = np.dtype(np.float32), np.dtype(np.float64)


def _seed_value(seed) -> int:
    try:
        s = int(seed)
    except (TypeError, ValueError):
        raise TypeError(f"manual_seed: expected an int seed, got {type(seed).__name__}") from None
    if not -0x8000_0000_0000_0000 <= s <= _U64:
        raise RuntimeError("Overflow when unpacking long long")
    return _U64 + s if s < 0 else s  # PyTorch's remapping of negative seeds


class Generator:
    """A random number generator with its own state, as ``torch.Generator``.

    Example:
        >>> g = disttorch.Generator().manual_seed(42)
        >>> disttorch.rand(2, generator=g).shape
        disttorch.Size([2])
    """

    def __init__(self, device="cpu") -> None:
        self.device = device if isinstance(device, _device_cls) else _device_cls(device)
        if self.device.type not in ("cpu", "cuda"):
            raise RuntimeError(f"Generator: device type {self.device.type!r} has no generator (cpu or cuda)")
        self._seed = _DEFAULT_SEED
        self._offset = 0  # CUDA: the Philox offset of the next draw
        self._rng = np.random.Generator(np.random.PCG64(_DEFAULT_SEED)) if self.device.type == "cpu" else None

    def manual_seed(self, seed) -> "Generator":
        """Reset the state from ``seed`` (an int; negative values are remapped as in PyTorch); returns self."""
        self._seed = _seed_value(seed)
        if self._rng is None:
            self._offset = 0
        else:
            self._rng = np.random.Generator(np.random.PCG64(self._seed))
        return self

    def _philox_next(self) -> tuple[int, int]:
        """CUDA: the (seed, offset) of one draw; the offset advances, so no two draws share counters."""
        off = self._offset
        self._offset = (off + 1) & _U64
        return self._seed, off

    def seed(self) -> int:
        """Seed from OS entropy; returns the new (64-bit) seed."""
        s = int.from_bytes(os.urandom(8), "little")
        self.manual_seed(s)
        return s

    def initial_seed(self) -> int:
        """The seed this generator was last seeded with."""
        return self._seed

    def get_state(self) -> "T.Tensor":
        """The full state as a uint8 tensor (restore it with ``set_state``): 56 bytes on the CPU, 16 on CUDA
        (seed and Philox offset, as PyTorch's CUDA generator)."""
        if self._rng is None:
            return T._wrap(np.frombuffer(self._seed.to_bytes(8, "little") + self._offset.to_bytes(8, "little"),
                                         dtype=np.uint8).copy())
        st = self._rng.bit_generator.state
        buf = (st["state"]["state"].to_bytes(16, "little") + st["state"]["inc"].to_bytes(16, "little")
               + int(st["has_uint32"]).to_bytes(8, "little") + int(st["uinteger"]).to_bytes(8, "little")
               + self._seed.to_bytes(8, "little"))
        return T._wrap(np.frombuffer(buf, dtype=np.uint8).copy())

    def set_state(self, new_state) -> "Generator":
        """Restore a state returned by ``get_state``; returns self."""
        if not isinstance(new_state, T.Tensor) or new_state.dtype is not D.uint8:
            raise TypeError("RNG state must be a torch.ByteTensor")
        raw = to_host(new_state._data).reshape(-1)
        if self._rng is None:
            if raw.size != 16:
                raise RuntimeError(f"set_state: expected a CUDA RNG state of 16 bytes (seed and offset, from a CUDA "
                                   f"Generator.get_state), got {raw.size}")
            b = raw.tobytes()
            self._seed, self._offset = int.from_bytes(b[:8], "little"), int.from_bytes(b[8:], "little")
            return self
        if raw.size != _STATE_BYTES:
            raise RuntimeError(f"set_state: expected an RNG state of {_STATE_BYTES} bytes (from Generator.get_state), "
                               f"got {raw.size}")
        b = raw.tobytes()
        rng = np.random.Generator(np.random.PCG64())
        rng.bit_generator.state = {
            "bit_generator": "PCG64",
            "state": {"state": int.from_bytes(b[0:16], "little"), "inc": int.from_bytes(b[16:32], "little")},
            "has_uint32": int.from_bytes(b[32:40], "little"), "uinteger": int.from_bytes(b[40:48], "little")}
        self._rng = rng
        self._seed = int.from_bytes(b[48:56], "little")
        return self

    def __repr__(self) -> str:
        return f"<disttorch.Generator object at {hex(id(self))}>"

    def __reduce__(self):
        return (_rebuild_generator, (str(self.device), self.get_state()._data.tobytes()))


def _rebuild_generator(device: str, state: bytes) -> Generator:
    return Generator(device).set_state(T._wrap(np.frombuffer(state, dtype=np.uint8).copy()))


default_generator = Generator()
# As in PyTorch 2.13, every process starts the default generator from a fresh random seed (OS entropy), so
# unseeded processes (DDP ranks, separate runs) draw different numbers; initial_seed() reports it.
default_generator.seed()

_CUDA_GENERATORS: dict = {}  # device index -> the default CUDA Generator of that device, made on first use
_CUDA_SEED_ALL: list = [None]  # the last manual_seed_all seed, for generators made later (None: OS entropy)


def cuda_default_generator(index: int) -> Generator:
    """The default generator of CUDA device ``index`` (``torch.cuda.default_generators[index]``)."""
    gen = _CUDA_GENERATORS.get(index)
    if gen is None:
        gen = Generator(_device_cls("cuda", index))
        if _CUDA_SEED_ALL[0] is None:
            gen.seed()
        else:
            gen.manual_seed(_CUDA_SEED_ALL[0])
        _CUDA_GENERATORS[index] = gen
    return gen


def seed_cuda_generators(seed: int, index: int | None = None) -> None:
    """Seed the default CUDA generator of device ``index``, or of every device (now and later) when None."""
    if index is None:
        _CUDA_SEED_ALL[0] = seed
        for gen in _CUDA_GENERATORS.values():
            gen.manual_seed(seed)
    else:
        cuda_default_generator(index).manual_seed(seed)


def manual_seed(seed) -> Generator:
    """Seed the default generator and, as PyTorch, every GPU's default generator (see
    ``disttorch.cuda.manual_seed_all``); returns the default (CPU) generator."""
    from .. import cuda

    gen = default_generator.manual_seed(seed)
    cuda.manual_seed_all(seed)
    return gen


def seed() -> int:
    """Seed the default generator from OS entropy; returns the seed."""
    return default_generator.seed()


def initial_seed() -> int:
    """The seed the default generator was last seeded with."""
    return default_generator.initial_seed()


def get_rng_state() -> "T.Tensor":
    """The default generator's state as a uint8 tensor."""
    return default_generator.get_state()


def set_rng_state(new_state) -> None:
    """Restore the default generator's state from ``get_rng_state()``."""
    default_generator.set_state(new_state)


@contextlib.contextmanager
def fork_rng(devices=None, enabled: bool = True, _caller: str = "fork_rng", _devices_kw: str = "devices",
             device_type: str = "cuda"):
    """Context manager: random calls inside it leave the default generator's state as it was before."""
    if not enabled:
        yield
        return
    state = default_generator.get_state()
    keep = list(_CUDA_GENERATORS) if devices is None else [_cuda_index(d) for d in devices]
    cuda_states = {i: cuda_default_generator(i).get_state() for i in keep}
    try:
        yield
    finally:
        default_generator.set_state(state)
        for i, st in cuda_states.items():
            cuda_default_generator(i).set_state(st)


def _cuda_index(d) -> int:
    if isinstance(d, int):
        return d
    d = d if isinstance(d, _device_cls) else _device_cls(d)
    return d.index or 0


# ------------------------------------------------------------------------------------------
# host samplers: (numpy Generator, shape, dtype) -> numpy array of that dtype
# ------------------------------------------------------------------------------------------
def _rng(generator):
    """The NumPy generator behind ``generator`` (None: the default one) for samples drawn on the host."""
    if generator is None:
        return default_generator._rng
    if not isinstance(generator, Generator):
        raise TypeError(f"generator must be a disttorch.Generator, not {type(generator).__name__}")
    if generator._rng is None:
        raise RuntimeError("Expected a 'cpu' device type for generator but found 'cuda'")
    return generator._rng


def _sampler(generator, xp, index=None):
    """A :class:`DeviceSampler` when the output lives on a CUDA device (``xp`` is not NumPy), else None.

    ``generator`` None means the default generator of device ``index`` (None: the current device).
    """
    if xp is np:
        return None
    if generator is None:
        if index is None:
            from .. import cuda

            index = cuda.current_device()
        return DeviceSampler(xp, cuda_default_generator(index))
    if not isinstance(generator, Generator):
        raise TypeError(f"generator must be a disttorch.Generator, not {type(generator).__name__}")
    if generator._rng is not None:
        raise RuntimeError("Expected a 'cuda' device type for generator but found 'cpu'")
    return DeviceSampler(xp, generator)


def _on(xp, arr):
    return arr if xp is np else xp.asarray(arr)


_MANTISSA = {"float16": 11, "bfloat16": 8, "float32": 24, "float64": 53}


def _uniform01(rng, shape, dt: D.dtype):
    """Uniform samples in [0, 1) of dtype ``dt`` (never 1.0, also in float16/bfloat16)."""
    if dt is D.float32:
        return rng.random(shape, dtype=_F32)
    if dt is D.float64:
        return rng.random(shape)
    if dt is D.float16 or dt is D.bfloat16:
        bits = _MANTISSA[dt.name]
        return (rng.integers(0, 1 << bits, shape, dtype=np.int32) * (2.0 ** -bits)).astype(dt.np)
    if dt.is_complex:
        real = _uniform01(rng, shape, dt.to_real())
        return real + 1j * _uniform01(rng, shape, dt.to_real())
    raise RuntimeError(f"\"check_uniform_bounds\" not implemented for '{_type_name(dt)}'")


def _normal01(rng, shape, dt: D.dtype):
    if dt is D.float32:
        return rng.standard_normal(shape, dtype=_F32)
    if dt is D.float64:
        return rng.standard_normal(shape)
    if dt is D.float16 or dt is D.bfloat16:
        return rng.standard_normal(shape, dtype=_F32).astype(dt.np)
    if dt.is_complex:  # real and imaginary parts each have variance 1/2, as in PyTorch
        r = dt.to_real()
        return ((_normal01(rng, shape, r) + 1j * _normal01(rng, shape, r)) * math.sqrt(0.5)).astype(dt.np)
    raise RuntimeError(f"\"normal_kernel_cpu\" not implemented for '{_type_name(dt)}'")


def _compute_dtype(dt: D.dtype):
    """The NumPy dtype to scale samples in: float32 for low-precision floats."""
    return _F32 if dt is D.float16 or dt is D.bfloat16 else dt.np


def _integers(rng, low: int, high: int, shape, op: str):
    """Integers in [low, high) as int64 (``high`` may be 2**63, for int64's full range)."""
    if low >= high:
        raise RuntimeError(f"{op} expects 'from' to be less than 'to', but got from={low} >= to={high}")
    return rng.integers(low, high - 1, shape, dtype=np.int64, endpoint=True)


class _HostSampler:
    """The host twin of :class:`~disttorch.ops.random_device.DeviceSampler` over a NumPy generator."""

    xp = np

    def __init__(self, rng) -> None:
        self.rng = rng

    def uniform01(self, shape, dt):
        return _uniform01(self.rng, shape, dt)

    def normal01(self, shape, dt):
        return _normal01(self.rng, shape, dt)

    def integers(self, low, high, shape, op="random_"):
        return _integers(self.rng, low, high, shape, op)

    def exponential(self, shape, cd):
        return self.rng.standard_exponential(shape, dtype=cd)
