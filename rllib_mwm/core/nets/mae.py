"""The masked autoencoder over convolutional features (docs/algorithm.md §1, §2)."""

import dataclasses
import math

import torch
import torch.nn.functional as F
from torch import nn

from rllib_mwm.core.nets.checks import at_least, divisible, fail, heads_and_width
from rllib_mwm.core.nets.vit import (
    TransformerStack,
    init_vit_weights,
    random_masking,
    sincos_pos_embed_2d,
    sincos_pos_embed_with_extra,
    unshuffle,
)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclasses.dataclass(frozen=True)
class MAEConfig:
    """MAE sizes (docs/algorithm.md §2). ``reward_quirk`` reproduces the
    reference, whose reward linear layer reads the pixel prediction of the last
    patch (192 -> 1)."""

    img_size: int = 64
    patch_size: int = 8
    in_chans: int = 3
    embed_dim: int = 256
    depth: int = 4
    num_heads: int = 4
    mlp_ratio: float = 4.0
    decoder_embed_dim: int = 256
    decoder_depth: int = 3
    decoder_num_heads: int = 4
    early_conv: bool = True
    mask_ratio: float = 0.75
    reward_pred: bool = True
    reward_quirk: bool = False
    tube_masking: bool = False

    def __post_init__(self):
        for name in ("img_size", "patch_size", "depth", "decoder_depth"):
            at_least(f"mae.{name}", getattr(self, name))
        if self.in_chans != 3:
            raise fail("mae.in_chans", self.in_chans, "must be 3 (RGB frames)", 3)
        if not self.mlp_ratio > 0:
            raise fail("mae.mlp_ratio", self.mlp_ratio, "must be > 0", 4.0)
        if self.early_conv and self.patch_size != 8:
            raise fail(
                "mae.patch_size",
                self.patch_size,
                "must be 8 with mae.early_conv (three stride-2 convs: an img_size/8 "
                "grid)",
                "8, or mae.early_conv false",
            )
        ps = self.patch_size
        divisible("mae.img_size", self.img_size, {f"mae.patch_size {ps}": ps})
        at_least("mae.num_heads", self.num_heads)
        at_least("mae.embed_dim", self.embed_dim)
        heads = self.num_heads
        divisors = {f"mae.num_heads {heads}": heads, "4 (sin-cos embedding)": 4}
        if self.early_conv:  # The stem's widths are D/8, D/4, D/2.
            divisors["8 (early conv)"] = 8
        divisible("mae.embed_dim", self.embed_dim, divisors)
        heads_and_width("mae", "decoder_embed_dim", "decoder_num_heads", self)
        if not 0.0 <= self.mask_ratio < 1.0:
            raise fail("mask_ratio", self.mask_ratio, "must be in [0, 1)", 0.75)
        patches = self.num_patches
        if int(patches * (1 - self.mask_ratio)) < 1:
            highest = math.floor((1 - 1 / patches) * 1000) / 1000
            raise fail(
                "mask_ratio",
                self.mask_ratio,
                f"keeps int({patches}·(1 − {self.mask_ratio})) = 0 of the "
                f"{patches} tokens (the MAE encoder needs one)",
                f"{highest} or less",
            )
        if self.reward_quirk and not self.reward_pred:
            raise fail(
                "mae.reward_quirk", True, "needs mae.reward_pred", "reward_quirk false"
            )

    @property
    def grid(self) -> int:
        return self.img_size // self.patch_size

    @property
    def num_patches(self) -> int:
        return self.grid**2


def _stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    mean = torch.tensor(IMAGENET_MEAN, device=x.device, dtype=x.dtype)
    std = torch.tensor(IMAGENET_STD, device=x.device, dtype=x.dtype)
    return mean, std


def standardize(images: torch.Tensor) -> torch.Tensor:
    """uint8 (..., H, W, 3) -> float32 (x/255 − ImageNet mean) / std
    (docs/algorithm.md §1)."""
    x = images.float() / 255.0
    mean, std = _stats(x)
    return (x - mean) / std


def destandardize(x: torch.Tensor) -> torch.Tensor:
    """Inverse of `standardize` to [0, 1] (clamped), for visualisation."""
    mean, std = _stats(x)
    return (x * std + mean).clamp(0.0, 1.0)


def tf_same_pad(x: torch.Tensor, kernel: int, stride: int) -> torch.Tensor:
    """Zero-pad NCHW ``x`` as TensorFlow's 'SAME' does: output ceil(size/stride),
    total pad max((out−1)·stride + kernel − size, 0), the smaller half first.

    For the 4×4 stride-2 stem on an even size this is (1, 1) on each axis; the
    extra pixel goes to the bottom/right only when the total is odd.
    """
    pads = []
    for size in (x.shape[-1], x.shape[-2]):  # F.pad order: W first, then H
        out = -(-size // stride)
        total = max((out - 1) * stride + kernel - size, 0)
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads)


class ConvStem(nn.Module):
    """Three 4×4 stride-2 TF-'SAME' convs (D/8, D/4, D/2) with ReLU, then a 1×1
    conv to D: (N, H, W, C) -> (N, (H/8)·(W/8), D) row-major tokens
    (docs/algorithm.md §2)."""

    def __init__(self, in_chans: int, dim: int):
        super().__init__()
        chans = [in_chans, dim // 8, dim // 4, dim // 2]
        self.convs = nn.ModuleList(
            nn.Conv2d(c_in, c_out, 4, stride=2)
            for c_in, c_out in zip(chans[:-1], chans[1:], strict=True)
        )
        self.proj = nn.Conv2d(dim // 2, dim, 1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.permute(0, 3, 1, 2)  # (N, C, H, W)
        for conv in self.convs:
            x = F.relu(conv(tf_same_pad(x, 4, 2)))
        x = self.proj(x)  # (N, D, H/8, W/8)
        return x.flatten(2).transpose(1, 2)  # (N, L, D)


class PatchEmbed(nn.Module):
    """Plain ViT patch embedding: conv with kernel = stride = patch_size."""

    def __init__(self, in_chans: int, dim: int, patch: int):
        super().__init__()
        self.proj = nn.Conv2d(in_chans, dim, patch, stride=patch)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.proj(images.permute(0, 3, 1, 2))  # (N, D, h, w)
        return x.flatten(2).transpose(1, 2)  # (N, L, D)


class MaskedViTEncoder(nn.Module):
    """MAE encoder (docs/algorithm.md §2): stem, fixed sin-cos embedding,
    random masking, learned CLS (zero position embedding), transformer. Output CLS
    first."""

    def __init__(self, cfg: MAEConfig):
        super().__init__()
        self.cfg = cfg
        dim = cfg.embed_dim
        if cfg.early_conv:
            self.stem = ConvStem(cfg.in_chans, dim)
        else:
            self.stem = PatchEmbed(cfg.in_chans, dim, cfg.patch_size)
        pos_embed = sincos_pos_embed_2d(dim, cfg.grid)[None]  # (1, L, D)
        self.register_buffer("pos_embed", pos_embed, persistent=False)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.transformer = TransformerStack(
            dim, cfg.depth, cfg.num_heads, cfg.mlp_ratio
        )
        self.apply(init_vit_weights)
        nn.init.normal_(self.cls_token, std=0.02)

    def forward(
        self, images: torch.Tensor, mask_ratio: float, seq_len: int = 1
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """images (N, H, W, C) standardized -> tokens (N, 1+K, D), mask (N, L)
        (1 = removed), ids_restore (N, L). With ``cfg.tube_masking`` each run of
        ``seq_len`` consecutive frames (N = B·T, batch-major) shares one mask."""
        x = self.stem(images) + self.pos_embed  # (N, L, D)
        tube_T = seq_len if self.cfg.tube_masking else None
        x, mask, ids_restore = random_masking(x, mask_ratio, tube_T)  # (N, K, D)
        cls = self.cls_token.expand(x.shape[0], -1, -1)  # (N, 1, D)
        tokens = self.transformer(torch.cat([cls, x], dim=1))  # (N, 1+K, D)
        return tokens, mask, ids_restore


class MAEDecoder(nn.Module):
    """MAE decoder (docs/algorithm.md §2): mask tokens fill the removed
    positions, an extra reward token (the same mask token) is appended, pixels per
    patch token and (``reward_pred``) a scalar reward in symlog space."""

    def __init__(self, cfg: MAEConfig):
        super().__init__()
        self.cfg = cfg
        dim = cfg.decoder_embed_dim
        self.embed = nn.Linear(cfg.embed_dim, dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dim))
        table = sincos_pos_embed_with_extra(dim, cfg.grid)  # (L+1, E)
        table = table if cfg.reward_pred else table[:-1]
        pos_embed = torch.cat([torch.zeros(1, dim), table])[None]  # (1, 1+L(+1), E)
        self.register_buffer("pos_embed", pos_embed, persistent=False)
        self.transformer = TransformerStack(
            dim, cfg.decoder_depth, cfg.decoder_num_heads, cfg.mlp_ratio
        )
        pixels = cfg.patch_size**2 * cfg.in_chans
        self.pixel_head = nn.Linear(dim, pixels)
        if cfg.reward_pred:
            self.reward_head = nn.Linear(pixels if cfg.reward_quirk else dim, 1)
        self.apply(init_vit_weights)
        nn.init.normal_(self.mask_token, std=0.02)

    def forward(
        self, tokens: torch.Tensor, ids_restore: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """tokens (N, 1+K, D) CLS first, ids_restore (N, L) -> pixels
        (N, L, patch²·C) in standardized space, reward (N,) or None."""
        n, length = ids_restore.shape
        x = self.embed(tokens)  # (N, 1+K, E)
        cls, kept = x[:, :1], x[:, 1:]
        fill = self.mask_token.expand(n, length - kept.shape[1], -1)  # (N, L-K, E)
        patches = unshuffle(torch.cat([kept, fill], dim=1), ids_restore)  # (N, L, E)
        extra = self.mask_token.expand(n, int(self.cfg.reward_pred), -1)  # (N, 0|1, E)
        x = torch.cat([cls, patches, extra], dim=1) + self.pos_embed
        x = self.transformer(x)  # (N, 1+L(+1), E)
        # A split, not slices: its gradient is one concatenation, where each
        # slice's would be a zero-filled (N, 1+L(+1), E) tensor.
        _, patches, extra = x.split([1, length, int(self.cfg.reward_pred)], dim=1)
        pixels = self.pixel_head(patches)  # (N, L, patch²·C)
        if not self.cfg.reward_pred:
            return pixels, None
        reward_in = pixels[:, -1] if self.cfg.reward_quirk else extra[:, 0]
        return pixels, self.reward_head(reward_in).squeeze(-1)  # (N,)
