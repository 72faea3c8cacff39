"""Pure loss functions against hand computations (docs/algorithm.md §2–§4)."""

import math

import pytest
import torch
from torch import nn

from rllib_mwm.core import losses
from rllib_mwm.core.nets.dists import MSE, kl_categorical
from rllib_mwm.core.nets.vit import patchify


def test_lambda_return_matches_hand_computation():
    rewards = torch.tensor([[1.0, 2.0, 3.0]])
    values = torch.tensor([[10.0, 20.0, 30.0, 40.0]])
    discounts = torch.full((1, 3), 0.9)
    # R3 = 40; R2 = 3 + .9(.5·40 + .5·40) = 39; R1 = 2 + .9(.5·30 + .5·39) = 33.05;
    # R0 = 1 + .9(.5·20 + .5·33.05) = 24.8725
    expected = torch.tensor([[24.8725, 33.05, 39.0]])
    got = losses.lambda_return(rewards, values, discounts, lambda_=0.5)
    torch.testing.assert_close(got, expected)


def test_lambda_return_limits():
    rewards = torch.tensor([[1.0, 1.0]])
    values = torch.tensor([[5.0, 7.0, 9.0]])
    discounts = torch.full((1, 2), 0.5)
    # λ = 0: one-step TD targets r_t + d·v_{t+1}.
    torch.testing.assert_close(
        losses.lambda_return(rewards, values, discounts, 0.0),
        torch.tensor([[4.5, 5.5]]),
    )
    # λ = 1: discounted Monte-Carlo return bootstrapped with v_H.
    torch.testing.assert_close(
        losses.lambda_return(rewards, values, discounts, 1.0),
        torch.tensor([[1 + 0.5 * (1 + 0.5 * 9.0), 1 + 0.5 * 9.0]]),
    )


def test_lambda_return_rejects_misaligned_shapes():
    with pytest.raises(AssertionError):
        losses.lambda_return(
            torch.zeros(1, 3), torch.zeros(1, 3), torch.zeros(1, 3), 0.9
        )


def test_discount_weights_are_shifted_cumprod():
    d = torch.tensor([[0.5, 0.4, 0.2]])
    torch.testing.assert_close(
        losses.discount_weights(d), torch.tensor([[1.0, 0.5, 0.2]])
    )


def test_kl_balance_value_and_gradient_split():
    post = torch.tensor([[[[0.3, -0.2]]]], requires_grad=True)  # (1, 1, 1, 2)
    prior = torch.tensor([[[[-0.5, 0.4]]]], requires_grad=True)
    p, q = post.softmax(-1), prior.softmax(-1)
    kl_hand = (p * (p.log() - q.log())).sum()
    loss, kl = losses.kl_balance_loss(post, prior, balance=0.8, minloss=0.0)
    torch.testing.assert_close(loss, kl_hand)
    torch.testing.assert_close(kl, kl_hand.detach())
    g_post, g_prior = torch.autograd.grad(loss, (post, prior))
    f_post, f_prior = torch.autograd.grad(
        kl_categorical(post, prior).sum(), (post, prior)
    )
    torch.testing.assert_close(g_prior, 0.8 * f_prior)
    torch.testing.assert_close(g_post, 0.2 * f_post)


def test_kl_balance_clips_elementwise_before_the_mean():
    post = torch.zeros(1, 2, 1, 2)  # Step 0: KL 0 (clipped up), step 1: large KL.
    prior = torch.tensor([[[[0.0, 0.0]], [[5.0, -5.0]]]])
    post[0, 1, 0] = torch.tensor([-5.0, 5.0])
    loss, _ = losses.kl_balance_loss(post, prior, balance=0.8, minloss=0.1)
    big = kl_categorical(post[:, 1:], prior[:, 1:]).item()
    assert big > 1.0
    assert loss.item() == pytest.approx((0.1 + big) / 2, rel=1e-5)


def test_kl_scale_applies_before_the_clip():
    # rlbench preset: scale 0.1, minloss 0.1. A raw KL between 0.1 and 1.0 is
    # below the clip once scaled, so the reference gives it no gradient.
    post = torch.tensor([[[[1.0, -1.0]]]], requires_grad=True)
    prior = torch.zeros(1, 1, 1, 2, requires_grad=True)
    raw = kl_categorical(post, prior).item()
    assert 0.1 < raw < 1.0
    loss, kl = losses.kl_balance_loss(post, prior, balance=0.8, minloss=0.1, scale=0.1)
    assert loss.item() == pytest.approx(0.1)
    assert kl.item() == pytest.approx(raw)
    grads = torch.autograd.grad(loss, (post, prior), allow_unused=True)
    assert all(g is None or not g.any() for g in grads)
    # Above the clip the value and its gradient are scaled once.
    loss, _ = losses.kl_balance_loss(post, prior, balance=0.8, minloss=0.0, scale=0.1)
    assert loss.item() == pytest.approx(0.1 * raw, rel=1e-5)
    g_prior = torch.autograd.grad(loss, prior)[0]
    f_prior = torch.autograd.grad(kl_categorical(post, prior).sum(), prior)[0]
    torch.testing.assert_close(g_prior, 0.08 * f_prior)


def test_transform_reward_modes():
    r = torch.tensor([-2.0, 0.0, 3.0])
    torch.testing.assert_close(losses.transform_reward(r, "identity"), r)
    torch.testing.assert_close(
        losses.transform_reward(r, "sign"), torch.tensor([-1.0, 0, 1])
    )
    torch.testing.assert_close(losses.transform_reward(r, "tanh"), torch.tanh(r))
    torch.testing.assert_close(losses.transform_reward(r, 2), r / 2)


class _FakeEncoder(nn.Module):
    def forward(self, images, mask_ratio, seq_len=1):
        n = images.shape[0]
        mask = torch.zeros(n, 4)
        mask[:, :3] = 1.0  # three of four patches removed
        return torch.zeros(n, 2, 8), mask, torch.arange(4).expand(n, 4)


class _ZeroDecoder(nn.Module):
    def forward(self, tokens, ids_restore):
        n = tokens.shape[0]
        return torch.zeros(n, 4, 2 * 2 * 3), torch.full((n,), 0.5)


def test_mae_loss_uses_all_patches_and_symlog_reward():
    images = torch.randn(3, 4, 4, 3)
    rewards = torch.tensor([0.0, 1.0, -3.0])
    terms, metrics = losses.mae_loss(
        _FakeEncoder(), _ZeroDecoder(), images, rewards, 0.75, patch_size=2
    )
    target = patchify(images, 2)
    torch.testing.assert_close(terms["mae_pixel"], target.square().mean())
    masked = target[:, :3].square().mean()
    torch.testing.assert_close(metrics["mae/masked_pixel_mse"], masked)
    symlog = torch.sign(rewards) * torch.log1p(rewards.abs())
    torch.testing.assert_close(terms["mae_reward"], (0.5 - symlog).square().mean())


class _CodedPolicy(nn.Module):
    """Entropy in state t equals its policy output [..., 0], so indices show."""

    def dist(self, out):
        class Dist:
            def entropy(self_inner):
                return out[..., 0]

        return Dist()


class _CodedCritic(nn.Module):
    def forward(self, feat):
        return MSE(feat[..., 0])


def test_actor_and_critic_loss_index_alignment():
    H = 3
    feat = torch.tensor([[[10.0], [20.0], [30.0], [40.0]]])  # states z0..z3
    targets = torch.tensor([[1.0, 2.0, 3.0]])  # R0..R2
    weights = torch.tensor([[1.0, 0.5, 0.25]])  # w0..w2
    eta = 0.1
    terms, _ = losses.actor_loss(
        _CodedPolicy(),
        feat[:, :-1],  # Policy outputs in the states z0..z2 that act.
        torch.zeros(1, H + 1, 1),
        targets,
        torch.zeros(1, H + 1),
        weights,
        entropy_scale=eta,
        grad="dynamics",
    )
    # t = 0, 1: w_t·(R_{t+1} + η·H(z_t)); states z2, z3 and target R0 unused.
    hand = -((1.0 * (2.0 + eta * 10.0)) + 0.5 * (3.0 + eta * 20.0)) / 2
    assert terms["actor"].item() == pytest.approx(hand)
    terms, _ = losses.critic_loss(_CodedCritic(), feat, targets, weights)
    # t = 0..2: w_t·(v_t − R_t)² with v_t = feat of z_t; z3 only bootstraps.
    hand = (1.0 * 9.0**2 + 0.5 * 18.0**2 + 0.25 * 27.0**2) / 3
    assert terms["critic"].item() == pytest.approx(hand)


def test_actor_loss_reinforce_uses_baseline_and_logged_actions():
    class Policy(nn.Module):
        def dist(self, out):
            class Dist:
                def entropy(self_inner):
                    return torch.zeros(out.shape[:-1])

                def log_prob(self_inner, action):
                    return action[..., 0]

            return Dist()

    actions = torch.tensor([[[0.0], [1.0], [2.0], [3.0]]])  # slot t+1 ← state t
    targets = torch.tensor([[5.0, 6.0, 7.0]])
    baseline = torch.tensor([[1.0, 2.0, 3.0, 4.0]])
    weights = torch.ones(1, 3)
    terms, metrics = losses.actor_loss(
        Policy(),
        torch.zeros(1, 3, 1),
        actions,
        targets,
        baseline,
        weights,
        entropy_scale=0.0,
        grad="reinforce",
    )
    # t=0: logp(a1)=1, adv=R1−v0=5; t=1: logp(a2)=2, adv=R2−v1=5.
    assert terms["actor"].item() == pytest.approx(-(1 * 5 + 2 * 5) / 2)
    assert metrics["actor/advantage_mean"].item() == pytest.approx(5.0)
    assert math.isfinite(terms["actor"].item())
