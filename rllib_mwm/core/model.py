"""MWM's networks as one module, and acting with them (docs/algorithm.md §2–§5).

`MWMNetworks` builds the networks from the MWM keys and holds the computations
every host shares (`tokens`, `embed`, `act`); `MWMModel` is it as a plain
`nn.Module` (the core loop, benchmarks), `MWMTorchRLModule` the same mixed into
RLlib's module, so both have the same attribute names and state-dict keys:
`mae_encoder`, `mae_decoder`, `latent_encoder`, `latent_decoder`, `rssm`,
`reward_head`, `discount_head` (only with `pred_discount`), `actor`, `critic`,
`slow_critic`.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from rllib_mwm.core.nets.configs import network_configs
from rllib_mwm.core.nets.heads import ActorHead, CriticHead, DiscountHead, RewardHead
from rllib_mwm.core.nets.latent_vit import (
    LatentMLPDecoder,
    LatentViTDecoder,
    LatentViTEncoder,
)
from rllib_mwm.core.nets.mae import MAEConfig, MAEDecoder, MaskedViTEncoder, standardize
from rllib_mwm.core.nets.rssm import RSSM

Tensor = torch.Tensor

#: Frames per pass of the MAE encoder in `MWMNetworks.tokens`.
TOKEN_CHUNK = 500


class MWMNetworks:
    """The networks and their shared computations; mixed into an `nn.Module`."""

    def build_networks(
        self,
        model_config: Mapping[str, Any],
        action_space: gym.Space,
        observation_space: gym.Space | None = None,
    ) -> None:
        """Builds every network from `model_config` (the `MODEL_KEYS` values)."""
        self.discrete = isinstance(action_space, gym.spaces.Discrete)
        self.action_dim = (
            int(action_space.n) if self.discrete else int(np.prod(action_space.shape))
        )
        nets = network_configs(model_config, self.action_dim)
        self.mae_config = nets.mae
        check_observation_space(observation_space, self.mae_config)
        self.eval_state_mean = bool(model_config.get("eval_state_mean", False))
        vit, feat_dim = nets.latent_vit, nets.feat_dim
        grid, token_dim = self.mae_config.grid, self.mae_config.embed_dim
        self.mae_encoder = MaskedViTEncoder(self.mae_config)
        self.mae_decoder = MAEDecoder(self.mae_config)
        self.latent_encoder = LatentViTEncoder(
            token_dim, vit.embed_dim, vit.depth, vit.num_heads, grid
        )
        self.rssm = RSSM(nets.rssm)
        if vit.decoder == "mlp":
            self.latent_decoder = LatentMLPDecoder(
                feat_dim, token_dim, hidden=vit.decoder_embed_dim, grid=grid
            )
        else:
            self.latent_decoder = LatentViTDecoder(
                feat_dim,
                token_dim,
                vit.decoder_embed_dim,
                vit.decoder_depth,
                vit.decoder_num_heads,
                grid,
            )
        reward, discount = nets.reward_head, nets.discount_head
        self.reward_head = RewardHead(feat_dim, reward.layers, reward.units)
        self.discount_head = (
            DiscountHead(feat_dim, discount.layers, discount.units)
            if model_config["pred_discount"]
            else None
        )
        actor = nets.actor
        self.actor = ActorHead(
            feat_dim,
            self.action_dim,
            self.discrete,
            actor.layers,
            actor.units,
            actor.min_std,
            actor.max_std,
        )
        self.critic = CriticHead(feat_dim, nets.critic.layers, nets.critic.units)
        self.slow_critic = copy.deepcopy(self.critic).requires_grad_(False)

    # ----------------------------------------------------------------- encoding
    def tokens(self, images: Tensor) -> Tensor:
        """Unmasked MAE tokens of uint8 frames (..., H, W, 3) → (..., 1+L, D).

        Frames are independent here, so they go through the encoder
        `TOKEN_CHUNK` at a time: the same numbers, with each layer's output at
        0.13 GB instead of 0.66 GB for a paper batch's 2500 frames."""
        lead = images.shape[:-3]
        frames = images.reshape(-1, *images.shape[-3:])
        tokens = torch.cat(
            [
                self.mae_encoder(standardize(chunk), 0.0)[0]
                for chunk in frames.split(TOKEN_CHUNK)
            ]
        )
        return tokens.reshape(*lead, *tokens.shape[1:])

    def embed(self, tokens: Tensor) -> Tensor:
        """Pooled RSSM input of MAE tokens (..., 1+L, D) → (..., E)."""
        lead = tokens.shape[:-2]
        embed = self.latent_encoder(tokens.reshape(-1, *tokens.shape[-2:]))
        return embed.reshape(*lead, embed.shape[-1])

    # ------------------------------------------------------------------- acting
    def get_initial_state(self) -> dict[str, Tensor]:
        rssm = self.rssm.cfg
        return {
            "deter": torch.zeros(rssm.deter),
            "stoch": torch.zeros(rssm.stoch, rssm.discrete),
            "action": torch.zeros(self.action_dim),
        }

    def act(
        self,
        obs: Tensor,
        state: dict[str, Tensor],
        is_first: Tensor,
        *,
        explore: bool,
        sample_state: bool = True,
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """One policy step per env for T ≥ 1 steps (docs/algorithm.md §5).

        obs (B, T, H, W, 3) uint8, is_first (B, T); returns actions (B, T, A) and
        the state after the last step.
        """
        embed = self.embed(self.tokens(obs))  # (B, T, E)
        latent = {"deter": state["deter"], "stoch": state["stoch"]}
        prev_action, actions = state["action"], []
        for t in range(obs.shape[1]):
            latent = self.rssm.posterior_step(
                latent, prev_action, embed[:, t], is_first[:, t], sample=sample_state
            )
            dist = self.actor(self.rssm.feat(latent))
            prev_action = dist.sample() if explore else dist.mode()
            actions.append(prev_action)
        next_state = {
            "deter": latent["deter"],
            "stoch": latent["stoch"],
            "action": prev_action,
        }
        return torch.stack(actions, 1), next_state


class MWMModel(MWMNetworks, nn.Module):
    """The networks as a plain module: `MWMModel(settings_or_model_config, space)`."""

    def __init__(
        self,
        model_config: Mapping[str, Any],
        action_space: gym.Space,
        observation_space: gym.Space | None = None,
    ):
        nn.Module.__init__(self)
        self.build_networks(model_config, action_space, observation_space)


def check_observation_space(space, mae: MAEConfig) -> None:
    """MWM sees `img_size`² RGB frames (docs/algorithm.md §1)."""
    shape = (mae.img_size, mae.img_size, mae.in_chans)
    if space is None:  # Built without spaces: nothing to check.
        return
    if not (
        isinstance(space, gym.spaces.Box)
        and space.shape == shape
        and space.dtype == np.uint8
    ):
        raise ValueError(
            f"MWM needs uint8 image observations of shape {shape} (mae.img_size, "
            f"mae.in_chans), this env gives {space}; use an image env such as "
            f"metaworld_reach, or env_config size ({shape[0]}, {shape[1]})"
        )
