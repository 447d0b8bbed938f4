"""Arrays a fused op's forward keeps for its backward, freed together with its saved tensors.

``Op.save`` names tensors (inputs or the output). Fused ops also keep intermediate arrays (im2col columns,
softmax numerators, a recurrence's states): the forward sets ``self.kept`` (only when a graph is recorded),
and ``attach_kept``, called by the public function on what ``apply`` returned, moves it among the node's
saved values (``self.saved_tensors[-1]`` in backward). The
engine then frees them with the saved tensors after backward (unless ``retain_graph``), and reading them a
second time raises PyTorch's "backward through the graph a second time" error, as for saved tensors.
"""
from __future__ import annotations

from ..autograd.function import _Saved


def attach_kept(out, cls):
    """Move what ``cls``'s forward kept (``self.kept``) among the saved values of ``out``'s node; returns ``out``.

    ``out`` is what ``cls.apply`` returned (a Tensor or a tuple of Tensors). Nothing happens when no graph
    was recorded (the forward keeps nothing then).
    """
    t = out[0] if out.__class__ is tuple else out
    node = t.grad_fn
    if node is not None and node.__class__ is cls:
        kept = node.__dict__.pop("kept", None)
        if kept is not None:
            node._saved = tuple(node._saved) + (_Saved(kept, node),)
    return out
