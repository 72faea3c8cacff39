"""The networks' sizes from the algorithm config, checked once.

`network_configs` builds every network's frozen config from the `MWMConfig` keys
(`MODEL_KEYS`); `MWMConfig.validate()` calls it before anything starts and the
RLModule builds its networks from what it returns, so the check and the networks
cannot drift apart.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from rllib_mwm.core.nets.heads import ActorConfig, HeadConfig
from rllib_mwm.core.nets.latent_vit import LatentViTConfig
from rllib_mwm.core.nets.mae import MAEConfig
from rllib_mwm.core.nets.rssm import RSSMConfig


@dataclasses.dataclass(frozen=True)
class NetworkConfigs:
    mae: MAEConfig
    latent_vit: LatentViTConfig
    rssm: RSSMConfig
    reward_head: HeadConfig
    discount_head: HeadConfig
    actor: ActorConfig
    critic: HeadConfig

    @property
    def feat_dim(self) -> int:
        return self.rssm.feat_dim


def network_configs(config: dict[str, Any], action_dim: int = 1) -> NetworkConfigs:
    """`config`: the MWM keys `mae`, `mask_ratio`, `wm_flat_vit`, `rssm`, the heads'
    (a model config or an `MWMConfig`'s values). Raises `ValueError` naming the key
    of the first size that cannot work."""
    latent_vit = LatentViTConfig(**config["wm_flat_vit"])
    return NetworkConfigs(
        mae=MAEConfig(**config["mae"], mask_ratio=config["mask_ratio"]),
        latent_vit=latent_vit,
        rssm=RSSMConfig(
            action_dim=action_dim, embed_dim=latent_vit.embed_dim, **config["rssm"]
        ),
        reward_head=HeadConfig("reward_head", **config["reward_head"]),
        discount_head=HeadConfig("discount_head", **config["discount_head"]),
        actor=ActorConfig("actor", **config["actor"]),
        critic=HeadConfig("critic", **config["critic"]),
    )
