"""Differentiable primitives by family; ``disttorch`` re-exports their public functions.

Only the functions in each family's ``__all__`` are exported, never the family modules themselves
(``disttorch.linalg`` and ``disttorch.random`` are separate public modules). ``__all__`` is computed
before the star imports, which rebind names such as ``sort`` from module to function.
"""
from . import compare, convert, creation, elementwise, index, join, linalg, pointwise, random, rearrange, reduce, \
    scan, scatter_ops, shape, softmax, sort
# nn families: only the names PyTorch also has at top level (torch.conv2d, torch.layer_norm, ...) are in their
# __all__; everything else reaches users through disttorch.nn.functional.
from . import activation, attention, conv, distance, dropout, embedding, linear, loss, norm, pad, pool, upsample
from . import complex_ops, special_fns

__all__ = [name for mod in (compare, convert, creation, elementwise, index, scatter_ops, join, linalg, pointwise, random,
                            reduce, scan, shape, rearrange, softmax, sort, activation, attention, conv, distance,
                            dropout, embedding, linear, loss, norm, pad, pool, upsample, complex_ops, special_fns)
           for name in mod.__all__]

from .compare import *  # noqa: E402,F401,F403
from .convert import *  # noqa: E402,F401,F403
from .creation import *  # noqa: E402,F401,F403
from .elementwise import *  # noqa: E402,F401,F403
from .index import *  # noqa: E402,F401,F403
from .scatter_ops import *  # noqa: E402,F401,F403
from .join import *  # noqa: E402,F401,F403
from .linalg import *  # noqa: E402,F401,F403
from .pointwise import *  # noqa: E402,F401,F403
from .random import *  # noqa: E402,F401,F403
from .reduce import *  # noqa: E402,F401,F403
from .scan import *  # noqa: E402,F401,F403
from .shape import *  # noqa: E402,F401,F403
from .rearrange import *  # noqa: E402,F401,F403
from .softmax import *  # noqa: E402,F401,F403
from .sort import *  # noqa: E402,F401,F403
from .activation import *  # noqa: E402,F401,F403
from .attention import *  # noqa: E402,F401,F403
from .conv import *  # noqa: E402,F401,F403
from .distance import *  # noqa: E402,F401,F403
from .dropout import *  # noqa: E402,F401,F403
from .embedding import *  # noqa: E402,F401,F403
from .linear import *  # noqa: E402,F401,F403
from .loss import *  # noqa: E402,F401,F403
from .norm import *  # noqa: E402,F401,F403
from .pad import *  # noqa: E402,F401,F403
from .pool import *  # noqa: E402,F401,F403
from .upsample import *  # noqa: E402,F401,F403
from .complex_ops import *  # noqa: E402,F401,F403
from .special_fns import *  # noqa: E402,F401,F403
