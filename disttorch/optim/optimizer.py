"""The ``Optimizer`` base class, as ``torch.optim.Optimizer``.

An optimizer holds ``param_groups`` (a list of dicts: ``"params"`` plus that group's options,
filled from ``defaults``) and ``state`` (a dict keyed by parameter). Subclasses implement ``step``;
the update itself is a pure function in ``_functional`` over raw arrays (DESIGN rule 4).
``state_dict()`` replaces parameters by integer ids in PyTorch's format, so checkpoints move
between the two frameworks' layouts unchanged.
"""
from __future__ import annotations

import functools
import itertools
from time import perf_counter_ns
from collections import OrderedDict, defaultdict
from collections.abc import Iterable

import numpy as np

from .. import _internals as E
from .._tensor import Tensor
from ..autograd.grad_mode import enable_grad
from ..autograd.op import SPANS as _SPANS
from ..utils.hooks import RemovableHandle, _add_hook

__all__ = ["Optimizer", "required", "register_optimizer_step_pre_hook", "register_optimizer_step_post_hook"]


class _RequiredParameter:
    """Singleton marking an option that every param group must specify."""

    def __repr__(self) -> str:
        return "<required parameter>"


required = _RequiredParameter()

_GLOBAL_PRE_HOOKS: OrderedDict = OrderedDict()
_GLOBAL_POST_HOOKS: OrderedDict = OrderedDict()


def register_optimizer_step_pre_hook(hook) -> RemovableHandle:
    """Register ``hook(optimizer, args, kwargs)`` to run before every optimizer's ``step``.

    It may return ``(new_args, new_kwargs)`` to replace the arguments.
    """
    return _add_hook(_GLOBAL_PRE_HOOKS, hook)


def register_optimizer_step_post_hook(hook) -> RemovableHandle:
    """Register ``hook(optimizer, args, kwargs)`` to run after every optimizer's ``step``."""
    return _add_hook(_GLOBAL_POST_HOOKS, hook)


def _hooked(step):
    """Wrap a subclass's ``step`` so that the global and per-optimizer step hooks run around it."""

    @functools.wraps(step)
    def wrapper(self, *args, **kwargs):
        if _SPANS[0] is not None and not self._in_step:  # a profiler records: the step is a range of its own
            t0 = perf_counter_ns()
            try:
                return with_hooks(self, *args, **kwargs)
            finally:
                _SPANS[0](f"Optimizer.step#{type(self).__name__}.step", "optimizer", t0, perf_counter_ns(), None)
        return with_hooks(self, *args, **kwargs)

    def with_hooks(self, *args, **kwargs):
        pre, post = self._optimizer_step_pre_hooks, self._optimizer_step_post_hooks
        if not (pre or post or _GLOBAL_PRE_HOOKS or _GLOBAL_POST_HOOKS) or self._in_step:
            return step(self, *args, **kwargs)
        # A subclass step calling super().step() runs the hooks once, around the outer call.
        self._in_step = True
        try:
            for hook in (*_GLOBAL_PRE_HOOKS.values(), *pre.values()):
                result = hook(self, args, kwargs)
                if result is not None:
                    if isinstance(result, tuple) and len(result) == 2:
                        args, kwargs = result
                    else:
                        raise RuntimeError(f"{step} must return None or a tuple of (new_args, new_kwargs), but "
                                           f"got {result}.")
            out = step(self, *args, **kwargs)
            for hook in (*_GLOBAL_POST_HOOKS.values(), *post.values()):
                hook(self, args, kwargs)
            return out
        finally:
            self._in_step = False

    wrapper._hooked = True
    return wrapper


def _typename(obj) -> str:
    if isinstance(obj, Tensor):
        return f"disttorch.Tensor (dtype {obj.dtype})"
    return type(obj).__qualname__


class Optimizer:
    """Base class of all optimizers, as ``torch.optim.Optimizer``.

    Args:
        params: an iterable of Tensors, of ``(name, Tensor)`` pairs, or of dicts (param groups:
            ``{"params": [...], <option>: value}`` overriding ``defaults`` for that group).
        defaults: the default value of each option.
    """

    _in_step = False

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        step = cls.__dict__.get("step")
        if step is not None and not getattr(step, "_hooked", False):
            cls.step = _hooked(step)

    def __init__(self, params, defaults: dict) -> None:
        self.defaults = defaults
        self._init_hooks()
        if isinstance(params, Tensor):
            raise TypeError("params argument given to the optimizer should be an iterable of Tensors or dicts, "
                            f"but got {_typename(params)}")
        self.state = defaultdict(dict)
        self.param_groups = []
        param_groups = list(params)
        if len(param_groups) == 0:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(param_groups[0], dict):
            param_groups = [{"params": param_groups}]
        for group in param_groups:
            self.add_param_group(group)

    def _init_hooks(self) -> None:
        d = self.__dict__
        for name in ("_optimizer_step_pre_hooks", "_optimizer_step_post_hooks", "_optimizer_state_dict_pre_hooks",
                     "_optimizer_state_dict_post_hooks", "_optimizer_load_state_dict_pre_hooks",
                     "_optimizer_load_state_dict_post_hooks"):
            if name not in d:
                d[name] = OrderedDict()

    # ---- pickling / copying ----------------------------------------------------------------------
    def __getstate__(self) -> dict:
        return {"defaults": self.defaults, "state": self.state, "param_groups": self.param_groups}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._init_hooks()
        self.defaults.setdefault("differentiable", False)

    def __repr__(self) -> str:
        s = self.__class__.__name__ + " ("
        for i, group in enumerate(self.param_groups):
            s += f"\nParameter Group {i}\n"
            for key in sorted(group.keys()):
                if key != "params":
                    s += f"    {key}: {group[key]}\n"
        return s + ")"

    # ---- groups ------------------------------------------------------------------------------------
    def add_param_group(self, param_group: dict) -> None:
        """Add a param group (a dict with ``"params"`` and optional per-group options) to ``param_groups``.

        Useful when fine-tuning: unfrozen layers can join the optimizer as training goes on.
        """
        if not isinstance(param_group, dict):
            raise TypeError(f"param_group must be a dict, but got {type(param_group).__name__}")
        params = param_group["params"]
        if isinstance(params, Tensor):
            params = [params]
        elif isinstance(params, set):
            raise TypeError("optimizer parameters need to be organized in ordered collections, but the ordering "
                            "of tensors in sets will change between runs. Please use a list instead.")
        else:
            params = list(params)
        tensors, names = [], []
        for p in params:
            if isinstance(p, tuple) and len(p) == 2 and isinstance(p[0], str):
                names.append(p[0])
                tensors.append(p[1])
            else:
                tensors.append(p)
        param_group["params"] = tensors
        if names:
            if len(names) != len(tensors):
                raise ValueError("all optimizer params should be with/without names. Some param names are missing")
            param_group["param_names"] = names

        for p in tensors:
            if not isinstance(p, Tensor):
                raise TypeError(f"optimizer can only optimize Tensors, but one of the params is {_typename(p)}")
            if not self.defaults.get("differentiable", None) and not (p.is_leaf or p.retains_grad):
                raise ValueError("can't optimize a non-leaf Tensor")

        for name, default in self.defaults.items():
            if default is required and name not in param_group:
                raise ValueError(f"parameter group didn't specify a value of required optimization parameter "
                                 f"{name}")
            param_group.setdefault(name, default)

        if len(tensors) != len(set(tensors)):
            import warnings

            warnings.warn("optimizer contains a parameter group with duplicate parameters; in future, this will "
                          "cause an error; see github.com/pytorch/pytorch/issues/40967 for more information",
                          stacklevel=3)

        seen = set()
        for group in self.param_groups:
            seen.update(group["params"])
            if ("param_names" in param_group) != ("param_names" in group):
                which = "with names" if "param_names" in param_group else "without names"
                raise ValueError(f"all optimizer param groups should be with/without names. cannot add param "
                                 f"group {which} to the optimizer")
        if not seen.isdisjoint(tensors):
            raise ValueError("some parameters appear in more than one parameter group")
        self.param_groups.append(param_group)

    # ---- gradients and steps -------------------------------------------------------------------------
    def zero_grad(self, set_to_none: bool = True) -> None:
        """Reset the gradients of all optimized tensors: to ``None`` (default), or to zeros in place."""
        for group in self.param_groups:
            for p in group["params"]:
                g = p._grad
                if g is None:
                    continue
                if set_to_none:
                    p._grad = None
                else:
                    if g.grad_fn is not None:
                        g.detach_()
                    else:
                        g.requires_grad_(False)
                    g.zero_()

    def step(self, closure=None):
        """Perform one optimization step (subclasses implement it); ``closure`` re-evaluates the loss."""
        raise NotImplementedError(f"{type(self).__name__}.step is not implemented")

    @staticmethod
    def _closure_loss(closure):
        if closure is None:
            return None
        with enable_grad():
            return closure()

    # ---- hooks ---------------------------------------------------------------------------------------
    def register_step_pre_hook(self, hook) -> RemovableHandle:
        """Register ``hook(optimizer, args, kwargs)`` to run before ``step``; it may return ``(args, kwargs)``."""
        return _add_hook(self._optimizer_step_pre_hooks, hook)

    def register_step_post_hook(self, hook) -> RemovableHandle:
        """Register ``hook(optimizer, args, kwargs)`` to run after ``step``."""
        return _add_hook(self._optimizer_step_post_hooks, hook)

    def register_state_dict_pre_hook(self, hook, prepend: bool = False) -> RemovableHandle:
        """Register ``hook(optimizer)`` to run before ``state_dict()`` builds its result."""
        return _add_hook(self._optimizer_state_dict_pre_hooks, hook, prepend)

    def register_state_dict_post_hook(self, hook, prepend: bool = False) -> RemovableHandle:
        """Register ``hook(optimizer, state_dict)`` to run on ``state_dict()``'s result (it may return a new one)."""
        return _add_hook(self._optimizer_state_dict_post_hooks, hook, prepend)

    def register_load_state_dict_pre_hook(self, hook, prepend: bool = False) -> RemovableHandle:
        """Register ``hook(optimizer, state_dict)`` to run before loading (it may return a new state dict)."""
        return _add_hook(self._optimizer_load_state_dict_pre_hooks, hook, prepend)

    def register_load_state_dict_post_hook(self, hook, prepend: bool = False) -> RemovableHandle:
        """Register ``hook(optimizer)`` to run after ``load_state_dict``."""
        return _add_hook(self._optimizer_load_state_dict_post_hooks, hook, prepend)

    # ---- state dict ----------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """The optimizer state in PyTorch's format: ``{"state": {id: {...}}, "param_groups": [...]}``.

        Parameters are replaced by integer ids numbered through the groups in order; the state
        tensors are returned by reference (as PyTorch does).
        """
        for hook in self._optimizer_state_dict_pre_hooks.values():
            hook(self)
        mapping = {}
        start = 0

        def pack(group):
            nonlocal start
            packed = {k: v for k, v in group.items() if k != "params"}
            for i, p in enumerate(group["params"], start):
                mapping.setdefault(id(p), i)
            packed["params"] = [mapping[id(p)] for p in group["params"]]
            start += len(packed["params"])
            return packed

        groups = [pack(g) for g in self.param_groups]
        state = {(mapping[id(k)] if isinstance(k, Tensor) else k): v for k, v in self.state.items()}
        sd = {"state": state, "param_groups": groups}
        for hook in self._optimizer_state_dict_post_hooks.values():
            out = hook(self, sd)
            if out is not None:
                sd = out
        return sd

    def load_state_dict(self, state_dict: dict) -> None:
        """Load a ``state_dict()`` result (from this framework or PyTorch's layout).

        State tensors are copied onto each parameter's device (floating ones cast to its dtype), so
        the loaded optimizer shares no memory with the source and continues bit for bit.
        """
        import copy

        state_dict = dict(state_dict)
        for hook in self._optimizer_load_state_dict_pre_hooks.values():
            out = hook(self, state_dict)
            if out is not None:
                state_dict = out
        for key in ("state", "param_groups"):
            if key not in state_dict:
                raise KeyError(f"load_state_dict: the state dict has no '{key}' entry (keys: {sorted(state_dict)})")
        groups = self.param_groups
        saved_groups = copy.deepcopy(state_dict["param_groups"])
        if len(groups) != len(saved_groups):
            raise ValueError(f"loaded state dict has a different number of parameter groups ({len(saved_groups)} "
                             f"saved, {len(groups)} in the optimizer)")
        for i, (g, s) in enumerate(zip(groups, saved_groups)):
            if len(g["params"]) != len(s["params"]):
                raise ValueError(f"loaded state dict contains a parameter group that doesn't match the size of "
                                 f"optimizer's group (group {i}: {len(s['params'])} saved parameters, "
                                 f"{len(g['params'])} in the optimizer)")
        id_map = dict(zip(itertools.chain.from_iterable(g["params"] for g in saved_groups),
                          itertools.chain.from_iterable(g["params"] for g in groups)))
        state = defaultdict(dict)
        for k, v in state_dict["state"].items():
            if k in id_map:
                param = id_map[k]
                state[param] = _cast(param, v)
            else:
                state[k] = v

        def update_group(group, new_group):
            new_group["params"] = group["params"]
            if "param_names" in group and "param_names" not in new_group:
                new_group["param_names"] = group["param_names"]
            return new_group

        self.__setstate__({"state": state, "param_groups": [update_group(g, s) for g, s in zip(groups, saved_groups)]})
        for hook in self._optimizer_load_state_dict_post_hooks.values():
            hook(self)


def _cast(param: Tensor, value, key=None):
    """A copy of a loaded state ``value`` placed like ``param`` (PyTorch keeps ``step`` as saved)."""
    if isinstance(value, Tensor):
        arr = E.array(value)
        pdata = E.array(param)
        if key != "step" and (param.is_floating_point() or param.is_complex()) and arr.dtype != pdata.dtype:
            arr = arr.astype(pdata.dtype)
        else:
            arr = arr.copy()
        if key != "step":
            arr = _to_module_of(arr, pdata)
        return E.wrap(arr)
    if isinstance(value, dict):
        return {k: _cast(param, v, k) for k, v in value.items()}
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        return value
    return type(value)(_cast(param, v) for v in value)


def _to_module_of(arr, like):
    """``arr`` moved to the array module (and device) of ``like``."""
    if arr.__class__ is like.__class__:
        return arr
    if like.__class__ is np.ndarray:
        return E.to_host(arr)
    with like.device:  # a CuPy array: copy onto the parameter's GPU
        return E.array_module_of(like).asarray(arr)
