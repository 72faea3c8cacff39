"""rllib_mwm: Masked World Models (Seo et al., CoRL 2022) as an RLlib algorithm.

Importing the package prepares the process for headless rendering (see
`rllib_mwm._preload`), registers every task name with Tune/RLlib and registers
the algorithm as "MWM" (`tune.Tuner("MWM", ...)`, `run: MWM` in YAML).
"""

from rllib_mwm._preload import init_ray, prepare_process

prepare_process()

from ray.tune.registry import register_trainable  # noqa: E402

from rllib_mwm.config import MWMConfig  # noqa: E402
from rllib_mwm.envs import make_env, register_envs, task_names  # noqa: E402
from rllib_mwm.mwm import MWM  # noqa: E402


def register() -> None:
    """Registers "MWM" and every task name with Tune. Runs at import; Ray forgets
    registrations at `ray.shutdown()`, so `init_ray` and the CLI run it again."""
    register_envs()
    register_trainable("MWM", MWM)


register()

__all__ = [
    "MWM",
    "MWMConfig",
    "init_ray",
    "make_env",
    "register",
    "register_envs",
    "task_names",
]
__version__ = "0.1.0"
