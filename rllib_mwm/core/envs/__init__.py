"""Environment adapters for MWM (docs/algorithm.md §1, §7).

`make_env("metaworld_peg_insert_side", seed=0)` builds an image-only gymnasium
env; `rllib_mwm.rllib.registration.register_envs()` makes every `<suite>_<task>`
name known to Tune/RLlib. Simulators are imported lazily, so importing this package
stays cheap.
"""

from rllib_mwm.core.envs.registry import (
    CONFIG_KEYS,
    SUITES,
    create_from_context,
    make_env,
    parse_name,
    task_names,
)
from rllib_mwm.core.envs.rlbench import SimulatorNotInstalled
from rllib_mwm.core.envs.wrappers import EnvSettings, PixelEnv

__all__ = [
    "CONFIG_KEYS",
    "SUITES",
    "EnvSettings",
    "PixelEnv",
    "SimulatorNotInstalled",
    "create_from_context",
    "make_env",
    "parse_name",
    "task_names",
]
