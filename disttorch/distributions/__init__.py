"""Probability distributions and KL divergences, as ``torch.distributions``.

Parameters broadcast against each other (``broadcast_all``); gradients flow through ``log_prob``,
``entropy``, ``rsample`` and ``kl_divergence`` to the parameters, so score-function (REINFORCE) and
pathwise (VAE) estimators work as in PyTorch. Samples come from the default generator
(``disttorch.manual_seed``), so a seed makes them reproducible (the numbers differ from PyTorch's).
Validation (``validate_args``) is on by default, as in PyTorch.

Example:
    >>> from disttorch.distributions import Categorical
    >>> d = Categorical(logits=disttorch.zeros(3))
    >>> d.log_prob(d.sample()).shape
    disttorch.Size([])
"""
from . import constraints  # noqa: F401
from .bernoulli import Bernoulli
from .categorical import Categorical
from .distribution import Distribution
from .exp_family import ExponentialFamily
from .independent import Independent
from .kl import kl_divergence, register_kl
from .multivariate_normal import MultivariateNormal
from .normal import Normal
from .uniform import Uniform

__all__ = ["Bernoulli", "Categorical", "Distribution", "ExponentialFamily", "Independent", "MultivariateNormal",
           "Normal", "Uniform", "constraints", "kl_divergence", "register_kl"]
