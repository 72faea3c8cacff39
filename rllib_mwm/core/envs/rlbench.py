"""RLBench adapter (docs/algorithm.md §7): `rlbench_<task>`, e.g.
`rlbench_reach_target`.

Front camera RGB at `size`; joint-position deltas for the 7 arm joints plus a
discrete gripper (open when > 0.5), passed through unscaled as in the reference;
shaped rewards; the episode ends (terminated) on success; an IK, path-planning
or invalid-action error (`ActionFailed`) ends it truncated, with reward 0 and the
previous frame, as any simulator error does (`rllib_mwm.core.envs.wrappers`).

The simulator sits behind `Backend` (launch / reset / step / success / close)
so the episode logic is testable without CoppeliaSim; `RLBenchSimulator` is the
real one.
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
from typing import Protocol

import numpy as np

from rllib_mwm.core.envs.wrappers import EnvSettings, PixelEnv, SimStep, fresh_seed
from rllib_mwm.core.errors import SimulatorError

TIME_LIMIT = 200  # agent steps (docs/algorithm.md §7)
ACTION_DIM = 8  # 7 joint-position deltas + 1 gripper command (Panda)
FRAME_DT = 0.05  # CoppeliaSim's simulation step in RLBench scenes (seconds)
DEFAULT_TASKS = ("reach_target",)  # listed when RLBench is not installed
INSTALL_HELP = (
    "RLBench is not installed. It needs CoppeliaSim 4.1 (download from "
    "https://www.coppeliarobotics.com, unpack it, set COPPELIASIM_ROOT to that "
    "folder and add it to LD_LIBRARY_PATH and QT_QPA_PLATFORM_PLUGIN_PATH), then "
    "`pip install git+https://github.com/stepjam/PyRep.git` and "
    "`pip install git+https://github.com/stepjam/RLBench.git`."
)


_FRONT_CAMERA_ONLY = (
    "env_config camera and fast_render do not apply to RLBench (it renders its "
    "front camera); remove them"
)


class SimulatorNotInstalled(ImportError):
    """RLBench / PyRep / CoppeliaSim are missing (they are not on PyPI)."""


class ActionFailed(SimulatorError):
    """The simulator could not execute an action (IK / path / invalid action)."""


class Backend(Protocol):
    """The few simulator calls the adapter needs."""

    def launch(self, task: str, size: tuple[int, int]) -> None: ...

    def reset(self, seed: int | None) -> np.ndarray: ...  # front RGB frame

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool]:
        """(frame, reward, terminate); raises `ActionFailed` on sim errors."""
        ...

    def success(self) -> bool: ...

    def close(self) -> None: ...


def rlbench_installed() -> bool:
    return importlib.util.find_spec("rlbench") is not None


def task_names() -> list[str]:
    """RLBench's task modules when installed, else `DEFAULT_TASKS`."""
    if not rlbench_installed():
        return list(DEFAULT_TASKS)
    import rlbench.tasks

    return sorted(m.name for m in pkgutil.iter_modules(rlbench.tasks.__path__))


def check(settings: EnvSettings) -> None:
    if settings.fast_render or settings.camera is not None:
        raise ValueError(_FRONT_CAMERA_ONLY)
    if not rlbench_installed():
        raise SimulatorNotInstalled(INSTALL_HELP)


def make(task: str, settings: EnvSettings) -> RLBenchEnv:
    if settings.fast_render or settings.camera is not None:
        raise ValueError(_FRONT_CAMERA_ONLY)
    return RLBenchEnv(task, settings)


class RLBenchEnv(PixelEnv):
    """One RLBench task; `backend` defaults to the real simulator."""

    reports_success = True

    def __init__(
        self, task: str, settings: EnvSettings, backend: Backend | None = None
    ):
        time_limit = settings.time_limit or TIME_LIMIT
        super().__init__(settings, ACTION_DIM, time_limit, frame_dt=FRAME_DT)
        self._backend = RLBenchSimulator() if backend is None else backend
        self._backend.launch(task, settings.size)
        self._seed = fresh_seed() if settings.seed is None else settings.seed
        self._next_frame: np.ndarray | None = None  # the latest sub-step's frame

    def close(self) -> None:
        if getattr(self, "_backend", None) is not None:
            self._backend.close()
            self._backend = None

    def _reset_sim(self, seed: int | None) -> None:
        if seed is None:
            seed, self._seed = self._seed, None  # the env's seed, first episode only
        self._next_frame = self._backend.reset(seed)

    def _step_sim(self, action: np.ndarray) -> SimStep:
        frame, reward, terminate = self._backend.step(action)  # or ActionFailed
        self._next_frame = frame
        success = self._backend.success()
        return SimStep(reward, terminated=terminate or success, success=success)

    def _observe(self) -> np.ndarray:
        return np.asarray(self._next_frame, dtype=np.uint8)


class RLBenchSimulator:
    """The real backend: RLBench on CoppeliaSim through PyRep (headless)."""

    def __init__(self):
        try:
            from pyrep.errors import ConfigurationPathError, IKError
            from rlbench.backend.exceptions import InvalidActionError
        except ImportError as error:
            raise SimulatorNotInstalled(INSTALL_HELP) from error
        from rlbench.backend import exceptions

        self._errors = (IKError, ConfigurationPathError, InvalidActionError)
        # Scene sampling failures at reset (names as in RLBench 1.2).
        self._reset_errors = tuple(
            getattr(exceptions, name)
            for name in ("BoundaryError", "WaypointError")
            if hasattr(exceptions, name)
        )
        self._env = self._task = None

    def launch(self, task: str, size: tuple[int, int]) -> None:
        from rlbench.action_modes.action_mode import MoveArmThenGripper
        from rlbench.action_modes.arm_action_modes import JointPosition
        from rlbench.action_modes.gripper_action_modes import Discrete
        from rlbench.environment import Environment

        action_mode = MoveArmThenGripper(
            arm_action_mode=JointPosition(absolute_mode=False),
            gripper_action_mode=Discrete(),
        )
        self._env = Environment(
            action_mode,
            obs_config=_front_rgb_config(size),
            headless=True,
            shaped_rewards=True,
        )
        self._env.launch()
        self._task = self._env.get_task(_task_class(task))

    def reset(self, seed: int | None) -> np.ndarray:
        if seed is not None:
            np.random.seed(seed)  # RLBench samples scenes from numpy's global RNG
        try:
            _, obs = self._task.reset()
        except self._reset_errors as error:
            raise SimulatorError(f"RLBench reset: {error}") from error
        return obs.front_rgb

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool]:
        try:
            obs, reward, terminate = self._task.step(action)
        except self._errors as error:
            raise ActionFailed(str(error)) from error
        return obs.front_rgb, float(reward or 0.0), bool(terminate)

    def success(self) -> bool:
        return bool(self._task._task.success()[0])

    def close(self) -> None:
        if self._env is not None:
            self._env.shutdown()
            self._env = None


def _front_rgb_config(size: tuple[int, int]):
    from rlbench.observation_config import ObservationConfig

    config = ObservationConfig()
    for camera in ("left_shoulder", "right_shoulder", "overhead", "wrist"):
        getattr(config, f"{camera}_camera").set_all(False)
    config.front_camera.image_size = size
    config.front_camera.depth = False
    config.front_camera.point_cloud = False
    config.front_camera.mask = False
    return config


def _task_class(task: str):
    """`reach_target` -> `rlbench.tasks.reach_target.ReachTarget`."""
    module = importlib.import_module(f"rlbench.tasks.{task}")
    words = task.split("_")
    return getattr(module, "".join(word[:1].upper() + word[1:] for word in words))
