"""The open-loop report (docs/algorithm.md §6): what the world model predicts
from a few observed frames and the actions alone."""

from __future__ import annotations

import torch

from rllib_mwm.core.nets.mae import destandardize
from rllib_mwm.core.nets.vit import unpatchify

Tensor = torch.Tensor


@torch.no_grad()
def open_loop_prediction(
    module, obs: Tensor, actions: Tensor, is_first: Tensor, context: int = 5
):
    """Truth, MAE reconstruction (no masking) and the model's open-loop prediction
    after `context` observed frames, (N, T, H, W, 3) uint8 each, plus the
    prediction's mean squared error after the context.

    module: the MWM networks (`tokens`, `embed`, `rssm`, `latent_decoder`,
    `mae_decoder`, `mae_config`); obs (N, T, H, W, 3) uint8; actions (N, T, A)
    float; is_first (N, T)."""
    N, T = obs.shape[:2]
    tokens = module.tokens(obs)  # (N, T, 1+L, D)
    embed = module.embed(tokens[:, :context])
    post, _ = module.rssm.observe(
        embed, actions[:, :context], is_first[:, :context].float()
    )
    state = {k: v[:, -1] for k, v in post.items()}
    feats = [module.rssm.feat(post)]  # (N, context, F)
    for t in range(context, T):
        state = module.rssm.img_step(state, actions[:, t], sample=False)
        feats.append(module.rssm.feat(state)[:, None])
    pred_tokens = module.latent_decoder(torch.cat(feats, 1).flatten(0, 1))
    recon = decode_tokens(module, tokens.flatten(0, 1)).unflatten(0, (N, T))
    pred = decode_tokens(module, pred_tokens).unflatten(0, (N, T))
    truth = obs.float() / 255.0
    mse = (pred[:, context:] - truth[:, context:]).square().mean()
    videos = [
        (x * 255).round().to(torch.uint8).cpu().numpy() for x in (truth, recon, pred)
    ]
    return (*videos, float(mse))


def decode_tokens(module, tokens: Tensor) -> Tensor:
    """Unmasked MAE tokens (N, 1+L, D) → frames (N, H, W, 3) in [0, 1]."""
    mae_config = module.mae_config
    ids_restore = torch.arange(mae_config.num_patches, device=tokens.device)
    pixels, _ = module.mae_decoder(
        tokens.float(), ids_restore.expand(tokens.shape[0], -1)
    )
    images = unpatchify(pixels, mae_config.patch_size, mae_config.in_chans)
    return destandardize(images)  # (N, H, W, 3)
