"""Random sampling: Generator, seeding, rand/randn/randint/randperm/normal/bernoulli/multinomial/poisson.

Every sampling function takes ``generator=`` (default: ``disttorch.default_generator``). A Generator
wraps NumPy's PCG64 bit generator, so its state is its own: two Generators seeded alike give the
same numbers and never disturb each other. The same seed gives the same sequence on every run and
platform, but the streams differ from PyTorch's (mt19937 / Philox): ``manual_seed(0)`` in disttorch
and in PyTorch produce different numbers. Samples are drawn on the host and copied to the tensor's
device. The state (``get_state``) is a uint8 tensor, as in PyTorch, but of disttorch's own layout.
As in PyTorch 2.13, each process seeds the default generator from OS entropy (``initial_seed()`` reports
the seed); a new ``Generator()`` starts from PyTorch's fixed default seed.

Random ops are not differentiable: as in PyTorch, ``normal``/``bernoulli``/``poisson`` with inputs
that require grad give outputs whose gradient with respect to those inputs is zero.
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
from .._internals import bump_version
from ..autograd.op import Op, inplace_node, set_history, write_out
from ._helpers import broadcast_shapes, quiet, tensor_arg
from .creation import _finish, _resolve, _size_args
from .index import _CPP_NAMES
from .inplace import ZeroGradBackward0, _type_name, needs_graph, refuse_view

__all__ = ["Generator", "default_generator", "manual_seed", "seed", "initial_seed", "get_rng_state",
           "set_rng_state", "rand", "randn", "randint", "randperm", "normal", "bernoulli", "multinomial",
           "poisson", "rand_like", "randn_like", "randint_like"]

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
        self._seed = _DEFAULT_SEED
        self._rng = np.random.Generator(np.random.PCG64(_DEFAULT_SEED))

    def manual_seed(self, seed) -> "Generator":
        """Reset the state from ``seed`` (an int; negative values are remapped as in PyTorch); returns self."""
        self._seed = _seed_value(seed)
        self._rng = np.random.Generator(np.random.PCG64(self._seed))
        return self

    def seed(self) -> int:
        """Seed from OS entropy; returns the new (64-bit) seed."""
        s = int.from_bytes(os.urandom(8), "little")
        self.manual_seed(s)
        return s

    def initial_seed(self) -> int:
        """The seed this generator was last seeded with."""
        return self._seed

    def get_state(self) -> "T.Tensor":
        """The full state as a uint8 tensor (restore it with ``set_state``)."""
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


def manual_seed(seed) -> Generator:
    """Seed the default generator (all devices: disttorch samples on the host) and, as PyTorch, every GPU's
    generator (lazily, see ``disttorch.cuda.manual_seed_all``); returns the default generator."""
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
    try:
        yield
    finally:
        default_generator.set_state(state)


# ------------------------------------------------------------------------------------------
# host samplers: (numpy Generator, shape, dtype) -> numpy array of that dtype
# ------------------------------------------------------------------------------------------
def _rng(generator):
    if generator is None:
        return default_generator._rng
    if not isinstance(generator, Generator):
        raise TypeError(f"generator must be a disttorch.Generator, not {type(generator).__name__}")
    return generator._rng


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


# ------------------------------------------------------------------------------------------
# factories
# ------------------------------------------------------------------------------------------
def rand(*sizes, generator=None, out=None, dtype=None, layout=None, device=None, requires_grad: bool = False,
         pin_memory: bool = False, size=None):
    """Uniform samples in [0, 1): ``rand(2, 3)`` or ``rand((2, 3))``."""
    shape = _size_args(sizes, "rand", size)
    dt, dev, xp = _resolve(dtype, device, out, D.get_default_dtype())
    return _finish(_on(xp, _uniform01(_rng(generator), shape, dt)), requires_grad, out)


def randn(*sizes, generator=None, out=None, dtype=None, layout=None, device=None, requires_grad: bool = False,
          pin_memory: bool = False, size=None):
    """Standard normal samples: ``randn(2, 3)``."""
    shape = _size_args(sizes, "randn", size)
    dt, dev, xp = _resolve(dtype, device, out, D.get_default_dtype())
    return _finish(_on(xp, _normal01(_rng(generator), shape, dt)), requires_grad, out)


def _int_bound(v, name: str) -> int:
    v = v.item() if isinstance(v, T.Tensor) else v
    if isinstance(v, float) and not v.is_integer():
        raise TypeError(f"randint(): argument '{name}' must be int, not float")
    return int(v)


def _integers(rng, low: int, high: int, shape, op: str):
    """Integers in [low, high) as int64 (``high`` may be 2**63, for int64's full range)."""
    if low >= high:
        raise RuntimeError(f"{op} expects 'from' to be less than 'to', but got from={low} >= to={high}")
    return rng.integers(low, high - 1, shape, dtype=np.int64, endpoint=True)


def randint(*args, size=None, low=None, high=None, generator=None, out=None, dtype=None, layout=None,
            device=None, requires_grad: bool = False, pin_memory: bool = False):
    """Integers uniform in [low, high): ``randint(high, size)`` or ``randint(low, high, size)`` (int64)."""
    args = list(args)
    if size is None:
        if not args:
            raise TypeError("randint() missing required argument 'size'")
        size = args.pop()
    if not isinstance(size, (list, tuple)):
        raise TypeError(f"randint(): argument 'size' must be tuple of ints, not {type(size).__name__}")
    if len(args) == 2:
        low, high = args
    elif len(args) == 1:
        if high is None:
            high = args[0]
        else:
            low = args[0]
    elif args:
        raise TypeError(f"randint() takes at most 3 positional arguments ({len(args) + 1} given)")
    if high is None:
        raise TypeError("randint() missing required argument 'high'")
    low = 0 if low is None else _int_bound(low, "low")
    high = _int_bound(high, "high")
    shape = _size_args((size,), "randint")
    dt, dev, xp = _resolve(dtype, device, out, D.int64)
    arr = _integers(_rng(generator), low, high, shape, "random_")
    return _finish(_on(xp, arr if dt is D.int64 else arr.astype(dt.np)), requires_grad, out)


def randperm(n: int, *, generator=None, out=None, dtype=None, layout=None, device=None,
             requires_grad: bool = False, pin_memory: bool = False):
    """A random permutation of ``0 .. n-1`` (int64)."""
    n = n.item() if isinstance(n, T.Tensor) else n
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise TypeError(f"randperm(): argument 'n' (position 1) must be int, not {type(n).__name__}")
    if n < 0:
        raise RuntimeError(f"Trying to create tensor with negative dimension {n}: [{n}]")
    dt, dev, xp = _resolve(dtype, device, out, D.int64)
    arr = _rng(generator).permutation(int(n))
    return _finish(_on(xp, arr if dt is D.int64 else arr.astype(dt.np)), requires_grad, out)


class _ZeroGradBackward(Op):
    """Random outputs do not depend differentiably on their parameters: PyTorch returns zeros. The samples
    (``res``, drawn by the caller from the parameters) are the op's result."""

    op_name = "random"

    def forward(self, xp, *params, res=None):
        if self.next_functions:
            self.shapes = [None if p is None else p.shape for p in params]
        return res

    def backward(self, g):
        return tuple(None if fn is None else g.new_zeros(shape)
                     for (fn, _), shape in zip(self.next_functions, self.shapes))


class NormalBackward0(_ZeroGradBackward):
    op_name = "normal"


class BernoulliBackward0(_ZeroGradBackward):
    op_name = "bernoulli"


class PoissonBackward0(_ZeroGradBackward):
    op_name = "poisson"


def _zero_grad_node(arr, cls, *inputs, out=None):
    """The samples ``arr`` as ``cls``'s result over the parameter tensors ``inputs`` (None where a parameter is a
    number); floating results get a node whose gradients are zeros. ``out=`` as in PyTorch."""
    if arr.dtype.kind != "f" and arr.dtype != D.bfloat16.np:  # integer/bool samples: no node
        r = T._wrap(arr)
        return r if out is None else write_out(r, out, cls.op_name)
    return cls.apply(*inputs, res=arr, out=out)


def normal(mean, std=1.0, size=None, *, generator=None, out=None, dtype=None, layout=None, device=None,
           requires_grad: bool = False, pin_memory: bool = False):
    """Normal samples: ``normal(mean_tensor, std_tensor)``, ``normal(mean_tensor, 1.0)``,
    ``normal(0.0, std_tensor)`` (shapes broadcast) or ``normal(0.0, 1.0, size)``."""
    mt, st = isinstance(mean, T.Tensor), isinstance(std, T.Tensor)
    rng = _rng(generator)
    if not mt and not st:
        if size is None:
            raise TypeError("normal() missing required argument 'size' when mean and std are numbers")
        if std < 0:
            raise RuntimeError(f"normal expects std >= 0.0, but found std {std:g}")
        shape = _size_args((size,) if isinstance(size, (list, tuple)) else (size,), "normal")
        dt, dev, xp = _resolve(dtype, device, out, D.get_default_dtype())
        arr = _normal01(rng, shape, dt)
        if std != 1 or mean != 0:
            arr = (arr.astype(_compute_dtype(dt)) * std + mean).astype(dt.np)
        return _finish(_on(xp, arr), requires_grad, out)
    if size is not None:
        raise TypeError("normal: 'size' is only accepted when mean and std are numbers")
    tensors = [t for t in (mean, std) if isinstance(t, T.Tensor)]
    dt = D.result_type(*tensors) if len(tensors) == 2 else tensors[0].dtype
    if not (dt.is_floating_point or dt.is_complex):
        dt = D.get_default_dtype()
    shape = broadcast_shapes(*(t._data.shape for t in tensors), op="normal")
    std_h = to_host(std._data) if st else std
    if st and bool(np.any(std_h < 0)):
        raise RuntimeError("normal expects all elements of std >= 0.0")
    cd = _compute_dtype(dt)
    with quiet(np):
        arr = _normal01(rng, shape, dt).astype(cd) * (np.asarray(std_h, cd)) + np.asarray(to_host(mean._data) if mt else
                                                                                           mean, cd)
    xp = tensors[0]._xp
    return _zero_grad_node(_on(xp, arr.astype(dt.np)), NormalBackward0, mean if mt else None, std if st else None,
                           out=out)


def _check_prob(p, number: bool) -> None:
    """PyTorch's errors for probabilities outside [0, 1]: ``p`` a host array; ``number``: given as a number."""
    if bool(np.any(~((p >= 0) & (p <= 1)))):
        if number:
            raise RuntimeError(f"bernoulli_ expects p to be in [0, 1], but got p={float(p):g}")
        # (sic: PyTorch's wording, two spaces included)
        raise RuntimeError("Expected p_in >= 0 && p_in <= 1 to be true, but got false.  (Could this error message "
                           "be improved?  If so, please report an enhancement request to PyTorch.)")


def _bernoulli_array(rng, shape, p, np_dtype):
    """0/1 samples of ``np_dtype`` with probability ``p`` (a number or a host array broadcastable to shape)."""
    u = rng.random(shape, dtype=_F32) if getattr(p, "dtype", _F64) in (_F32, D.float16.np, D.bfloat16.np) \
        else rng.random(shape)
    return (u < p).astype(np_dtype)


def bernoulli(input, p=None, *, generator=None, out=None):
    """0/1 samples with probabilities ``input`` (or the number ``p``), in ``input``'s shape and dtype."""
    x = tensor_arg(input, "bernoulli")
    if p is None:
        probs = to_host(x._data)
        if probs.dtype.kind not in "fV":
            probs = probs.astype(_F64)
    else:
        probs = float(p.item() if isinstance(p, T.Tensor) else p)
    _check_prob(np.asarray(probs), p is not None)
    arr = _bernoulli_array(_rng(generator), x._data.shape, probs, x._data.dtype)
    return _zero_grad_node(_on(x._xp, arr), BernoulliBackward0, x, out=out)


def multinomial(input, num_samples: int, replacement: bool = False, *, generator=None, out=None):
    """Category indices drawn from the (unnormalised) probabilities in each row of ``input`` (1-D or 2-D).

    Without replacement no index repeats within a row (so ``num_samples`` may not exceed the number
    of categories).
    """
    x = tensor_arg(input, "multinomial")
    nd = x._data.ndim
    if nd not in (1, 2):
        raise RuntimeError("prob_dist must be 1 or 2 dim")
    if not x.dtype.is_floating_point:
        raise RuntimeError(f"multinomial only supports floating-point dtypes for input, got: {_type_name(x.dtype)}")
    n = int(num_samples)
    if n <= 0:
        raise RuntimeError("cannot sample n_sample <= 0 samples")
    k = x._data.shape[-1]
    if not replacement and n > k:
        raise RuntimeError("cannot sample n_sample > prob_dist.size(-1) samples without replacement")
    if k == 0:
        raise RuntimeError("multinomial: number of categories cannot be zero")
    p = to_host(x._data).astype(_F64).reshape(-1, k)
    if not bool(np.isfinite(p).all()) or bool((p < 0).any()):
        raise RuntimeError("probability tensor contains either `inf`, `nan` or element < 0")
    if bool((p.sum(1) <= 0).any()):
        raise RuntimeError("invalid multinomial distribution (sum of probabilities <= 0)")
    rng = _rng(generator)
    rows = p.shape[0]
    if replacement:
        cdf = np.cumsum(p, axis=1)
        cdf /= cdf[:, -1:]  # the last entry is exactly 1, so u < 1 never runs past the end
        u = rng.random((rows, n))
        idx = np.empty((rows, n), dtype=np.int64)
        for i in range(rows):
            idx[i] = np.searchsorted(cdf[i], u[i], side="right")
        np.minimum(idx, k - 1, out=idx)
    else:
        # Exponential race (Gumbel top-k): the n smallest E_i / p_i are a draw without replacement.
        with quiet(np):
            keys = rng.standard_exponential((rows, k)) / p
        idx = np.argsort(keys, axis=1, kind="stable")[:, :n].astype(np.int64)
    r = T._wrap(_on(x._xp, idx.reshape(n) if nd == 1 else idx))
    return r if out is None else write_out(r, out, "multinomial")


def poisson(input, generator=None):
    """Poisson samples with rates ``input`` (same shape and dtype)."""
    x = tensor_arg(input, "poisson")
    lam = to_host(x._data).astype(_F64)
    if not bool(np.all(lam >= 0)):
        raise RuntimeError("invalid Poisson rate, expected rate to be non-negative")
    arr = _rng(generator).poisson(lam).astype(x._data.dtype)
    return _zero_grad_node(_on(x._xp, arr), PoissonBackward0, x)


def _like_args(op, input, dtype, device):
    x = tensor_arg(input, op)
    return (x._data.shape, x.dtype if dtype is None else D.to_dtype(dtype),
            x.device if device is None else _device_cls(device))


def rand_like(input, *, dtype=None, layout=None, device=None, requires_grad: bool = False, memory_format=None,
              generator=None):
    """``rand`` with ``input``'s shape (and dtype/device unless given)."""
    shape, dt, dev = _like_args("rand_like", input, dtype, device)
    return rand(shape, dtype=dt, device=dev, requires_grad=requires_grad, generator=generator)


def randn_like(input, *, dtype=None, layout=None, device=None, requires_grad: bool = False, memory_format=None,
               generator=None):
    """``randn`` with ``input``'s shape."""
    shape, dt, dev = _like_args("randn_like", input, dtype, device)
    return randn(shape, dtype=dt, device=dev, requires_grad=requires_grad, generator=generator)


def randint_like(input, low=0, high=None, *, dtype=None, layout=None, device=None, requires_grad: bool = False,
                 memory_format=None, generator=None):
    """``randint`` with ``input``'s shape: ``randint_like(x, high)`` or ``randint_like(x, low, high)``."""
    if high is None:
        low, high = 0, low
    shape, dt, dev = _like_args("randint_like", input, dtype, device)
    return randint(low, high, shape, dtype=dt, device=dev, requires_grad=requires_grad, generator=generator)


# ------------------------------------------------------------------------------------------
# in-place samplers (Tensor methods)
# ------------------------------------------------------------------------------------------
def _fill(self, op: str, make):
    """Write ``make(shape, dtype)`` (a host array) into ``self`` in place and bump its version.

    Under grad mode a leaf that requires grad raises, as for every in-place op; a non-leaf gets a
    node whose gradient is zero (the new values do not depend on the old ones).
    """
    record = needs_graph(self, op)
    if record:
        refuse_view(self, op)
    arr = make(self._data.shape, self.dtype)
    xp = self._xp
    xp.copyto(self._data, _on(xp, arr), casting="unsafe")
    bump_version(self)
    if record:  # not Op.apply: the samples are written into self's own memory
        set_history(self, inplace_node(ZeroGradBackward0, self))
    return self


def _need_float(self, op: str) -> None:
    """PyTorch's error (each op has its own) for an in-place sampler on a tensor that is not floating point."""
    if self.dtype.is_floating_point:
        return
    dt = self.dtype
    if op in ("exponential_", "cauchy_"):
        name = {"exponential_": "Exponential", "cauchy_": "Cauchy"}[op]
        shown = _type_name(dt) if op == "exponential_" else _CPP_NAMES.get(dt.name, dt.name)  # (sic)
        raise RuntimeError(f"{name} distribution is a continuous probability distribution. dtype must be a floating "
                           f"point but you specified {shown}")
    kernel = {"uniform_": "check_uniform_bounds", "normal_": "normal_kernel_cpu", "log_normal_": "log_normal_cpu"}
    raise RuntimeError(f"\"{kernel.get(op, op)}\" not implemented for '{_type_name(dt)}'")


def _clamp_below(arr, hi, lo):
    """Keep samples of [lo, hi) below ``hi`` after rounding to a narrow dtype."""
    if lo < hi and arr.size:
        top = np.nextafter(np.asarray(hi, arr.dtype), np.asarray(lo, arr.dtype))
        np.minimum(arr, top, out=arr)
    return arr


def uniform_(self, from_=0.0, to=1.0, *, generator=None):
    """Fill with samples uniform in [from_, to)."""
    _need_float(self, "uniform_")
    if from_ > to:
        raise RuntimeError(f"uniform_ expects to return a [from, to) range, but found from={from_} > to={to}")
    rng = _rng(generator)

    def make(shape, dt):
        cd = _compute_dtype(dt)
        arr = (_uniform01(rng, shape, dt).astype(cd) * (to - from_) + from_).astype(dt.np)
        return _clamp_below(arr, to, from_)
    return _fill(self, "uniform_", make)


def normal_(self, mean=0.0, std=1.0, *, generator=None):
    """Fill with normal samples of the given mean and standard deviation."""
    _need_float(self, "normal_")
    if std < 0:
        raise RuntimeError(f"normal expects std >= 0.0, but found std {std:g}")
    rng = _rng(generator)
    return _fill(self, "normal_", lambda shape, dt: (_normal01(rng, shape, dt).astype(_compute_dtype(dt)) * std
                                                     + mean).astype(dt.np))


def bernoulli_(self, p=0.5, *, generator=None):
    """Fill with 0/1 samples drawn with probability ``p`` (a number or a tensor broadcastable to self)."""
    probs = to_host(p._data) if isinstance(p, T.Tensor) else float(p)
    _check_prob(np.asarray(probs), not isinstance(p, T.Tensor))
    if isinstance(p, T.Tensor):
        broadcast_shapes(probs.shape, self._data.shape, op="bernoulli_")
    rng = _rng(generator)
    return _fill(self, "bernoulli_", lambda shape, dt: _bernoulli_array(rng, shape, probs, np.int8))


def _random_bounds(dt: D.dtype):
    """Default [0, top] of ``random_()``: integers exactly representable in ``dt``."""
    if dt.is_floating_point:
        return 1 << _MANTISSA[dt.name]
    if dt is D.bool:
        return 1
    return int(np.iinfo(dt.np).max)


def random_(self, from_=None, to=None, *, generator=None):
    """Fill with integers uniform in [from_, to) (``random_(to)``: [0, to); ``random_()``: [0, the largest
    integer the dtype holds exactly])."""
    if to is None and from_ is not None:  # random_(to)
        from_, to = 0, from_
    from_ = 0 if from_ is None else from_
    rng = _rng(generator)

    def make(shape, dt):
        lo = int(from_)
        hi = _random_bounds(dt) + 1 if to is None else int(to)
        return _integers(rng, lo, hi, shape, "random_")
    return _fill(self, "random_", make)


def exponential_(self, lambd=1.0, *, generator=None):
    """Fill with exponential samples of rate ``lambd``."""
    _need_float(self, "exponential_")
    if not lambd > 0:
        raise RuntimeError(f"exponential_ expects lambda > 0.0, but found lambda={lambd}")
    rng = _rng(generator)

    def make(shape, dt):
        cd = _F64 if dt is D.float64 else _F32
        return (rng.standard_exponential(shape, dtype=cd) / cd.type(lambd)).astype(dt.np)
    return _fill(self, "exponential_", make)


def geometric_(self, p, *, generator=None):
    """Fill with geometric samples (trials up to the first success, so values are >= 1)."""
    if not 0 < p < 1:
        raise RuntimeError(f"geometric_ expects p to be in (0, 1), but got p={p}")
    rng = _rng(generator)
    return _fill(self, "geometric_", lambda shape, dt: rng.geometric(p, shape))


def cauchy_(self, median=0.0, sigma=1.0, *, generator=None):
    """Fill with Cauchy samples."""
    _need_float(self, "cauchy_")
    rng = _rng(generator)
    return _fill(self, "cauchy_", lambda shape, dt: (rng.standard_cauchy(shape) * sigma + median).astype(dt.np))


def log_normal_(self, mean=1.0, std=2.0, *, generator=None):
    """Fill with ``exp(normal(mean, std))`` samples."""
    _need_float(self, "log_normal_")
    if not std > 0:
        raise RuntimeError(f"log_normal_ expects std > 0.0, but found std={std}")
    rng = _rng(generator)

    def make(shape, dt):
        with quiet(np):
            return np.exp(rng.standard_normal(shape) * std + mean).astype(dt.np)
    return _fill(self, "log_normal_", make)


class RandomMethods:
    __slots__ = ()

    uniform_ = uniform_
    normal_ = normal_
    bernoulli_ = bernoulli_
    random_ = random_
    exponential_ = exponential_
    geometric_ = geometric_
    cauchy_ = cauchy_
    log_normal_ = log_normal_
    bernoulli = bernoulli
    multinomial = multinomial
