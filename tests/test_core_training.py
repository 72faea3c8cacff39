"""The core without Ray: `mwm_settings` reads the presets as `MWMConfig` does,
and `CoreLearner` over `MWMModel` trains exactly as the RLlib learner."""

from __future__ import annotations

import pytest
import torch
from helpers import (
    ACT_SPACE,
    OBS_SPACE,
    TINY,
    build_learner,
    random_sequences,
    tiny_config,
)

from rllib_mwm.core.defaults import MODEL_KEYS, mwm_settings
from rllib_mwm.core.learner import CoreLearner
from rllib_mwm.core.model import MWMModel
from rllib_mwm.core.schedule import interleaved, owed_updates
from rllib_mwm.rllib.config import MWMConfig


def test_settings_apply_presets_like_mwm_config():
    settings = mwm_settings("metaworld", "cpu", mask_ratio=0.5, mae={"depth": 3})
    config = MWMConfig().preset("metaworld", "cpu")
    config.training(mask_ratio=0.5, mae={"depth": 3})
    for key in ("dataset", "mae", "rssm", "reward_norm", "wmkl_minloss", "prefill"):
        assert getattr(settings, key) == getattr(config, key), key
    assert settings.mae["depth"] == 3 and settings.mae["embed_dim"] == 128
    assert settings.env_config == {"time_limit": 250, "action_repeat": 2}
    assert (settings.gamma, settings.lambda_) == (0.99, 0.95)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"mask_ratoi": 0.5}, "Did you mean 'mask_ratio'"),
        ({"rssm": {"detr": 3}}, "MWMConfig.rssm key 'detr'"),
        ({"train_every": 0}, "MWMConfig.train_every must be >= 1"),
        ({"mae": {"embed_dim": 30}}, "try 32"),
    ],
)
def test_settings_reject_bad_values_by_name(overrides, message):
    with pytest.raises(ValueError, match=message):
        mwm_settings(**overrides)


def test_owed_updates_follow_train_every():
    settings = mwm_settings(train_every=5, train_mae_every=2, train_steps=2)
    assert owed_updates(settings, 11, 0, 0) == (5, 4)  # 11//2 MAE, 2·(11//5) WM
    assert owed_updates(settings, 11, 5, 4) == (0, 0)
    assert interleaved(2, 1) == [(True, True), (True, False)]


def test_core_learner_updates_exactly_as_the_rllib_learner():
    rllib_learner = build_learner(tiny_config())
    settings = mwm_settings(**TINY)
    model = MWMModel(
        {key: getattr(settings, key) for key in MODEL_KEYS}, ACT_SPACE, OBS_SPACE
    )
    assert model.state_dict().keys() == rllib_learner.mwm_module.state_dict().keys()
    model.load_state_dict(rllib_learner.mwm_module.state_dict())
    core_learner = CoreLearner(model, settings)
    batch = random_sequences(2, 8)
    results = []
    for learner in (rllib_learner, core_learner):
        torch.manual_seed(3)
        mae = learner.update_mae({"obs": batch["obs"], "rewards": batch["rewards"]})
        world_model = learner.update_world_model(batch)
        results.append((mae, world_model, learner.mwm_module.state_dict()))
    (mae_a, wm_a, weights_a), (mae_b, wm_b, weights_b) = results
    assert mae_a == mae_b and wm_a == wm_b
    for key, value in weights_a.items():
        assert torch.equal(value, weights_b[key]), key
    assert core_learner.update_state()["world_model_updates"] == 1
