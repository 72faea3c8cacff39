"""What makes MWM and the tasks known to Ray: `register` ("MWM" and every task
name with Tune) and `init_ray` (`ray.init` whose workers run `prepare_process`
first)."""

from __future__ import annotations

import functools

from ray.tune.registry import register_env, register_trainable

from rllib_mwm.core.envs.registry import create_from_context, task_names

#: Runs `prepare_process` in every Ray worker before it imports anything else.
WORKER_SETUP_HOOK = "rllib_mwm.core.process.prepare_process"


def register_envs() -> list[str]:
    """Register every task name with `ray.tune.registry` (idempotent).

    The creators are module-level functions, so Ray worker processes import
    them from `rllib_mwm.core.envs` rather than unpickling code.
    """
    names = task_names()
    for name in names:
        register_env(name, functools.partial(create_from_context, name))
    return names


def register() -> None:
    """Registers "MWM" and every task name with Tune. Runs at `import rllib_mwm`;
    Ray forgets registrations at `ray.shutdown()`, so `init_ray` and the CLI run it
    again."""
    from rllib_mwm.rllib.algorithm import MWM

    register_envs()
    register_trainable("MWM", MWM)


def init_ray(**kwargs):
    """`ray.init(**kwargs)` whose workers are set up like this process.

    Workers inherit `MUJOCO_GL=egl` from the driver; any worker that then imports
    `ray.rllib` before Triton (every non-MWM algorithm, e.g. PPO's Adam importing
    torch._dynamo) would crash. The setup hook loads Triton first in each worker.
    """
    import ray

    runtime_env = dict(kwargs.pop("runtime_env", None) or {})
    runtime_env.setdefault("worker_process_setup_hook", WORKER_SETUP_HOOK)
    context = ray.init(runtime_env=runtime_env, **kwargs)
    register()  # Registrations made before an earlier shutdown are gone.
    return context
