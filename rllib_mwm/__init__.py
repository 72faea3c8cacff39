"""rllib_mwm: Masked World Models (Seo et al., CoRL 2022) as an RLlib algorithm.

Three layers, and no import points up: `rllib_mwm.core` (the networks, losses,
replay and envs; imports no Ray), `rllib_mwm.rllib` (the RLlib plugin over it) and
`rllib_mwm.tools` (the command lines).

Importing the package prepares the process for headless rendering (see
`rllib_mwm.core.process`), registers every task name with Tune/RLlib and registers
the algorithm as "MWM" (`tune.Tuner("MWM", ...)`, `run: MWM` in YAML). Without Ray
installed only the core imports; `rllib_mwm.MWMConfig` and the other Ray names then
raise ImportError.
"""

from rllib_mwm import _compat
from rllib_mwm.core.process import prepare_process

_compat.install()
prepare_process()

from rllib_mwm.core.envs import make_env, task_names  # noqa: E402

#: Names that need Ray, and the module each comes from.
_RAY_NAMES = {
    "MWM": "rllib_mwm.rllib.algorithm",
    "MWMConfig": "rllib_mwm.rllib.config",
    "init_ray": "rllib_mwm.rllib.registration",
    "register": "rllib_mwm.rllib.registration",
    "register_envs": "rllib_mwm.rllib.registration",
}

try:
    import ray  # noqa: F401
except ImportError as error:
    _RAY_MISSING: ImportError | None = error
else:
    _RAY_MISSING = None
    from rllib_mwm.rllib.algorithm import MWM
    from rllib_mwm.rllib.config import MWMConfig
    from rllib_mwm.rllib.registration import init_ray, register, register_envs

    register()


def __getattr__(name: str):
    if name in _RAY_NAMES and _RAY_MISSING is not None:
        raise ImportError(
            f"rllib_mwm.{name} needs Ray (`pip install 'ray[rllib]'`); without it "
            f"only rllib_mwm.core imports ({_RAY_MISSING})"
        ) from _RAY_MISSING
    raise AttributeError(f"module 'rllib_mwm' has no attribute {name!r}")


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
