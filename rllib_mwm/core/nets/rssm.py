"""DreamerV2 discrete RSSM on the pooled latent-ViT embeddings (docs/algorithm.md §3).

State = {"deter": (B, deter), "stoch": (B, stoch, discrete) one-hot,
"logit": (B, stoch, discrete)}; feat = [flat(stoch), deter].
"""

import dataclasses

import torch
import torch.nn.functional as F
from torch import nn

from rllib_mwm.core.nets.activations import elu
from rllib_mwm.core.nets.checks import at_least, fail
from rllib_mwm.core.nets.dists import OneHotST


@dataclasses.dataclass(frozen=True)
class RSSMConfig:
    """RSSM sizes (docs/algorithm.md §3). ``action_pad`` > action_dim zero-pads
    actions to that many dims (the reference used 50). ``img_in_act`` False (the
    default) reproduces the released MWM code, which feeds img_in's output straight
    into the GRU; True adds DreamerV2's ELU there."""

    action_dim: int
    embed_dim: int = 128
    deter: int = 1024
    hidden: int = 1024
    stoch: int = 32
    discrete: int = 32
    action_pad: int = 0
    img_in_act: bool = False

    def __post_init__(self):
        for name in ("deter", "hidden", "stoch", "discrete"):
            at_least(f"rssm.{name}", getattr(self, name))
        at_least("wm_flat_vit.embed_dim", self.embed_dim)
        if self.action_dim < 1:
            raise ValueError(
                f"RSSMConfig.action_dim must be >= 1, got {self.action_dim}"
            )
        at_least("rssm.action_pad", self.action_pad, 0)
        if self.action_pad and self.action_pad < self.action_dim:
            raise fail(
                "rssm.action_pad",
                self.action_pad,
                f"is below the action size {self.action_dim}",
                f"0 or {max(self.action_dim, 50)}",
            )

    @property
    def action_in(self) -> int:
        return max(self.action_pad, self.action_dim)

    @property
    def feat_dim(self) -> int:
        return self.stoch * self.discrete + self.deter


class LayerNormGRUCell(nn.Module):
    """GRU with LayerNorm on the fused gate pre-activations (DreamerV2):
    reset, cand, update = LN(W[x, h]); cand = tanh(σ(reset)·cand);
    u = σ(update + update_bias); h' = u·cand + (1 − u)·h. LayerNorm ε = 1e-3 as in
    the reference's NormLayer."""

    def __init__(self, input_dim: int, size: int, update_bias: float = -1.0):
        super().__init__()
        self.update_bias = update_bias
        self.linear = nn.Linear(input_dim + size, 3 * size)
        self.norm = nn.LayerNorm(3 * size, eps=1e-3)

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        parts = self.norm(self.linear(torch.cat([x, h], dim=-1)))  # (B, 3·size)
        reset, cand, update = parts.chunk(3, dim=-1)
        cand = torch.tanh(torch.sigmoid(reset) * cand)
        update = torch.sigmoid(update + self.update_bias)
        return update * cand + (1 - update) * h  # (B, size)


def _glorot_init(module: nn.Module) -> None:
    if isinstance(module, nn.Linear):
        nn.init.xavier_uniform_(module.weight)
        nn.init.zeros_(module.bias)


class RSSM(nn.Module):
    """Recurrent state-space model with 32×32 categorical latents
    (docs/algorithm.md §3)."""

    def __init__(self, cfg: RSSMConfig):
        super().__init__()
        self.cfg = cfg
        flat = cfg.stoch * cfg.discrete
        self.img_in = nn.Linear(flat + cfg.action_in, cfg.hidden)
        self.cell = LayerNormGRUCell(cfg.hidden, cfg.deter)
        self.img_out = nn.Linear(cfg.deter, cfg.hidden)
        self.img_dist = nn.Linear(cfg.hidden, flat)
        self.obs_out = nn.Linear(cfg.deter + cfg.embed_dim, cfg.hidden)
        self.obs_dist = nn.Linear(cfg.hidden, flat)
        self.apply(_glorot_init)

    def initial(
        self, batch_size: int, device=None, dtype=torch.float32
    ) -> dict[str, torch.Tensor]:
        """All-zero state."""
        shape = (batch_size, self.cfg.stoch, self.cfg.discrete)
        return {
            "deter": torch.zeros(
                batch_size, self.cfg.deter, device=device, dtype=dtype
            ),
            "stoch": torch.zeros(shape, device=device, dtype=dtype),
            "logit": torch.zeros(shape, device=device, dtype=dtype),
        }

    def feat(self, state: dict[str, torch.Tensor]) -> torch.Tensor:
        """[flat(stoch), deter] -> (..., stoch·discrete + deter)."""
        return torch.cat([state["stoch"].flatten(-2), state["deter"]], dim=-1)

    def _latent(self, logit: torch.Tensor, sample: bool, site: str) -> torch.Tensor:
        dist = OneHotST(logit)  # (B, stoch, discrete)
        return dist.sample(site) if sample else dist.mode()

    def _logit(self, layer: nn.Linear, x: torch.Tensor) -> torch.Tensor:
        """`layer(x)` as (..., stoch, discrete) logits, in float32 even under bf16
        autocast: logits rounded to bf16 (a step of 0.03 at |logit| ≈ 5) put
        noise of the size of the KL itself into the KL between nearly equal
        posterior and prior. Without autocast: `layer(x)`."""
        with torch.autocast(x.device.type, enabled=False):
            logit = layer(x.float())  # (..., stoch·discrete)
        return logit.unflatten(-1, (self.cfg.stoch, self.cfg.discrete))

    def _pad_action(self, action: torch.Tensor) -> torch.Tensor:
        return F.pad(action, (0, self.cfg.action_in - action.shape[-1]))

    def _deter_step(
        self, state: dict[str, torch.Tensor], prev_action: torch.Tensor
    ) -> torch.Tensor:
        """h = W[flat(stoch), a] (then ELU if img_in_act); deter = GRU(h, deter)."""
        x = torch.cat([state["stoch"].flatten(-2), self._pad_action(prev_action)], -1)
        x = self.img_in(x)  # (B, hidden)
        x = elu(x) if self.cfg.img_in_act else x
        return self.cell(x, state["deter"])  # (B, deter)

    def prior_logit(self, deter: torch.Tensor) -> torch.Tensor:
        """The prior's logits W(ELU(W deter)), (..., deter) -> (..., stoch, K)."""
        return self._logit(self.img_dist, elu(self.img_out(deter)))

    def img_step(
        self,
        state: dict[str, torch.Tensor],
        prev_action: torch.Tensor,
        sample=True,
        site: str = "imagine_prior",
    ) -> dict[str, torch.Tensor]:
        """Prior: deter = GRU(W[flat(stoch), a], deter), logit = `prior_logit`,
        stoch ~ OneHot(logit) straight-through, drawn from the uniforms of `site`
        (`rllib_mwm.core.nets.noise`)."""
        deter = self._deter_step(state, prev_action)
        logit = self.prior_logit(deter)
        stoch = self._latent(logit, sample, site)
        return {"deter": deter, "stoch": stoch, "logit": logit}

    def posterior_step(
        self,
        prev_state: dict[str, torch.Tensor],
        prev_action: torch.Tensor,
        embed: torch.Tensor,
        is_first: torch.Tensor,
        sample=True,
    ) -> dict[str, torch.Tensor]:
        """The filter's step: deter from the previous state and action, then the
        posterior from deter and ``embed``. Where ``is_first`` the previous state
        and action are zeroed multiplicatively (no host-side branch)."""
        keep = 1.0 - is_first.to(prev_action.dtype)  # (B,)
        prev_state = {k: v * _expand_as(keep, v) for k, v in prev_state.items()}
        deter = self._deter_step(prev_state, prev_action * keep[:, None])
        x = elu(self.obs_out(torch.cat([deter, embed], dim=-1)))
        logit = self._logit(self.obs_dist, x)  # (B, stoch, discrete)
        stoch = self._latent(logit, sample, "observe_posterior")
        return {"deter": deter, "stoch": stoch, "logit": logit}

    def obs_step(
        self,
        prev_state: dict[str, torch.Tensor],
        prev_action: torch.Tensor,
        embed: torch.Tensor,
        is_first: torch.Tensor,
        sample=True,
    ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """Posterior (`posterior_step`) and prior for one step; the prior shares
        the posterior's deter and samples its stoch at `observe_prior`."""
        post = self.posterior_step(prev_state, prev_action, embed, is_first, sample)
        logit = self.prior_logit(post["deter"])
        stoch = self._latent(logit, sample, "observe_prior")
        return post, {"deter": post["deter"], "stoch": stoch, "logit": logit}

    def observe(
        self,
        embed: torch.Tensor,
        action: torch.Tensor,
        is_first: torch.Tensor,
        state: dict[str, torch.Tensor] | None = None,
        sample=True,
    ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """Filter a sequence: embed (B, T, E), action (B, T, A) where action[:, t]
        led to step t, is_first (B, T) -> post (B, T, ...) and prior
        {"deter", "logit"} (B, T, ...).

        Only the posterior feeds the next step, so the prior's logits are
        computed once for all B·T steps after the loop (one large matmul instead
        of T small ones), and the prior is not sampled: its stoch is never used
        (the KL reads logits)."""
        if state is None:
            state = self.initial(embed.shape[0], embed.device, embed.dtype)
        posts = []
        for t in range(embed.shape[1]):
            state = self.posterior_step(
                state, action[:, t], embed[:, t], is_first[:, t], sample
            )
            posts.append(state)
        post = _stack(posts)
        prior = {"deter": post["deter"], "logit": self.prior_logit(post["deter"])}
        return post, prior


def _expand_as(scale: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return scale.reshape(scale.shape + (1,) * (x.dim() - scale.dim()))


def _stack(states: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    return {k: torch.stack([s[k] for s in states], dim=1) for k in states[0]}
