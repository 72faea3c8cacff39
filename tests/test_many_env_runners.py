"""N env runners × M envs each: every env renders through its own GL context and
starts from its own seed, for Meta-world and DMC."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from helpers import debug_config

from rllib_mwm import MWMConfig

RUNNERS, ENVS = 2, 2


def many_runners_config(env: str) -> MWMConfig:
    return debug_config(
        env,
        runners=RUNNERS,
        envs_per_runner=ENVS,
        mae_pretrain=1,
        eval_eps=0,
        log_every=10**9,
    )


@pytest.mark.parametrize(
    "env",
    [
        pytest.param("metaworld_reach", marks=pytest.mark.slow),
        pytest.param("dmc_walker_walk", marks=pytest.mark.slow),
    ],
)
def test_every_env_of_every_runner_renders_its_own_episode(ray_session, tmp_path, env):
    algo = many_runners_config(env).build_algo()
    algo.report_dir = str(tmp_path)
    try:
        steps = algo._sample()  # One fragment on every env of every runner.
        assert steps == RUNNERS * ENVS * 10  # debug: rollout_fragment_length 10
        starts = [parts[0]["obs"][0] for parts in algo.replay_buffer._ongoing.values()]
        assert len(starts) == RUNNERS * ENVS
        for frame in starts:  # Rendered, not a blank or shared buffer.
            assert frame.shape == (64, 64, 3) and frame.std() > 5
        for a, b in itertools.combinations(starts, 2):  # Own seed each: another
            # goal (Meta-world: a few pixels) or pose (DMC).
            assert np.count_nonzero((a != b).any(axis=-1)) >= 3
        while algo.progress["phase"] != "train":
            algo.train()
        result = algo.train()
        assert algo.progress["world_model_updates"] >= 1
        assert np.isfinite(result["learners"]["default_policy"]["world_model/kl"])
    finally:
        algo.stop()
