"""Model and optimizer state dicts keyed by parameter names (``torch.distributed.checkpoint.state_dict``).

``get_state_dict(model, optimizer)`` gives the model's state dict without wrapper prefixes (DDP's
``module.``, ``torch.compile``'s ``_orig_mod.``) and the optimizer's with the parameters named by those
fully qualified names instead of integer ids, so the result can be saved with DCP by any number of
ranks and loaded into a differently wrapped model. ``set_state_dict`` does the reverse. For the plain
(non-FSDP) modules disttorch has, ``full_state_dict`` changes nothing; ``cpu_offload``,
``ignore_frozen_params``, ``strict``, ``broadcast_from_rank0`` and ``flatten_optimizer_state_dict`` are
honoured.
"""
from __future__ import annotations

import sys
from collections.abc import Iterable
from dataclasses import dataclass

from ...autograd.grad_mode import no_grad

__all__ = ["StateDictOptions", "get_model_state_dict", "get_optimizer_state_dict", "get_state_dict",
           "set_model_state_dict", "set_optimizer_state_dict", "set_state_dict"]

_WRAPPER_ATOMS = ("_orig_mod", "_checkpoint_wrapped_module", "_fsdp_wrapped_module")


@dataclass
class StateDictOptions:
    """Options of the get/set functions (PyTorch's fields and defaults)."""

    full_state_dict: bool = False
    cpu_offload: bool = False
    ignore_frozen_params: bool = False
    keep_submodule_prefixes: bool = True
    strict: bool = True
    broadcast_from_rank0: bool = False
    flatten_optimizer_state_dict: bool = False
    dsd_fqn_modifiers: str = "_fqn_modifiers"


def _is_data_parallel(module) -> bool:
    par = sys.modules.get("disttorch.nn.parallel.distributed")
    dp = sys.modules.get("disttorch.nn.parallel.data_parallel")
    return ((par is not None and isinstance(module, par.DistributedDataParallel))
            or (dp is not None and hasattr(dp, "DataParallel") and isinstance(module, dp.DataParallel)))


def _fqn(model, name: str) -> str:
    """``name`` without the atoms that wrappers add (DDP's ``module``, ``_orig_mod``...)."""
    out, cur = [], model
    for atom in name.split("."):
        skip = (atom == "module" and _is_data_parallel(cur)) or atom in _WRAPPER_ATOMS
        if not skip:
            out.append(atom)
        if cur is not None:
            cur = cur._modules.get(atom) if hasattr(cur, "_modules") else None
    return ".".join(out)


def _optimizers(optimizers) -> list:
    from ...optim.optimizer import Optimizer

    if isinstance(optimizers, Optimizer):
        return [optimizers]
    if isinstance(optimizers, Iterable):
        out = list(optimizers)
        if all(isinstance(o, Optimizer) for o in out):
            return out
    raise TypeError(f"optimizers must be an Optimizer or an iterable of Optimizers, got {type(optimizers).__name__}")


def _param_fqns(model) -> dict:
    """id(parameter) -> its fully qualified name (the first name when shared)."""
    out = {}
    for name, p in model.named_parameters(remove_duplicate=False):
        out.setdefault(id(p), _fqn(model, name))
    return out


def _offload(value, options: StateDictOptions):
    from ..._tensor import Tensor

    return value.cpu() if options.cpu_offload and isinstance(value, Tensor) else value


def _submodule_filter(model, submodules, options: StateDictOptions):
    if not submodules:
        return None
    prefixes = []
    for name, m in model.named_modules():
        if m in submodules:
            prefixes.append(_fqn(model, name) + "." if name else "")
    return prefixes


def get_model_state_dict(model, *, submodules=None, options: StateDictOptions | None = None) -> dict:
    """The model's state dict with wrapper prefixes removed (and the options applied).

    Example:
        >>> sd = get_model_state_dict(DDP(net))       # keys as net.state_dict()'s
    """
    options = options or StateDictOptions()
    frozen = {_fqn(model, n) for n, p in model.named_parameters() if not p.requires_grad}
    prefixes = _submodule_filter(model, submodules, options)
    out = {}
    for key, value in model.state_dict().items():
        fqn = _fqn(model, key)
        if options.ignore_frozen_params and fqn in frozen:
            continue
        if prefixes is not None:
            match = next((p for p in prefixes if fqn.startswith(p)), None)
            if match is None:
                continue
            if not options.keep_submodule_prefixes:
                fqn = fqn[len(match):]
        out[fqn] = _offload(value, options)
    return out


def _init_optim_state(optim) -> None:
    """Create the optimizer's state (PyTorch's trick: a step with zero gradients and lr 0) if it has none."""
    from ..._tensor import Tensor
    from ...ops import zeros_like

    if optim.state:
        return
    for group in optim.param_groups:
        for p in group["params"]:
            if p.grad is not None:
                return
    for group in optim.param_groups:
        for p in group["params"]:
            if p.requires_grad:
                p.grad = zeros_like(p)
    lrs = []
    for group in optim.param_groups:
        if "lr" in group:
            lrs.append(group["lr"])
            group["lr"] = zeros_like(group["lr"]) if isinstance(group["lr"], Tensor) else 0.0
    optim.step(closure=None)
    for group in optim.param_groups:
        if "lr" in group:
            group["lr"] = lrs.pop(0)
    optim.zero_grad(set_to_none=True)


def _flatten_optim(osd: dict) -> dict:
    out = {}
    for fqn, st in osd["state"].items():
        for k, v in st.items():
            out[f"state.{fqn}.{k}"] = v
    for group in osd["param_groups"]:
        for fqn in group["params"]:
            for k, v in group.items():
                if k != "params":
                    out[f"param_groups.{fqn}.{k}"] = v
    return out


def get_optimizer_state_dict(model, optimizers, *, submodules=None, options: StateDictOptions | None = None) -> dict:
    """The optimizers' state keyed by parameter FQN: ``{"state": {fqn: {...}}, "param_groups": [{..., "params": [fqn]}]}``.

    An optimizer that has not stepped yet gets its state created first (as PyTorch does), so the
    result can be loaded into in place by ``dcp.load``.
    """
    options = options or StateDictOptions()
    names = _param_fqns(model)
    state, groups = {}, []
    for optim in _optimizers(optimizers):
        _init_optim_state(optim)
        osd = optim.state_dict()
        params = [p for g in optim.param_groups for p in g["params"]]
        idx_to_fqn = {}
        for i, p in enumerate(params):
            if id(p) not in names:
                raise ValueError(f"get_optimizer_state_dict: a parameter of the optimizer (shape {list(p.shape)}) is "
                                 "not a parameter of the model")
            idx_to_fqn[i] = names[id(p)]
        for k, st in osd["state"].items():
            state[idx_to_fqn[k]] = {n: _offload(v, options) for n, v in st.items()}
        for g in osd["param_groups"]:
            g = dict(g)
            g["params"] = [idx_to_fqn[i] for i in g["params"]]
            g.pop("param_names", None)
            groups.append(g)
    out = {"state": state, "param_groups": groups}
    return _flatten_optim(out) if options.flatten_optimizer_state_dict else out


def get_state_dict(model, optimizers, *, submodules=None, options: StateDictOptions | None = None) -> tuple:
    """``(get_model_state_dict(model), get_optimizer_state_dict(model, optimizers))``.

    Example:
        >>> model_sd, optim_sd = get_state_dict(model, optimizer)
        >>> dcp.save({"model": model_sd, "optim": optim_sd}, checkpoint_id=path)
    """
    return (get_model_state_dict(model, submodules=submodules, options=options),
            get_optimizer_state_dict(model, optimizers, submodules=submodules, options=options))


def _broadcast_model(model) -> None:
    from ... import distributed as dist

    if not dist.is_initialized():
        return
    with no_grad():
        for _, t in sorted(model.state_dict().items()):
            dist.broadcast(t, src=0)


def set_model_state_dict(model, model_state_dict: dict, *, options: StateDictOptions | None = None):
    """Load a state dict keyed as :func:`get_model_state_dict` returns into ``model``.

    Returns:
        ``_IncompatibleKeys(missing_keys, unexpected_keys)`` (in the FQNs of the state dict).
    """
    from ...nn.modules._state_dict import _IncompatibleKeys

    options = options or StateDictOptions()
    if options.broadcast_from_rank0:
        from ... import distributed as dist

        if dist.is_initialized() and dist.get_rank() != 0:
            _broadcast_model(model)
            return _IncompatibleKeys([], [])
    to_key = {_fqn(model, k): k for k in model.state_dict()}
    frozen = {_fqn(model, n) for n, p in model.named_parameters() if not p.requires_grad}
    mapped, unexpected = {}, []
    for fqn, v in model_state_dict.items():
        if fqn in to_key:
            mapped[to_key[fqn]] = v
        else:
            unexpected.append(fqn)
    missing = [f for f in to_key if f not in model_state_dict and not (options.ignore_frozen_params and f in frozen)]
    if options.strict and (missing or unexpected):
        msgs = []
        if missing:
            msgs.append("Missing key(s) in state_dict: {}. ".format(", ".join(f'"{k}"' for k in missing)))
        if unexpected:
            msgs.append("Unexpected key(s) in state_dict: {}. ".format(", ".join(f'"{k}"' for k in unexpected)))
        raise RuntimeError("Error(s) in loading state_dict for {}:\n\t{}".format(type(model).__name__, "\n\t".join(msgs)))
    model.load_state_dict(mapped, strict=False)
    if options.broadcast_from_rank0:
        _broadcast_model(model)
    return _IncompatibleKeys(missing, unexpected)


def _unflatten_optim(flat: dict) -> dict:
    state: dict = {}
    group_of: dict = {}
    for key, v in flat.items():
        kind, _, rest = key.partition(".")
        fqn, _, name = rest.rpartition(".")
        if kind == "state":
            state.setdefault(fqn, {})[name] = v
        elif kind == "param_groups":
            group_of.setdefault(fqn, {})[name] = v
        else:
            raise ValueError(f"set_optimizer_state_dict: unexpected key {key!r} in a flattened optimizer state dict")
    groups: list = []
    for fqn, hp in group_of.items():
        for g in groups:
            if all(g.get(k) == hp.get(k) for k in set(g) | set(hp) if k != "params"):
                g["params"].append(fqn)
                break
        else:
            groups.append(dict(hp, params=[fqn]))
    return {"state": state, "param_groups": groups}


def set_optimizer_state_dict(model, optimizers, optim_state_dict: dict, *,
                             options: StateDictOptions | None = None) -> None:
    """Load an optimizer state dict keyed by parameter FQNs (as :func:`get_optimizer_state_dict` gives)."""
    if "state" not in optim_state_dict or "param_groups" not in optim_state_dict:
        optim_state_dict = _unflatten_optim(optim_state_dict)
    names = _param_fqns(model)
    saved_groups = optim_state_dict["param_groups"]
    group_by_fqn = {fqn: g for g in saved_groups for fqn in g["params"]}
    for optim in _optimizers(optimizers):
        state, groups, start = {}, [], 0
        for group in optim.param_groups:
            fqns = [names[id(p)] for p in group["params"]]
            saved = next((group_by_fqn[f] for f in fqns if f in group_by_fqn), None)
            if saved is None:
                raise KeyError(f"set_optimizer_state_dict: no saved parameter group holds the parameters {fqns}")
            g = {k: v for k, v in saved.items() if k != "params"}
            g["params"] = list(range(start, start + len(fqns)))
            for i, fqn in enumerate(fqns):
                if fqn in optim_state_dict["state"]:
                    state[start + i] = optim_state_dict["state"][fqn]
            start += len(fqns)
            groups.append(g)
        optim.load_state_dict({"state": state, "param_groups": groups})


def set_state_dict(model, optimizers, *, model_state_dict: dict, optim_state_dict: dict,
                   options: StateDictOptions | None = None):
    """:func:`set_model_state_dict` and :func:`set_optimizer_state_dict` together; returns the former's result."""
    keys = set_model_state_dict(model, model_state_dict, options=options)
    set_optimizer_state_dict(model, optimizers, optim_state_dict, options=options)
    return keys
