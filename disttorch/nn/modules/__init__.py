"""The layer classes of ``disttorch.nn`` (``torch.nn.modules``), one file per family, at PyTorch's paths."""
from . import (activation, batchnorm, channelshuffle, container, conv, distance, dropout, flatten, fold, instancenorm,
               linear, loss, module, normalization, padding, pixelshuffle, pooling, rnn, sparse, transformer,
               upsampling)

__all__ = [name for mod in (module, container, linear, flatten, conv, pooling, upsampling, padding, pixelshuffle,
                            sparse, dropout, distance, fold, channelshuffle, batchnorm, normalization, instancenorm,
                            loss, activation, rnn, transformer) for name in mod.__all__]

from .activation import *  # noqa: E402,F401,F403
from .batchnorm import *  # noqa: E402,F401,F403
from .channelshuffle import *  # noqa: E402,F401,F403
from .container import *  # noqa: E402,F401,F403
from .conv import *  # noqa: E402,F401,F403
from .distance import *  # noqa: E402,F401,F403
from .dropout import *  # noqa: E402,F401,F403
from .flatten import *  # noqa: E402,F401,F403
from .fold import *  # noqa: E402,F401,F403
from .instancenorm import *  # noqa: E402,F401,F403
from .linear import *  # noqa: E402,F401,F403
from .loss import *  # noqa: E402,F401,F403
from .module import *  # noqa: E402,F401,F403
from .normalization import *  # noqa: E402,F401,F403
from .padding import *  # noqa: E402,F401,F403
from .pixelshuffle import *  # noqa: E402,F401,F403
from .pooling import *  # noqa: E402,F401,F403
from .rnn import *  # noqa: E402,F401,F403
from .sparse import *  # noqa: E402,F401,F403
from .transformer import *  # noqa: E402,F401,F403
from .upsampling import *  # noqa: E402,F401,F403
