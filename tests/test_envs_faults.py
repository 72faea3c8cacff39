"""Simulator errors end the episode, not the run (rllib_mwm.core.envs.wrappers): the
episode is truncated with reward 0 and the last good frame, `env_errors` counts
it in the env-runner results, programming errors still propagate, and a failing
reset is retried with fresh seeds."""

from __future__ import annotations

import logging
import os
from types import SimpleNamespace

import gymnasium as gym
import numpy as np
import pytest

os.environ.setdefault("MUJOCO_GL", "egl")

from dm_control.rl.control import PhysicsError  # noqa: E402
from ray.rllib.env.single_agent_episode import SingleAgentEpisode  # noqa: E402
from ray.rllib.utils.metrics.metrics_logger import MetricsLogger  # noqa: E402

from rllib_mwm.core.envs import make_env  # noqa: E402
from rllib_mwm.core.envs.rlbench import ActionFailed  # noqa: E402
from rllib_mwm.core.envs.wrappers import (  # noqa: E402
    MAX_FAILED_FIRST_STEPS,
    RESET_ATTEMPTS,
    EnvSettings,
    PixelEnv,
    SimStep,
)
from rllib_mwm.core.errors import EnvFaultError, SimulatorError  # noqa: E402
from rllib_mwm.rllib.reporting import log_episode_success  # noqa: E402

ACTION = np.zeros(2, np.float32)


class FaultyEnv(PixelEnv):
    """A scripted simulator: sub-step k (1-based, counted over the episode)
    draws a frame filled with k and reward 1; it raises `error` at sub-step
    `fail_at`, and `reset` raises `reset_error` for its first `reset_fails`
    calls."""

    def __init__(self, fail_at=None, error=None, **config):
        settings = EnvSettings.from_config({"seed": 0, "time_limit": 20, **config})
        super().__init__(settings, action_dim=2, time_limit=20, frame_dt=0.05)
        self.fail_at, self.error = fail_at, error or RuntimeError("sim")
        self.reset_fails, self.reset_error = 0, RuntimeError("bad scene")
        self.substep, self.reset_seeds = 0, []

    def _reset_sim(self, seed):
        self.reset_seeds.append(seed)
        if len(self.reset_seeds) <= self.reset_fails:
            raise self.reset_error
        self.substep = 0

    def _step_sim(self, action):
        self.substep += 1
        if self.substep == self.fail_at:
            raise self.error
        return SimStep(1.0)

    def _observe(self):
        return np.full((64, 64, 3), self.substep, np.uint8)


def test_sim_error_truncates_with_last_good_frame_and_zero_reward(caplog):
    env = FaultyEnv(fail_at=6, error=RuntimeError("mj_step diverged\nmore"))
    env.reset()
    for _ in range(2):  # sub-steps 1-4
        image, reward, terminated, truncated, info = env.step(ACTION)
        assert (reward, terminated, truncated, info) == (2.0, False, False, {})
    with caplog.at_level(logging.WARNING):
        image, reward, terminated, truncated, info = env.step(ACTION)  # 5, 6 fails
    assert (reward, terminated, truncated) == (0.0, False, True)
    assert (image == 4).all()  # the previous agent step's frame, not sub-step 5's
    assert info == {"env_error": "RuntimeError: mj_step diverged"}
    assert "episode truncated (RuntimeError: mj_step diverged)" in caplog.text
    with pytest.raises(RuntimeError, match="reset"):
        env.step(ACTION)  # the episode is over
    assert (env.reset()[0] == 0).all()  # and the next one runs
    assert env.step(ACTION)[1:4] == (2.0, False, False)


@pytest.mark.parametrize(
    "error",
    [
        RuntimeError("generic simulator error"),
        PhysicsError("Physics state is invalid. Warning(s) raised: mjWARN_BADQACC"),
        ActionFailed("IK failed"),  # RLBench's IK / path / invalid action
        SimulatorError("MuJoCo reset an unstable simulation (mjWARN_BADQACC)"),
        FloatingPointError("overflow encountered in multiply"),  # np.seterr
        RuntimeWarning("overflow"),  # warnings.simplefilter("error")
    ],
    ids=lambda error: type(error).__name__,
)
def test_simulator_errors_end_the_episode(error):
    env = FaultyEnv(fail_at=1, error=error)
    env.reset()
    _, reward, terminated, truncated, info = env.step(ACTION)
    assert (reward, terminated, truncated) == (0.0, False, True)
    assert info["env_error"].startswith(type(error).__name__ + ": ")


@pytest.mark.parametrize(
    "error",
    [
        TypeError("unsupported operand"),
        AttributeError("no attribute 'qpos'"),
        KeyError("success"),
        ValueError("bad shape"),
        NotImplementedError("_step_sim"),  # a RuntimeError, still a bug
        RecursionError("maximum recursion depth exceeded"),
        DeprecationWarning("old API"),
        KeyboardInterrupt(),
    ],
    ids=lambda error: type(error).__name__,
)
def test_programming_errors_and_interrupts_propagate(error):
    env = FaultyEnv(fail_at=1, error=error)
    env.reset()
    with pytest.raises(type(error)):
        env.step(ACTION)
    env.reset_error = error
    env.reset_fails = 10
    with pytest.raises(type(error)):
        env.reset()
    assert len(env.reset_seeds) == 2  # no retry


def test_failing_reset_is_retried_with_fresh_seeds():
    env = FaultyEnv()
    env.reset_fails = RESET_ATTEMPTS - 1
    image, _ = env.reset(seed=7)
    assert (image == 0).all() and len(env.reset_seeds) == RESET_ATTEMPTS
    first, *retries = env.reset_seeds
    assert first == 7 and len(set(retries)) == len(retries) and 7 not in retries
    assert env.step(ACTION)[1] == 2.0


def test_reset_failing_every_attempt_raises_one_line():
    env = FaultyEnv()
    env.reset_fails = RESET_ATTEMPTS
    with pytest.raises(EnvFaultError) as error:
        env.reset()
    message = str(error.value)
    assert "\n" not in message and f"reset failed {RESET_ATTEMPTS} times" in message
    assert "RuntimeError: bad scene" in message


def test_a_simulator_failing_every_first_step_is_declared_broken():
    env = FaultyEnv(fail_at=1)
    for _ in range(MAX_FAILED_FIRST_STEPS - 1):
        env.reset()
        assert env.step(ACTION)[3]
    env.reset()
    with pytest.raises(EnvFaultError, match="in a row failed at their first step"):
        env.step(ACTION)
    late = FaultyEnv(fail_at=3)  # failing later in every episode is not broken
    for _ in range(MAX_FAILED_FIRST_STEPS + 1):
        late.reset()
        assert not late.step(ACTION)[3] and late.step(ACTION)[3]


def test_metaworld_instability_ends_the_episode():
    env = make_env("metaworld_reach", seed=0, fast_render=True, time_limit=5)
    previous = env.reset()[0]
    env.sim.data.qvel[:] = 1e200  # MuJoCo resets the state and counts a warning
    image, reward, terminated, truncated, info = env.step(np.zeros(4, np.float32))
    assert (reward, terminated, truncated) == (0.0, False, True)
    assert "mjWARN_BADQVEL" in info["env_error"]
    np.testing.assert_array_equal(image, previous)
    env.reset()
    assert "env_error" not in env.step(np.zeros(4, np.float32))[4]
    env.close()


def test_dmc_physics_error_ends_the_episode():
    env = make_env("dmc_cartpole_swingup", seed=0, time_limit=5)
    previous = env.reset()[0]
    env.sim.physics.data.qvel[:] = np.nan
    image, reward, terminated, truncated, info = env.step(np.zeros(1, np.float32))
    assert (reward, terminated, truncated) == (0.0, False, True)
    assert info["env_error"].startswith("PhysicsError: ")
    np.testing.assert_array_equal(image, previous)
    env.reset()
    assert env.step(np.zeros(1, np.float32))[3] is False
    env.close()


def test_episode_end_callback_sums_env_errors():
    def episode(error: bool) -> SingleAgentEpisode:
        chunk = SingleAgentEpisode()
        chunk.add_env_reset(0, infos={})
        chunk.add_env_step(0, 0, 0.0, infos={})
        last = {"env_error": "RuntimeError: x"} if error else {}
        chunk.add_env_step(0, 0, 0.0, infos=last, truncated=error)
        return chunk

    logger = MetricsLogger()
    runner = SimpleNamespace(
        config=SimpleNamespace(metrics_num_episodes_for_smoothing=4)
    )
    for error in (True, False, True):
        log_episode_success(
            episode=episode(error), env_runner=runner, metrics_logger=logger
        )
    assert logger.peek("env_errors") == 2
    assert logger.peek("success_rate", default="absent") == "absent"


# ------------------------------------------------- a real MWM Algorithm run
class FaultyTaskEnv(FaultyEnv):
    """`FaultyEnv` as RLlib builds it: from an env_config, 4-dim actions;
    every episode's simulator raises at sub-step 13 (agent step 7)."""

    def __init__(self, env_config):
        super().__init__(fail_at=13, error=PhysicsError("Physics state is invalid"))
        self.action_space = gym.spaces.Box(-1.0, 1.0, (4,), np.float32)


@pytest.mark.slow  # ~30 s: Ray starts, MWM builds and trains
def test_mwm_keeps_training_through_env_errors(ray_session, tmp_path):
    from helpers import debug_config

    config = (
        debug_config(FaultyTaskEnv, runners=0)
        .env_runners(rollout_fragment_length=7)
        .training(
            prefill=14,
            mae_pretrain=2,
            pretrain=1,
            eval_eps=0,
            replay={"minlen": 4},
            dataset={"batch": 2, "length": 8},
            mae_dataset={"batch": 2, "length": 4},
            train_every=7,
            train_mae_every=7,
        )
    )
    algo = config.build_algo()
    algo.report_dir = str(tmp_path)
    try:
        # An iteration samples >= 50 agent steps (debug preset): 8+ episodes.
        results = [algo.train() for _ in range(2)]
    finally:
        algo.stop()
    runners = [r["env_runners"] for r in results]
    assert runners[0]["episode_len_mean"] == 7  # 6 good steps + the failed one
    assert 50 // 7 <= runners[0]["env_errors"] < runners[1]["env_errors"]
    assert runners[1]["env_errors"] == runners[1]["num_episodes_lifetime"]
    assert results[1]["phase"] == "train" and results[1]["world_model_updates"] >= 7
