"""Meta-world v3 adapter: camera, orientation, seeding, time limit
(docs/algorithm.md §7)."""

import os

import numpy as np
import pytest

os.environ.setdefault("MUJOCO_GL", "egl")

from rllib_mwm.core.envs import make_env  # noqa: E402
from rllib_mwm.core.envs.metaworld import PAPER_CAMERA, PAPER_CAMERA_POS  # noqa: E402

TASK = "metaworld_peg_insert_side"


def _rollout(env, actions, seed=None):
    """Frames of one episode (reset frame first) and the goal."""
    frames = [env.reset(seed=seed)[0]]
    for action in actions:
        frames.append(env.step(action)[0])
    return np.stack(frames), env.goal


def _actions(n, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, (n, 4)).astype(np.float32)


def test_spaces_step_and_paper_camera():
    env = make_env(TASK, seed=0, time_limit=3)
    assert env.observation_space.shape == (64, 64, 3)
    assert env.observation_space.dtype == np.uint8
    assert env.action_space.shape == (4,) and env.action_space.dtype == np.float32
    assert (env.action_space.low == -1).all() and (env.action_space.high == 1).all()
    model = env.sim.model
    cam_id = [model.camera(i).name for i in range(model.ncam)].index(PAPER_CAMERA)
    np.testing.assert_allclose(model.cam_pos[cam_id], PAPER_CAMERA_POS)
    image, info = env.reset()
    assert env.observation_space.contains(image) and info == {"success": False}
    for t in range(3):
        image, reward, terminated, truncated, info = env.step(env.action_space.sample())
        assert env.observation_space.contains(image)
        assert isinstance(reward, float) and isinstance(info["success"], bool)
        assert not terminated and truncated == (t == 2)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(env.action_space.sample())
    env.close()


def test_full_episode_runs_past_metaworld_max_path_length():
    """130 agent steps x repeat 4 = 520 frames > Meta-world's default 500."""
    env = make_env(TASK, seed=0, action_repeat=4, time_limit=130, fast_render=True)
    env.reset()
    zero = np.zeros(4, np.float32)
    ends = [env.step(zero)[3] for _ in range(130)]
    assert ends == [False] * 129 + [True]
    env.close()
    default = make_env(TASK, seed=0, fast_render=True)
    assert default.time_limit == 250 and default.action_repeat == 2
    default.close()


def _table_fraction(image):
    """Share of wood-coloured pixels (the table top: R > G > B, brownish)."""
    r, g, b = (image[..., i].astype(int) for i in range(3))
    return ((r > g) & (g > b) & (g > 0.55 * r) & (b < 0.85 * g) & (r > 60)).mean()


@pytest.mark.parametrize("task", ["peg_insert_side", "drawer_open", "shelf_place"])
def test_frames_are_upright(task):
    """The table fills the bottom half; the floor and robot the top half."""
    env = make_env(f"metaworld_{task}", seed=0)
    image = env.reset()[0]
    env.close()
    top, bottom = _table_fraction(image[:32]), _table_fraction(image[32:])
    assert bottom > 0.45 and bottom > top + 0.25, (top, bottom)


def test_same_seed_same_frames_and_new_goal_every_episode():
    actions = _actions(4)
    first, second = (make_env(TASK, seed=7, fast_render=True) for _ in range(2))
    episodes_a = [_rollout(first, actions) for _ in range(2)]
    episodes_b = [_rollout(second, actions) for _ in range(2)]
    for (frames_a, goal_a), (frames_b, goal_b) in zip(
        episodes_a, episodes_b, strict=True
    ):
        np.testing.assert_array_equal(frames_a, frames_b)
        np.testing.assert_array_equal(goal_a, goal_b)
    assert not np.allclose(episodes_a[0][1], episodes_a[1][1])  # goal re-sampled
    # reset(seed=) reseeds: an env built with another seed reproduces seed 7.
    frames, goal = _rollout(second, actions, seed=7)
    np.testing.assert_array_equal(frames, episodes_a[0][0])
    other = make_env(TASK, seed=8, fast_render=True)
    other_frames, other_goal = _rollout(other, actions)
    assert not np.allclose(other_goal, goal)
    assert not np.array_equal(other_frames[0], frames[0])
    for env in (first, second, other):
        env.close()


def test_envs_rendering_alternately_match_envs_rendering_alone():
    """Each env draws with its own GL context, whatever was made current last."""
    actions = _actions(3)
    names = ("metaworld_reach", "metaworld_door_open")
    alone = []
    for name in names:
        env = make_env(name, seed=1, fast_render=True)
        alone.append(_rollout(env, actions)[0])
        env.close()
    envs = [make_env(name, seed=1, fast_render=True) for name in names]
    together = [[env.reset()[0]] for env in envs]
    for action in actions:
        for env, frames in zip(envs, together, strict=True):
            frames.append(env.step(action)[0])
    for frames, reference in zip(together, alone, strict=True):
        np.testing.assert_array_equal(np.stack(frames), reference)
    for env in envs:
        env.close()


def test_fast_render_draws_the_same_scene_more_cheaply():
    default, fast = (make_env(TASK, seed=3, fast_render=f) for f in (False, True))
    image, quick = default.reset()[0], fast.reset()[0]
    difference = np.abs(image.astype(int) - quick.astype(int)).mean()
    assert 0 < difference < 20  # no shadows / MSAA, same scene
    assert fast.sim.model.vis.quality.offsamples == 0
    default.close()
    fast.close()
