"""Meta-world v3 adapter (docs/algorithm.md §7): `metaworld_<task>` ->
`<task with dashes>-v3`.

The paper renders `corner2` moved to (0.75, 0.075, 0.7); Meta-world v3 ships
that view as the camera `corner4`. Goals are re-sampled every episode from the
env's own seeded generator, so a seed fixes the whole sequence of episodes.
When MuJoCo finds the simulation unstable (a NaN or huge position, velocity or
acceleration) it resets the state and only counts a warning; the adapter raises
`SimulatorError` instead, which ends the episode (`rllib_mwm.core.envs.wrappers`).
"""

from __future__ import annotations

import atexit
import functools
import weakref

import numpy as np

from rllib_mwm.core.envs.wrappers import (
    SIM_ERRORS,
    EnvSettings,
    PixelEnv,
    SimStep,
    ensure_headless_gl,
    fresh_seed,
)
from rllib_mwm.core.errors import SimulatorError

PAPER_CAMERA = "corner4"  # == the reference's corner2 moved to PAPER_CAMERA_POS
PAPER_CAMERA_POS = (0.75, 0.075, 0.7)
TIME_LIMIT = 250  # agent steps (docs/algorithm.md §7)
#: MuJoCo warnings that mean it reset an unstable simulation.
UNSTABLE_WARNINGS = ("mjWARN_BADQPOS", "mjWARN_BADQVEL", "mjWARN_BADQACC")
_OPEN_ENVS: weakref.WeakSet = weakref.WeakSet()


def task_names() -> list[str]:
    """All 50 MT50 tasks, as `peg_insert_side` (without the suite prefix)."""
    ensure_headless_gl()
    from metaworld.env_dict import ALL_V3_ENVIRONMENTS

    return [name.removesuffix("-v3").replace("-", "_") for name in ALL_V3_ENVIRONMENTS]


def check(settings: EnvSettings) -> None:
    """Every setting is valid for Meta-world."""


def make(task: str, settings: EnvSettings) -> MetaWorldEnv:
    return MetaWorldEnv(task, settings)


class MetaWorldEnv(PixelEnv):
    """One Meta-world v3 task seen through the paper's camera.

    `fast_render` turns off shadows, reflections and multi-sampling (about 10x
    cheaper on a CPU renderer; the paper used the default look).
    """

    reports_success = True

    def __init__(self, task: str, settings: EnvSettings):
        ensure_headless_gl()
        import mujoco
        from metaworld.env_dict import ALL_V3_ENVIRONMENTS

        self.sim_errors = (*SIM_ERRORS, mujoco.FatalError)
        height, width = settings.size
        self._env = ALL_V3_ENVIRONMENTS[task.replace("_", "-") + "-v3"](
            width=width, height=height
        )
        time_limit = settings.time_limit or TIME_LIMIT
        super().__init__(settings, 4, time_limit, frame_dt=self._env.dt)
        # What `set_task` would do, but with a fresh goal from the env's own
        # seeded generator at every reset (the reference's _freeze_rand_vec=False).
        self._env._set_task_called = True
        self._env._freeze_rand_vec = False
        self._env.seeded_rand_vec = True
        # Meta-world refuses steps past max_path_length: never hit it first.
        self._env.max_path_length = time_limit * settings.action_repeat
        self._camera_id = self._setup_camera(
            PAPER_CAMERA if settings.camera is None else settings.camera
        )
        self._flip = _camera_points_down(self._env, self._camera_id)
        if settings.fast_render:
            self._env.model.vis.quality.shadowsize = 0
            self._env.model.vis.quality.offsamples = 0
        self._renderer = mujoco.Renderer(self._env.model, height, width)
        _close_at_exit(self)
        if settings.fast_render:
            flags = self._renderer.scene.flags
            flags[mujoco.mjtRndFlag.mjRND_SHADOW] = 0
            flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = 0
        self._env.seed(fresh_seed() if settings.seed is None else settings.seed)

    @property
    def sim(self):
        """The wrapped Meta-world env (for inspection)."""
        return self._env

    @property
    def goal(self) -> np.ndarray:
        """This episode's goal position (re-sampled at every reset)."""
        return np.array(self._env._target_pos, copy=True)

    def close(self) -> None:
        if getattr(self, "_renderer", None) is not None:
            self._renderer.close()
            self._renderer = None
            self._env.close()

    def _setup_camera(self, camera: str | int) -> int:
        import mujoco

        model = self._env.model
        names = [
            mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_CAMERA, i)
            for i in range(model.ncam)
        ]
        if isinstance(camera, str):
            cam_id = names.index(camera) if camera in names else -1
        else:
            cam_id = int(camera) if 0 <= camera < model.ncam else -1
        if cam_id < 0:
            raise ValueError(f"Unknown Meta-world camera {camera!r}; valid: {names}")
        if names[cam_id] == PAPER_CAMERA:
            model.cam_pos[cam_id] = PAPER_CAMERA_POS
        return cam_id

    def _reset_sim(self, seed: int | None) -> None:
        if seed is not None:
            self._env.seed(seed)
        self._env.reset()
        self._unstable()  # Clears the counts.

    def _step_sim(self, action: np.ndarray) -> SimStep:
        _, reward, terminated, truncated, info = self._env.step(action)
        unstable = self._unstable()
        if unstable:
            raise SimulatorError(
                f"MuJoCo reset an unstable simulation ({', '.join(unstable)})"
            )
        return SimStep(reward, terminated, truncated, bool(info["success"]))

    def _unstable(self) -> list[str]:
        """The `UNSTABLE_WARNINGS` MuJoCo raised since the last call (clears them)."""
        import mujoco

        found = []
        for name in UNSTABLE_WARNINGS:
            stat = self._env.data.warning[getattr(mujoco.mjtWarning, name)]
            if stat.number:
                found.append(name)
                stat.number = 0
        return found

    def _observe(self) -> np.ndarray:
        # mujoco.Renderer makes its own GL context current before drawing, so
        # several envs can render alternately in one process (gymnasium's
        # MujocoRenderer does not, and then draws with another env's context).
        self._renderer.update_scene(self._env.data, camera=self._camera_id)
        image = self._renderer.render()
        return np.ascontiguousarray(image[::-1]) if self._flip else image


def _close_at_exit(env: MetaWorldEnv) -> None:
    """Free GL contexts before mujoco's EGL display is torn down at exit.

    atexit runs handlers last-in first-out, and mujoco.egl registered its own
    when it was imported, i.e. before the first env registered this one.
    """
    _register_exit_hook()
    _OPEN_ENVS.add(env)


@functools.cache
def _register_exit_hook() -> None:
    atexit.register(_close_open_envs)


def _close_open_envs() -> None:
    for env in list(_OPEN_ENVS):
        env.close()


def _camera_points_down(env, cam_id: int) -> bool:
    """True if the camera's image 'up' axis points below the horizon.

    Meta-world's corner cameras are rolled upside down; flipping their frames
    vertically puts the table at the bottom and reproduces the reference's
    mujoco-py frames (which were read bottom-up from the GL buffer).
    """
    import mujoco

    mujoco.mj_forward(env.model, env.data)
    up_axis = env.data.cam_xmat[cam_id].reshape(3, 3)[:, 1]
    return bool(up_axis[2] < 0)
