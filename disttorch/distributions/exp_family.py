"""``ExponentialFamily``: base class of exponential-family distributions, as in torch.distributions."""
from __future__ import annotations

from .distribution import Distribution

__all__ = ["ExponentialFamily"]


class ExponentialFamily(Distribution):
    """Distributions of the form ``p(x; theta) = exp(<t(x), theta> - F(theta) + k(x))``.

    Subclasses provide ``_natural_params`` (theta), ``_log_normalizer`` (F) and ``_mean_carrier_measure``
    (E[k(x)]); ``entropy`` then follows from the Bregman divergence of F.
    """

    @property
    def _natural_params(self):
        raise NotImplementedError

    def _log_normalizer(self, *natural_params):
        raise NotImplementedError

    @property
    def _mean_carrier_measure(self):
        raise NotImplementedError

    def entropy(self):
        """Entropy computed from the log normaliser's gradient (Bregman divergence)."""
        from ..autograd import grad
        from ..autograd.grad_mode import enable_grad

        result = -self._mean_carrier_measure
        with enable_grad():
            nparams = [p.detach().requires_grad_() for p in self._natural_params]
            lg_normal = self._log_normalizer(*nparams)
            gradients = grad(lg_normal.sum(), nparams, create_graph=True)
        result = result + lg_normal
        for npar, g in zip(nparams, gradients):
            result = result - (npar * g).reshape(tuple(self._batch_shape) + (-1,)).sum(-1)
        return result
