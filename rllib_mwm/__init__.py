"""rllib_mwm: Masked World Models (Seo et al., CoRL 2022) as an RLlib algorithm.

Importing the package prepares the process for headless rendering (see
`rllib_mwm._preload`) and registers every task name with Tune/RLlib.
"""

from rllib_mwm._preload import prepare_process

prepare_process()

from rllib_mwm.config import MWMConfig  # noqa: E402
from rllib_mwm.envs import make_env, register_envs, task_names  # noqa: E402

register_envs()

__all__ = ["MWMConfig", "make_env", "register_envs", "task_names"]
__version__ = "0.1.0"
