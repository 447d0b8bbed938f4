"""Composable function transforms (``disttorch.func``), as ``torch.func``.

``grad``, ``grad_and_value``, ``vjp``, ``jvp``, ``jacrev``, ``jacfwd``, ``hessian`` and ``linearize``
differentiate functions; ``vmap`` maps a per-example function over a batch; ``functional_call`` calls a
module with given parameter and buffer tensors. They compose, which gives the classic per-sample
gradient recipe:

Example:
    >>> from disttorch.func import functional_call, grad, vmap
    >>> params = {k: v.detach() for k, v in model.named_parameters()}
    >>> def loss_fn(params, x, y):
    ...     out = functional_call(model, params, (x.unsqueeze(0),))
    ...     return F.cross_entropy(out, y.unsqueeze(0))
    >>> per_sample_grads = vmap(grad(loss_fn), in_dims=(None, 0, 0))(params, xb, yb)

How disttorch computes them (``vmap`` one call per element, ``jvp``/``jacfwd`` by reverse mode) is in
docs/differences.md; the results, argument checks and error messages are PyTorch's.
"""
from ._autodiff import grad, grad_and_value, hessian, jacfwd, jacrev, jvp, linearize, vjp
from ._functional_call import functional_call, replace_all_batch_norm_modules_, stack_module_state
from ._vmap import vmap

__all__ = ["grad", "grad_and_value", "vjp", "jvp", "jacrev", "jacfwd", "hessian", "linearize", "vmap",
           "functional_call", "stack_module_state", "replace_all_batch_norm_modules_", "functionalize",
           "debug_unwrap"]


def functionalize(func, *, remove: str = "mutations"):
    """Return ``func`` itself: disttorch has no functionalization pass, and eager results are the same.

    ``remove`` is checked as PyTorch does ("mutations" or "mutations_and_views").
    """
    if remove not in ("mutations", "mutations_and_views"):
        raise RuntimeError(f"functionalize(f, remove='mutations'): received invalid argument for remove={remove}. "
                           "Valid options are:\n     remove='mutations': all inplace and out= operators will be "
                           "removed from the program, and replaced with their out-of-place equivalents.\n"
                           "     remove='mutations_and_views': In addition to the above, all aliasing operators "
                           "{view} will be replaced with their non-aliasing counterparts, {view}_copy.\n")
    return func


def debug_unwrap(tensor, *, recurse: bool = True):
    """Return ``tensor`` unchanged: disttorch's transforms never wrap tensors."""
    return tensor
