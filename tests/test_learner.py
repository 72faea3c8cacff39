"""MWMTorchLearner: optimizers, gradient isolation, schedules, checkpoint state."""

import copy

import numpy as np
import pytest
import torch
from helpers import build_learner, random_sequences, tiny_config

from rllib_mwm.core import losses
from rllib_mwm.core.update import OPTIMIZERS


@pytest.fixture(scope="module")
def learner():
    return build_learner(
        tiny_config(pred_discount=True, grad_heads=["reward", "discount"])
    )


def _params(module, names):
    return {
        f"{n}.{k}": v.detach().clone()
        for n in names
        if getattr(module, n, None) is not None
        for k, v in getattr(module, n).named_parameters()
    }


def _changed(before, after):
    return {k for k in before if not torch.equal(before[k], after[k])}


def test_four_optimizers_own_disjoint_parameters(learner):
    module = learner.mwm_module
    owned = {}
    for name in OPTIMIZERS:
        optimizer = learner.get_optimizer(optimizer_name=name)
        owned[name] = {id(p) for g in optimizer.param_groups for p in g["params"]}
        assert optimizer.defaults["eps"] == 1e-5
    ids = [i for s in owned.values() for i in s]
    assert len(ids) == len(set(ids)), "a parameter belongs to two optimizers"
    trainable = {
        id(p) for n, p in module.named_parameters() if not n.startswith("slow_critic")
    }
    assert set(ids) == trainable
    assert not any(p.requires_grad for p in module.slow_critic.parameters())


def test_world_model_loss_gives_mae_no_gradient(learner):
    module = learner.mwm_module
    batch = learner._to_tensors(random_sequences(2, 4))
    tokens = module.tokens(batch["obs"])  # Built with grad enabled on purpose.
    terms, _, _ = losses.world_model_loss(
        module,
        tokens,
        batch["actions"],
        batch["rewards"],
        batch["is_first"].float(),
        torch.ones(2, 4),
        kl_balance=0.8,
        kl_minloss=0.1,
        grad_heads=("reward",),
    )
    total = sum(terms.values())
    mae = list(module.mae_encoder.parameters())
    assert all(g is None for g in torch.autograd.grad(total, mae, allow_unused=True))


def test_feature_explained_is_zero_for_the_mean_and_one_for_the_truth():
    tokens = torch.randn(3, 4, 5, 6)
    mean = tokens.mean((0, 1), keepdim=True)
    loss = lambda pred: (pred - tokens).square().sum(-1).mean()  # noqa: E731
    assert float(losses.feature_explained(loss(tokens), tokens)) == pytest.approx(1.0)
    zero = losses.feature_explained(loss(mean.expand_as(tokens)), tokens)
    assert float(zero) == pytest.approx(0.0, abs=1e-6)
    # Halfway between the mean and the truth explains 3/4 of the variance.
    half = losses.feature_explained(loss((mean + tokens) / 2), tokens)
    assert float(half) == pytest.approx(0.75, abs=1e-5)


def test_actor_critic_step_leaves_world_model_and_mae_untouched(learner):
    module = learner.mwm_module
    wm_names = OPTIMIZERS["world_model"][1] + OPTIMIZERS["mae"][1]
    before = _params(module, wm_names)
    actor_before = _params(module, ["actor"])
    critic_before = _params(module, ["critic"])
    start = module.rssm.initial(6)
    learner._train_actor_critic(start, torch.full((6,), 0.99))
    assert not _changed(before, _params(module, wm_names))
    assert _changed(actor_before, _params(module, ["actor"]))
    assert _changed(critic_before, _params(module, ["critic"]))


def test_actor_gradient_does_not_reach_critic(learner):
    module = learner.mwm_module
    start = module.rssm.initial(3)
    _, feat, actions, policy = losses.imagine(module.rssm, module.actor, start, 5)
    values = module.critic(feat).mode()  # Even the online critic as baseline.
    targets = losses.lambda_return(
        values[:, :-1], values, torch.full((3, 5), 0.9), 0.95
    )
    terms, _ = losses.actor_loss(
        module.actor,
        policy,
        actions,
        targets,
        values,
        torch.ones(3, 5),
        entropy_scale=1e-4,
        grad="dynamics",
    )
    # The learner differentiates only over the actor's parameters ...
    grads = torch.autograd.grad(terms["actor"], list(module.actor.parameters()))
    assert any(g.abs().sum() > 0 for g in grads)
    # ... and the critic loss reads detached features: no path to the actor.
    critic_losses, _ = losses.critic_loss(
        module.critic, feat, targets, torch.ones(3, 5)
    )
    actor_grads = torch.autograd.grad(
        critic_losses["critic"], list(module.actor.parameters()), allow_unused=True
    )
    assert all(g is None for g in actor_grads)


def test_update_world_model_changes_only_its_networks(learner):
    module = learner.mwm_module
    before = _params(module, ["mae_encoder", "mae_decoder"])
    wm_before = _params(module, ["rssm", "latent_encoder"])
    result = learner.update_world_model(random_sequences(2, 4))
    assert not _changed(before, _params(module, ["mae_encoder", "mae_decoder"]))
    assert _changed(wm_before, _params(module, ["rssm", "latent_encoder"]))
    for key in (
        "world_model/feature_loss",
        "world_model/kl_loss",
        "world_model/reward_loss",
        "world_model/discount_loss",
        "actor/actor_loss",
        "critic/critic_loss",
        "world_model/grad_norm",
    ):
        assert key in result and result[key] == result[key]  # present, not NaN


def test_update_mae_changes_only_the_mae_and_warms_up_lr(learner):
    module = learner.mwm_module
    rest = [n for n in OPTIMIZERS["world_model"][1] if getattr(module, n, None)]
    before = _params(module, rest + ["actor", "critic"])
    n0 = learner.progress["mae_updates"]
    batch = random_sequences(2, 4)
    result = learner.update_mae({"obs": batch["obs"], "rewards": batch["rewards"]})
    assert not _changed(before, _params(module, rest + ["actor", "critic"]))
    assert result["mae/lr"] == pytest.approx(3e-4 * n0 / 2500)
    assert learner.progress["mae_updates"] == n0 + 1


def test_decoupled_weight_decay_matches_reference_rule():
    learner = build_learner(tiny_config(mae_opt={"wd": 0.5, "lr": 1e-12}))
    module = learner.mwm_module
    before = copy.deepcopy(module.mae_encoder.state_dict())
    batch = random_sequences(1, 2)
    learner.update_mae({"obs": batch["obs"], "rewards": batch["rewards"]})
    after = module.mae_encoder.state_dict()
    # With a negligible lr the update is p ← (1 − wd)·p on every MAE parameter.
    for key in ("cls_token", "blocks.0.norm1.weight", "stem.proj.bias"):
        matches = [k for k in before if k.endswith(key)]
        assert matches, key
        torch.testing.assert_close(
            after[matches[0]], 0.5 * before[matches[0]], atol=1e-6, rtol=1e-4
        )


def test_mae_warm_up_starts_from_zero():
    # Reference: lr·n/warmup with n the number of MAE updates done before this one.
    learner = build_learner(tiny_config(mae_opt={"warmup": 4}))
    batch = random_sequences(1, 2)
    mae_batch = {"obs": batch["obs"], "rewards": batch["rewards"]}
    lrs = [learner.update_mae(mae_batch)["mae/lr"] for _ in range(6)]
    lr = learner.config.mae_opt["lr"]
    assert lrs == pytest.approx([0.0, lr / 4, lr / 2, 3 * lr / 4, lr, lr])


def test_world_model_weight_decay_skips_non_kernels():
    learner = build_learner(tiny_config(model_opt={"wd": 0.5, "lr": 1e-12}))
    module = learner.mwm_module
    before = {k: v.detach().clone() for k, v in module.named_parameters()}
    learner.update_world_model(random_sequences(1, 3))
    after = dict(module.named_parameters())
    # With a negligible lr, decayed parameters halve and the others stay put.
    halved = ("rssm.img_in.weight", "latent_decoder.embed.weight")
    kept = ("latent_decoder.mask_token", "rssm.img_in.bias", "rssm.cell.norm.weight")
    for key in halved + kept:
        assert key in before, key
        expected = 0.5 * before[key] if key in halved else before[key]
        torch.testing.assert_close(after[key].detach(), expected, atol=1e-8, rtol=1e-5)


def test_kl_is_scaled_once_inside_the_clip():
    learner = build_learner(tiny_config(wmkl={"scale": 0.25}, wmkl_minloss=0.0))
    result = learner.update_world_model(random_sequences(2, 4))
    # minloss 0: the KL loss is scale·KL (both read from the same forward pass).
    assert result["world_model/kl_loss"] == pytest.approx(
        0.25 * result["world_model/kl"], rel=1e-4
    )
    total = learner._total({"kl": torch.tensor(2.0)}, {})
    assert float(total) == pytest.approx(2.0 * learner.config.loss_scales["kl"])


def test_slow_critic_copied_at_update_zero_and_every_n():
    learner = build_learner(tiny_config(slow_target_update=2))
    module = learner.mwm_module
    start = module.rssm.initial(4)
    discount = torch.full((4,), 0.99)
    learner._train_actor_critic(start, discount)  # update 0: copy after the step
    for a, b in zip(
        module.critic.parameters(), module.slow_critic.parameters(), strict=True
    ):
        assert torch.equal(a, b)
    learner._train_actor_critic(start, discount)  # update 1: no copy
    assert any(
        not torch.equal(a, b)
        for a, b in zip(
            module.critic.parameters(), module.slow_critic.parameters(), strict=True
        )
    )
    learner._train_actor_critic(start, discount)  # update 2: copy
    for a, b in zip(
        module.critic.parameters(), module.slow_critic.parameters(), strict=True
    ):
        assert torch.equal(a, b)


def test_reward_norm_running_magnitude():
    learner = build_learner(tiny_config(reward_norm={"momentum": 0.5}))
    r = torch.tensor([[2.0, -2.0]])
    out, metrics = learner._normalize_reward(r)
    # mag = .5·1 + .5·2 = 1.5 → r / 1.5
    torch.testing.assert_close(out, r / (1.5 + 1e-8))
    assert float(metrics["actor/reward_std"]) == pytest.approx(2.0)  # ddof 0
    assert float(metrics["actor/reward_normed_std"]) == pytest.approx(2.0 / 1.5)
    assert learner.get_state()["mwm_progress"]["reward_mag"] == pytest.approx(1.5)


def test_learner_state_round_trip_includes_counters_and_optimizers():
    learner = build_learner(tiny_config())
    learner.update_world_model(random_sequences(2, 4))
    state = learner.get_state()
    fresh = build_learner(tiny_config())
    fresh.set_state(state)
    assert fresh.progress == learner.progress
    a = learner.get_optimizer(optimizer_name="world_model").state_dict()["state"]
    b = fresh.get_optimizer(optimizer_name="world_model").state_dict()["state"]
    assert a.keys() == b.keys() and len(a) > 0
    for k in a:
        torch.testing.assert_close(a[k]["exp_avg"], b[k]["exp_avg"])


def test_non_finite_gradients_skip_the_whole_step_on_device():
    """A NaN reward makes the world-model loss NaN: fused Adam's `found_inf` skips
    that optimizer's step (weight decay and Adam's step count included), while
    the actor and critic, whose losses stay finite, still step."""
    learner = build_learner(tiny_config())
    module = learner.mwm_module
    batch = random_sequences(2, 8)
    batch["rewards"][1, 4] = np.nan
    nets = {"world_model": module.rssm, "actor": module.actor}
    before = {k: [p.detach().clone() for p in n.parameters()] for k, n in nets.items()}
    metrics = learner.update_world_model(batch)
    assert metrics["world_model/skipped_step"] == 1.0
    assert not np.isfinite(metrics["world_model/grad_norm"])
    assert metrics["actor/skipped_step"] == 0.0
    for p, old in zip(module.rssm.parameters(), before["world_model"], strict=True):
        assert torch.equal(p, old)
    assert any(
        not torch.equal(p, old)
        for p, old in zip(module.actor.parameters(), before["actor"], strict=True)
    )
    optimizer = learner.get_optimizer(optimizer_name="world_model")
    steps = {float(s["step"]) for s in optimizer.state.values()}
    assert steps <= {0.0}, steps  # Adam's step counter was rolled back.


def test_an_infinite_loss_skips_the_step_and_is_counted(monkeypatch):
    learner = build_learner(tiny_config())
    real_mae_loss = losses.mae_loss

    def infinite_mae_loss(*args, **kwargs):
        terms, metrics = real_mae_loss(*args, **kwargs)
        return {**terms, "mae_pixel": terms["mae_pixel"] * float("inf")}, metrics

    seqs = random_sequences(2, 4)
    batch = {"obs": seqs["obs"], "rewards": seqs["rewards"]}
    learner.update_mae(batch)  # A finite update first (lr 0 at n = 0 anyway).
    before = _params(learner.mwm_module, ["mae_encoder", "mae_decoder"])
    monkeypatch.setattr(losses, "mae_loss", infinite_mae_loss)
    metrics = learner.update_mae(batch)
    assert metrics["mae/skipped_step"] == 1.0
    assert metrics["mae/skipped_updates"] == 1
    after = _params(learner.mwm_module, ["mae_encoder", "mae_decoder"])
    assert not _changed(before, after)
    monkeypatch.setattr(losses, "mae_loss", real_mae_loss)
    metrics = learner.update_mae(batch)
    assert metrics["mae/skipped_step"] == 0.0 and metrics["mae/skipped_updates"] == 1
    assert learner.get_state()["mwm_progress"]["skipped_updates"]["mae"] == 1


def test_a_nan_weight_stops_the_run_and_is_never_checkpointed():
    from rllib_mwm.core.update import NonFiniteUpdateError

    learner = build_learner(tiny_config(max_consecutive_skips=3))
    with torch.no_grad():
        learner.mwm_module.rssm.img_out.weight[0, 0] = float("nan")
    batch = random_sequences(2, 4)
    for _ in range(2):
        assert learner.update_world_model(batch)["world_model/skipped_step"] == 1.0
    with pytest.raises(NonFiniteUpdateError, match=r"world_model: 3 updates .*kl"):
        learner.update_world_model(batch)
    with pytest.raises(NonFiniteUpdateError, match=r"rssm\.img_out\.weight"):
        learner.get_state()


def test_a_channels_last_gradient_steps_the_right_elements():
    """The MAE's stem convs see (N, H, W, C) frames permuted to NCHW, so their
    weight gradients come back channels-last; fused Adam walks parameter and
    gradient memory in step, so `_step` must hand it the parameter's layout. The
    first (Keras) Adam step is −lr·g/(|g| + eps/√(1 − β₂)), element by element."""
    learner = build_learner(tiny_config(mae_opt={"wd": 0.0}))
    conv = learner.mwm_module.mae_encoder.stem.convs[0]
    frames = torch.randn(2, 64, 64, 3, generator=torch.Generator().manual_seed(0))
    loss = conv(frames.permute(0, 3, 1, 2)).square().mean()
    (grad,) = torch.autograd.grad(loss, [conv.weight], retain_graph=True)
    assert not grad.is_contiguous()  # The premise: a channels-last gradient.
    settings = learner.config.mae_opt
    assert grad.norm() < settings["clip"]  # No clipping.
    before = conv.weight.detach().clone()
    learner._step("mae", loss)
    eps = settings["eps"] / (1 - 0.999) ** 0.5
    expected = -settings["lr"] * grad / (grad.abs() + eps)
    torch.testing.assert_close(conv.weight.detach() - before, expected)


def test_adam_with_keras_eps_takes_keras_steps():
    """Keras adds ε to the uncorrected √v; torch's Adam with `keras_adam_eps`
    takes the same steps (numpy Keras update, gradients of very different sizes)."""
    from rllib_mwm.core.update import keras_adam_eps

    rng = np.random.default_rng(0)
    grads = rng.normal(size=(6, 5)) * np.array([1e-7, 1e-5, 1e-3, 1e-1, 10.0])
    lr, eps, b1, b2 = 1e-3, 1e-5, 0.9, 0.999
    param = torch.zeros(5, dtype=torch.float64, requires_grad=True)
    adam = torch.optim.Adam([param], lr=lr, eps=eps)
    ref, m, v = np.zeros(5), np.zeros(5), np.zeros(5)
    for t, g in enumerate(grads, start=1):
        m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g**2
        ref -= lr * np.sqrt(1 - b2**t) / (1 - b1**t) * m / (np.sqrt(v) + eps)
        param.grad = torch.as_tensor(g)
        adam.param_groups[0]["eps"] = keras_adam_eps(eps, t)
        adam.step()
    np.testing.assert_allclose(param.detach().numpy(), ref, rtol=1e-10)
