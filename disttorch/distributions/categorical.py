"""``Categorical(probs=None, logits=None)``, as ``torch.distributions.Categorical``."""
from __future__ import annotations

import math

import numpy as np

from .. import arange, broadcast_tensors, full, rand
from .. import _dtype as D
from .. import _tensor as T
from .._size import Size
from . import constraints
from .distribution import Distribution
from .utils import lazy_property, logits_to_probs, probs_to_logits

__all__ = ["Categorical"]


def _inverse_cdf_sample(probs, sample_shape: Size):
    """Indices drawn from the rows of ``probs`` (shape ``batch + (K,)``) by inverse CDF; int64 tensor of
    shape ``sample_shape + batch``. The uniforms come from the default generator."""
    xp = probs._xp
    p = probs._data
    if p.dtype != np.float64:  # accumulate in float64 so the last CDF entry is 1 to rounding
        p = p.astype(np.float64)
    cum = xp.cumsum(p, axis=-1)
    cum /= cum[..., -1:]
    batch = tuple(p.shape[:-1])
    u = rand(Size(tuple(sample_shape) + batch), dtype=D.float64, device=probs.device)._data
    k = p.shape[-1]
    if not batch:
        idx = xp.searchsorted(cum, u, side="right")
    else:
        idx = (u[..., None] >= cum).sum(-1)
    # A category of probability 0 at the end can only be hit through rounding in cum: keep indices in range.
    idx = xp.minimum(idx, k - 1).astype(np.int64)
    return T._wrap(idx)


class Categorical(Distribution):
    """Categorical distribution over ``{0, ..., K-1}`` given by ``probs`` or ``logits`` (exactly one).

    ``probs`` is normalised to sum to 1 over the last dimension; ``logits`` are unnormalised
    log-probabilities (normalised with logsumexp). Leading dimensions are the batch shape.

    Example:
        >>> d = Categorical(logits=disttorch.zeros(2, 3))
        >>> d.sample().shape, d.log_prob(disttorch.tensor([0, 2])).shape
        (disttorch.Size([2]), disttorch.Size([2]))
    """

    arg_constraints = {"probs": constraints.simplex, "logits": constraints.real_vector}
    has_enumerate_support = True

    def __init__(self, probs=None, logits=None, validate_args=None) -> None:
        if (probs is None) == (logits is None):
            raise ValueError("Either `probs` or `logits` must be specified, but not both.")
        if probs is not None:
            if probs.dim() < 1:
                raise ValueError("`probs` parameter must be at least one-dimensional.")
            self.probs = probs / probs.sum(-1, keepdim=True)
        else:
            if logits.dim() < 1:
                raise ValueError("`logits` parameter must be at least one-dimensional.")
            self.logits = logits - logits.logsumexp(dim=-1, keepdim=True)
        self._param = self.probs if probs is not None else self.logits
        self._num_events = self._param.size()[-1]
        batch_shape = self._param.size()[:-1] if self._param.ndimension() > 1 else Size()
        super().__init__(batch_shape, validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(Categorical, _instance)
        batch_shape = Size(batch_shape)
        param_shape = batch_shape + Size((self._num_events,))
        if "probs" in self.__dict__:
            new.probs = self.probs.expand(param_shape)
            new._param = new.probs
        if "logits" in self.__dict__:
            new.logits = self.logits.expand(param_shape)
            new._param = new.logits
        new._num_events = self._num_events
        super(Categorical, new).__init__(batch_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    def _new(self, *args, **kwargs):
        return self._param.new(*args, **kwargs)

    @constraints.dependent_property(is_discrete=True, event_dim=0)
    def support(self):
        return constraints.integer_interval(0, self._num_events - 1)

    @lazy_property
    def logits(self):
        return probs_to_logits(self.probs)

    @lazy_property
    def probs(self):
        return logits_to_probs(self.logits)

    @property
    def param_shape(self) -> Size:
        return self._param.size()

    @property
    def mean(self):
        return full(self._extended_shape(), math.nan, dtype=self.probs.dtype, device=self.probs.device)

    @property
    def mode(self):
        return self.probs.argmax(dim=-1)

    @property
    def variance(self):
        return full(self._extended_shape(), math.nan, dtype=self.probs.dtype, device=self.probs.device)

    def sample(self, sample_shape=Size()):
        if not isinstance(sample_shape, Size):
            sample_shape = Size(sample_shape)
        return _inverse_cdf_sample(self.probs.detach(), sample_shape)

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        value = value.long().unsqueeze(-1)
        log_pmf = self.logits
        if value.shape[:-1] == log_pmf.shape[:-1]:  # the common case: one value per batch element
            return log_pmf.gather(-1, value).squeeze(-1)
        value, log_pmf = broadcast_tensors(value, log_pmf)
        value = value[..., :1]
        return log_pmf.gather(-1, value).squeeze(-1)

    def entropy(self):
        min_real = D.finfo(self.logits.dtype).min
        logits = self.logits.clamp(min=min_real)
        p_log_p = logits * self.probs
        return -p_log_p.sum(-1)

    def enumerate_support(self, expand: bool = True):
        values = arange(self._num_events, dtype=D.int64, device=self._param.device)
        values = values.view((-1,) + (1,) * len(self._batch_shape))
        if expand:
            values = values.expand((-1,) + tuple(self._batch_shape))
        return values
