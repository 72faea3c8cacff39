"""Tests of rllib_mwm.core.nets: sizes, masking, embeddings, CLS order, RSSM, heads."""

import math

import pytest
import torch

from rllib_mwm.core.nets import (
    RSSM,
    ActorHead,
    CriticHead,
    LatentMLPDecoder,
    LatentViTDecoder,
    LatentViTEncoder,
    LayerNormGRUCell,
    MAEConfig,
    MAEDecoder,
    MaskedViTEncoder,
    OneHotST,
    RewardHead,
    RSSMConfig,
    TruncNormalST,
    destandardize,
    move_cls_first,
    move_cls_last,
    patchify,
    random_masking,
    sincos_pos_embed_2d,
    sincos_pos_embed_with_extra,
    standardize,
    unpatchify,
    unshuffle,
)
from rllib_mwm.core.nets.mae import ConvStem, tf_same_pad
from rllib_mwm.core.nets.vit import TransformerStack

TINY_MAE = dict(
    embed_dim=32, depth=1, num_heads=2, decoder_embed_dim=16, decoder_depth=1
)
TINY_RSSM = dict(action_dim=3, embed_dim=8, deter=16, hidden=16, stoch=4, discrete=5)


def count(module):
    return sum(p.numel() for p in module.parameters())


# Reference parameter counts (docs/algorithm.md §8), default config, 4-dim actions.
@pytest.mark.parametrize(
    "build, expected",
    [
        (lambda: MaskedViTEncoder(MAEConfig()), 3_358_432),
        (lambda: MAEDecoder(MAEConfig()), 2_485_441),
        (lambda: MAEDecoder(MAEConfig(reward_quirk=True)), 2_485_377),
        (lambda: LatentViTEncoder(), 429_696),
        (lambda: LatentViTDecoder(), 692_224),
        (lambda: RSSM(RSSMConfig(action_dim=4)), 11_683_840),
        (lambda: RSSM(RSSMConfig(action_dim=4, action_pad=50)), 11_730_944),
        (lambda: RewardHead(2048), 1_837_569),
        (lambda: CriticHead(2048), 1_837_569),
        (lambda: ActorHead(2048, 4), 1_841_160),
    ],
    ids=[
        "mae_encoder",
        "mae_decoder",
        "mae_decoder_quirk",
        "latent_encoder",
        "latent_decoder",
        "rssm",
        "rssm_pad50",
        "reward",
        "critic",
        "actor",
    ],
)
def test_parameter_counts(build, expected):
    assert count(build()) == expected


def test_config_validation():
    with pytest.raises(ValueError, match="patch_size 16 must be 8"):
        MAEConfig(patch_size=16)
    with pytest.raises(ValueError, match="num_heads"):
        MAEConfig(embed_dim=264, num_heads=5)
    with pytest.raises(ValueError, match="reward_quirk"):
        MAEConfig(reward_pred=False, reward_quirk=True)
    with pytest.raises(ValueError, match="action_pad"):
        RSSMConfig(action_dim=6, action_pad=4)


# ----------------------------------------------------------------- embeddings
def test_sincos_small_grid_by_hand():
    # dim 8: 4 channels per axis, omega = (1, 1/10000^(1/2)) = (1, 0.01); the first
    # half encodes the column w, the second the row h; token index = h * grid + w.
    def axis(p):
        return [math.sin(p), math.sin(0.01 * p), math.cos(p), math.cos(0.01 * p)]

    table = sincos_pos_embed_2d(8, 2)
    assert table.shape == (4, 8)
    for h in range(2):
        for w in range(2):
            expected = torch.tensor(axis(w) + axis(h))
            torch.testing.assert_close(table[h * 2 + w], expected)
    # dim 4: omega = 1, token (h=1, w=0) = [sin 0, cos 0, sin 1, cos 1]
    expected = torch.tensor([0.0, 1.0, math.sin(1), math.cos(1)])
    torch.testing.assert_close(sincos_pos_embed_2d(4, 2)[2], expected)


def test_sincos_extra_position():
    table = sincos_pos_embed_with_extra(4, 2)
    assert table.shape == (5, 4)
    corner = torch.tensor([math.sin(2), math.cos(2), math.sin(2), math.cos(2)])
    torch.testing.assert_close(table[4], corner)  # (2, 2) of the 3x3 table
    torch.testing.assert_close(table[:4], sincos_pos_embed_2d(4, 2))


# ------------------------------------------------------------------ patchify
def test_patchify_element_position_and_roundtrip():
    images = torch.arange(1 * 4 * 4 * 2, dtype=torch.float32).reshape(1, 4, 4, 2)
    patches = patchify(images, 2)
    assert patches.shape == (1, 4, 8)
    # pixel (y=3, x=2, c=1): patch (1, 1) -> index 3; offset (y%2*2 + x%2)*C + c = 5
    assert patches[0, 3, 5] == images[0, 3, 2, 1]
    # pixel (y=0, x=3, c=0): patch (0, 1) -> index 1; offset (0*2 + 1)*2 + 0 = 2
    assert patches[0, 1, 2] == images[0, 0, 3, 0]
    torch.testing.assert_close(unpatchify(patches, 2, channels=2), images)
    big = torch.randn(3, 64, 64, 3)
    torch.testing.assert_close(unpatchify(patchify(big, 8), 8), big)


def test_standardize_by_hand():
    images = torch.tensor([[[[255, 0, 128]]]], dtype=torch.uint8)
    x = standardize(images)
    expected = [(1 - 0.485) / 0.229, -0.456 / 0.224, (128 / 255 - 0.406) / 0.225]
    torch.testing.assert_close(x[0, 0, 0], torch.tensor(expected))
    torch.testing.assert_close(destandardize(x), images.float() / 255)


# ------------------------------------------------------------------- masking
def test_random_masking_consistency():
    torch.manual_seed(0)
    n, length, dim = 3, 16, 4
    x = torch.randn(n, length, dim)
    kept, mask, ids_restore = random_masking(x, 0.75)
    assert kept.shape == (n, 4, dim)
    assert (mask.sum(1) == length - 4).all()
    restored = unshuffle(
        torch.cat([kept, torch.zeros(n, length - 4, dim)], 1), ids_restore
    )
    visible = mask == 0
    torch.testing.assert_close(restored[visible], x[visible])
    assert (restored[~visible] == 0).all()
    # unshuffle inverts the shuffle; the kept tokens are the first K shuffled
    ids_shuffle = ids_restore.argsort(1)
    shuffled = x.gather(1, ids_shuffle[..., None].expand(-1, -1, dim))
    torch.testing.assert_close(unshuffle(shuffled, ids_restore), x)
    torch.testing.assert_close(shuffled[:, :4], kept)


def test_mask_ratio_zero_keeps_order():
    x = torch.randn(2, 16, 4)
    kept, mask, ids_restore = random_masking(x, 0.0)
    torch.testing.assert_close(kept, x)
    assert (mask == 0).all()
    assert (ids_restore == torch.arange(16)).all()


def test_tube_masking_shares_mask_over_time():
    torch.manual_seed(0)
    batch, time = 2, 3
    _, mask, ids = random_masking(torch.randn(batch * time, 16, 4), 0.75, tube_T=time)
    mask, ids = mask.reshape(batch, time, 16), ids.reshape(batch, time, 16)
    assert (mask == mask[:, :1]).all() and (ids == ids[:, :1]).all()
    assert not torch.equal(mask[0, 0], mask[1, 0])  # sequences differ
    enc = MaskedViTEncoder(MAEConfig(tube_masking=True, **TINY_MAE))
    _, mask, _ = enc(torch.randn(batch * time, 64, 64, 3), 0.75, seq_len=time)
    assert (mask.reshape(batch, time, 64) == mask.reshape(batch, time, 64)[:, :1]).all()


def test_cls_reordering_roundtrip():
    tokens = torch.randn(2, 5, 3)
    last = move_cls_last(tokens)
    torch.testing.assert_close(last[:, -1], tokens[:, 0])
    torch.testing.assert_close(last[:, :-1], tokens[:, 1:])
    torch.testing.assert_close(move_cls_first(last), tokens)


def test_attention_kernel_follows_the_device():
    """The math attention path on CPU, fused SDPA elsewhere; both compute the same."""
    stack = TransformerStack(dim=32, depth=2, num_heads=4).eval()
    x = torch.randn(3, 17, 32)
    assert [b.attn.fused_attn for b in stack.blocks] == [False, False]
    math_out = stack(x)
    for block in stack.blocks:
        block.attn.fused_attn = True
    torch.testing.assert_close(stack(x), math_out, rtol=1e-5, atol=1e-5)
    stack.to("meta")  # any non-CPU device takes the fused kernel
    assert [b.attn.fused_attn for b in stack.blocks] == [True, True]
    stack.to_empty(device="cpu")
    assert [b.attn.fused_attn for b in stack.blocks] == [False, False]


# ----------------------------------------------------------------------- MAE
def test_tf_same_padding():
    x = torch.ones(1, 1, 64, 64)
    padded = tf_same_pad(x, 4, 2)  # out 32, total pad 2 -> (1, 1)
    assert padded.shape == (1, 1, 66, 66)
    assert padded[..., 1:65, 1:65].eq(1).all() and padded[..., 0, :].eq(0).all()
    odd = tf_same_pad(torch.ones(1, 1, 63, 63), 4, 2)  # total 3 -> (1, 2)
    assert odd.shape == (1, 1, 66, 66)
    assert odd[..., 1:64, 1:64].eq(1).all() and odd[..., 64:, :].eq(0).all()


def test_conv_stem_grid():
    stem = ConvStem(3, 32)
    assert stem(torch.randn(2, 64, 64, 3)).shape == (2, 64, 32)


def test_patch_embed_row_major_tokens():
    enc = MaskedViTEncoder(MAEConfig(early_conv=False, **TINY_MAE))
    images = torch.zeros(1, 64, 64, 3)
    bumped = images.clone()
    bumped[0, 8:16, 16:24] = 1.0  # patch row 1, column 2
    changed = (enc.stem(bumped) - enc.stem(images)).abs().sum(-1)[0] > 0
    assert changed.nonzero().flatten().tolist() == [1 * 8 + 2]


def test_encoder_decoder_shapes():
    cfg = MAEConfig(**TINY_MAE)
    enc, dec = MaskedViTEncoder(cfg), MAEDecoder(cfg)
    images = torch.randn(3, 64, 64, 3)
    tokens, mask, ids = enc(images, 0.75)
    assert tokens.shape == (3, 1 + 16, 32) and mask.shape == ids.shape == (3, 64)
    pixels, reward = dec(tokens, ids)
    assert pixels.shape == (3, 64, 192) and reward.shape == (3,)
    tokens, mask, ids = enc(images, 0.0)
    assert tokens.shape == (3, 65, 32) and (mask == 0).all()
    pixels, reward = dec(tokens, torch.arange(64).expand(3, 64))
    assert pixels.shape == (3, 64, 192) and reward.shape == (3,)
    no_reward = MAEDecoder(MAEConfig(reward_pred=False, **TINY_MAE))
    assert no_reward(tokens, ids)[1] is None


def test_decoder_fills_removed_positions_with_mask_token():
    torch.manual_seed(0)
    cfg = MAEConfig(**TINY_MAE)
    enc, dec = MaskedViTEncoder(cfg), MAEDecoder(cfg)
    tokens, mask, ids = enc(torch.randn(2, 64, 64, 3), 0.75)
    seen = {}
    dec.transformer.register_forward_hook(lambda m, inp, out: seen.update(x=inp[0]))
    dec(tokens, ids)
    x = seen["x"] - dec.pos_embed  # (N, 1+L+1, E) without position embeddings
    embedded = dec.embed(tokens)  # (N, 1+K, E)
    torch.testing.assert_close(x[:, 0], embedded[:, 0])  # CLS first
    torch.testing.assert_close(x[:, -1], dec.mask_token[0].expand(2, -1))  # reward
    patches, removed = x[:, 1:-1], mask.bool()
    fill = dec.mask_token[0, 0].expand(int(removed.sum()), -1)
    torch.testing.assert_close(patches[removed], fill)
    for row in range(2):  # kept token j sits where ids_restore == j
        torch.testing.assert_close(
            patches[row][~removed[row]],
            embedded[row, 1:][ids[row][~removed[row]]],  # rank of each position
        )


def _reward_head_input(cfg, tokens, ids):
    dec = MAEDecoder(cfg)
    seen = {}
    dec.reward_head.register_forward_hook(lambda m, inp, out: seen.update(x=inp[0]))
    dec.transformer.register_forward_hook(lambda m, inp, out: seen.update(h=out))
    pixels, _ = dec(tokens, ids)
    return seen, pixels


def test_reward_quirk_changes_reward_input():
    tokens, ids = torch.randn(2, 65, 32), torch.arange(64).expand(2, 64)
    seen, _ = _reward_head_input(MAEConfig(**TINY_MAE), tokens, ids)
    torch.testing.assert_close(seen["x"], seen["h"][:, -1])  # the reward token
    quirk = MAEConfig(reward_quirk=True, **TINY_MAE)
    seen, pixels = _reward_head_input(quirk, tokens, ids)
    torch.testing.assert_close(seen["x"], pixels[:, -1])  # last patch's pixels


# ---------------------------------------------------------------- latent ViTs
def test_latent_encoder_moves_cls_last():
    enc = LatentViTEncoder(token_dim=12, dim=8, depth=1, num_heads=2, grid=2)
    seen = {}
    enc.embed.register_forward_hook(lambda m, inp, out: seen.update(x=inp[0]))
    tokens = torch.randn(2, 3, 5, 12)  # (B, T, 1+L, token_dim)
    assert enc(tokens).shape == (2, 3, 8)
    torch.testing.assert_close(seen["x"][:, -1], tokens.reshape(6, 5, 12)[:, 0])


def test_latent_decoder_cls_first():
    dec = LatentViTDecoder(
        feat_dim=10, token_dim=12, dim=8, depth=1, num_heads=2, grid=2
    )
    seen = {}
    dec.head.register_forward_hook(lambda m, inp, out: seen.update(y=out))
    tokens = dec(torch.randn(2, 3, 10))
    assert tokens.shape == (2, 3, 5, 12)
    head_out = seen["y"]  # (N, L+1, token_dim): CLS prediction last
    flat = tokens.reshape(6, 5, 12)
    torch.testing.assert_close(flat[:, 0], head_out[:, -1])
    torch.testing.assert_close(flat[:, 1:], head_out[:, :-1])


def test_mlp_decoder_reads_feat_at_every_token_and_fits_it():
    torch.manual_seed(0)
    dec = LatentMLPDecoder(feat_dim=16, token_dim=8, hidden=64, grid=2)
    feat = torch.randn(2, 3, 16, requires_grad=True)
    tokens = dec(feat)
    assert tokens.shape == (2, 3, 5, 8)
    # Every token (CLS and patches) depends on feat.
    for i in range(5):
        (grad,) = torch.autograd.grad(tokens[..., i, :].sum(), feat, retain_graph=True)
        assert grad.abs().sum() > 0, i
    # Tokens that are a fixed map of feat plus a large constant: the decoder fits
    # both, well below the loss of predicting their mean.
    feat = torch.randn(512, 16)
    target = (feat @ torch.randn(16, 40)).reshape(512, 5, 8) + 3.0
    mean_loss = (target - target.mean(0)).square().sum(-1).mean()
    opt = torch.optim.Adam(dec.parameters(), lr=1e-3)
    for _ in range(300):
        loss = (dec(feat) - target).square().sum(-1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss < 0.2 * mean_loss, (float(loss), float(mean_loss))


def test_mlp_decoder_starts_at_the_tracked_mean_tokens():
    torch.manual_seed(0)
    dec = LatentMLPDecoder(feat_dim=16, token_dim=8, hidden=64, grid=2)
    feat = torch.randn(256, 16)
    target = (feat @ torch.randn(16, 40)).reshape(256, 5, 8) + 30.0
    mean_loss = (target - target.mean(0)).square().sum(-1).mean()
    untracked = (dec(feat) - target).square().sum(-1).mean()
    assert untracked > 50 * mean_loss  # The offset of 30 dominates.
    dec.track_mean(target.unflatten(0, (16, 16)))  # (B, T, 1+L, D) like the loss
    torch.testing.assert_close(dec.token_mean, target.mean(0))  # The first sets it.
    with torch.no_grad():
        tracked = (dec(feat) - target).square().sum(-1).mean()
    assert tracked < 1.2 * mean_loss, (float(tracked), float(mean_loss))
    # Later batches move it by 1 − momentum, and it is saved with the weights.
    dec.track_mean(torch.zeros(4, 5, 8))
    torch.testing.assert_close(dec.token_mean, 0.99 * target.mean(0))
    assert {"token_mean", "mean_updates"} <= set(dec.state_dict())


# ---------------------------------------------------------------------- RSSM
def _random_state(rssm, batch):
    cfg = rssm.cfg
    logit = torch.randn(batch, cfg.stoch, cfg.discrete)
    return {
        "deter": torch.randn(batch, cfg.deter),
        "stoch": OneHotST(logit).sample(),
        "logit": logit,
    }


def test_gru_cell_by_hand():
    cell = LayerNormGRUCell(3, 1)
    h = torch.tensor([[0.7], [-1.2]])
    torch.testing.assert_close(cell(torch.randn(2, 3), h).shape, h.shape)
    # zero LayerNorm gain: the fused pre-activations are its bias (reset, cand, upd)
    torch.nn.init.zeros_(cell.norm.weight)
    with torch.no_grad():
        cell.norm.bias.copy_(torch.tensor([0.5, 2.0, 0.3]))

    def sigmoid(v):
        return 1 / (1 + math.exp(-v))

    cand = math.tanh(sigmoid(0.5) * 2.0)
    update = sigmoid(0.3 - 1.0)  # update bias -1
    expected = update * cand + (1 - update) * h
    torch.testing.assert_close(cell(torch.randn(2, 3), h), expected)


def test_is_first_resets_state_and_action():
    torch.manual_seed(0)
    rssm = RSSM(RSSMConfig(**TINY_RSSM))
    state, action, embed = _random_state(rssm, 2), torch.randn(2, 3), torch.randn(2, 8)
    is_first = torch.tensor([1.0, 0.0])
    post, prior = rssm.obs_step(state, action, embed, is_first, sample=False)
    fresh, fresh_prior = rssm.obs_step(
        rssm.initial(2), torch.zeros(2, 3), embed, torch.zeros(2), sample=False
    )
    carried, _ = rssm.obs_step(state, action, embed, torch.zeros(2), sample=False)
    for key in ("deter", "stoch", "logit"):
        torch.testing.assert_close(post[key][0], fresh[key][0])
        torch.testing.assert_close(prior[key][0], fresh_prior[key][0])
        torch.testing.assert_close(post[key][1], carried[key][1])
    assert not torch.allclose(post["deter"][1], fresh["deter"][1])


def test_straight_through_gradients_reach_logit_layers():
    torch.manual_seed(0)
    rssm = RSSM(RSSMConfig(**TINY_RSSM))
    post, prior = rssm.obs_step(
        rssm.initial(4), torch.randn(4, 3), torch.randn(4, 8), torch.zeros(4)
    )
    stoch_sum = post["stoch"].sum(-1)
    torch.testing.assert_close(stoch_sum, torch.ones_like(stoch_sum))
    weights = torch.randn_like(post["stoch"])
    ((post["stoch"] + prior["stoch"]) * weights).sum().backward()
    assert rssm.obs_dist.weight.grad.abs().sum() > 0
    assert rssm.img_dist.weight.grad.abs().sum() > 0


def test_rssm_logits_stay_float32_under_bf16_autocast():
    """bf16 rounding of the logits is as large as the KL between posterior and
    prior late in training (docs/benchmarks.md), so the logit layers run in fp32."""
    rssm = RSSM(RSSMConfig(**TINY_RSSM))
    state, action, embed = _random_state(rssm, 2), torch.randn(2, 3), torch.randn(2, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        post, prior = rssm.obs_step(state, action, embed, torch.zeros(2))
        imagined = rssm.img_step(state, action)
        assert rssm.img_out(state["deter"]).dtype == torch.bfloat16  # autocast is on
    for logit in (post["logit"], prior["logit"], imagined["logit"]):
        assert logit.dtype == torch.float32
    with torch.no_grad():
        expected = rssm.img_dist(torch.nn.functional.elu(rssm.img_out(post["deter"])))
    torch.testing.assert_close(rssm.prior_logit(post["deter"]).flatten(-2), expected)


def test_observe_equals_repeated_posterior_steps_and_obs_step_priors():
    rssm = RSSM(RSSMConfig(**TINY_RSSM, action_pad=6))
    batch, time = 2, 4
    embed, action = torch.randn(batch, time, 8), torch.randn(batch, time, 3)
    is_first = torch.tensor([[1.0, 0, 1, 0], [1, 0, 0, 0]])
    torch.manual_seed(1)
    post, prior = rssm.observe(embed, action, is_first)
    assert set(prior) == {"deter", "logit"}  # The prior is not sampled.
    torch.manual_seed(1)
    state = rssm.initial(batch)
    for t in range(time):
        previous = state
        state = rssm.posterior_step(state, action[:, t], embed[:, t], is_first[:, t])
        for key in ("deter", "stoch", "logit"):
            torch.testing.assert_close(post[key][:, t], state[key])
        step_post, step_prior = rssm.obs_step(
            previous, action[:, t], embed[:, t], is_first[:, t], sample=False
        )
        torch.testing.assert_close(step_post["deter"], state["deter"])
        for key in ("deter", "logit"):
            torch.testing.assert_close(prior[key][:, t], step_prior[key])
    feat = rssm.feat(post)
    assert feat.shape == (batch, time, 4 * 5 + 16)
    torch.testing.assert_close(feat[..., :20], post["stoch"].flatten(-2))


# --------------------------------------------------------------------- heads
def test_head_output_init_scale():
    head = RewardHead(64, layers=2, units=512)
    limit = math.sqrt(3 * 0.1 / ((512 + 1) / 2))
    weight = head.mlp.out.weight
    assert weight.abs().max() <= limit and weight.abs().max() > 0.9 * limit
    assert head.mlp.out.bias.eq(0).all() and head.mlp.hidden[0].bias.eq(0).all()


def test_actor_head_mean_and_std():
    actor = ActorHead(6, 2, layers=1, units=8)
    torch.nn.init.zeros_(actor.mlp.out.weight)
    with torch.no_grad():
        actor.mlp.out.bias.copy_(torch.tensor([0.5, -0.5, 0.0, 2.0]))
    dist = actor(torch.randn(3, 6))
    assert isinstance(dist, TruncNormalST)
    torch.testing.assert_close(
        dist.mean[0], torch.tensor([math.tanh(0.5)] * 2) * torch.tensor([1.0, -1.0])
    )
    sig2 = 1 / (1 + math.exp(-2))
    torch.testing.assert_close(
        dist.std[0], torch.tensor([0.9 * 0.5 + 0.1, 0.9 * sig2 + 0.1])
    )
    discrete = ActorHead(6, 5, discrete=True, layers=1, units=8)(torch.randn(3, 6))
    assert isinstance(discrete, OneHotST) and discrete.logits.shape == (3, 5)


# --------------------------------------------------------------- activations
def test_elu_matches_torch_values_and_gradients():
    from rllib_mwm.core.nets.activations import elu

    x = torch.cat([torch.linspace(-30, 30, 10001), torch.tensor([0.0, -1e-8, 1e-8])])
    x = x.double().requires_grad_()
    ours, theirs = elu(x.float()), torch.nn.functional.elu(x)
    assert (ours.double() - theirs).abs().max() < 1.2e-7
    (grad,) = torch.autograd.grad(elu(x).sum(), x)
    (expected,) = torch.autograd.grad(torch.nn.functional.elu(x).sum(), x)
    torch.testing.assert_close(grad, expected)
    # bf16: the negative branch is taken in float32 (e^x in bf16 minus 1 would be
    # off by 20 % at x = −0.01).
    small = torch.tensor([-0.01, -0.5, 0.25]).bfloat16()
    torch.testing.assert_close(
        elu(small).float(), torch.nn.functional.elu(small.float()).bfloat16().float()
    )
    nonfinite = torch.tensor([float("nan"), float("-inf"), float("inf")])
    assert torch.equal(elu(nonfinite).isnan(), torch.tensor([True, False, False]))
    assert elu(nonfinite)[1:].tolist() == [-1.0, float("inf")]


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_lean_mlp_matches_timm_mlp_values_and_gradients(precision):
    """LeanMlp recomputes GELU(h) in the backward instead of keeping it: the same
    outputs and gradients as timm's Mlp with the same weights, fp32 and bf16."""
    from timm.layers import Mlp

    from rllib_mwm.core.nets.vit import LeanMlp

    torch.manual_seed(0)
    lean, plain = LeanMlp(16, 64), Mlp(16, 64)
    plain.load_state_dict(lean.state_dict())
    x = torch.randn(3, 5, 16)
    results = []
    for mlp in (lean, plain):
        inputs = x.clone().requires_grad_()
        with torch.autocast("cpu", torch.bfloat16, enabled=precision == "bf16"):
            out = mlp(inputs)
        grads = torch.autograd.grad(
            out.float().square().sum(), [inputs, *mlp.parameters()]
        )
        results.append((out, *grads))
    tolerance = {"fp32": {"rtol": 1e-5, "atol": 1e-6}, "bf16": {}}[precision]
    for ours, theirs in zip(*results, strict=True):
        assert ours.dtype == theirs.dtype
        torch.testing.assert_close(ours, theirs, **tolerance)
    with torch.no_grad():  # Without autograd it is the plain forward.
        torch.testing.assert_close(lean(x), plain(x))


def test_lean_mlp_refuses_an_activation_it_would_not_recompute():
    from rllib_mwm.core.nets.vit import LeanMlp

    with pytest.raises(ValueError, match="exact GELU"):
        LeanMlp(16, 64, act_layer=lambda: torch.nn.GELU(approximate="tanh"))
