"""Env registry: names, config validation, Tune/RLlib registration
(docs/algorithm.md §7)."""

import os
import subprocess
import sys

import numpy as np
import pytest

os.environ.setdefault("MUJOCO_GL", "egl")

from rllib_mwm.core.envs import (  # noqa: E402
    CONFIG_KEYS,
    SUITES,
    create_from_context,
    make_env,
    registry,
    task_names,
)
from rllib_mwm.rllib.registration import register_envs  # noqa: E402

PAPER_TASKS = (
    "metaworld_peg_insert_side",
    "dmc_walker_walk",
    "dmc_manip_reach_duplo",
    "rlbench_reach_target",
)


def test_task_names_cover_every_suite():
    metaworld = task_names("metaworld")
    dmc = task_names("dmc")
    assert len(metaworld) == 50 and "metaworld_peg_insert_side" in metaworld
    assert {"dmc_walker_walk", "dmc_ball_in_cup_catch", "dmc_cup_catch"} <= set(dmc)
    assert {
        "dmc_quadruped_run",
        "dmc_manip_reach_duplo",
        "dmc_manip_lift_brick",
    } <= set(dmc)
    assert "rlbench_reach_target" in task_names("rlbench")
    every = task_names()
    assert set(PAPER_TASKS) <= set(every)
    assert len(every) == len(set(every))
    assert all(name.split("_", 1)[0] in SUITES for name in every)


def test_unknown_suite_lists_valid_suites():
    with pytest.raises(ValueError, match="Unknown env 'atari_pong'") as error:
        make_env("atari_pong")
    assert all(suite in str(error.value) for suite in SUITES)
    with pytest.raises(ValueError, match="Unknown env suite"):
        task_names("atari")


def test_unknown_task_suggests_closest_first():
    with pytest.raises(ValueError) as error:
        make_env("metaworld_peg_insert")
    message = str(error.value)
    assert "\n" not in message
    assert message.index("metaworld_peg_insert_side") < message.index("Valid:")
    assert "metaworld_door_open" in message  # the full list follows
    with pytest.raises(ValueError, match="dmc_walker_walk"):
        make_env("dmc_walker_wlak")


@pytest.mark.parametrize(
    "config, match",
    [
        ({"sed": 1}, "'sed'"),
        ({"size": (64,)}, "size"),
        ({"action_repeat": 0}, "action_repeat"),
        ({"time_limit": 2.5}, "time_limit"),
        ({"seed": -1}, "seed"),
        ({"fast_render": "yes"}, "fast_render"),
    ],
)
def test_bad_env_config_raises(config, match):
    with pytest.raises(ValueError, match=match) as error:
        make_env("dmc_cartpole_swingup", **config)
    if "sed" in config:
        assert all(key in str(error.value) for key in CONFIG_KEYS)


def test_suite_specific_options_are_rejected():
    with pytest.raises(ValueError, match="fast_render"):
        make_env("dmc_cartpole_swingup", fast_render=True)
    with pytest.raises(ValueError, match="camera"):
        make_env("dmc_cartpole_swingup", camera="nope")


def test_register_envs_makes_names_known_to_tune():
    from ray.rllib.env.env_context import EnvContext
    from ray.tune.registry import ENV_CREATOR, _global_registry

    names = register_envs()
    assert register_envs() == names  # idempotent
    for name in PAPER_TASKS:
        assert _global_registry.contains(ENV_CREATOR, name)
    creator = _global_registry.get(ENV_CREATOR, "dmc_reacher_easy")
    env = creator(EnvContext({"time_limit": 2}, worker_index=1, num_workers=2))
    image, _ = env.reset()
    assert image.shape == (64, 64, 3) and env.time_limit == 2
    env.close()


def _first_frame(name, context):
    env = create_from_context(name, context)
    frame = env.reset()[0]
    env.close()
    return frame


def test_env_context_gives_each_copy_a_reproducible_seed(monkeypatch):
    from ray.rllib.env.env_context import EnvContext

    context = EnvContext({}, worker_index=1, num_workers=2)
    monkeypatch.setattr(registry, "_COPIES", registry.collections.Counter())
    first, second = (_first_frame("dmc_reacher_easy", context) for _ in range(2))
    other_worker = _first_frame(
        "dmc_reacher_easy", EnvContext({}, worker_index=2, num_workers=2)
    )
    assert not np.array_equal(first, second)  # copies of one runner differ
    assert not np.array_equal(first, other_worker)
    monkeypatch.setattr(registry, "_COPIES", registry.collections.Counter())
    assert np.array_equal(first, _first_frame("dmc_reacher_easy", context))


def test_creator_is_importable_in_a_fresh_process():
    """What a Ray worker does: unpickle the registered creator and call it."""
    import functools

    import cloudpickle

    creator = functools.partial(create_from_context, "dmc_cartpole_swingup")
    script = (
        "import pickle, sys\n"
        "creator = pickle.loads(sys.stdin.buffer.read())\n"
        "env = creator({'seed': 1, 'time_limit': 2})\n"
        "print(env.reset()[0].shape)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        input=cloudpickle.dumps(creator),
        capture_output=True,
        timeout=120,
        cwd=os.path.dirname(os.path.dirname(__file__)),
    )
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    assert b"(64, 64, 3)" in result.stdout


@pytest.mark.parametrize(
    "name, config",
    [("dmc_cartpole_swingup", {}), ("metaworld_reach", {"fast_render": True})],
)
@pytest.mark.filterwarnings("ignore:.*alternative render modes")
def test_passes_gymnasium_env_checker(name, config):
    """API contract incl. reset(seed=) determinism, as RLlib's env runners use it."""
    from gymnasium.utils.env_checker import check_env

    env = make_env(name, seed=0, time_limit=5, **config)
    check_env(env, skip_render_check=False)
    env.close()


def test_bad_mujoco_gl_fails_at_import_with_one_line():
    """Before any simulator import, whose own error would be deep in a traceback
    (tests/test_bad_inputs.py has the other MUJOCO_GL messages)."""
    env = {**os.environ, "MUJOCO_GL": "opengl"}
    result = subprocess.run(
        [sys.executable, "-c", "import rllib_mwm"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=os.path.dirname(os.path.dirname(__file__)),
    )
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(
        "rllib_mwm.core.errors.RenderingBackendError: MUJOCO_GL='opengl' is not a "
        "rendering backend"
    )


def test_equal_reset_seeds_from_rllib_give_each_copy_its_own_episode(monkeypatch):
    """RLlib resets runner 1's second env and runner 2's first with the same seed
    (`seed + worker_index + sub-env index`); their episodes must still differ,
    and a seed must still reproduce an env's episode."""
    from ray.rllib.env.env_context import EnvContext

    monkeypatch.setattr(registry, "_COPIES", registry.collections.Counter())
    runner = [EnvContext({}, worker_index=i, num_workers=2) for i in (1, 2)]
    second_of_1 = [create_from_context("dmc_reacher_easy", runner[0]) for _ in (0, 1)][
        1
    ]
    first_of_2 = create_from_context("dmc_reacher_easy", runner[1])
    a, b = second_of_1.reset(seed=2)[0], first_of_2.reset(seed=2)[0]
    assert not np.array_equal(a, b)
    assert np.array_equal(a, second_of_1.reset(seed=2)[0])
