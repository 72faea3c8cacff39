"""Task names `<suite>_<task>` and `make_env` (docs/algorithm.md §7); the
Tune/RLlib registration is `rllib_mwm.rllib.registration`."""

from __future__ import annotations

import collections
import difflib
import importlib
from collections.abc import Mapping
from typing import Any

import gymnasium as gym

from rllib_mwm.core.envs.wrappers import CONFIG_KEYS, EnvSettings, seed_from

SUITES = ("dmc", "metaworld", "rlbench")
EXAMPLES = (
    "metaworld_peg_insert_side",
    "dmc_walker_walk",
    "dmc_manip_reach_duplo",
    "rlbench_reach_target",
)
_COPIES: collections.Counter = collections.Counter()  # env copies per context


def _suite(suite: str):
    return importlib.import_module(f"rllib_mwm.core.envs.{suite}")


def task_names(suite: str | None = None) -> list[str]:
    """Every env name, or those of one suite (`dmc`, `metaworld`, `rlbench`)."""
    if suite is not None and suite not in SUITES:
        raise ValueError(f"Unknown env suite {suite!r}; valid suites: {SUITES}")
    suites = SUITES if suite is None else (suite,)
    return [f"{s}_{task}" for s in suites for task in _suite(s).task_names()]


def parse_name(name: str) -> tuple[str, str]:
    """`dmc_walker_walk` -> (`dmc`, `walker_walk`); unknown names raise ValueError."""
    suite, _, task = str(name).partition("_")
    if suite not in SUITES or not task:
        raise ValueError(
            f"Unknown env {name!r}: names are <suite>_<task> with suite in "
            f"{SUITES}, e.g. {', '.join(EXAMPLES)}"
        )
    valid = task_names(suite)
    # Without RLBench installed its task list is unknown; construction then
    # raises SimulatorNotInstalled, which says what to install.
    if name not in valid and (suite != "rlbench" or _suite(suite).rlbench_installed()):
        close = difflib.get_close_matches(name, valid, n=3, cutoff=0.4)
        hint = f" Closest: {', '.join(close)}." if close else ""
        raise ValueError(
            f"Unknown {suite} task {name!r}.{hint} Valid: {', '.join(valid)}"
        )
    return suite, task


def make_env(name: str, **env_config: Any) -> gym.Env:
    """Build the env `name` (e.g. `metaworld_peg_insert_side`).

    env_config keys (anything else raises ValueError):
      seed: int | None. None draws one from OS entropy.
      size: (height, width) of the RGB observation, default (64, 64).
      action_repeat: simulator steps per agent step, default 2.
      time_limit: episode length in agent steps; default per suite: metaworld
        250, dmc the task's own (1000 frames / action_repeat), rlbench 200.
      camera: camera name or id overriding the suite's default.
      fast_render: Meta-world only; no shadows, reflections or MSAA.
    """
    settings = EnvSettings.from_config(env_config)
    suite, task = parse_name(name)
    return _suite(suite).make(task, settings)


def is_task_name(name: Any) -> bool:
    """Whether `name` claims one of our suites (`metaworld_…`, `dmc_…`, …)."""
    return isinstance(name, str) and name.partition("_")[0] in SUITES


def check_env(name: str, env_config: Mapping[str, Any]) -> None:
    """Raises the error `make_env` would, without building the simulator (so a
    bad name or key fails in `MWMConfig.validate()`, not inside a Ray actor)."""
    settings = EnvSettings.from_config(env_config)
    suite, _ = parse_name(name)
    _suite(suite).check(settings)


def create_from_context(name: str, env_config: Mapping[str, Any]) -> gym.Env:
    """RLlib env creator; `env_config` may be an `EnvContext`.

    With a worker/vector index, each env copy gets its own reproducible seed
    mixed from (seed, worker_index, vector_index, copy number in this process):
    RLlib gives all copies of a vectorized runner the same context.
    """
    config = dict(env_config)
    worker = getattr(env_config, "worker_index", None)
    vector = getattr(env_config, "vector_index", None)
    if worker is not None or vector is not None:
        config["seed"] = _copy_seed(name, config.get("seed"), worker or 0, vector or 0)
    env = make_env(name, **config)
    if worker is not None or vector is not None:
        # RLlib resets runner i's vectorized envs with `seed + i`, spread by
        # gymnasium as `seed + i + j` over sub-env j: runner 1's second env and
        # runner 2's first would replay the same episodes. Mixed with the copy's
        # own seed, each env of each runner gets its own reproducible stream.
        env.unwrapped.reset_seed_salt = config["seed"]
    return env


def _copy_seed(name: str, seed: int | None, worker: int, vector: int) -> int:
    key = (name, seed, worker, vector)
    copy = _COPIES[key]
    _COPIES[key] += 1
    entropy = [worker, vector, copy, int(seed is not None), int(seed or 0)]
    return seed_from(entropy)


__all__ = [
    "CONFIG_KEYS",
    "SUITES",
    "create_from_context",
    "make_env",
    "parse_name",
    "task_names",
]
