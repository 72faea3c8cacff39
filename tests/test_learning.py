"""Learning sanity on real Meta-world frames (small widths, CPU-sized)."""

import numpy as np
import pytest
import torch
from helpers import build_learner, tiny_config

import rllib_mwm
from rllib_mwm.core.replay.episodes import random_episode
from rllib_mwm.rllib.replay import MWMReplayBuffer


@pytest.fixture(scope="module")
def episodes():
    env = rllib_mwm.make_env("metaworld_reach", seed=0, time_limit=40, fast_render=True)
    try:
        return [random_episode(env, seed) for seed in range(3)]
    finally:
        env.close()


def replay_of(episodes, seed: int) -> MWMReplayBuffer:
    replay = MWMReplayBuffer(capacity=10_000, prioritize_ends=False, seed=seed)
    for episode in episodes:
        replay.add_episode(episode)
    return replay


def test_episodes_are_stored_in_mwm_alignment(episodes):
    e = episodes[0]
    assert e["obs"].dtype == np.uint8 and e["obs"].shape[1:] == (64, 64, 3)
    assert e["is_first"][0] and not e["is_first"][1:].any()
    assert not e["actions"][0].any() and e["rewards"][0] == 0.0
    assert len(e["obs"]) == 41 and e["actions"][1:].any()


def test_mae_pixel_loss_halves_in_200_updates(episodes):
    torch.manual_seed(0)
    learner = build_learner(tiny_config(mae_opt={"warmup": 10, "lr": 1e-3}))
    replay = replay_of(episodes, seed=0)
    losses = []
    for _ in range(200):
        batch = replay.sample(4, 8)
        result = learner.update_mae({"obs": batch["obs"], "rewards": batch["rewards"]})
        losses.append(result["mae/mae_pixel_loss"])
    first, last = np.mean(losses[:5]), np.mean(losses[-10:])
    assert last <= 0.5 * first, (first, last)


def test_world_model_loss_falls_on_a_fixed_sample(episodes):
    torch.manual_seed(0)
    learner = build_learner(tiny_config())
    batch = replay_of(episodes, seed=1).sample(4, 10)
    batch.pop("success")
    totals = []
    for _ in range(200):
        r = learner.update_world_model(batch)
        totals.append(
            r["world_model/feature_loss"]
            + r["world_model/kl_loss"]
            + r["world_model/reward_loss"]
        )
    assert np.mean(totals[-10:]) < 0.5 * np.mean(totals[:5]), totals[::20]
