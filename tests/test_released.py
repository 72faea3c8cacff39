"""`rllib_mwm.rllib.released`: the released code's config keys and variable names."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import build_learner, tiny_config

from rllib_mwm.rllib.config import MWMConfig
from rllib_mwm.rllib.released import (
    RELEASED_SWITCHES,
    load_released_weights,
    released_arrays,
    resolve,
    translate_config,
    with_released_switches,
)

#: A slice of the released `configs.yaml` (defaults + metaworld), as it writes it.
RELEASED = {
    "task": "metaworld_reach",
    "time_limit": 250,
    "action_repeat": 2,
    "render_size": [64, 64],
    "steps": 2.52e5,
    "eval_every": 1e4,
    "precision": 16,
    "discount": 0.99,
    "discount_lambda": 0.95,
    "envs": {"amount": 1},
    "jit": True,
    "replay": {"capacity": 2e6, "minlen": 50, "maxlen": 50, "prioritize_ends": True},
    "rssm": {"hidden": 1024, "deter": 1024, "act": "elu", "norm": "none"},
    "wm_flat_vit": {"img_size": 8, "patch_size": 1, "in_chans": 256, "depth": 2},
    "mae": {"embed_dim": 256},
    "reward_head": {"layers": [512, 512, 512, 512], "dist": "symlog"},
    "actor": {"layers": [512] * 4, "dist": "auto", "min_std": 0.1},
    "model_opt": {"opt": "adam", "lr": 3e-4, "wd_pattern": "kernel"},
    "slow_target": True,
    "reward_norm": {"momentum": 0.99, "scale": 1.0, "eps": 1e-8},
}


def test_released_config_becomes_ours():
    ours = translate_config(RELEASED)
    assert ours["env"] == "metaworld_reach" and ours["precision"] == "bf16"
    assert ours["env_config"] == {
        "time_limit": 250,
        "action_repeat": 2,
        "size": [64] * 2,
    }
    assert (ours["gamma"], ours["lambda"]) == (0.99, 0.95)
    assert ours["num_envs_per_env_runner"] == 1
    assert ours["eval_every"] == 10000 and isinstance(ours["eval_every"], int)
    assert ours["replay"] == {"capacity": 2e6, "minlen": 50, "prioritize_ends": True}
    assert isinstance(ours["replay"]["capacity"], int)
    assert ours["rssm"] == {"hidden": 1024, "deter": 1024}
    assert ours["wm_flat_vit"] == {"depth": 2}
    assert ours["reward_head"] == {"layers": 4, "units": 512}
    assert ours["actor"] == {"layers": 4, "units": 512, "min_std": 0.1}
    assert ours["model_opt"] == {"lr": 3e-4}
    assert ours["reward_norm"] == {"momentum": 0.99, "eps": 1e-8}
    assert "steps" not in ours and "jit" not in ours and "slow_target" not in ours
    ours.pop("env")
    MWMConfig().update_from_dict(ours).validate_mwm()  # Every key is ours.


@pytest.mark.parametrize(
    "released, message",
    [
        ({"rssm": {"norm": "layer"}}, "rssm.norm = 'layer' is not supported"),
        ({"reward_head": {"layers": [512, 256]}}, "one width"),
        ({"actor": {"dist": "normal"}}, "actor.dist = 'normal'"),
        ({"critic_opt": {"opt": "sgd"}}, "Adam"),
        ({"expl_noise": 0.3}, "exploration noise is not implemented"),
        ({"wm_flat_vit": {"patch_size": 2}}, "wm_flat_vit.patch_size"),
        ({"mae": {"embed_dim": 128}, "wm_flat_vit": {"in_chans": 256}}, "in_chans"),
    ],
)
def test_released_settings_we_cannot_reproduce_raise(released, message):
    with pytest.raises(ValueError, match=message):
        translate_config(released)


def test_unknown_released_keys_pass_through_for_mwm_config_to_reject():
    ours = translate_config({"mae": {"rewardpred": True}})
    with pytest.raises(ValueError, match="Unknown MWMConfig.mae key 'rewardpred'"):
        MWMConfig().update_from_dict(ours)


def test_released_switches_merge_into_nested_keys():
    merged = with_released_switches({"mae": {"embed_dim": 64}})
    assert merged["mae"] == {"embed_dim": 64, **RELEASED_SWITCHES["mae"]}
    assert merged["reinforce_action_grad"] is True


def test_released_names_resolve_with_their_layout():
    assert resolve("rssm/gru_cell/dense/kernel") == ("rssm.cell.linear.weight", "dense")
    assert resolve("mae_encoder/vit_encoder_block_3/attn/qkv/bias") == (
        "mae_encoder.transformer.blocks.3.attn.qkv.bias",
        "copy",
    )
    assert resolve("heads/reward/dense2/kernel") == (
        "reward_head.mlp.hidden.4.weight",
        "dense",
    )
    with pytest.raises(KeyError, match="no WEIGHT_TABLE row"):
        resolve("rssm/gru_cell/extra/kernel")


def _released_weights(module) -> dict[str, np.ndarray]:
    """Our tiny module's weights named and laid out as the released code's."""
    names = [
        "mae_encoder/early_conv_0/kernel",
        "actor/out/out/kernel",
        "actor/out/std/kernel",
        "rssm/img_in/kernel",
    ]
    return released_arrays(module, names)


def test_weights_round_trip_through_the_released_layout():
    module = build_learner(tiny_config()).module["default_policy"]
    arrays = _released_weights(module)
    assert arrays["mae_encoder/early_conv_0/kernel"].shape == (4, 4, 3, 8)
    assert arrays["actor/out/out/kernel"].shape == (64, 4)
    out = module.actor.mlp.out.weight.detach()
    np.testing.assert_array_equal(arrays["actor/out/std/kernel"], out[4:].T.numpy())
    conv = module.mae_encoder.stem.convs[0].weight.detach()
    np.testing.assert_array_equal(
        arrays["mae_encoder/early_conv_0/kernel"][1, 2, :, 3], conv[3, :, 1, 2].numpy()
    )


def test_loading_fails_on_a_parameter_no_released_variable_sets():
    module = build_learner(tiny_config()).module["default_policy"]
    arrays = _released_weights(module)
    with pytest.raises(KeyError, match="no released variable sets .*actor.mlp.hidden"):
        load_released_weights(module, arrays)
    half = {"actor/out/out/kernel": arrays["actor/out/out/kernel"]}
    with pytest.raises(KeyError, match="actor.mlp.out.weight"):
        load_released_weights(module, half)


def test_loading_rejects_a_wrong_shape():
    module = build_learner(tiny_config()).module["default_policy"]
    wrong = {"rssm/img_in/kernel": np.zeros((3, 3), np.float32)}
    with pytest.raises(ValueError, match="does not fit 'rssm.img_in.weight'"):
        load_released_weights(module, wrong)
    assert torch.isfinite(module.rssm.img_in.weight).all()


def test_latent_vit_image_must_be_the_mae_grid():
    released = {
        "mae": {"img_size": 64, "patch_size": 8},
        "wm_flat_vit": {"img_size": 16},
    }
    with pytest.raises(ValueError, match="wm_flat_vit.img_size = 16 .*MAE grid is 8"):
        translate_config(released)
    released["wm_flat_vit"]["img_size"] = 8
    assert "wm_flat_vit" not in translate_config(released)  # Derived, so dropped.
