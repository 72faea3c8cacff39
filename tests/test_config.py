"""MWMConfig: reference defaults, merging, and one-line errors naming the field."""

import pytest

from rllib_mwm.config import MWM_DEFAULTS, MWMConfig


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
    }
    assert c.mae_opt["warmup"] == 2500 and c.actor_opt["lr"] == 1e-4
    assert c.dataset == {"batch": 16, "length": 50}
    assert c.mae_dataset == {"batch": 32, "length": 32}
    assert c.wmkl_balance == 0.8 and c.aent["scale"] == 1e-4
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
