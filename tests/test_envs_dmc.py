"""DeepMind Control adapters (docs/algorithm.md §7): suite and manipulation tasks."""

import os

import numpy as np
import pytest

os.environ.setdefault("MUJOCO_GL", "egl")

from rllib_mwm.core.envs import make_env  # noqa: E402


def _frames(env, actions, seed=None):
    frames = [env.reset(seed=seed)[0]]
    frames += [env.step(action)[0] for action in actions]
    return np.stack(frames)


def test_walker_spaces_repeat_and_default_time_limit():
    env = make_env("dmc_walker_walk", seed=0)
    assert env.observation_space.shape == (64, 64, 3)
    assert env.observation_space.dtype == np.uint8
    assert env.action_space.shape == (6,) and env.action_space.dtype == np.float32
    assert env.time_limit == 500  # 1000 frames / action repeat 2
    image, info = env.reset()
    assert env.observation_space.contains(image) and info == {}
    dt = env.sim.control_timestep()
    image, reward, terminated, truncated, info = env.step(env.action_space.sample())
    assert env.observation_space.contains(image) and isinstance(reward, float)
    assert not terminated and not truncated and "success" not in info
    assert env.sim.physics.time() == pytest.approx(2 * dt)  # action repeat 2
    env.close()


def test_time_limit_truncates():
    env = make_env("dmc_cartpole_swingup", seed=0, time_limit=3, action_repeat=1)
    env.reset()
    ends = [env.step(np.zeros(1))[2:4] for _ in range(3)]
    assert ends == [(False, False), (False, False), (False, True)]
    env.close()


def test_same_seed_same_frames_and_reset_seed_reseeds():
    actions = np.random.default_rng(0).uniform(-1, 1, (3, 2))
    first, second, other = (make_env("dmc_reacher_easy", seed=s) for s in (0, 0, 1))
    reference = _frames(first, actions)
    np.testing.assert_array_equal(_frames(second, actions), reference)
    assert not np.array_equal(_frames(other, actions)[0], reference[0])
    np.testing.assert_array_equal(_frames(other, actions, seed=0), reference)
    for env in (first, second, other):
        env.close()


def test_actions_are_rescaled_to_task_bounds():
    quadruped = make_env("dmc_quadruped_run", seed=0)
    spec = quadruped.sim.action_spec()
    assert not np.allclose(spec.minimum, -1)  # asymmetric bounds: needs rescale
    np.testing.assert_allclose(quadruped.scale_action(-np.ones(12)), spec.minimum)
    np.testing.assert_allclose(quadruped.scale_action(np.ones(12)), spec.maximum)
    assert quadruped._env.render_kwargs["camera_id"] == 2  # docs/algorithm.md §7
    quadruped.close()
    lqr = make_env("dmc_lqr_lqr_2_1", seed=0)  # bounds of +-1e10: pass through
    np.testing.assert_allclose(lqr.scale_action(np.array([0.5])), [0.5])
    lqr.close()


def test_cup_catch_alias_and_manipulation_time_limit():
    cup = make_env("dmc_cup_catch", seed=0)
    assert cup.sim.task.__class__.__name__ == "BallInCup"
    cup.close()
    manip = make_env("dmc_manip_reach_duplo", seed=0)
    assert manip.time_limit == 125  # 10 s / 0.04 s = 250 frames / 2
    assert (manip.action_space.low == -1).all()
    manip.close()


@pytest.mark.parametrize("size", [(84, 84), (64, 64)])
def test_manip_features_render_equals_vision_pixels(size):
    """Same seed and actions: our `_features` frame == the `_vision` frame.

    At 84x84 against the `_vision` env's own `front_close` observation; at 64x64
    against rendering the `_vision` env's camera 0 (what the reference did).
    """
    from dm_control import manipulation

    env = make_env("dmc_manip_reach_duplo", seed=3, size=size)
    vision = manipulation.load("reach_duplo_vision", seed=3)

    def vision_frame(timestep):
        if size == (84, 84):
            return timestep.observation["front_close"][0]
        return vision.physics.render(*size, camera_id=0)

    ours, timestep = env.reset()[0], vision.reset()
    np.testing.assert_array_equal(ours, vision_frame(timestep))
    for action in np.random.default_rng(0).uniform(-1, 1, (3, 9)):
        ours = env.step(action)[0]
        for _ in range(env.action_repeat):
            timestep = vision.step(env.scale_action(action))
        np.testing.assert_array_equal(ours, vision_frame(timestep))
    env.close()
    vision.close()
