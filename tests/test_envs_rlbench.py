"""RLBench adapter: a scripted backend, and the missing-simulator error
(docs/algorithm.md §7)."""

import importlib.util

import numpy as np
import pytest

from rllib_mwm.core.envs import SimulatorNotInstalled, make_env
from rllib_mwm.core.envs.rlbench import ActionFailed, RLBenchEnv
from rllib_mwm.core.envs.wrappers import EnvSettings

RLBENCH_INSTALLED = importlib.util.find_spec("rlbench") is not None


class ScriptedBackend:
    """Sub-step k (1-based) returns a frame filled with k and reward k."""

    def __init__(self, success_at=None, fail_at=None):
        self.success_at, self.fail_at = success_at, fail_at
        self.substeps, self.actions, self.seeds, self.launched = 0, [], [], None

    def launch(self, task, size):
        self.launched, self.size = task, size

    def reset(self, seed):
        self.seeds.append(seed)
        self.substeps = 0
        return self._frame()

    def step(self, action):
        self.substeps += 1
        self.actions.append(np.array(action))
        if self.substeps == self.fail_at:
            raise ActionFailed("IK failed")
        return self._frame(), float(self.substeps), False

    def success(self):
        return self.success_at is not None and self.substeps >= self.success_at

    def close(self):
        pass

    def _frame(self):
        return np.full((*self.size, 3), self.substeps, np.uint8)


def _env(backend, **config):
    settings = EnvSettings.from_config({"seed": 5, **config})
    return RLBenchEnv("reach_target", settings, backend=backend)


def test_action_repeat_sums_rewards_and_clips_actions():
    backend = ScriptedBackend()
    env = _env(backend)
    assert backend.launched == "reach_target" and env.action_space.shape == (8,)
    image, info = env.reset()
    assert image.shape == (64, 64, 3) and image.dtype == np.uint8
    assert info == {"success": False}
    image, reward, terminated, truncated, info = env.step(np.full(8, 3.0))
    assert reward == 1.0 + 2.0 and (image == 2).all()
    assert not terminated and not truncated and info == {"success": False}
    np.testing.assert_array_equal(backend.actions[0], np.ones(8))
    with pytest.raises(ValueError, match="non-finite"):
        env.step(np.full(8, np.nan))


def test_success_terminates_and_stops_repeating():
    backend = ScriptedBackend(success_at=3)
    env = _env(backend)
    env.reset()
    assert env.step(np.zeros(8))[1:] == (3.0, False, False, {"success": False})
    image, reward, terminated, truncated, info = env.step(np.zeros(8))
    assert backend.substeps == 3  # sub-step 4 never ran
    assert reward == 3.0 and terminated and not truncated and info["success"]
    assert (image == 3).all()
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.zeros(8))


def test_ik_error_truncates_episode_with_zero_reward_and_previous_frame():
    backend = ScriptedBackend(fail_at=4)
    env = _env(backend, action_repeat=2)
    env.reset()
    previous = env.step(np.zeros(8))[0]  # sub-steps 1, 2
    image, reward, terminated, truncated, info = env.step(np.zeros(8))
    assert backend.substeps == 4
    assert reward == 0.0 and not terminated and truncated
    assert info == {"success": False, "env_error": "ActionFailed: IK failed"}
    np.testing.assert_array_equal(image, previous)  # not sub-step 3's frame


def test_time_limit_truncates_and_seeds_reach_backend():
    backend = ScriptedBackend()
    env = _env(backend, time_limit=2)
    env.reset()
    assert env.step(np.zeros(8))[2:4] == (False, False)
    assert env.step(np.zeros(8))[2:4] == (False, True)
    env.reset()
    env.reset(seed=11)
    assert backend.seeds == [5, None, 11]  # env seed first, then keep going
    default = _env(ScriptedBackend())
    assert default.time_limit == 200 and default.action_repeat == 2


@pytest.mark.skipif(RLBENCH_INSTALLED, reason="RLBench is installed here")
@pytest.mark.parametrize("name", ["rlbench_reach_target", "rlbench_push_button"])
def test_missing_simulator_raises_one_clear_error(name):
    with pytest.raises(SimulatorNotInstalled) as error:
        make_env(name)
    assert isinstance(error.value, ImportError)
    message = str(error.value)
    for needle in ("CoppeliaSim 4.1", "COPPELIASIM_ROOT", "stepjam/PyRep", "RLBench"):
        assert needle in message
