"""Networks of MWM: MAE (§2), latent ViTs and RSSM (§3), heads (§3–§4)."""

from rllib_mwm.core.nets.dists import (
    MSE,
    Bernoulli,
    OneHotST,
    SymlogMSE,
    TruncNormalST,
    kl_categorical,
    symexp,
    symlog,
)
from rllib_mwm.core.nets.heads import (
    MLP,
    ActorHead,
    CriticHead,
    DiscountHead,
    RewardHead,
)
from rllib_mwm.core.nets.latent_vit import (
    LatentMLPDecoder,
    LatentViTDecoder,
    LatentViTEncoder,
)
from rllib_mwm.core.nets.mae import (
    MAEConfig,
    MAEDecoder,
    MaskedViTEncoder,
    destandardize,
    standardize,
)
from rllib_mwm.core.nets.rssm import RSSM, LayerNormGRUCell, RSSMConfig
from rllib_mwm.core.nets.vit import (
    TransformerStack,
    move_cls_first,
    move_cls_last,
    patchify,
    random_masking,
    sincos_pos_embed_2d,
    sincos_pos_embed_with_extra,
    unpatchify,
    unshuffle,
)

__all__ = [
    "MLP",
    "MSE",
    "RSSM",
    "ActorHead",
    "Bernoulli",
    "CriticHead",
    "DiscountHead",
    "LatentMLPDecoder",
    "LatentViTDecoder",
    "LatentViTEncoder",
    "LayerNormGRUCell",
    "MAEConfig",
    "MAEDecoder",
    "MaskedViTEncoder",
    "OneHotST",
    "RSSMConfig",
    "RewardHead",
    "SymlogMSE",
    "TransformerStack",
    "TruncNormalST",
    "destandardize",
    "kl_categorical",
    "move_cls_first",
    "move_cls_last",
    "patchify",
    "random_masking",
    "sincos_pos_embed_2d",
    "sincos_pos_embed_with_extra",
    "standardize",
    "symexp",
    "symlog",
    "unpatchify",
    "unshuffle",
]
