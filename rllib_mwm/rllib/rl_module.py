"""`MWMTorchRLModule`: the MAE, the latent world model and the actor-critic.

Networks (attribute names are part of the API, docs/algorithm.md §2–§4):
`mae_encoder`, `mae_decoder`, `latent_encoder`, `latent_decoder`, `rssm`,
`reward_head`, `discount_head` (only with `pred_discount`), `actor`, `critic`,
`slow_critic`.

Acting (docs/algorithm.md §5) carries the recurrent state `{deter, stoch, action}`
per env through RLlib's state connectors: `STATE_IN` is the previous step's `STATE_OUT`
(the module's zero initial state at an episode start), and an optional `is_first`
column resets it multiplicatively. The inference-only form (env runners) drops the
decoders, the heads and the critics.
"""

from __future__ import annotations

import copy
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from ray.rllib.core.columns import Columns
from ray.rllib.core.rl_module.apis import InferenceOnlyAPI
from ray.rllib.core.rl_module.torch import TorchRLModule

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
#: The config key that sizes each network (for checkpoint-mismatch messages).
NETWORK_KEYS = {
    "mae_encoder": "mae",
    "mae_decoder": "mae",
    "latent_encoder": "wm_flat_vit",
    "latent_decoder": "wm_flat_vit",
    "rssm": "rssm",
    "reward_head": "reward_head",
    "discount_head": "discount_head",
    "actor": "actor",
    "critic": "critic",
    "slow_critic": "critic",
}


class MWMTorchRLModule(TorchRLModule, InferenceOnlyAPI):
    """Masked World Models as one RLlib module (all widths from `model_config`)."""

    def setup(self) -> None:
        model_config = self.model_config
        self.discrete = isinstance(self.action_space, gym.spaces.Discrete)
        self.action_dim = (
            int(self.action_space.n)
            if self.discrete
            else int(np.prod(self.action_space.shape))
        )
        nets = network_configs(model_config, self.action_dim)
        self.mae_config = nets.mae
        _check_observation_space(self.observation_space, self.mae_config)
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

    def set_state(self, state: dict[str, Any]) -> None:
        """RLlib's `set_state`; a state from another config (e.g. a checkpoint
        with other widths) raises one line naming the network."""
        _check_state_shapes(self.state_dict(), state)
        super().set_state(state)

    def get_non_inference_attributes(self) -> list[str]:
        names = [
            "mae_decoder",
            "latent_decoder",
            "reward_head",
            "critic",
            "slow_critic",
        ]
        return names + (["discount_head"] if self.discount_head is not None else [])

    # ----------------------------------------------------------------- encoding
    def tokens(self, images: Tensor) -> Tensor:
        """Unmasked MAE tokens of uint8 frames (..., H, W, 3) → (..., 1+L, D)."""
        lead = images.shape[:-3]
        flat = standardize(images.reshape(-1, *images.shape[-3:]))
        tokens, _, _ = self.mae_encoder(flat, 0.0)
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

    def _forward_inference(self, batch: dict[str, Any], **kwargs) -> dict[str, Any]:
        return self._act_on_batch(batch, explore=False)

    def _forward_exploration(self, batch: dict[str, Any], **kwargs) -> dict[str, Any]:
        return self._act_on_batch(batch, explore=True)

    def _act_on_batch(self, batch: dict[str, Any], explore: bool) -> dict[str, Any]:
        obs = batch[Columns.OBS]
        has_time = obs.dim() == 5
        obs = obs if has_time else obs[:, None]
        is_first = batch.get("is_first")
        is_first = (
            torch.zeros(obs.shape[:2], device=obs.device)
            if is_first is None
            else is_first.reshape(obs.shape[:2]).float()
        )
        with torch.no_grad():
            actions, state_out = self.act(
                obs,
                batch[Columns.STATE_IN],
                is_first,
                explore=explore,
                sample_state=not (self.eval_state_mean and not explore),
            )
        if self.discrete:
            actions = actions.argmax(-1)
        return {
            Columns.ACTIONS: actions if has_time else actions[:, 0],
            Columns.STATE_OUT: state_out,
        }

    def _forward_train(self, batch: dict[str, Any], **kwargs) -> dict[str, Any]:
        raise NotImplementedError(
            "MWM computes its losses in MWMTorchLearner.update_mae/update_world_model"
        )


def _check_observation_space(space, mae: MAEConfig) -> None:
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


def _check_state_shapes(own: dict[str, Any], state: dict[str, Any]) -> None:
    """Raises at the first parameter whose shape differs between `state` and
    `own`, naming its network and the config key that sizes it."""
    for name, value in state.items():
        if name not in own or not hasattr(value, "shape"):
            continue
        theirs, ours = tuple(value.shape), tuple(own[name].shape)
        if theirs != ours:
            network = name.split(".")[0]
            key = NETWORK_KEYS.get(network, network)
            raise ValueError(
                f"The checkpoint does not fit this config: network {network} "
                f"({name}) is {theirs} there and {ours} here; restore it with its "
                f"own config (Algorithm.from_checkpoint) or set `{key}` as it was"
            )
