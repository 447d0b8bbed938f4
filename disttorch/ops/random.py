"""Random sampling: Generator, seeding, rand/randn/randint/randperm/normal/bernoulli/multinomial/poisson.

Every sampling function takes ``generator=`` (default: ``disttorch.default_generator``). A Generator
wraps NumPy's PCG64 bit generator, so its state is its own: two Generators seeded alike give the
same numbers and never disturb each other. The same seed gives the same sequence on every run and
platform, but the streams differ from PyTorch's (mt19937 / Philox): ``manual_seed(0)`` in disttorch
and in PyTorch produce different numbers. The state (``get_state``) is a uint8 tensor, as in PyTorch, but
of disttorch's own layout.

CUDA outputs are drawn on the device, with no host round trip, from a CUDA generator: a Philox4x32-10
(seed, offset) pair as PyTorch's (``ops/random_device.py``; state: 16 bytes, seed then offset).
``Generator(device='cuda')`` makes one; ``generator=None`` uses the device's default generator
(``disttorch.cuda.default_generators``), seeded by ``disttorch.manual_seed`` (every device, as PyTorch) and
``disttorch.cuda.manual_seed``/``manual_seed_all``. A generator of the other device type raises PyTorch's
error.
As in PyTorch 2.13, each process seeds the default generator from OS entropy (``initial_seed()`` reports
the seed); a new ``Generator()`` starts from PyTorch's fixed default seed.

Random ops are not differentiable: as in PyTorch, ``normal``/``bernoulli``/``poisson`` with inputs
that require grad give outputs whose gradient with respect to those inputs is zero.
"""
from __future__ import annotations

import math

import numpy as np

from .. import _dtype as D
from .. import _tensor as T
from .._device import device as _device_cls
from .._device import to_host
from .._internals import bump_version
from ..autograd.op import Op, inplace_node, set_history, write_out
from ..cuda import _checks
from ._helpers import broadcast_shapes, quiet, tensor_arg
from .creation import _finish, _resolve, _size_args
from .index import _CPP_NAMES
from .inplace import ZeroGradBackward0, _type_name, needs_graph, refuse_view
from .random_device import bernoulli_device, multinomial_device
from .random_generator import (  # noqa: F401 - the generator API is re-exported here (disttorch.random, nn.init)
    _F32, _F64, _MANTISSA, Generator, _compute_dtype, _HostSampler, _integers, _normal01, _on, _rng, _sampler,
    _uniform01, cuda_default_generator, default_generator, fork_rng, get_rng_state, initial_seed, manual_seed,
    seed, seed_cuda_generators, set_rng_state)

__all__ = ["Generator", "default_generator", "manual_seed", "seed", "initial_seed", "get_rng_state",
           "set_rng_state", "rand", "randn", "randint", "randperm", "normal", "bernoulli", "multinomial",
           "poisson", "rand_like", "randn_like", "randint_like"]


# ------------------------------------------------------------------------------------------
# factories
# ------------------------------------------------------------------------------------------
def rand(*sizes, generator=None, out=None, dtype=None, layout=None, device=None, requires_grad: bool = False,
         pin_memory: bool = False, size=None):
    """Uniform samples in [0, 1): ``rand(2, 3)`` or ``rand((2, 3))``."""
    shape = _size_args(sizes, "rand", size)
    dt, dev, xp = _resolve(dtype, device, out, D.get_default_dtype())
    ds = _sampler(generator, xp, dev.index)
    if ds is not None:
        if not (dt.is_floating_point or dt.is_complex):
            raise RuntimeError(f"\"check_uniform_bounds\" not implemented for '{_type_name(dt)}'")
        return _finish(ds.uniform01(shape, dt), requires_grad, out)
    return _finish(_on(xp, _uniform01(_rng(generator), shape, dt)), requires_grad, out)


def randn(*sizes, generator=None, out=None, dtype=None, layout=None, device=None, requires_grad: bool = False,
          pin_memory: bool = False, size=None):
    """Standard normal samples: ``randn(2, 3)``."""
    shape = _size_args(sizes, "randn", size)
    dt, dev, xp = _resolve(dtype, device, out, D.get_default_dtype())
    ds = _sampler(generator, xp, dev.index)
    if ds is not None:
        if not (dt.is_floating_point or dt.is_complex):
            raise RuntimeError(f"\"normal_kernel_cuda\" not implemented for '{_type_name(dt)}'")
        return _finish(ds.normal01(shape, dt), requires_grad, out)
    return _finish(_on(xp, _normal01(_rng(generator), shape, dt)), requires_grad, out)


def _int_bound(v, name: str) -> int:
    v = v.item() if isinstance(v, T.Tensor) else v
    if isinstance(v, float) and not v.is_integer():
        raise TypeError(f"randint(): argument '{name}' must be int, not float")
    return int(v)


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
    ds = _sampler(generator, xp, dev.index)
    if ds is not None:
        arr = ds.integers(low, high, shape, "random_")
        return _finish(arr if dt is D.int64 else arr.astype(dt.np), requires_grad, out)
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
    ds = _sampler(generator, xp, dev.index)
    arr = ds.permutation(int(n)) if ds is not None else _on(xp, _rng(generator).permutation(int(n)))
    return _finish(arr if dt is D.int64 else arr.astype(dt.np), requires_grad, out)


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
    if not mt and not st:
        if size is None:
            raise TypeError("normal() missing required argument 'size' when mean and std are numbers")
        if std < 0:
            raise RuntimeError(f"normal expects std >= 0.0, but found std {std:g}")
        shape = _size_args((size,) if isinstance(size, (list, tuple)) else (size,), "normal")
        dt, dev, xp = _resolve(dtype, device, out, D.get_default_dtype())
        ds = _sampler(generator, xp, dev.index)
        arr = ds.normal01(shape, dt) if ds is not None else _normal01(_rng(generator), shape, dt)
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
    cd = _compute_dtype(dt)
    xp = tensors[0]._xp
    ds = _sampler(generator, xp)
    if ds is not None:  # on the device: std >= 0 is checked at the next synchronisation
        if st:
            _checks.defer((std._data < 0).any(), lambda: RuntimeError("normal expects all elements of std >= 0.0"))
        arr = ds.normal01(shape, dt).astype(cd) * (std._data.astype(cd) if st else std) + \
            (mean._data.astype(cd) if mt else mean)
        return _zero_grad_node(arr.astype(dt.np), NormalBackward0, mean if mt else None, std if st else None,
                               out=out)
    rng = _rng(generator)
    std_h = to_host(std._data) if st else std
    if st and bool(np.any(std_h < 0)):
        raise RuntimeError("normal expects all elements of std >= 0.0")
    with quiet(np):
        arr = _normal01(rng, shape, dt).astype(cd) * (np.asarray(std_h, cd)) + np.asarray(to_host(mean._data) if mt else
                                                                                           mean, cd)
    return _zero_grad_node(_on(xp, arr.astype(dt.np)), NormalBackward0, mean if mt else None, std if st else None,
                           out=out)


def _check_prob(p, number: bool) -> None:
    """PyTorch's errors for probabilities outside [0, 1]: ``p`` a host array; ``number``: given as a number."""
    if bool(np.any(~((p >= 0) & (p <= 1)))):
        raise _prob_error(number, p)


def _prob_error(number: bool, p) -> RuntimeError:
    if number:
        return RuntimeError(f"bernoulli_ expects p to be in [0, 1], but got p={float(p):g}")
    # (sic: PyTorch's wording, two spaces included)
    return RuntimeError("Expected p_in >= 0 && p_in <= 1 to be true, but got false.  (Could this error message "
                        "be improved?  If so, please report an enhancement request to PyTorch.)")


def _bernoulli_array(rng, shape, p, np_dtype):
    """0/1 samples of ``np_dtype`` with probability ``p`` (a number or a host array broadcastable to shape)."""
    u = rng.random(shape, dtype=_F32) if getattr(p, "dtype", _F64) in (_F32, D.float16.np, D.bfloat16.np) \
        else rng.random(shape)
    return (u < p).astype(np_dtype)


def bernoulli(input, p=None, *, generator=None, out=None):
    """0/1 samples with probabilities ``input`` (or the number ``p``), in ``input``'s shape and dtype."""
    x = tensor_arg(input, "bernoulli")
    ds = _sampler(generator, x._xp)
    if ds is not None and p is None:  # on the device: the range check waits for the next synchronisation
        arr = bernoulli_device(ds, x._data, lambda: _prob_error(False, None))
        return _zero_grad_node(arr, BernoulliBackward0, x, out=out)
    if ds is not None:
        probs = float(p.item() if isinstance(p, T.Tensor) else p)
        _check_prob(np.asarray(probs), True)
        arr = (ds.uniform01(x._data.shape, D.float64) < probs).astype(x._data.dtype)
        return _zero_grad_node(arr, BernoulliBackward0, x, out=out)
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
    ds = _sampler(generator, x._xp)
    if ds is not None:
        idx = multinomial_device(ds, x._data.reshape(-1, k), n, replacement, _multinomial_error)
        r = T._wrap(idx.reshape(n) if nd == 1 else idx)
        return r if out is None else write_out(r, out, "multinomial")
    p = to_host(x._data).astype(_F64).reshape(-1, k)
    err = _multinomial_error(p)
    if err is not None:
        raise err
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


def _multinomial_error(p):
    """multinomial's error for the (rows, k) float64 probabilities ``p`` (any array module), or None."""
    if not bool(np.isfinite(p).all()) or bool((p < 0).any()):
        return RuntimeError("probability tensor contains either `inf`, `nan` or element < 0")
    if bool((p.sum(1) <= 0).any()):
        return RuntimeError("invalid multinomial distribution (sum of probabilities <= 0)")
    return None


def _poisson_rate_error() -> RuntimeError:
    return RuntimeError("invalid Poisson rate, expected rate to be non-negative")


def poisson(input, generator=None):
    """Poisson samples with rates ``input`` (same shape and dtype); on a CUDA device drawn there
    (``ops/random_poisson.py``), a negative rate reported at the next synchronisation."""
    x = tensor_arg(input, "poisson")
    ds = _sampler(generator, x._xp)
    if ds is not None:
        from .random_poisson import poisson_device

        return _zero_grad_node(poisson_device(ds, x._data, _poisson_rate_error), PoissonBackward0, x)
    lam = to_host(x._data).astype(_F64)
    if not bool(np.all(lam >= 0)):
        raise _poisson_rate_error()
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
# in-place samplers (Tensor methods): written once over a sampler, NumPy's generator (_HostSampler) for a CPU
# tensor and the device Philox generator (random_device.DeviceSampler) for a CUDA tensor
# ------------------------------------------------------------------------------------------
def _fill(self, op: str, make, generator):
    """Write ``make(sampler, shape, dtype)`` into ``self`` in place and bump its version.

    Under grad mode a leaf that requires grad raises, as for every in-place op; a non-leaf gets a
    node whose gradient is zero (the new values do not depend on the old ones).
    """
    record = needs_graph(self, op)
    if record:
        refuse_view(self, op)
    xp = self._xp
    sampler = _sampler(generator, xp) or _HostSampler(_rng(generator))
    arr = make(sampler, self._data.shape, self.dtype)
    xp.copyto(self._data, arr, casting="unsafe")
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


def _clamp_below(xp, arr, hi, lo):
    """Keep samples of [lo, hi) below ``hi`` after rounding to a narrow dtype."""
    if lo < hi and arr.size:
        top = np.nextafter(np.asarray(hi, arr.dtype), np.asarray(lo, arr.dtype))[()]  # a host scalar
        xp.minimum(arr, top, out=arr)
    return arr


def uniform_(self, from_=0.0, to=1.0, *, generator=None):
    """Fill with samples uniform in [from_, to)."""
    _need_float(self, "uniform_")
    if from_ > to:
        raise RuntimeError(f"uniform_ expects to return a [from, to) range, but found from={from_} > to={to}")

    def make(S, shape, dt):
        cd = _compute_dtype(dt)
        arr = (S.uniform01(shape, dt).astype(cd) * (to - from_) + from_).astype(dt.np)
        return _clamp_below(S.xp, arr, to, from_)
    return _fill(self, "uniform_", make, generator)


def normal_(self, mean=0.0, std=1.0, *, generator=None):
    """Fill with normal samples of the given mean and standard deviation."""
    _need_float(self, "normal_")
    if std < 0:
        raise RuntimeError(f"normal expects std >= 0.0, but found std {std:g}")
    return _fill(self, "normal_", lambda S, shape, dt: (S.normal01(shape, dt).astype(_compute_dtype(dt)) * std
                                                        + mean).astype(dt.np), generator)


def bernoulli_(self, p=0.5, *, generator=None):
    """Fill with 0/1 samples drawn with probability ``p`` (a number or a tensor broadcastable to self)."""
    if isinstance(p, T.Tensor):
        broadcast_shapes(p._data.shape, self._data.shape, op="bernoulli_")
    if isinstance(p, T.Tensor) and p._xp is not np:  # checked at the next synchronisation, no host copy
        probs = p._data
        _checks.defer((~((probs >= 0) & (probs <= 1))).any(), lambda: _prob_error(False, None))
    else:
        probs = to_host(p._data) if isinstance(p, T.Tensor) else float(p)
        _check_prob(np.asarray(probs), not isinstance(p, T.Tensor))

    def make(S, shape, dt):
        wide = getattr(probs, "dtype", _F64) not in (_F32, D.float16.np, D.bfloat16.np)
        u = S.uniform01(shape, D.float64 if wide else D.float32)
        return (u < probs).astype(np.int8)
    return _fill(self, "bernoulli_", make, generator)


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

    def make(S, shape, dt):
        lo = int(from_)
        hi = _random_bounds(dt) + 1 if to is None else int(to)
        return S.integers(lo, hi, shape, "random_")
    return _fill(self, "random_", make, generator)


def exponential_(self, lambd=1.0, *, generator=None):
    """Fill with exponential samples of rate ``lambd``."""
    _need_float(self, "exponential_")
    if not lambd > 0:
        raise RuntimeError(f"exponential_ expects lambda > 0.0, but found lambda={lambd}")

    def make(S, shape, dt):
        cd = _F64 if dt is D.float64 else _F32
        return (S.exponential(shape, cd) / cd.type(lambd)).astype(dt.np)
    return _fill(self, "exponential_", make, generator)


def geometric_(self, p, *, generator=None):
    """Fill with geometric samples (trials up to the first success, so values are >= 1)."""
    if not 0 < p < 1:
        raise RuntimeError(f"geometric_ expects p to be in (0, 1), but got p={p}")

    def make(S, shape, dt):
        if S.xp is np:
            return S.rng.geometric(p, shape)
        u = S.uniform01(shape, D.float64)  # inversion: ceil(log(1 - u) / log(1 - p)), at least one trial
        return S.xp.maximum(S.xp.ceil(S.xp.log1p(-u) / math.log1p(-p)), 1.0)
    return _fill(self, "geometric_", make, generator)


def cauchy_(self, median=0.0, sigma=1.0, *, generator=None):
    """Fill with Cauchy samples."""
    _need_float(self, "cauchy_")

    def make(S, shape, dt):
        if S.xp is np:
            return (S.rng.standard_cauchy(shape) * sigma + median).astype(dt.np)
        u = S.uniform01(shape, D.float64)
        return (S.xp.tan(math.pi * (u - 0.5)) * sigma + median).astype(dt.np)
    return _fill(self, "cauchy_", make, generator)


def log_normal_(self, mean=1.0, std=2.0, *, generator=None):
    """Fill with ``exp(normal(mean, std))`` samples."""
    _need_float(self, "log_normal_")
    if not std > 0:
        raise RuntimeError(f"log_normal_ expects std > 0.0, but found std={std}")

    def make(S, shape, dt):
        with quiet(S.xp):
            return S.xp.exp(S.normal01(shape, D.float64) * std + mean).astype(dt.np)
    return _fill(self, "log_normal_", make, generator)


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
