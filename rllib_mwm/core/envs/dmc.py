"""DeepMind Control adapters (docs/algorithm.md §7): `dmc_<domain>_<task>` and
`dmc_manip_<task>`.

Suite tasks render camera 0 (2 for quadruped). `dmc_manip_<task>` is the
dm_control manipulation task `<task>_vision`: we load `<task>_features`
(identical physics and task, but no 84x84 camera observable rendered every
step) and render its `front_close` camera (id 0) ourselves, which gives the
pixels `<task>_vision` would give at the requested size.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from rllib_mwm.core.envs.wrappers import (
    SIM_ERRORS,
    EnvSettings,
    PixelEnv,
    SimStep,
    ensure_headless_gl,
    fresh_seed,
)

MANIP_PREFIX = "manip_"
ALIASES = {"cup_catch": "ball_in_cup_catch"}  # the DreamerV2 / MWM name
_UNBOUNDED = 1e6  # |bound| at or above this counts as no bound (lqr: 1e10)
_STANDARD_FRAMES = 1000  # the suite's usual episode, for tasks without a limit (lqr)


def _suite_tasks() -> dict[str, tuple[str, str]]:
    ensure_headless_gl()
    from dm_control import suite

    return {f"{domain}_{task}": (domain, task) for domain, task in suite.ALL_TASKS}


def _manip_tasks() -> list[str]:
    ensure_headless_gl()
    from dm_control import manipulation

    vision = [name for name in manipulation.ALL if name.endswith("_vision")]
    return [name.removesuffix("_vision") for name in vision]


def task_names() -> list[str]:
    """Suite tasks (`walker_walk`), manipulation (`manip_reach_duplo`), aliases."""
    manip = [MANIP_PREFIX + task for task in _manip_tasks()]
    return [*_suite_tasks(), *manip, *ALIASES]


def check(settings: EnvSettings) -> None:
    if settings.fast_render:
        raise ValueError(
            "env_config fast_render is only available for Meta-world tasks; remove it"
        )


def make(task: str, settings: EnvSettings) -> DMCEnv:
    check(settings)
    task = ALIASES.get(task, task)
    if task.startswith(MANIP_PREFIX):
        load = functools.partial(_load_manipulation, task.removeprefix(MANIP_PREFIX))
        return DMCEnv(load, settings, default_camera=0)
    domain, name = _suite_tasks()[task]
    load = functools.partial(_load_suite, domain, name)
    return DMCEnv(load, settings, default_camera=2 if domain == "quadruped" else 0)


def _load_suite(domain: str, task: str, seed: int):
    from dm_control import suite

    if domain == "quadruped":
        _patch_quadruped_numpy()
    return suite.load(domain, task, task_kwargs={"random": seed})


def _load_manipulation(task: str, seed: int):
    from dm_control import manipulation

    return manipulation.load(f"{task}_features", seed=seed)


class DMCEnv(PixelEnv):
    """A dm_control env through shimmy, rendered at `size` from one camera.

    Actions in [-1, 1] are rescaled to the task's action bounds (unbounded
    dimensions pass through). The default time limit is the task's own.
    dm_control raises `PhysicsError` (a `RuntimeError`) on an unstable
    simulation, which ends the episode (`rllib_mwm.core.envs.wrappers`).
    """

    def __init__(self, load, settings: EnvSettings, default_camera: int):
        ensure_headless_gl()
        import mujoco
        from shimmy.dm_control_compatibility import DmControlCompatibilityV0

        self.sim_errors = (*SIM_ERRORS, mujoco.FatalError)

        seed = fresh_seed() if settings.seed is None else settings.seed
        dm_env = load(seed)
        camera = default_camera if settings.camera is None else settings.camera
        _check_camera(dm_env.physics, camera)
        height, width = settings.size
        self._env = DmControlCompatibilityV0(
            dm_env,
            render_mode="rgb_array",
            render_kwargs={"height": height, "width": width, "camera_id": camera},
        )
        spec = dm_env.action_spec()
        self._low = np.broadcast_to(spec.minimum, spec.shape).astype(np.float64)
        self._high = np.broadcast_to(spec.maximum, spec.shape).astype(np.float64)
        self._bounded = (np.abs(self._low) < _UNBOUNDED) & (
            np.abs(self._high) < _UNBOUNDED
        )
        self._dtype = spec.dtype
        time_limit = settings.time_limit or math.ceil(
            _episode_frames(dm_env) / settings.action_repeat
        )
        super().__init__(
            settings, spec.shape[0], time_limit, frame_dt=dm_env.control_timestep()
        )

    @property
    def sim(self):
        """The wrapped dm_control environment."""
        return self._env.unwrapped._env

    def close(self) -> None:
        if getattr(self, "_env", None) is not None:
            self._env.close()
            self._env = None

    def scale_action(self, action: np.ndarray) -> np.ndarray:
        """Map [-1, 1] to the task's bounds (NormalizeAction of DreamerV2)."""
        scaled = self._low + (action + 1.0) / 2.0 * (self._high - self._low)
        return np.where(self._bounded, scaled, action).astype(self._dtype)

    def _reset_sim(self, seed: int | None) -> None:
        # shimmy swaps in a fresh RandomState(seed) for the task: exactly as if
        # the env had been built with that seed.
        self._env.reset(seed=seed)

    def _step_sim(self, action: np.ndarray) -> SimStep:
        _, reward, terminated, truncated, _ = self._env.step(self.scale_action(action))
        return SimStep(reward, terminated, truncated)

    def _observe(self) -> np.ndarray:
        return self._env.render()


class _NumpyWithIn1d:
    """numpy plus `in1d`, which numpy 2.4 removed but dm_control's quadruped uses."""

    in1d = staticmethod(np.isin)

    def __getattr__(self, name: str):
        return getattr(np, name)


def _patch_quadruped_numpy() -> None:
    """Let dm_control 1.0.28's quadruped run on numpy >= 2.4 (module-local patch)."""
    from dm_control.suite import quadruped

    if not hasattr(quadruped.np, "in1d"):
        quadruped.np = _NumpyWithIn1d()


def _check_camera(physics, camera: str | int) -> None:
    names = [physics.model.id2name(i, "camera") for i in range(physics.model.ncam)]
    valid = camera in names if isinstance(camera, str) else 0 <= camera < len(names)
    if not valid:
        raise ValueError(f"Unknown camera {camera!r} for this task; valid: {names}")


def _episode_frames(dm_env) -> int:
    """The task's own episode length in control steps (1000 if it has none)."""
    if hasattr(dm_env, "_step_limit"):  # dm_control.rl.control.Environment
        frames = dm_env._step_limit
    else:  # composer.Environment: a limit in seconds
        frames = dm_env._time_limit / dm_env.control_timestep()
    return int(round(frames)) if math.isfinite(frames) else _STANDARD_FRAMES
