"""MWM losses as pure functions (docs/algorithm.md §2–§4).

Each loss takes tensors and networks and returns `(losses, metrics)` dicts of
scalars (plus, for the world model, the posterior states that imagination starts
from). Scaling by `loss_scales`, gradients and logging live in the learner.
Shapes: B batch, T time, H imagination horizon, N = B·T, L patch tokens, D width.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from rllib_mwm.core.nets.dists import kl_categorical, symlog
from rllib_mwm.core.nets.vit import patchify

Tensor = torch.Tensor
State = dict[str, Tensor]


def transform_reward(rewards: Tensor, clip: str | float) -> Tensor:
    """`clip_rewards`: 'identity', 'sign', 'tanh' or a number to divide by
    (docs/algorithm.md §1)."""
    if clip == "identity":
        return rewards
    if clip == "sign":
        return torch.sign(rewards)
    if clip == "tanh":
        return torch.tanh(rewards)
    return rewards / float(clip)


def mae_loss(
    encoder: nn.Module,
    decoder: nn.Module,
    images: Tensor,  # (N, H, W, 3) standardized
    rewards: Tensor | None,  # (N,) transformed rewards, or None
    mask_ratio: float,
    patch_size: int,
    seq_len: int = 1,
) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """Masked reconstruction of all patches plus symlog reward
    (docs/algorithm.md §2).

    `seq_len` > 1 groups consecutive frames for the encoder's optional tube masking.
    """
    tokens, mask, ids_restore = encoder(images, mask_ratio, seq_len=seq_len)
    pixels, reward_pred = decoder(tokens, ids_restore)  # (N, L, p·p·3), (N,)
    target = patchify(images, patch_size)  # (N, L, p·p·3)
    error = (pixels - target).square()  # All patches, not only masked ones.
    losses = {"mae_pixel": error.mean()}
    metrics = {"mae/masked_pixel_mse": (error.mean(-1) * mask).sum() / mask.sum()}
    if reward_pred is not None and rewards is not None:
        losses["mae_reward"] = (reward_pred - symlog(rewards)).square().mean()
    return losses, metrics


def kl_balance_loss(
    post_logit: Tensor,
    prior_logit: Tensor,
    balance: float,
    minloss: float,
    scale: float = 1.0,
) -> tuple[Tensor, Tensor]:
    """KL balancing (DreamerV2): α·KL(sg(post)‖prior) + (1−α)·KL(post‖sg(prior)).

    The per-step value is multiplied by `scale` (`wmkl.scale`) and then clipped
    element-wise to [minloss, 100] before the mean, as the released code does: the
    gradient is zero wherever scale·KL < minloss. Returns (loss, mean unclipped KL).
    """
    kl_prior = kl_categorical(post_logit.detach(), prior_logit)  # (B, T)
    kl_post = kl_categorical(post_logit, prior_logit.detach())  # (B, T)
    value = balance * kl_prior + (1.0 - balance) * kl_post
    return (value * scale).clamp(minloss, 100.0).mean(), kl_post.detach().mean()


def world_model_loss(
    module: nn.Module,
    tokens: Tensor,  # (B, T, 1+L, D) frozen MAE tokens, CLS first
    actions: Tensor,  # (B, T, A) the action that led to each step
    rewards: Tensor,  # (B, T) transformed rewards
    is_first: Tensor,  # (B, T)
    discount_target: Tensor,  # (B, T) γ·(1 − is_terminal)
    *,
    kl_balance: float,
    kl_minloss: float,
    kl_scale: float = 1.0,
    grad_heads: tuple[str, ...],
) -> tuple[dict[str, Tensor], dict[str, Tensor], State]:
    """Feature prediction + KL + reward (+ discount) on MAE tokens
    (docs/algorithm.md §3)."""
    tokens = tokens.detach()  # The MAE is trained by its own loss only.
    B, T = tokens.shape[:2]
    if hasattr(module.latent_decoder, "track_mean"):  # The MLP decoder's offset.
        module.latent_decoder.track_mean(tokens)
    embed = module.latent_encoder(tokens.flatten(0, 1)).unflatten(0, (B, T))
    post, prior = module.rssm.observe(embed, actions, is_first)
    feat = module.rssm.feat(post)  # (B, T, F)
    kl, kl_value = kl_balance_loss(
        post["logit"], prior["logit"], kl_balance, kl_minloss, kl_scale
    )
    pred_tokens = module.latent_decoder(feat.flatten(0, 1)).unflatten(0, (B, T))
    losses = {
        # Summed over channels, averaged over tokens and B·T: Σ(pred − tokens)² /
        # (B·T·(1+L)), one fused pass forward and one backward.
        "feature": F.mse_loss(pred_tokens, tokens, reduction="sum")
        / tokens[..., 0].numel(),
        "kl": kl,
    }

    def head_input(name: str) -> Tensor:
        return feat if name in grad_heads else feat.detach()

    reward_dist = module.reward_head(head_input("reward"))
    losses["reward"] = reward_dist.loss(rewards).mean()
    metrics = {
        "world_model/kl": kl_value,
        "world_model/feature_explained": feature_explained(
            losses["feature"].detach(), tokens
        ),
        "world_model/prior_entropy": _categorical_entropy(prior["logit"]),
        "world_model/post_entropy": _categorical_entropy(post["logit"]),
        "world_model/reward_pred_mean": reward_dist.mode().mean().detach(),
    }
    if getattr(module, "discount_head", None) is not None:
        discount_dist = module.discount_head(head_input("discount"))
        losses["discount"] = discount_dist.loss(discount_target).mean()
    return losses, metrics, post


def feature_explained(feature_loss: Tensor, tokens: Tensor) -> Tensor:
    """1 − feature loss / the loss of predicting the batch's mean tokens: the
    share of the tokens' variation over frames that the latent state explains.
    About 0 (or below) means the decoder ignores the latent, whatever the KL.
    tokens: (B, T, 1+L, D)."""
    mean = tokens.mean(dim=(0, 1), keepdim=True).expand_as(tokens)
    mean_loss = F.mse_loss(tokens, mean, reduction="sum") / tokens[..., 0].numel()
    return 1.0 - feature_loss / mean_loss.clamp_min(1e-8)


def _categorical_entropy(logit: Tensor) -> Tensor:
    logp = F.log_softmax(logit.detach().float(), -1)
    return -(logp.exp() * logp).sum((-2, -1)).mean()


def imagine(
    rssm: nn.Module, actor: nn.Module, start: State, horizon: int
) -> tuple[State, Tensor, Tensor, Tensor]:
    """Rolls the actor out in the prior for `horizon` steps (docs/algorithm.md §4).

    Returns (states (N, H+1, ...), feat (N, H+1, F), actions (N, H+1, A), policy
    (N, H, P)); the start state's action slot is zeros, `actions[:, t+1]` was
    sampled in state t from `actor.dist(policy[:, t])`. The actor loss reuses
    `policy` (its entropy, log-probabilities) instead of running the actor again.
    """
    state = {k: v.detach() for k, v in start.items()}
    states, actions, policy = [state], [], []
    for _ in range(horizon):
        policy.append(actor.params(rssm.feat(state).detach()))
        action = actor.dist(policy[-1]).rsample(site="imagine_action")
        state = rssm.img_step(state, action)
        states.append(state)
        actions.append(action)
    actions.insert(0, torch.zeros_like(actions[0]))
    stacked = {k: torch.stack([s[k] for s in states], 1) for k in start}
    feat = rssm.feat(stacked)
    return stacked, feat, torch.stack(actions, 1), torch.stack(policy, 1)


def lambda_return(
    rewards: Tensor,  # (N, H) r_t for t = 0..H−1
    values: Tensor,  # (N, H+1) v_t for t = 0..H
    discounts: Tensor,  # (N, H) d_t for t = 0..H−1
    lambda_: float,
) -> Tensor:
    """R_t = r_t + d_t·((1−λ)·v_{t+1} + λ·R_{t+1}), R_H = v_H; returns (N, H)."""
    assert rewards.shape == discounts.shape == values[:, :-1].shape, (
        rewards.shape,
        discounts.shape,
        values.shape,
    )
    inputs = rewards + discounts * (1.0 - lambda_) * values[:, 1:]
    last = values[:, -1]
    returns = []
    for t in reversed(range(rewards.shape[1])):
        last = inputs[:, t] + discounts[:, t] * lambda_ * last
        returns.append(last)
    return torch.stack(returns[::-1], 1)


def discount_weights(discounts: Tensor) -> Tensor:
    """w = cumprod([1, d_0, …, d_{H−1}]): whether each state is still reached."""
    ones = torch.ones_like(discounts[:, :1])
    return torch.cumprod(torch.cat([ones, discounts[:, :-1]], 1), 1).detach()


# Time alignment of the actor-critic losses (H = 3 shown), as in DreamerV2/MWM:
#
#   Actions:      0   [a1]  [a2]   a3       a_{t+1} is taken in state z_t
#                    ^  |  ^  |  ^  |
#                   /   v /   v /   v
#   States:     [z0]->[z1]-> z2 -> z3
#   Rewards:    [r0]  [r1]  [r2]   r3
#   Values:     [v0]  [v1]  [v2]  [v3]      slow critic, v3 bootstraps
#   Targets:    [R0]  [R1]  [R2]            lambda_return: H entries
#   Weights:    [ 1]  [w1]  [w2]   w3
#   Actor:       l0    l1                   w_t·(R_{t+1} + η·H[π(·|z_t)]), t ≤ H−2
#   Critic:      l0    l1    l2             w_t·(v_t − sg(R_t))², t ≤ H−1


def actor_loss(
    actor: nn.Module,
    policy: Tensor,  # (N, H, P) actor outputs on states z_0 .. z_{H−1}
    actions: Tensor,  # (N, H+1, A) imagined actions (slot 0 is zeros)
    targets: Tensor,  # (N, H) λ-returns
    baseline: Tensor,  # (N, H+1) slow-critic values (for REINFORCE)
    weights: Tensor,  # (N, H) discount weights
    *,
    entropy_scale: float,
    grad: str,
    action_grad: bool = False,
) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """Dynamics backprop or REINFORCE objective plus entropy bonus
    (docs/algorithm.md §4).

    REINFORCE takes the log-probability of the sampled actions as constants, as
    DreamerV2 does; `action_grad` lets its gradient also flow through the
    reparameterized sample, as the released MWM code does (`reinforce_action_grad`).
    """
    policy = actor.dist(policy[:, :-1])  # states z_0 .. z_{H−2}
    metrics = {}
    if grad == "dynamics":
        objective = targets[:, 1:]
    elif grad == "reinforce":
        advantage = (targets[:, 1:] - baseline[:, :-2]).detach()
        taken = actions[:, 1:-1] if action_grad else actions[:, 1:-1].detach()
        objective = policy.log_prob(taken) * advantage
        # Far from 0 when the slow critic lags the returns: every sampled
        # action is then pushed up (or down) alike.
        metrics["actor/advantage_mean"] = advantage.mean()
    else:
        raise ValueError(f"actor_grad must be 'dynamics' or 'reinforce', got {grad!r}")
    entropy = policy.entropy()  # (N, H−1)
    loss = -(weights[:, :-1] * (objective + entropy_scale * entropy)).mean()
    metrics["actor/entropy"] = entropy.mean().detach()
    return {"actor": loss}, metrics


def critic_loss(
    critic: nn.Module,
    feat: Tensor,  # (N, H+1, F)
    targets: Tensor,  # (N, H)
    weights: Tensor,  # (N, H)
) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """Weighted squared error of the critic against the λ-returns
    (docs/algorithm.md §4)."""
    values = critic(feat[:, :-1].detach())  # states z_0 .. z_{H−1}
    loss = (weights * values.loss(targets.detach())).mean()
    metrics = {"critic/value_mean": values.mode().mean().detach()}
    return {"critic": loss}, metrics
