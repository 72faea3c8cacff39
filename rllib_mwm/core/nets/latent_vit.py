"""ViTs between MAE tokens and RSSM inputs/outputs (docs/algorithm.md §3).

`LatentViTEncoder` pools the frozen MAE tokens into the RSSM ``embed``;
`LatentViTDecoder` predicts the MAE tokens back from ``feat`` (`LatentMLPDecoder`
does the same with one hidden layer: the `cpu` preset's decoder). Both own the CLS
reordering (via `move_cls_last` / `move_cls_first`): the MAE puts CLS first, the
latent ViTs give it the extra (grid, grid) position at the end.
"""

import dataclasses

import torch
from torch import nn

from rllib_mwm.core.nets.activations import elu
from rllib_mwm.core.nets.checks import at_least, fail, heads_and_width
from rllib_mwm.core.nets.vit import (
    TransformerStack,
    init_vit_weights,
    move_cls_first,
    move_cls_last,
    sincos_pos_embed_with_extra,
)


@dataclasses.dataclass(frozen=True)
class LatentViTConfig:
    """Sizes of the latent ViTs (`wm_flat_vit`, docs/algorithm.md §3); `decoder`
    "vit" (the reference) or "mlp" (`LatentMLPDecoder`, `decoder_embed_dim`
    hidden units)."""

    embed_dim: int = 128
    depth: int = 2
    num_heads: int = 4
    decoder_embed_dim: int = 128
    decoder_depth: int = 2
    decoder_num_heads: int = 4
    decoder: str = "vit"

    def __post_init__(self):
        if self.decoder not in ("vit", "mlp"):
            raise fail("wm_flat_vit.decoder", self.decoder, "is not a decoder", "vit")
        at_least("wm_flat_vit.depth", self.depth)
        heads_and_width("wm_flat_vit", "embed_dim", "num_heads", self)
        if self.decoder == "vit":
            at_least("wm_flat_vit.decoder_depth", self.decoder_depth)
            heads_and_width(
                "wm_flat_vit", "decoder_embed_dim", "decoder_num_heads", self
            )
        else:
            at_least("wm_flat_vit.decoder_embed_dim", self.decoder_embed_dim)


class LatentViTEncoder(nn.Module):
    """MAE tokens (..., 1+L, token_dim) CLS first -> embed (..., dim): CLS moved
    last, linear, fixed sin-cos (+ extra position), transformer, mean over tokens."""

    def __init__(
        self,
        token_dim: int = 256,
        dim: int = 128,
        depth: int = 2,
        num_heads: int = 4,
        grid: int = 8,
    ):
        super().__init__()
        self.embed = nn.Linear(token_dim, dim)
        pos_embed = sincos_pos_embed_with_extra(dim, grid)[None]  # (1, L+1, dim)
        self.register_buffer("pos_embed", pos_embed, persistent=False)
        self.transformer = TransformerStack(dim, depth, num_heads)
        self.apply(init_vit_weights)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        lead = tokens.shape[:-2]
        x = move_cls_last(tokens.reshape(-1, *tokens.shape[-2:]))  # (N, L+1, token)
        x = self.embed(x) + self.pos_embed  # (N, L+1, dim)
        embed = self.transformer(x).mean(dim=1)  # (N, dim)
        return embed.reshape(*lead, -1)  # (..., dim)


class LatentViTDecoder(nn.Module):
    """feat (..., feat_dim) -> predicted MAE tokens (..., 1+L, token_dim) CLS first.

    One projected feat token followed by L+1 learned mask tokens; position
    embedding zero for the first token, then the grid table and the extra
    position; the L+1 outputs after the first are projected to token_dim and the
    last one (which predicts the MAE CLS) is moved to the front.
    """

    def __init__(
        self,
        feat_dim: int = 2048,
        token_dim: int = 256,
        dim: int = 128,
        depth: int = 2,
        num_heads: int = 4,
        grid: int = 8,
    ):
        super().__init__()
        self.num_tokens = grid * grid + 1
        self.embed = nn.Linear(feat_dim, dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dim))
        table = sincos_pos_embed_with_extra(dim, grid)  # (L+1, dim)
        pos_embed = torch.cat([torch.zeros(1, dim), table])[None]  # (1, L+2, dim)
        self.register_buffer("pos_embed", pos_embed, persistent=False)
        self.transformer = TransformerStack(dim, depth, num_heads)
        self.head = nn.Linear(dim, token_dim)
        self.apply(init_vit_weights)
        nn.init.normal_(self.mask_token, std=0.02)

    def forward(self, feat: torch.Tensor) -> torch.Tensor:
        lead = feat.shape[:-1]
        x = self.embed(feat.reshape(-1, feat.shape[-1]))[:, None]  # (N, 1, dim)
        fill = self.mask_token.expand(x.shape[0], self.num_tokens, -1)
        x = torch.cat([x, fill], dim=1) + self.pos_embed  # (N, L+2, dim)
        _, x = self.transformer(x).split([1, self.num_tokens], dim=1)  # (a split:
        # its gradient is a concatenation, a slice's a zero-filled tensor)
        tokens = self.head(x)  # (N, L+1, token_dim) CLS last
        tokens = move_cls_first(tokens)  # (N, 1+L, token_dim)
        return tokens.reshape(*lead, *tokens.shape[1:])


class LatentMLPDecoder(nn.Module):
    """feat (..., feat_dim) -> predicted MAE tokens (..., 1+L, token_dim) CLS first,
    through one ELU hidden layer (`wm_flat_vit.decoder: mlp`, the `cpu` preset's).

    Every predicted token reads ``feat`` directly; why: docs/learning.md, "The world
    model did not read its input".
    """

    def __init__(
        self,
        feat_dim: int = 2048,
        token_dim: int = 256,
        hidden: int = 256,
        grid: int = 8,
        mean_momentum: float = 0.99,
    ):
        super().__init__()
        self.num_tokens = grid * grid + 1
        self.hidden = nn.Linear(feat_dim, hidden)
        self.out = nn.Linear(hidden, self.num_tokens * token_dim)
        self.apply(init_vit_weights)
        # The network predicts the tokens' offset from their running mean. Adam
        # moves an output bias by about lr per update, so learning the mean frame
        # itself took the preset hundreds of updates while the MAE kept moving it.
        self.mean_momentum = mean_momentum
        self.register_buffer("token_mean", torch.zeros(self.num_tokens, token_dim))
        self.register_buffer("mean_updates", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def track_mean(self, tokens: torch.Tensor) -> None:
        """Moves the running mean towards the batch's mean tokens (..., 1+L, D);
        the first batch sets it. No host sync: the first-batch test stays on the
        device, as the learner's reward scale does."""
        batch_mean = tokens.reshape(-1, *self.token_mean.shape).float().mean(0)
        keep = self.mean_momentum * (self.mean_updates > 0).float()  # 0-dim tensor
        self.token_mean.mul_(keep).add_(batch_mean * (1.0 - keep))
        self.mean_updates += 1

    def forward(self, feat: torch.Tensor) -> torch.Tensor:
        tokens = self.out(elu(self.hidden(feat)))  # (..., (L+1)·D)
        tokens = tokens.unflatten(-1, (self.num_tokens, -1))  # (..., 1+L, D) CLS 1st
        return tokens + self.token_mean.to(tokens.dtype)
