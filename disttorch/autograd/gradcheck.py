"""gradcheck / gradgradcheck: compare autograd's Jacobian with central finite differences."""
from __future__ import annotations

import numpy as np

__all__ = ["gradcheck", "gradgradcheck", "GradcheckError"]


class GradcheckError(RuntimeError):
    """Raised by gradcheck when analytical and numerical gradients disagree."""


def _as_tuple(x):
    return tuple(x) if isinstance(x, (tuple, list)) else (x,)


def _diff_outputs(func, inputs):
    from .._tensor import Tensor

    out = _as_tuple(func(*inputs))
    return [o for o in out if isinstance(o, Tensor) and (o.dtype.is_floating_point or o.dtype.is_complex)]


def _realified(func, inputs: tuple):
    """``func`` and ``inputs`` with every complex input that requires grad split into its real and imaginary
    parts and every complex output returned as (real, imag) pairs, as PyTorch's gradcheck treats complex
    functions: the real Jacobian of this function checks the complex backward (conjugations included)."""
    import disttorch
    from .._tensor import Tensor

    def split(x) -> bool:
        return isinstance(x, Tensor) and x.dtype.is_complex and x.requires_grad

    layout = [split(x) for x in inputs]
    parts = []
    for x, c in zip(inputs, layout):
        if c:
            d = x.detach()
            parts += [d.real.clone().requires_grad_(True), d.imag.clone().requires_grad_(True)]
        else:
            parts.append(x)

    def real_func(*ps):
        args, k = [], 0
        for c in layout:
            args.append(disttorch.complex(ps[k], ps[k + 1]) if c else ps[k])
            k += 2 if c else 1
        out = func(*args)
        outs = _as_tuple(out)
        outs = tuple(disttorch.stack((o.real, o.imag), -1) if isinstance(o, Tensor) and o.dtype.is_complex else o
                     for o in outs)
        return outs if isinstance(out, (tuple, list)) else outs[0]

    return real_func, tuple(parts)


def _numerical_jacobian(func, inputs, idx: int, eps: float):
    """Columns d(outputs)/d(inputs[idx][j]) by central differences."""
    arr = inputs[idx]._data
    cols = []
    # Grad mode stays on: gradgradcheck's function itself calls autograd.grad.
    for pos in np.ndindex(arr.shape):
        orig = arr[pos].copy()
        arr[pos] = orig + eps
        plus = [o._data.astype(np.float64).ravel().copy() for o in _diff_outputs(func, inputs)]
        arr[pos] = orig - eps
        minus = [o._data.astype(np.float64).ravel().copy() for o in _diff_outputs(func, inputs)]
        arr[pos] = orig
        cols.append(np.concatenate([(p - m) / (2 * eps) for p, m in zip(plus, minus)]) if plus else np.zeros(0))
    return np.stack(cols, axis=1) if cols else None


def _analytical_jacobian(func, inputs, wrt: list):
    from .._tensor import _wrap
    from .engine import grad

    outs = _diff_outputs(func, inputs)
    total = sum(o.numel() for o in outs)
    jac = {i: np.zeros((total, inputs[i].numel())) for i in wrt}
    row = 0
    for o in outs:
        for k in range(o.numel()):
            if not o._requires_grad:
                row += 1
                continue
            go = np.zeros(o._data.size, dtype=o._data.dtype)
            go[k] = 1
            gs = grad([o], [inputs[i] for i in wrt], [_wrap(go.reshape(o._data.shape))], retain_graph=True,
                      allow_unused=True)
            for i, g in zip(wrt, gs):
                if g is not None:
                    jac[i][row] = np.asarray(g._data, dtype=np.float64).ravel()
            row += 1
    return jac


def gradcheck(func, inputs, *, eps: float = 1e-6, atol: float = 1e-5, rtol: float = 1e-3,
              raise_exception: bool = True, nondet_tol: float = 0.0, check_undefined_grad: bool = True,
              check_grad_dtypes: bool = False, check_batched_grad: bool = False, fast_mode: bool = False,
              masked=None) -> bool:
    """Check gradients of ``func`` at ``inputs`` (float64 tensors with requires_grad) numerically.

    Example:
        >>> x = disttorch.randn(3, dtype=disttorch.float64, requires_grad=True)
        >>> disttorch.autograd.gradcheck(disttorch.sin, (x,))
        True
    """
    from .._tensor import Tensor

    inputs = _as_tuple(inputs)
    wrt = [i for i, x in enumerate(inputs) if isinstance(x, Tensor) and x.requires_grad]
    if not wrt:
        raise ValueError("gradcheck expects at least one input tensor to require gradient, but none of the them "
                         "have requires_grad=True.")
    for i in wrt:
        if inputs[i].dtype.name not in ("float64", "complex128"):
            import warnings

            warnings.warn(f"Input #{i} requires gradient and is not a double precision floating point. "
                          "This check will likely fail if all the inputs are not of double precision "
                          "floating point.", stacklevel=2)
    func, inputs = _realified(func, inputs)
    wrt = [i for i, x in enumerate(inputs) if isinstance(x, Tensor) and x.requires_grad]
    analytical = _analytical_jacobian(func, inputs, wrt)
    for i in wrt:
        num = _numerical_jacobian(func, inputs, i, eps)
        ana = analytical[i]
        if num is None:
            num = np.zeros(ana.shape)
        if num.shape != ana.shape:
            num = num.reshape(ana.shape)
        if not np.allclose(ana, num, rtol=rtol, atol=atol):
            bad = np.argwhere(~np.isclose(ana, num, rtol=rtol, atol=atol))
            msg = (f"Jacobian mismatch for output 0 with respect to input {i},\n"
                   f"numerical:{num}\nanalytical:{ana}\nfirst mismatch at (output elem, input elem) "
                   f"{tuple(bad[0])}")
            if raise_exception:
                raise GradcheckError(msg)
            return False
    return True


def gradgradcheck(func, inputs, grad_outputs=None, *, eps: float = 1e-6, atol: float = 1e-5, rtol: float = 1e-3,
                  gen_non_contig_grad_outputs: bool = False, raise_exception: bool = True, **kwargs) -> bool:
    """Check second derivatives: gradcheck of the function ``inputs -> vjp(func, inputs, grad_outputs)``."""
    from .._tensor import Tensor, _wrap
    from .engine import grad

    inputs = _as_tuple(inputs)
    outs = _diff_outputs(func, inputs)
    if grad_outputs is None:
        rng = np.random.default_rng(0)
        grad_outputs = [_wrap(rng.standard_normal(o._data.shape) + 1j * rng.standard_normal(o._data.shape)
                              if o.dtype.is_complex else rng.standard_normal(o._data.shape)).requires_grad_(True)
                        for o in outs]
    grad_outputs = list(_as_tuple(grad_outputs))
    n_in = len(inputs)
    wrt = [i for i, x in enumerate(inputs) if isinstance(x, Tensor) and x.requires_grad]

    def vjp(*args):
        ins, gos = args[:n_in], args[n_in:]
        o = [t for t in _diff_outputs(func, ins) if t.requires_grad]
        gs = grad(o, [ins[i] for i in wrt], gos[:len(o)], create_graph=True, allow_unused=True)
        return tuple(g for g in gs if g is not None)

    return gradcheck(vjp, tuple(inputs) + tuple(grad_outputs), eps=eps, atol=atol, rtol=rtol,
                     raise_exception=raise_exception)
