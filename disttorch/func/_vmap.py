"""``vmap``: map a function over a batch dimension of its inputs, as ``torch.func.vmap``.

disttorch runs the function once per batch element (on views that select the element) and stacks the
results along ``out_dims``; PyTorch instead rewrites each operation to a batched one. The results,
the argument checks and their error messages are PyTorch's; the differences are the cost (one call per
element) and that code PyTorch rejects inside vmap (``.item()``, data-dependent Python control flow,
in-place writes of batched values into unbatched tensors) simply runs per element here. Because the
slices are ordinary differentiable views, vmap composes with ``grad``/``jacrev`` and with autograd.
"""
from __future__ import annotations

import functools
from typing import Any, Callable

import numpy as np

from ._autodiff import _RANDOM_ERROR
from ._pytree import broadcast_prefix, tree_flatten, tree_unflatten

__all__ = ["vmap"]


def _name(func) -> str:
    return getattr(func, "__name__", None) or repr(func)


def _tensor_cls():
    from .._tensor import Tensor

    return Tensor


def _process_inputs(func, in_dims, args: tuple) -> tuple:
    """``(batch_size, flat_in_dims, flat_args, args_spec)`` with PyTorch's checks and messages."""
    Tensor = _tensor_cls()
    name = _name(func)
    if isinstance(in_dims, bool) or not isinstance(in_dims, (int, tuple)):
        raise ValueError(f"vmap({name}, in_dims={in_dims}, ...)(<inputs>): expected `in_dims` to be int or a "
                         f"(potentially nested) tuple matching the structure of inputs, got: {type(in_dims)}.")
    if len(args) == 0:
        raise ValueError(f"vmap({name})(<inputs>): got no inputs. Maybe you forgot to add inputs, or you are trying "
                         "to vmap over a function with no inputs. The latter is unsupported.")
    flat_args, spec = tree_flatten(args)
    flat_in_dims = broadcast_prefix(in_dims, spec)
    if flat_in_dims is None:
        raise ValueError(f"vmap({name}, in_dims={in_dims}, ...)(<inputs>): in_dims is not compatible with the "
                         f"structure of `inputs`. in_dims has structure {tree_flatten(in_dims)[1]} but inputs has "
                         f"structure {spec}.")
    for i, (arg, d) in enumerate(zip(flat_args, flat_in_dims)):
        if d is not None and (isinstance(d, bool) or not isinstance(d, int)):
            raise ValueError(f"vmap({name}, in_dims={in_dims}, ...)(<inputs>): Got in_dim={d} for an input but "
                             "in_dim must be either an integer dimension or None.")
        if d is not None and not isinstance(arg, Tensor):
            raise ValueError(f"vmap({name}, in_dims={in_dims}, ...)(<inputs>): Got in_dim={d} for an input but the "
                             f"input is of type {type(arg)}. We cannot vmap over non-Tensor arguments, please use "
                             "None as the respective in_dim")
        if d is not None:
            nd = arg.dim()
            if not -nd <= d < nd:
                raise ValueError(f"vmap({name}, in_dims={in_dims}, ...)(<inputs>): Got in_dim={d} for some input, but "
                                 f"that input is a Tensor of dimensionality {nd} so expected in_dim to satisfy "
                                 f"-{nd} <= in_dim < {nd}.")
            flat_in_dims[i] = d % nd
    sizes = [a.shape[d] for a, d in zip(flat_args, flat_in_dims) if d is not None]
    if not sizes:
        raise ValueError("vmap: Expected at least one Tensor to vmap over")
    if any(s != sizes[0] for s in sizes):
        raise ValueError(f"vmap: Expected all tensors to have the same size in the mapped dimension, got sizes {sizes} "
                         "for the mapped dimension")
    return sizes[0], flat_in_dims, flat_args, spec


def _same_value(values: list) -> bool:
    """Whether every per-element output is the same tensor value (an output that ignores the batch)."""
    first = values[0]
    for v in values[1:]:
        if v is first:
            continue
        if tuple(v.shape) != tuple(first.shape) or v.dtype != first.dtype:
            return False
        if not np.array_equal(np.asarray(v.detach().cpu().numpy()), np.asarray(first.detach().cpu().numpy()),
                              equal_nan=v.is_floating_point()):
            return False
    return True


def _stack_outputs(func, outputs: list, out_dims, empty: bool):
    from .. import ops

    Tensor = _tensor_cls()
    name = _name(func)
    flat0, spec = tree_flatten(outputs[0])
    per_elem = [flat0] + [tree_flatten(o)[0] for o in outputs[1:]]
    flat_out_dims = broadcast_prefix(out_dims, spec)
    if flat_out_dims is None:
        raise ValueError(f"vmap({name}, ..., out_dims={out_dims})(<inputs>): out_dims is not compatible with the "
                         f"structure of `outputs`. out_dims has structure {tree_flatten(out_dims)[1]} but outputs has "
                         f"structure {spec}.")
    result = []
    for j, d in enumerate(flat_out_dims):
        values = [leaves[j] for leaves in per_elem]
        if d is None:
            if isinstance(values[0], Tensor) and not empty and not _same_value(values):
                raise ValueError(f"vmap({name}, ...): `{name}` can not return a BatchedTensor when out_dim is None")
            result.append(values[0])
            continue
        if isinstance(d, bool) or not isinstance(d, int):
            raise ValueError(f"vmap({name}, ..., out_dims={out_dims}): `out_dims` must be an int, None or a python "
                             f"collection of ints representing where in the outputs the vmapped dimension should "
                             f"appear, got {d}.")
        if not isinstance(values[0], Tensor):
            raise ValueError(f"vmap({name}, ...): `{name}` must only return Tensors, got type {type(values[0])}. "
                             "Did you mean to set out_dims= to None for output?")
        if empty:  # batch of size 0: the output's shape with a 0-sized batch dim
            v = values[0]
            nd = v.dim() + 1
            if not -nd <= d < nd:
                raise IndexError(f"Dimension out of range (expected to be in range of [{-nd}, {nd - 1}], but got {d})")
            shape = list(v.shape)
            shape.insert(d % nd, 0)
            result.append(v.new_zeros(shape))
            continue
        result.append(ops.stack(values, dim=d))
    return tree_unflatten(result, spec)


def vmap(func: Callable, in_dims: Any = 0, out_dims: Any = 0, randomness: str = "error", *,
         chunk_size: int | None = None) -> Callable:
    """Vectorise ``func`` over a batch dimension of its inputs, as ``torch.func.vmap``.

    Args:
        func: the per-example function (positional inputs are pytrees of tensors).
        in_dims: where the batch dimension of each input is: an int for all, or a tuple (possibly nested,
            matching the inputs' structure) of ints and None (None: the input is not batched).
        out_dims: where the batch dimension goes in each output (same rules; None: the output does not
            depend on the batch and is returned once).
        randomness: ``'error'`` (random operations in ``func`` raise), ``'different'`` (each element
            draws its own numbers) or ``'same'`` (every element draws the same numbers).
        chunk_size: accepted for compatibility (disttorch maps one element at a time).

    Returns:
        The batched function. It runs ``func`` once per batch element (see docs/differences.md).

    Example:
        >>> from disttorch.func import functional_call, grad, vmap
        >>> def loss(params, x, y):
        ...     return F.mse_loss(functional_call(model, params, (x.unsqueeze(0),)), y.unsqueeze(0))
        >>> per_sample = vmap(grad(loss), in_dims=(None, 0, 0))(params, xb, yb)
    """
    if randomness not in ("error", "different", "same"):
        raise RuntimeError(f"Only allowed values for randomness are 'error', 'different', or 'same'. Got {randomness}")
    if chunk_size is not None and (isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size <= 0):
        raise ValueError(f"vmap: chunk_size should be None or greater than 0. (got {chunk_size})")

    @functools.wraps(func)
    def wrapped(*args, **kwargs):
        from ..ops.random import default_generator

        batch_size, flat_in_dims, flat_args, spec = _process_inputs(func, in_dims, args)
        empty = batch_size == 0
        outputs = []
        state = default_generator.get_state() if randomness in ("same", "error") else None
        for b in range(max(batch_size, 1)):
            if randomness == "same":
                default_generator.set_state(state)
            sliced = []
            for a, d in zip(flat_args, flat_in_dims):
                if d is None:
                    sliced.append(a)
                elif empty:  # run once on a stand-in element to learn the output shapes
                    shape = list(a.shape)
                    del shape[d]
                    sliced.append(a.new_zeros(shape))
                else:
                    sliced.append(a.select(d, b))
            outputs.append(func(*tree_unflatten(sliced, spec), **kwargs))
            if randomness == "error":
                now = default_generator.get_state()
                if not np.array_equal(now.numpy(), state.numpy()):
                    raise RuntimeError(_RANDOM_ERROR)
        return _stack_outputs(func, outputs, out_dims, empty)

    return wrapped
