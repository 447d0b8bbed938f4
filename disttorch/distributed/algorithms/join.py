"""Training with uneven inputs: ``Join``, ``Joinable`` and ``JoinHook``, as ``torch.distributed.algorithms.join``.

Inside ``with Join([model, ...]):`` every rank iterates over its own data. A rank whose data runs out
*joins*: on leaving the ``with`` block it loops, all-reducing a zero "still training" count; while any
rank still trains the count is non-zero and each joinable's ``main_hook`` shadows the collectives that the
training ranks run in one iteration (for DDP: the gradient all-reduces, with zeros). When the count is zero
every rank has joined and each ``post_hook(is_last_joiner)`` runs (DDP broadcasts the final model from the
last rank to join). Training ranks announce themselves with ``Join.notify_join_context(joinable)``.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, List, NamedTuple, Optional

__all__ = ["JoinHook", "Joinable", "Join"]


class JoinHook:
    """What a joined rank runs: ``main_hook`` once per iteration that other ranks still train,
    ``post_hook(is_last_joiner)`` once when all ranks have joined."""

    def main_hook(self) -> None:
        """Shadow one training iteration's collectives."""

    def post_hook(self, is_last_joiner: bool) -> None:
        """Run after every rank has joined."""


class _JoinConfig(NamedTuple):
    enable: bool
    throw_on_early_termination: bool
    is_first_joinable: bool

    @staticmethod
    def construct_disabled_join_config() -> "_JoinConfig":
        return _JoinConfig(enable=False, throw_on_early_termination=False, is_first_joinable=False)


class Joinable(ABC):
    """A class (such as ``DistributedDataParallel``) whose collectives can be shadowed by joined ranks."""

    @abstractmethod
    def __init__(self) -> None:
        super().__init__()
        self._join_config = _JoinConfig.construct_disabled_join_config()

    @abstractmethod
    def join_hook(self, **kwargs) -> JoinHook:
        """The hook that shadows this joinable's per-iteration collectives."""

    @property
    @abstractmethod
    def join_device(self):
        """The device of the join context's small all-reduces."""

    @property
    @abstractmethod
    def join_process_group(self) -> Any:
        """The process group of the join context's all-reduces (None: the default group)."""


def _dist():
    from ... import distributed as dist

    return dist


def _ones_or_zeros(value: int):
    from ... import _dtype as D
    from ...ops.creation import tensor

    return tensor([value], dtype=D.int64)


class Join:
    """Context manager for uneven inputs across ranks (``torch.distributed.algorithms.Join``).

    Args:
        joinables: the ``Joinable`` objects taking part (they must share one process group).
        enable: False turns the context into a no-op.
        throw_on_early_termination: raise on every rank as soon as one rank runs out of inputs,
            instead of shadowing.
        **kwargs: passed to each joinable's ``join_hook`` (e.g. ``divide_by_initial_world_size``).

    Example:
        >>> with Join([model]):
        ...     for x, y in my_uneven_loader:
        ...         loss_fn(model(x), y).backward(); opt.step()
    """

    def __init__(self, joinables: List[Joinable], enable: bool = True, throw_on_early_termination: bool = False,
                 **kwargs) -> None:
        if len(joinables) == 0:
            raise ValueError("The join context manager requires at least one joinable")
        self._joinables = list(joinables)
        self._join_hooks = [j.join_hook(**kwargs) for j in self._joinables]
        self._enable = enable
        self._throw_on_early_termination = throw_on_early_termination
        self._set_joinable_configs()
        self._extract_dist_info()

    def _set_joinable_configs(self) -> None:
        for i, joinable in enumerate(self._joinables):
            joinable._join_config = _JoinConfig(self._enable, self._throw_on_early_termination, i == 0)

    def _extract_dist_info(self) -> None:
        groups = {id(j.join_process_group) for j in self._joinables}
        if len(groups) > 1:
            raise ValueError("Using join context manager with multiple process groups")
        self._process_group = self._joinables[0].join_process_group
        self._rank = _dist().get_rank(self._process_group) if self._process_group is not None else _dist().get_rank()

    def __enter__(self) -> "Join":
        return self

    def __exit__(self, exc_type, exc_value, traceback) -> None:
        if not self._enable or exc_type is not None:
            return  # an exception propagates as is; shadowing would only hide it behind a hang
        all_joined = False
        is_last_joiner = True
        while not all_joined:
            if self._get_num_nonjoined_procs() == 0:
                all_joined = True
            else:
                if self._throw_on_early_termination:
                    self._notify_procs_to_terminate()
                for hook in self._join_hooks:
                    hook.main_hook()
                is_last_joiner = False
        for hook in self._join_hooks:
            hook.post_hook(is_last_joiner)

    def _all_reduce(self, value: int) -> int:
        t = _ones_or_zeros(value)
        _dist().all_reduce(t, group=self._process_group)
        return int(t.item())

    def _get_num_nonjoined_procs(self) -> int:
        return self._all_reduce(0)

    def _notify_procs_to_terminate(self) -> None:
        self._all_reduce(1)
        raise RuntimeError(f"Rank {self._rank} exhausted all inputs.")

    @staticmethod
    def notify_join_context(joinable: Joinable) -> Optional[Any]:
        """Called by a training rank once per iteration (by the first joinable only): all-reduces a one
        that the joined ranks' count pairs with. Returns the async work of that all-reduce (its tensor,
        after ``wait()``, is the number of ranks still training), or None when no join context is active."""
        config = getattr(joinable, "_join_config", None)
        if config is None or not config.is_first_joinable or not config.enable:
            return None
        dist = _dist()
        group = joinable.join_process_group
        ones = _ones_or_zeros(1)
        work = dist.all_reduce(ones, group=group, async_op=True)
        if config.throw_on_early_termination:
            zeros = _ones_or_zeros(0)
            dist.all_reduce(zeros, group=group)
            if int(zeros.item()):
                raise RuntimeError("Detected at least one rank that exhausted inputs. Throwing across all ranks.")
        return _CountWork(work, ones)


class _CountWork:
    """The notify all-reduce's work plus its tensor: ``count()`` waits and returns the training ranks."""

    def __init__(self, work, tensor) -> None:
        self.work, self.tensor = work, tensor

    def wait(self) -> bool:
        if self.work is not None:
            self.work.wait()
        return True

    def count(self) -> int:
        self.wait()
        return int(self.tensor.item())
