"""``disttorch.jit``: the TorchScript entry points PyTorch scripts call, without a TorchScript compiler.

disttorch runs Python eagerly and has no TorchScript: ``script``, ``trace`` and ``trace_module`` return
the function or module unchanged (the first call in a process warns once), so programs that script or
trace their model keep working and run as ordinary Python. The decorators (``ignore``, ``unused``,
``export``, ``script_if_tracing``), ``annotate``, ``Final``, ``is_scripting()``/``is_tracing()`` (False)
behave as they do outside TorchScript. ``save`` writes the module's ``state_dict`` (not a TorchScript
archive); ``load`` cannot run TorchScript programs and says how to load the weights instead.
"""
from __future__ import annotations

import builtins
import warnings
from typing import Any, Callable, Final  # noqa: F401 - torch.jit.Final is typing's Final

__all__ = ["script", "trace", "trace_module", "ignore", "unused", "export", "is_scripting", "is_tracing", "annotate",
           "Final", "ScriptModule", "ScriptFunction", "RecursiveScriptModule", "TracerWarning", "save", "load",
           "freeze", "optimize_for_inference", "script_if_tracing", "fork", "wait", "interface", "Attribute",
           "isinstance", "enable_onednn_fusion", "onednn_fusion_enabled", "set_fusion_strategy", "script_method",
           "Error", "strict_fusion"]

_warned = [False]


def _warn_once(what: str) -> None:
    if not _warned[0]:
        _warned[0] = True
        warnings.warn(f"disttorch.jit.{what}: disttorch has no TorchScript compiler; the function or module is "
                      "returned unchanged and runs as eager Python (this warning is shown once per process)",
                      UserWarning, stacklevel=3)


class Error(RuntimeError):
    """``torch.jit.Error``."""


class TracerWarning(Warning):
    """``torch.jit.TracerWarning``: the category PyTorch's tracer warns with (never raised by disttorch)."""


class ScriptModule:
    """Placeholder for ``torch.jit.ScriptModule``: disttorch never creates one (``script`` returns the module
    itself), so ``isinstance(m, torch.jit.ScriptModule)`` is False, as for an unscripted PyTorch module."""


RecursiveScriptModule = ScriptModule


class ScriptFunction:
    """Placeholder for ``torch.jit.ScriptFunction`` (never created by disttorch)."""


def script(obj, optimize=None, _frames_up: int = 0, _rcb=None, example_inputs=None):
    """Return ``obj`` (a module, function or class) unchanged; warns once per process.

    Example:
        >>> scripted = disttorch.jit.script(model)   # scripted is model
    """
    _warn_once("script")
    return obj


def trace(func, example_inputs=None, optimize=None, check_trace: bool = True, check_inputs=None,
          check_tolerance: float = 1e-5, strict: bool = True, _force_outplace: bool = False,
          _module_class=None, _compilation_unit=None, example_kwarg_inputs=None, _store_inputs: bool = True):
    """Return ``func`` (a module or function) unchanged without running it; warns once per process."""
    _warn_once("trace")
    return func


def trace_module(mod, inputs, optimize=None, check_trace: bool = True, check_inputs=None,
                 check_tolerance: float = 1e-5, strict: bool = True, _force_outplace: bool = False,
                 _module_class=None, _compilation_unit=None, example_inputs_is_kwarg: bool = False,
                 _store_inputs: bool = True):
    """Return ``mod`` unchanged; warns once per process."""
    _warn_once("trace_module")
    return mod


def script_if_tracing(fn):
    """Return ``fn`` (disttorch never traces)."""
    return fn


def ignore(drop=False, **kwargs):
    """Decorator leaving a function to Python: ``@ignore`` or ``@ignore(drop=True)``; returns it unchanged."""
    if callable(drop):
        return drop
    return lambda fn: fn


def unused(fn):
    """Decorator marking a method unused by the compiler; returns it unchanged."""
    return fn


def export(fn):
    """Decorator marking a method to compile; returns it unchanged."""
    return fn


def interface(obj):
    """Decorator for TorchScript interfaces; returns the class unchanged."""
    return obj


def script_method(fn):
    """Returns ``fn`` unchanged."""
    return fn


def is_scripting() -> bool:
    """False: disttorch code always runs as Python."""
    return False


def is_tracing() -> bool:
    """False: disttorch never traces."""
    return False


def annotate(the_type, the_value):
    """Return ``the_value`` (the type annotation matters only to the TorchScript compiler)."""
    return the_value


class Attribute:
    """``torch.jit.Attribute(value, type)``: outside TorchScript, just the value."""

    def __new__(cls, value, type=None):  # noqa: A002 - PyTorch's name
        return value


def isinstance(obj, target_type) -> bool:  # noqa: A001 - PyTorch's name
    """Python's ``isinstance`` for plain classes (TorchScript's container types are not checked)."""
    try:
        return builtins.isinstance(obj, target_type)
    except TypeError:
        return False


def freeze(mod, preserved_attrs=None, optimize_numerics: bool = True):
    """Return ``mod`` unchanged (there is no TorchScript graph to freeze)."""
    return mod


def optimize_for_inference(mod, other_methods=None):
    """Return ``mod`` unchanged."""
    return mod


def enable_onednn_fusion(enabled: bool) -> None:
    """Accepted; disttorch has no fuser."""


def onednn_fusion_enabled() -> bool:
    return False


def set_fusion_strategy(strategy) -> list:
    """Accepted; returns the previous strategy (none)."""
    return []


class strict_fusion:
    """Context manager accepted for compatibility (no fusion happens)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> bool:
        return False


def fork(func: Callable, *args, **kwargs):
    """Run ``func(*args, **kwargs)`` now and return a completed ``disttorch.futures.Future`` with its result."""
    from ..futures import Future

    fut = Future()
    fut.set_result(func(*args, **kwargs))
    return fut


def wait(future) -> Any:
    """The result of a future from :func:`fork`."""
    return future.wait()


def save(m, f, _extra_files=None) -> None:
    """Save ``m``'s ``state_dict`` with ``disttorch.save`` (not a TorchScript archive: there is no program to save).

    Load it back with ``model.load_state_dict(disttorch.load(f))`` into an instance of the model's class.
    """
    from .. import save as _save

    if not callable(getattr(m, "state_dict", None)):
        raise RuntimeError(f"disttorch.jit.save: expected a module with a state_dict(), got {type(m).__name__} "
                           "(disttorch has no TorchScript functions to save)")
    warnings.warn("disttorch.jit.save writes the module's state_dict, not a TorchScript program; load it with "
                  "model.load_state_dict(disttorch.load(f))", UserWarning, stacklevel=2)
    _save(m.state_dict(), f)


def load(f, map_location=None, _extra_files=None, _restore_shapes: bool = False):
    """Always raises: disttorch cannot run TorchScript programs.

    Raises:
        RuntimeError: naming the file and how to load weights instead.
    """
    name = f if builtins.isinstance(f, (str, bytes)) or hasattr(f, "__fspath__") else type(f).__name__
    raise RuntimeError(f"disttorch.jit.load({name!s}): disttorch cannot run TorchScript programs (it has no "
                       "TorchScript interpreter). Create the model from its Python class and load its weights with "
                       "model.load_state_dict(disttorch.load(path)) (disttorch.load reads PyTorch checkpoints; a "
                       "file written by disttorch.jit.save is such a state_dict)")
