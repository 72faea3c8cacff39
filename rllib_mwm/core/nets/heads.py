"""MLP heads on the RSSM feat: reward, discount, actor, critic
(docs/algorithm.md §3, §4)."""

import dataclasses
import math

import torch
from torch import nn

from rllib_mwm.core.nets.activations import ELU
from rllib_mwm.core.nets.checks import at_least, fail
from rllib_mwm.core.nets.dists import MSE, Bernoulli, OneHotST, SymlogMSE, TruncNormalST


def variance_scaling_(weight: torch.Tensor, scale: float) -> torch.Tensor:
    """Keras VarianceScaling(scale, 'fan_avg', 'uniform') for a Linear weight."""
    fan_out, fan_in = weight.shape
    limit = math.sqrt(3.0 * scale / ((fan_in + fan_out) / 2))
    return nn.init.uniform_(weight, -limit, limit)


@dataclasses.dataclass(frozen=True)
class HeadConfig:
    """An MLP head's size; `key` is its config key (`reward_head`, `critic`, ...)."""

    key: str
    layers: int = 4
    units: int = 512

    def __post_init__(self):
        at_least(f"{self.key}.layers", self.layers, 0)
        at_least(f"{self.key}.units", self.units)


@dataclasses.dataclass(frozen=True)
class ActorConfig(HeadConfig):
    """The actor's size and its std range (min_std, max_std)."""

    min_std: float = 0.1
    max_std: float = 1.0

    def __post_init__(self):
        super().__post_init__()
        if not self.max_std > 0:
            raise fail("actor.max_std", self.max_std, "must be > 0", 1.0)
        if not 0 < self.min_std < self.max_std:
            raise fail(
                "actor.min_std",
                self.min_std,
                f"must lie in (0, actor.max_std {self.max_std}) (std = (max_std − "
                "min_std)·sigmoid(x) + min_std)",
                round(min(0.1, self.max_std / 2), 6),
            )


class MLP(nn.Module):
    """``layers`` × (Linear(units) + act), then a Linear output layer.

    Hidden layers Glorot-uniform; the output layer starts small (variance scaling
    0.1, fan-avg, uniform; docs/algorithm.md §3); zero biases.
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        layers: int = 4,
        units: int = 512,
        act: type[nn.Module] = ELU,
        out_scale: float = 0.1,
    ):
        super().__init__()
        hidden = []
        for i in range(layers):
            linear = nn.Linear(in_dim if i == 0 else units, units)
            nn.init.xavier_uniform_(linear.weight)
            nn.init.zeros_(linear.bias)
            hidden += [linear, act()]
        self.hidden = nn.Sequential(*hidden)
        self.out = nn.Linear(units if layers else in_dim, out_dim)
        variance_scaling_(self.out.weight, out_scale)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.hidden(x))  # (..., out_dim)


def _scalar(mlp: MLP, feat: torch.Tensor) -> torch.Tensor:
    return mlp(feat).squeeze(-1).float()  # (...,) float32 even under autocast


class RewardHead(nn.Module):
    """feat -> `SymlogMSE` over a scalar; ``.mode()`` is the reward
    (docs/algorithm.md §3)."""

    def __init__(self, feat_dim: int, layers: int = 4, units: int = 512):
        super().__init__()
        self.mlp = MLP(feat_dim, 1, layers, units)

    def forward(self, feat: torch.Tensor) -> SymlogMSE:
        return SymlogMSE(_scalar(self.mlp, feat))


class CriticHead(nn.Module):
    """feat -> `MSE` over a scalar value (docs/algorithm.md §4)."""

    def __init__(self, feat_dim: int, layers: int = 4, units: int = 512):
        super().__init__()
        self.mlp = MLP(feat_dim, 1, layers, units)

    def forward(self, feat: torch.Tensor) -> MSE:
        return MSE(_scalar(self.mlp, feat))


class DiscountHead(nn.Module):
    """feat -> `Bernoulli` logits of episode continuation (docs/algorithm.md §3)."""

    def __init__(self, feat_dim: int, layers: int = 4, units: int = 512):
        super().__init__()
        self.mlp = MLP(feat_dim, 1, layers, units)

    def forward(self, feat: torch.Tensor) -> Bernoulli:
        return Bernoulli(_scalar(self.mlp, feat))


class ActorHead(nn.Module):
    """Policy (docs/algorithm.md §4). Continuous: mean tanh(μ), std
    (max−min)·σ(s) + min, a `TruncNormalST` on [−1, 1]. Discrete: `OneHotST` over
    action_dim logits.

    Continuous output rows: the first action_dim (μ) get the small 0.1 init; the
    std rows get Glorot-uniform like the reference's separate std Dense layer.
    """

    def __init__(
        self,
        feat_dim: int,
        action_dim: int,
        discrete: bool = False,
        layers: int = 4,
        units: int = 512,
        min_std: float = 0.1,
        max_std: float = 1.0,
    ):
        super().__init__()
        self.discrete = discrete
        self.min_std, self.max_std = min_std, max_std
        out_dim = action_dim if discrete else 2 * action_dim
        self.mlp = MLP(feat_dim, out_dim, layers, units)
        if not discrete:
            with torch.no_grad():
                w = self.mlp.out.weight  # (2A, units)
                variance_scaling_(w[:action_dim], 0.1)
                nn.init.xavier_uniform_(w[action_dim:])

    def forward(self, feat: torch.Tensor) -> TruncNormalST | OneHotST:
        return self.dist(self.params(feat))

    def params(self, feat: torch.Tensor) -> torch.Tensor:
        """The distribution's parameters (..., A) or (..., 2A), float32."""
        return self.mlp(feat).float()

    def dist(self, out: torch.Tensor) -> TruncNormalST | OneHotST:
        """The policy given `params(feat)`: stack params over steps, then build one
        distribution for all of them."""
        if self.discrete:
            return OneHotST(out)
        mean, std = out.chunk(2, dim=-1)
        std = (self.max_std - self.min_std) * torch.sigmoid(std) + self.min_std
        return TruncNormalST(torch.tanh(mean), std)
