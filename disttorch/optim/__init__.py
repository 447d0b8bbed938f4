"""Optimizers (`disttorch.optim`), as `torch.optim`.

Each optimizer is a small stateful class (param groups, per-parameter state, ``state_dict``) around
a pure in-place update rule in ``disttorch.optim._functional`` that the GPU backend and the
parameter-server shards reuse. Names PyTorch has and disttorch does not yet raise an
AttributeError that says so.
"""
from .._missing import not_implemented_getattr
from . import lr_scheduler
from .adadelta import Adadelta
from .adagrad import Adagrad
from .adam import Adam
from .adamax import Adamax
from .adamw import AdamW
from .lbfgs import LBFGS
from .nadam import NAdam
from .optimizer import Optimizer
from .radam import RAdam
from .rmsprop import RMSprop
from .sgd import SGD

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "Adadelta", "Adagrad", "Adamax", "NAdam", "RAdam", "RMSprop", "LBFGS",
           "lr_scheduler"]

__getattr__ = not_implemented_getattr("disttorch.optim")
