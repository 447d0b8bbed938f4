"""Server-side update rules: every ``disttorch.optim`` optimizer by its lower-case name, plus custom rules.

A shard's rule owns the shard's optimizer state. Built-in rules wrap the ``disttorch.optim`` class over the
shard's array (the same update code as single-process training), so a slice of a tensor updates exactly as
that part of the whole tensor would: every optimizer offered here is element-wise (L-BFGS is not, and is
refused).
"""
from __future__ import annotations

from typing import Callable, Dict

import numpy as np

_CUSTOM: Dict[str, Callable] = {}
_REFUSED = {"lbfgs": "L-BFGS needs the whole parameter vector at once; it cannot run on shards"}


def register_update_rule(name: str, fn: Callable) -> None:
    """Register ``fn(param, grad, state, hparams)`` as update rule ``name`` on this server process.

    ``param`` (a NumPy array) is updated in place; ``state`` is a dict the rule keeps per shard; ``hparams``
    the keyword arguments the workers gave (plus later ``param_groups`` changes). Call it in the server
    process before it serves: from a module named in ``DISTTORCH_PS_RULES``, which the server imports at start.

    Example:
        >>> def scaled_add(param, grad, state, hp):
        ...     param += hp.get("scale", 1.0) * grad
        >>> register_update_rule("scaled_add", scaled_add)
    """
    if not callable(fn):
        raise TypeError(f"register_update_rule({name!r}): fn must be callable")
    _CUSTOM[name] = fn


def _assign(param, grad, state, hparams) -> None:
    param[...] = grad


def _add(param, grad, state, hparams) -> None:
    param += grad


_CUSTOM.update(assign=_assign, add=_add)


def _optim_classes() -> dict:
    from ... import optim

    out = {}
    for name in optim.__all__:
        cls = getattr(optim, name)
        if isinstance(cls, type) and issubclass(cls, optim.Optimizer) and cls is not optim.Optimizer:
            out[name.lower()] = cls
    return out


_HP_TYPES = (int, float, bool, type(None))


def check_hparams(hp) -> dict:
    """Hyperparameters from the wire: a map of short strings to numbers, booleans, None or lists of numbers."""
    if not isinstance(hp, dict) or len(hp) > 32:
        raise ValueError("hyperparameters must be a map of at most 32 entries")
    out = {}
    for k, v in hp.items():
        if not isinstance(k, str) or len(k) > 64:
            raise ValueError("a hyperparameter name must be a string of at most 64 characters")
        if isinstance(v, list) and len(v) <= 8 and all(isinstance(x, _HP_TYPES) for x in v):
            v = tuple(v)
        elif not isinstance(v, _HP_TYPES):
            raise ValueError(f"hyperparameter {k!r}: {type(v).__name__} is not a number, boolean or list")
        out[k] = v
    return out


class Rule:
    """The update rule and optimizer state of one shard."""

    def __init__(self, name: str, param: np.ndarray, hparams: dict) -> None:
        self.name, self.param = name, param
        if name in _REFUSED:
            raise ValueError(f"update rule {name!r}: {_REFUSED[name]}")
        self._fn = _CUSTOM.get(name)
        self.hparams = dict(hparams)
        self.init_hparams = dict(hparams)  # the constructor's arguments (snapshots rebuild the rule from them)
        self.changes: dict = {}  # set_hparams since then
        self.state: dict = {}
        self._opt = None
        if self._fn is None:
            classes = _optim_classes()
            cls = classes.get(name)
            if cls is None:
                raise ValueError(f"unknown update rule {name!r}: use a disttorch.optim name "
                                 f"({', '.join(sorted(classes))}), assign, add, or one registered with "
                                 f"register_update_rule")
            if param.dtype.kind not in "fc" and str(param.dtype) != "bfloat16":
                raise ValueError(f"update rule {name!r} needs a floating-point tensor, not {param.dtype}")
            import disttorch

            self._p = disttorch.nn.Parameter(disttorch.from_numpy(param))
            self._opt = cls([self._p], **self.hparams)

    @property
    def has_optimizer(self) -> bool:
        """Whether a ``disttorch.optim`` optimizer updates ``param`` (it holds the array: it cannot be moved)."""
        return self._opt is not None

    @property
    def replaces(self) -> bool:
        """Whether the rule is the built-in ``assign``: the new value is the pushed array itself."""
        return self._fn is _assign

    def set_hparams(self, hp: dict) -> None:
        """Change hyperparameters (``param_groups`` changes made by workers, e.g. by a learning-rate scheduler)."""
        if self._opt is not None:
            if "params" in hp:
                raise ValueError("hyperparameters: 'params' cannot be set")
            # extra keys are kept as PyTorch keeps them in param_groups (schedulers add initial_lr)
            self._opt.param_groups[0].update(hp)
        self.hparams.update(hp)
        self.changes.update(hp)

    def apply(self, grad: np.ndarray) -> None:
        if self._opt is None:
            self._fn(self.param, grad, self.state, self.hparams)
            return
        import disttorch

        self._p.grad = disttorch.from_numpy(grad)
        self._opt.step()
        self._p.grad = None

    def state_arrays(self) -> dict:
        """name -> NumPy array of the optimizer state (as ``Optimizer.state_dict()['state'][0]``)."""
        if self._opt is None:
            return {k: np.asarray(v) for k, v in self.state.items() if isinstance(v, np.ndarray)}
        st = self._opt.state_dict()["state"].get(0, {})
        from ... import _internals
        from ..._tensor import Tensor

        return {k: (_internals.array(v) if isinstance(v, Tensor) else np.asarray(v)) for k, v in st.items()}

    def load_state_arrays(self, arrays: dict) -> None:
        if self._opt is None:
            self.state.update({k: np.array(v) for k, v in arrays.items()})
            return
        import disttorch

        sd = self._opt.state_dict()
        sd["state"] = {0: {k: disttorch.from_numpy(np.array(v)) for k, v in arrays.items()}} if arrays else {}
        self._opt.load_state_dict(sd)
