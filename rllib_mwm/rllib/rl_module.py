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

from typing import Any

import torch
from ray.rllib.core.columns import Columns
from ray.rllib.core.rl_module.apis import InferenceOnlyAPI
from ray.rllib.core.rl_module.torch import TorchRLModule

from rllib_mwm.core.model import MWMNetworks

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


class MWMTorchRLModule(MWMNetworks, TorchRLModule, InferenceOnlyAPI):
    """Masked World Models as one RLlib module (all widths from `model_config`;
    the networks and acting: `rllib_mwm.core.model.MWMNetworks`)."""

    def setup(self) -> None:
        self.build_networks(
            self.model_config, self.action_space, self.observation_space
        )

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

    # ------------------------------------------------------------------- acting
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
