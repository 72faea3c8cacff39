"""Output objects of the heads with ``.loss(target)`` / ``.mode()``
(docs/algorithm.md §3, §4).

Losses are elementwise (no batch reduction); the loss functions reduce.
"""

import math

import torch
import torch.nn.functional as F
from torch.special import ndtr, ndtri

from rllib_mwm.core.nets.noise import uniform

_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


def symlog(x: torch.Tensor) -> torch.Tensor:
    """sign(x)·ln(1 + |x|) (docs/algorithm.md §2)."""
    return torch.sign(x) * torch.log1p(x.abs())


def symexp(x: torch.Tensor) -> torch.Tensor:
    """Inverse of `symlog`: sign(x)·(exp|x| − 1)."""
    return torch.sign(x) * torch.expm1(x.abs())


class SymlogMSE:
    """Scalar regression in symlog space (reward heads, docs/algorithm.md §2–§3).

    ``pred`` has the target's shape (heads drop their trailing 1).
    """

    def __init__(self, pred: torch.Tensor):
        self.pred = pred

    def mode(self) -> torch.Tensor:
        return symexp(self.pred)

    def loss(self, target: torch.Tensor) -> torch.Tensor:
        assert self.pred.shape == target.shape, (self.pred.shape, target.shape)
        return (self.pred - symlog(target)) ** 2


class MSE:
    """Squared error summed over the last ``event_dims`` dims (critic, features)."""

    def __init__(self, pred: torch.Tensor, event_dims: int = 0):
        self.pred = pred
        self.event_dims = event_dims

    def mode(self) -> torch.Tensor:
        return self.pred

    def loss(self, target: torch.Tensor) -> torch.Tensor:
        assert self.pred.shape == target.shape, (self.pred.shape, target.shape)
        dist = (self.pred - target) ** 2
        dims = tuple(range(-self.event_dims, 0))
        return dist.sum(dims) if dims else dist


def _log_std_normal(z: torch.Tensor) -> torch.Tensor:
    """log φ(z) of the standard normal density."""
    return -0.5 * z**2 - _HALF_LOG_2PI


def _straight_through_clip(x: torch.Tensor, low: float, high: float) -> torch.Tensor:
    return x + (x.clamp(low, high) - x).detach()


class TruncNormalST:
    """Normal(mean, std) truncated to [low, high], independent over the last dim
    (actor, docs/algorithm.md §4). Samples and mode are clipped to
    [low + clip, high − clip] with a straight-through gradient."""

    def __init__(self, mean, std, low=-1.0, high=1.0, clip=1e-6):
        self.mean, self.std = mean, std
        self.low, self.high, self.clip = low, high, clip
        alpha = (low - mean) / std
        beta = (high - mean) / std
        # The normalizer Z = Φ(b) − Φ(a) in the tail where the CDF values are
        # smallest (best float precision): mirror the interval when its centre is > 0.
        sign = torch.where(alpha + beta > 0, -1.0, 1.0).to(mean.dtype)
        low_z = torch.minimum(alpha * sign, beta * sign)
        high_z = torch.maximum(alpha * sign, beta * sign)
        tiny = torch.finfo(mean.dtype).tiny
        self._log_z = torch.log((ndtr(high_z) - ndtr(low_z)).clamp_min(tiny))
        self._alpha, self._beta = alpha, beta

    def rsample(
        self, sample_shape: tuple[int, ...] = (), site: str = "imagine_action"
    ) -> torch.Tensor:
        """Inverse-CDF reparameterized sample (*sample_shape, ..., A) from the
        uniforms of `site`:
        x = μ + σ·Φ⁻¹(Φ(a) + u·(Φ(b) − Φ(a))), in float64 as the released code,
        with a, b = (low − μ)/σ, (high − μ)/σ; the gradient reaches μ and σ."""
        shape = torch.Size(sample_shape) + self.mean.shape
        mean, std = self.mean.double().expand(shape), self.std.double().expand(shape)
        a, b = (self.low - mean) / std, (self.high - mean) / std
        cdf_a, cdf_b = ndtr(a), ndtr(b)
        u = uniform(site, tuple(shape), device=mean.device, dtype=torch.float64)
        p = cdf_a + u * (cdf_b - cdf_a)
        eps = torch.finfo(torch.float64).eps
        z = ndtri(p.clamp(torch.finfo(torch.float64).tiny, 1 - eps))
        x = (mean + std * z).to(self.mean.dtype).clamp(self.low, self.high)
        return _straight_through_clip(x, self.low + self.clip, self.high - self.clip)

    def sample(
        self, sample_shape: tuple[int, ...] = (), site: str = "act"
    ) -> torch.Tensor:
        return self.rsample(sample_shape, site).detach()

    def mode(self) -> torch.Tensor:
        return _straight_through_clip(
            self.mean, self.low + self.clip, self.high - self.clip
        )

    def entropy(self) -> torch.Tensor:
        """log(√(2πe)·σ·Z) + (α·φ(α) − β·φ(β)) / (2Z), summed over the last dim."""
        a, b = self._alpha, self._beta
        tail = a * torch.exp(_log_std_normal(a) - self._log_z)
        tail = tail - b * torch.exp(_log_std_normal(b) - self._log_z)
        ent = _HALF_LOG_2PI + 0.5 + torch.log(self.std) + self._log_z + 0.5 * tail
        return ent.sum(-1)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Log density of x inside [low, high], summed over the last dim."""
        z = (x - self.mean) / self.std
        logp = _log_std_normal(z) - torch.log(self.std) - self._log_z
        return logp.sum(-1)


class OneHotST:
    """Categorical over the last dim with straight-through one-hot samples
    (``one_hot + probs − sg(probs)``; RSSM latents and discrete actions)."""

    def __init__(self, logits: torch.Tensor):
        self.logits = logits
        self.log_probs = F.log_softmax(logits, dim=-1)
        self.probs = self.log_probs.exp()

    def _straight_through(self, index: torch.Tensor) -> torch.Tensor:
        onehot = F.one_hot(index, self.logits.shape[-1]).to(self.probs.dtype)
        return onehot + self.probs - self.probs.detach()

    def sample(self, site: str = "act") -> torch.Tensor:
        """Inverse-CDF sample from the uniforms of `site`, as the released code:
        the index is #{k : cumsum(probs)[k] < u} (cumsum in float64), at most K − 1;
        straight-through gradient."""
        u = uniform(
            site, self.logits.shape[:-1], device=self.logits.device, dtype=torch.float64
        )
        cdf = self.probs.detach().double().cumsum(-1)  # (..., K)
        index = (cdf < u[..., None]).sum(-1).clamp(max=self.logits.shape[-1] - 1)
        return self._straight_through(index)

    def rsample(self, site: str = "imagine_action") -> torch.Tensor:
        return self.sample(site=site)

    def mode(self) -> torch.Tensor:
        return self._straight_through(self.logits.argmax(-1))

    def entropy(self) -> torch.Tensor:
        return -(self.probs * self.log_probs).sum(-1)

    def log_prob(self, onehot: torch.Tensor) -> torch.Tensor:
        return (onehot * self.log_probs).sum(-1)


class Bernoulli:
    """Bernoulli with logits (discount head, docs/algorithm.md §3); soft-label
    BCE loss."""

    def __init__(self, logits: torch.Tensor):
        self.logits = logits

    def mean(self) -> torch.Tensor:
        return torch.sigmoid(self.logits)

    def mode(self) -> torch.Tensor:
        return (self.logits > 0).to(self.logits.dtype)

    def loss(self, target: torch.Tensor) -> torch.Tensor:
        """−[t·log σ(x) + (1 − t)·log(1 − σ(x))], elementwise."""
        assert self.logits.shape == target.shape, (self.logits.shape, target.shape)
        return F.binary_cross_entropy_with_logits(
            self.logits, target.to(self.logits.dtype), reduction="none"
        )

    def log_prob(self, target: torch.Tensor) -> torch.Tensor:
        return -self.loss(target)


def kl_categorical(logit_p: torch.Tensor, logit_q: torch.Tensor) -> torch.Tensor:
    """KL(p ‖ q) of independent categoricals (..., stoch, classes) -> (...)."""
    log_p = F.log_softmax(logit_p, dim=-1)
    log_q = F.log_softmax(logit_q, dim=-1)
    return (log_p.exp() * (log_p - log_q)).sum((-2, -1))
