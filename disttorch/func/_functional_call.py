"""``functional_call``, ``stack_module_state`` and ``replace_all_batch_norm_modules_`` (``torch.func``).

``functional_call(module, tensors, args)`` runs ``module`` with some of its parameters and buffers
replaced by the given tensors, then puts the originals back (also when the forward raises), so a
module can be called as a pure function of its weights: the basis of per-sample gradients and model
ensembling with ``grad`` and ``vmap``.
"""
from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

__all__ = ["functional_call", "stack_module_state", "replace_all_batch_norm_modules_"]

_MISSING = object()


def _tensor_cls():
    from .._tensor import Tensor

    return Tensor


def _untie(module, tensors: dict) -> dict:
    """Extend ``tensors`` to every name of a tied (shared) parameter or buffer that one of its names was given."""
    names_of: dict = {}
    # One walk over the module tree (every name, shared modules included), as named_parameters/named_buffers
    # with remove_duplicate=False would give.
    for prefix, m in module.named_modules(remove_duplicate=False):
        dot = prefix + "." if prefix else ""
        for table in (m._parameters, m._buffers):
            for name, t in table.items():
                if t is not None:
                    names_of.setdefault(id(t), set()).add(dot + name)
    tied = {n: names for names in names_of.values() if len(names) > 1 for n in names}
    given_tied = [n for n in tensors if n in tied]
    for n in given_tied:
        group = tied[n]
        given = [m for m in group if m in tensors]
        if len(given) > 1 and len({id(tensors[m]) for m in given}) != 1:
            raise ValueError(f"functional_call got multiple values for keys {sorted(group)}, which are tied. "
                             "Consider using tie_weights=False")
    out = dict(tensors)
    for n in given_tied:
        for m in tied[n]:
            out[m] = tensors[n]
    return out


def _check_keys(module, names) -> None:
    valid = {n for n, _ in module.named_parameters(remove_duplicate=False)}
    valid.update(n for n, _ in module.named_buffers(remove_duplicate=False))
    missing, unexpected = sorted(valid - set(names)), sorted(set(names) - valid)
    msgs = []
    if unexpected:
        msgs.append(f"Unexpected key(s): {', '.join(map(repr, unexpected))}.")
    if missing:
        msgs.append(f"Missing key(s): {', '.join(map(repr, missing))}.")
    if msgs:
        raise RuntimeError("Error(s) in reparametrizing for {}:\n\t{}".format(module._get_name(), "\n\t".join(msgs)))


def _owner(module, name: str):
    path, _, attr = name.rpartition(".")
    owner = module
    if path:
        for part in path.split("."):
            child = getattr(owner, part, None)
            if child is None:
                raise AttributeError(f"{owner._get_name()} has no attribute `{part}`")
            owner = child
    return owner, attr


class _ClassProperty:
    """What ``_swap`` saved for a parametrized tensor: the property of the module's class, to put back."""

    def __init__(self, prop) -> None:
        self.prop = prop


def _parametrized_property(owner, attr: str):
    """The property computing ``owner.<attr>`` when it is parametrized (nn.utils.parametrize), else None."""
    plist = owner._modules.get("parametrizations") if "_modules" in owner.__dict__ else None
    prop = type(owner).__dict__.get(attr)
    if plist is not None and isinstance(prop, property) and attr in plist:
        return prop
    return None


def _swap(module, name: str, value):
    """Put ``value`` at ``name`` (a dotted path); return what was there (``_MISSING`` if nothing)."""
    Tensor = _tensor_cls()
    owner, attr = _owner(module, name)
    if isinstance(value, _ClassProperty):
        setattr(type(owner), attr, value.prop)
        return None
    if value is not _MISSING and value is not None and not isinstance(value, Tensor):
        raise TypeError(f"{value} is not an instance of torch.Tensor")
    prop = _parametrized_property(owner, attr)
    if prop is not None:
        # The value is used as is, bypassing the parametrization (as PyTorch does); the class is the module's own
        # (Parametrized<Class>), so swapping its property touches no other module.
        setattr(type(owner), attr, property(lambda self, v=value: v, prop.fset))
        return _ClassProperty(prop)
    # Written straight into the dicts: a plain tensor (a stand-in from grad/vmap) may take a Parameter's place.
    if attr in owner._parameters:
        old = owner._parameters[attr]
        if value is _MISSING:
            del owner._parameters[attr]
        else:
            owner._parameters[attr] = value
        return old
    if attr in owner._buffers:
        old = owner._buffers[attr]
        if value is _MISSING:
            del owner._buffers[attr]
        else:
            owner._buffers[attr] = value
        return old
    old = owner.__dict__.get(attr, _MISSING)
    if value is _MISSING:
        owner.__dict__.pop(attr, None)
    else:
        object.__setattr__(owner, attr, value)
    return old


@contextlib.contextmanager
def _reparametrize(module, tensors: dict, tie_weights: bool, strict: bool):
    if tie_weights:
        tensors = _untie(module, tensors)
    if strict:
        _check_keys(module, tensors)
    saved: list = []
    try:
        for name, value in tensors.items():
            saved.append((name, _swap(module, name, value)))
        yield
    finally:
        for name, old in reversed(saved):
            _swap(module, name, old)


def functional_call(module, parameter_and_buffer_dicts, args: Any = None, kwargs: dict | None = None, *,
                    tie_weights: bool = True, strict: bool = False) -> Any:
    """Call ``module(*args, **kwargs)`` with its parameters and buffers replaced by the given tensors.

    Args:
        module: the module to call.
        parameter_and_buffer_dicts: ``{dotted_name: tensor}``, or a sequence of such dicts (their keys
            must not overlap). Names not given keep the module's own tensors.
        args: the positional arguments (a single non-tuple value is one argument).
        kwargs: the keyword arguments.
        tie_weights: a tensor given for one name of a tied parameter is used for all its names.
        strict: require exactly the module's parameter and buffer names.

    Returns:
        What the module returns. The module's own tensors are restored afterwards.

    Example:
        >>> params = {k: v.detach() for k, v in model.named_parameters()}
        >>> out = functional_call(model, params, (x,))
    """
    if isinstance(parameter_and_buffer_dicts, dict):
        tensors = parameter_and_buffer_dicts
    elif isinstance(parameter_and_buffer_dicts, Sequence):
        if not all(isinstance(d, dict) for d in parameter_and_buffer_dicts):
            raise ValueError("Expected all elements of parameter_and_buffer_dicts to be dictionaries")
        counts: dict = {}
        for d in parameter_and_buffer_dicts:
            for k in d:
                counts[k] = counts.get(k, 0) + 1
        repeated = [k for k, n in counts.items() if n > 1]
        if repeated:
            raise ValueError(f"{repeated} appeared in multiple dictionaries; behavior of functional call is ambiguous")
        tensors = {k: v for d in parameter_and_buffer_dicts for k, v in d.items()}
    else:
        raise ValueError(f"Expected parameter_and_buffer_dicts to be a dict, or a list/tuple of dicts, but got "
                         f"{type(parameter_and_buffer_dicts)}")
    if kwargs is None:
        kwargs = {}
    if args is None:
        args = ()
    elif not isinstance(args, tuple):
        args = (args,)
    with _reparametrize(module, tensors, tie_weights, strict):
        return module(*args, **kwargs)


def _stack_leaf(tensors: tuple, name: str):
    from .. import ops

    all_rg = all(t.requires_grad for t in tensors)
    if not all_rg and any(t.requires_grad for t in tensors):
        raise RuntimeError(f"Expected {name} from each model to have the same .requires_grad")
    out = ops.stack(tensors)
    return out.detach().requires_grad_() if all_rg else out


def stack_module_state(models) -> tuple:
    """Stack the parameters and buffers of same-class models: ``(params, buffers)`` dicts of stacked tensors.

    The stacked parameters are new leaves (requiring grad when the originals do), ready for
    ``vmap(functional_call...)`` over an ensemble.

    Example:
        >>> params, buffers = stack_module_state([Net() for _ in range(5)])
        >>> params["fc.weight"].shape[0]
        5
    """
    models = list(models)
    if not models:
        raise RuntimeError("stack_module_state: Expected at least one model, got 0.")
    if not (all(m.training for m in models) or not any(m.training for m in models)):
        raise RuntimeError("stack_module_state: Expected all models to have the same training/eval mode.")
    cls = type(models[0])
    if not all(type(m) is cls for m in models):
        raise RuntimeError("stack_module_state: Expected all models to be of the same class.")
    all_params = [dict(m.named_parameters()) for m in models]
    params = {k: _stack_leaf(tuple(p[k] for p in all_params), k) for k in all_params[0]}
    all_buffers = [dict(m.named_buffers()) for m in models]
    buffers = {k: _stack_leaf(tuple(b[k] for b in all_buffers), k) for k in all_buffers[0]}
    return params, buffers


def replace_all_batch_norm_modules_(root):
    """Make every BatchNorm in ``root`` stop tracking running statistics (in place); returns ``root``.

    Under ``vmap`` a running-stat update would mix the examples of the batch; PyTorch's recipe is to
    use batch statistics only.
    """
    from ..nn.modules.batchnorm import _BatchNorm

    for m in root.modules():
        if isinstance(m, _BatchNorm):
            m.running_mean = None
            m.running_var = None
            m.num_batches_tracked = None
            m.track_running_stats = False
    return root
