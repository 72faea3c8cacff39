"""MWMConfig: reference defaults, merging, and one-line errors naming the field."""

import logging

import numpy as np
import pytest
import torch
from helpers import ACT_SPACE, OBS_SPACE, build_learner, tiny_config

from rllib_mwm.rllib.config import MWM_DEFAULTS, MWMConfig


def test_reference_defaults():
    c = MWMConfig()
    assert (c.gamma, c.lambda_, c.mask_ratio, c.imag_horizon) == (0.99, 0.95, 0.75, 15)
    assert c.mae["embed_dim"] == 256 and c.mae["depth"] == 4
    assert c.rssm == {
        "deter": 1024,
        "hidden": 1024,
        "stoch": 32,
        "discrete": 32,
        "action_pad": 0,
        "img_in_act": False,
    }
    assert c.mae_opt["warmup"] == 2500 and c.actor_opt["lr"] == 1e-4
    assert c.dataset == {"batch": 16, "length": 50}
    assert c.mae_dataset == {"batch": 32, "length": 32}
    assert c.wmkl_balance == 0.8 and c.aent["scale"] == 1e-4
    assert c.wmkl == {"scale": 1.0} and c.wmkl_minloss == 0.0
    assert c.slow_target_update == 100 and c.prefill == 5000
    c.validate_mwm()


def test_nested_dicts_merge():
    c = MWMConfig().training(mae={"reward_pred": False})
    assert c.mae["reward_pred"] is False and c.mae["embed_dim"] == 256
    c.update_from_dict({"rssm": {"deter": 8}, "lambda": 0.5, "gamma": 0.9})
    assert c.rssm["deter"] == 8 and c.rssm["hidden"] == 1024
    assert c.lambda_ == 0.5 and c.gamma == 0.9


def test_defaults_are_not_shared_between_instances():
    a = MWMConfig().training(mae={"depth": 1})
    assert MWMConfig().mae["depth"] == 4 and MWM_DEFAULTS["mae"]["depth"] == 4
    assert a.mae["depth"] == 1


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"mask_ration": 0.5}, "Unknown MWMConfig key 'mask_ration'.*'mask_ratio'"),
        ({"mae": {"embed_dims": 3}}, "Unknown MWMConfig.mae key 'embed_dims'"),
        ({"mae": {"depth": 2.5}}, r"MWMConfig.mae.depth must be int"),
        ({"pred_discount": "yes"}, "MWMConfig.pred_discount must be bool"),
        ({"mae": 3}, "MWMConfig.mae must be a dict"),
    ],
)
def test_bad_keys_and_types_fail_at_once(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MWMConfig().training(**kwargs)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"mask_ratio": 1.0}, "mask_ratio must be in"),
        ({"precision": "fp16"}, "precision must be one of"),
        ({"actor_grad": "both"}, "actor_grad must be one of"),
        ({"clip_rewards": "log"}, "clip_rewards must be"),
        ({"grad_heads": ["reward", "discount"]}, "pred_discount is False"),
        ({"dataset": {"batch": 0}}, r"dataset.batch must be >= 1"),
        ({"imag_horizon": 1}, "imag_horizon must be >= 2"),
        (
            {"wm_flat_vit": {"decoder": "conv"}},
            r"wm_flat_vit.decoder must be one of \('vit', 'mlp'\), got 'conv'",
        ),
        ({"pretrain": -1}, "pretrain must be >= 0"),
        ({"replay": {"minlen": 0}}, r"replay.minlen must be in \[1, dataset.length\]"),
        ({"replay": {"minlen": 51}}, r"replay.minlen must be in \[1, dataset.length\]"),
    ],
)
def test_validate_rejects_bad_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MWMConfig().training(**kwargs).validate_mwm()


def test_model_config_carries_the_network_settings():
    c = MWMConfig().training(mask_ratio=0.5, rssm={"deter": 32})
    assert c.model_config["mask_ratio"] == 0.5
    assert c.model_config["rssm"]["deter"] == 32
    assert "prefill" not in c.model_config


def test_env_to_module_pipeline_adds_is_first_before_states():
    from helpers import ACT_SPACE, OBS_SPACE

    c = MWMConfig().environment(observation_space=OBS_SPACE, action_space=ACT_SPACE)
    pipeline = c.build_env_to_module_connector(
        spaces={
            "__env__": (OBS_SPACE, ACT_SPACE),
            "__env_single__": (OBS_SPACE, ACT_SPACE),
        }
    )
    names = [type(piece).__name__ for piece in pipeline.connectors]
    assert "AddIsFirstsToBatch" in names
    assert names.index("AddIsFirstsToBatch") < names.index(
        "AddStatesFromEpisodesToBatch"
    )


def test_presets_apply_the_algorithm_document_table_in_order():
    c = MWMConfig().preset("metaworld")
    assert c.env_config == {"time_limit": 250, "action_repeat": 2}
    assert (c.eval_eps, c.evaluation_duration) == (10, 10)
    assert c.dataset == {"batch": 50, "length": 50}
    assert c.reward_norm["momentum"] == 0.99 and c.wmkl_minloss == 0.01
    c = MWMConfig().preset("dmc_vision")
    assert c.replay["prioritize_ends"] is False and c.replay["minlen"] == 50
    assert c.wmkl_minloss == 0.01
    c = MWMConfig().preset("rlbench")
    assert c.pred_discount and c.grad_heads == ["reward", "discount"]
    assert (c.wmkl["scale"], c.replay["minlen"], c.eval_every) == (0.1, 1, 5000)
    assert c.wmkl_minloss == 0.1
    # Stacking as the original `--configs`: later presets win key by key.
    c = MWMConfig().preset("metaworld", "debug")
    assert c.dataset == {"batch": 4, "length": 16} and c.wmkl_minloss == 0.01
    assert c.env_config == {"time_limit": 50, "action_repeat": 2}
    assert c.mae["embed_dim"] == 64 and c.mae["patch_size"] == 8
    assert c.rollout_fragment_length == 10
    c.validate_mwm()


def test_presets_key_in_a_config_dict():
    c = MWMConfig().update_from_dict({"presets": ["dmc_vision"], "eval_eps": 2})
    assert c.replay["prioritize_ends"] is False and c.eval_eps == 2
    assert c.evaluation_duration == 2
    with pytest.raises(ValueError, match="Unknown MWM preset 'metaword'.*'metaworld'"):
        MWMConfig().preset("metaword")


def test_validate_names_rllib_settings_mwm_does_not_use():
    with pytest.raises(ValueError, match="evaluation_interval is not used.*eval_every"):
        MWMConfig().evaluation(evaluation_interval=2).validate()
    with pytest.raises(ValueError, match="dataset.batch 16 does not split over"):
        MWMConfig().learners(num_learners=3).validate()


@pytest.mark.parametrize(
    "env, env_config, message",
    [
        ("metaworld_reac", {}, "Unknown metaworld task 'metaworld_reac'"),
        ("metaworld_reach", {"timelimit": 3}, r"Unknown env_config key\(s\)"),
        ("dmc_walker_walk", {"fast_render": True}, "only available for Meta-world"),
    ],
)
def test_validate_checks_the_env_before_any_actor_starts(env, env_config, message):
    config = MWMConfig().environment(env, env_config=env_config)
    with pytest.raises(ValueError, match=message):
        config.validate()


def test_mwm_is_the_algorithm_and_resolves_in_tune():
    from ray.tune.registry import get_trainable_cls

    import rllib_mwm
    from rllib_mwm import MWM

    assert MWMConfig().algo_class is MWM
    rllib_mwm.register()  # Done at import; again here as an earlier test's
    # ray.shutdown() cleared Tune's registry.
    assert get_trainable_cls("MWM") is MWM
    assert isinstance(MWM.get_default_config(), MWMConfig)


def test_config_dicts_reject_keys_rllib_would_store_silently():
    # RLlib's update_from_dict sets any unknown key as an attribute.
    with pytest.raises(ValueError, match="Unknown MWMConfig key 'mask_ration'"):
        MWMConfig().update_from_dict({"mask_ration": 0.5})
    config = MWMConfig().update_from_dict(
        {"num_workers": 2, "framework": "torch", "lambda": 0.9, "lr": None}
    )
    assert config.num_env_runners == 2 and config.lambda_ == 0.9
    # Everything `to_dict()` writes reads back (Tune passes such dicts).
    MWMConfig().update_from_dict(config.to_dict())


def test_rssm_feeds_img_in_straight_into_the_gru_by_default():
    """The released code has no activation after img_in (docs/algorithm.md §3);
    `rssm.img_in_act` brings DreamerV2's ELU back."""

    def rssm(**rssm_overrides):
        config = tiny_config(rssm=rssm_overrides)
        spaces = {"default_policy": (OBS_SPACE, ACT_SPACE)}
        return config.get_rl_module_spec(spaces=spaces).build().rssm

    torch.manual_seed(0)
    for act, model in ((False, rssm()), (True, rssm(img_in_act=True))):
        state = {k: v.normal_() for k, v in model.initial(3).items()}
        action = torch.randn(3, 4)
        with torch.no_grad():
            h = model.img_in(torch.cat([state["stoch"].flatten(-2), action], -1))
            expected = model.cell(
                torch.nn.functional.elu(h) if act else h, state["deter"]
            )
            torch.testing.assert_close(model.img_step(state, action)["deter"], expected)


def test_cpu_preset_keeps_mwm_and_trains_at_its_batch_shapes():
    from helpers import build_learner, random_sequences

    c = MWMConfig().preset("metaworld", "cpu")
    # Still MWM: a masked ViT over conv features with the reward token, the
    # paper's patch and mask ratio, and the world model's ViT on its tokens.
    assert c.mae["early_conv"] and c.mae["reward_pred"] and c.mae["patch_size"] == 8
    assert c.mask_ratio == 0.75 and c.mae["embed_dim"] >= 128
    assert c.wm_flat_vit["depth"] >= 1 and c.rssm["deter"] >= 200
    assert c.wm_flat_vit["decoder"] == "mlp"  # The tokens from feat directly.
    # Suite settings stay the suite preset's (the tuned examples set the episode).
    assert c.env_config == {"time_limit": 250, "action_repeat": 2}
    assert c.reward_norm["momentum"] == 0.99
    assert c.train_every == c.train_mae_every <= 10
    c.validate_mwm()
    torch.manual_seed(0)
    learner = build_learner(
        c.environment(observation_space=OBS_SPACE, action_space=ACT_SPACE)
    )
    wm = learner.update_world_model(
        random_sequences(c.dataset["batch"], c.dataset["length"])
    )
    mae = random_sequences(c.mae_dataset["batch"], c.mae_dataset["length"], seed=1)
    mae = learner.update_mae({"obs": mae["obs"], "rewards": mae["rewards"]})
    for results in (wm, mae):
        losses = {k: float(v) for k, v in results.items() if k.endswith("loss")}
        assert losses and all(np.isfinite(v) for v in losses.values()), losses


def test_suspicious_values_are_logged_once_and_still_run(caplog, monkeypatch):
    import rllib_mwm.rllib.config as config_module

    monkeypatch.setattr(config_module, "_WARNED", set())
    config = tiny_config(replay={"capacity": 1000})
    with caplog.at_level(logging.WARNING, logger="rllib_mwm.rllib.config"):
        config.validate()
        config.validate()
    notes = [r.getMessage() for r in caplog.records if "MWMConfig" in r.getMessage()]
    assert notes == [
        "MWMConfig warning: replay.capacity 1000 is below prefill 5000: the replay "
        "drops random-action steps before training starts"
    ]
    assert tiny_config().mwm_warnings() == []


def test_validate_builds_the_networks_configs_the_module_uses():
    """The check and the networks share one builder: what validate accepts, the
    module builds with exactly those sizes."""
    from rllib_mwm.core.nets.configs import network_configs

    config = tiny_config(mae={"embed_dim": 60, "num_heads": 5})
    with pytest.raises(ValueError, match="embed_dim 60 must be divisible by mae.num"):
        config.validate_mwm()
    config = tiny_config(actor={"min_std": 0.2, "max_std": 0.5})
    config.validate_mwm()
    module = build_learner(config).module["default_policy"]
    nets = network_configs(config._model_config_auto_includes, action_dim=4)
    assert (module.actor.min_std, module.actor.max_std) == (0.2, 0.5)
    assert module.rssm.cfg == nets.rssm
    assert module.mae_config == nets.mae
