"""Shared machinery of the env adapters: settings, action repeat, time limit.

Every adapter is a `gymnasium.Env` whose observation is the 64x64 RGB frame only
(docs/algorithm.md §1) and whose action space is Box(-1, 1). An agent step repeats
the action `action_repeat` times, sums the rewards, reports `success` if any
sub-step succeeded and stops repeating once the simulator ends the episode
(docs/algorithm.md §7).

A simulator error during a step (`is_sim_error`: MuJoCo instabilities, dm_control's
`PhysicsError`, RLBench's IK / path / invalid-action errors, any `RuntimeError` of
the simulator) ends the episode as truncated, with reward 0 for that agent step,
the last good observation and `info["env_error"]` naming the error; the run goes
on (`rllib_mwm.rllib.reporting` counts these under `env_errors`). Programming errors
(`TypeError`, `AttributeError`, `NotImplementedError`, ...) and
`KeyboardInterrupt` propagate. A reset that fails on a simulator error is retried
with a fresh seed, `RESET_ATTEMPTS` times in all, then raises `EnvFaultError`.
"""

from __future__ import annotations

import dataclasses
import logging
import numbers
from collections.abc import Mapping
from typing import Any, NamedTuple

import gymnasium as gym
import numpy as np

from rllib_mwm.core.errors import EnvFaultError, first_line
from rllib_mwm.core.process import prepare_process

CONFIG_KEYS = ("seed", "size", "action_repeat", "time_limit", "camera", "fast_render")
#: Reset attempts (the first with the requested seed, then fresh seeds).
RESET_ATTEMPTS = 3
#: Episodes in a row whose first step fails before the env is declared broken.
MAX_FAILED_FIRST_STEPS = 10
#: Errors that end the episode. Warnings count when the user turned them into
#: errors (`warnings.simplefilter("error")`), e.g. a RuntimeWarning on overflow.
SIM_ERRORS: tuple[type[BaseException], ...] = (
    RuntimeError,
    FloatingPointError,
    RuntimeWarning,
    UserWarning,
)
#: Subclasses of `SIM_ERRORS` that are mistakes in code, not simulator faults.
PROGRAMMING_ERRORS = (NotImplementedError, RecursionError)
logger = logging.getLogger(__name__)


def ensure_headless_gl() -> None:
    """Process set-up before a simulator import (EGL default, Triton before Mesa)."""
    prepare_process()


@dataclasses.dataclass(frozen=True)
class EnvSettings:
    """Validated `env_config` of one env (see `make_env` for the keys)."""

    seed: int | None = None
    size: tuple[int, int] = (64, 64)
    action_repeat: int = 2
    time_limit: int | None = None  # agent steps; None = the suite's default
    camera: str | int | None = None  # None = the suite's default (docs/algorithm.md §7)
    fast_render: bool = False

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> EnvSettings:
        """Check keys and types; an unknown key raises `ValueError` naming it."""
        unknown = sorted(set(config) - set(CONFIG_KEYS))
        if unknown:
            raise ValueError(
                f"Unknown env_config key(s) {unknown}; valid keys: {list(CONFIG_KEYS)}"
            )
        settings = cls(**{k: v for k, v in config.items() if v is not None})
        settings._validate()
        return settings

    def _validate(self) -> None:
        size = tuple(self.size)
        if len(size) != 2 or not all(_is_int(s) and s > 0 for s in size):
            raise ValueError(
                "env_config size must be (height, width) positive ints, e.g. "
                f"(64, 64); got {self.size!r}"
            )
        object.__setattr__(self, "size", (int(size[0]), int(size[1])))
        for key in ("action_repeat", "time_limit"):
            value = getattr(self, key)
            if value is not None and not (_is_int(value) and value > 0):
                raise ValueError(
                    f"env_config {key} must be a positive int, got {value!r}"
                )
        if self.seed is not None and not (_is_int(self.seed) and self.seed >= 0):
            raise ValueError(
                f"env_config seed must be a non-negative int, got {self.seed!r}"
            )
        if not isinstance(self.fast_render, bool):
            raise ValueError(
                f"env_config fast_render must be a bool, got {self.fast_render!r}"
            )
        camera = self.camera
        if camera is not None and not (isinstance(camera, str) or _is_int(camera)):
            raise ValueError(
                f"env_config camera must be a name or an id, got {camera!r}"
            )


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_sim_error(
    error: BaseException, sim_errors: tuple[type[BaseException], ...] = SIM_ERRORS
) -> bool:
    """Whether `error` is a simulator fault (ends the episode) rather than a
    programming error or an interrupt (propagate)."""
    return isinstance(error, sim_errors) and not isinstance(error, PROGRAMMING_ERRORS)


def seed_from(entropy=None) -> int:
    """A non-negative 63-bit seed mixed from `entropy` (ints), or from OS entropy
    when None."""
    return int(np.random.SeedSequence(entropy).generate_state(1)[0] >> 1)


def fresh_seed() -> int:
    """A seed from OS entropy, for envs built without one."""
    return seed_from()


class SimStep(NamedTuple):
    """Outcome of one simulator (sub-)step."""

    reward: float
    terminated: bool = False  # a real terminal state (no bootstrapping)
    truncated: bool = False  # the simulator's own time limit
    success: bool = False


class PixelEnv(gym.Env):
    """Image-only env with action repeat and a time limit in agent steps.

    Subclasses implement `_reset_sim(seed)`, `_step_sim(action) -> SimStep` and
    `_observe() -> uint8 image`; the image is produced once per agent step. An
    adapter whose simulator raises other types for its faults lists them in
    `sim_errors`.
    """

    metadata = {"render_modes": ["rgb_array"]}
    render_mode = "rgb_array"
    reports_success = False  # Meta-world and RLBench put `success` in info
    sim_errors: tuple[type[BaseException], ...] = SIM_ERRORS

    def __init__(
        self, settings: EnvSettings, action_dim: int, time_limit: int, frame_dt: float
    ):
        """`frame_dt`: simulated seconds per simulator step (sets render_fps)."""
        self.metadata = {
            **self.metadata,
            "render_fps": 1.0 / (frame_dt * settings.action_repeat),
        }
        self.observation_space = gym.spaces.Box(
            0, 255, (*settings.size, 3), dtype=np.uint8
        )
        self.action_space = gym.spaces.Box(-1.0, 1.0, (action_dim,), dtype=np.float32)
        self.action_repeat = settings.action_repeat
        self.time_limit = time_limit
        self._steps: int | None = None  # None: reset() needed
        self._image: np.ndarray | None = None
        self._failed_first_steps = 0  # episodes in a row failing at their 1st step
        # Mixed into reset seeds when set (RLlib's env copies: `create_from_context`).
        self.reset_seed_salt: int | None = None

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """Start an episode; a `seed` reseeds the simulator (gymnasium API). A
        simulator error is retried with a fresh seed (`RESET_ATTEMPTS` in all)."""
        if seed is not None and self.reset_seed_salt is not None:
            seed = seed_from([int(seed), self.reset_seed_salt])
        super().reset(seed=seed)
        for attempt in range(RESET_ATTEMPTS):
            try:
                self._reset_sim(seed)
                self._image = self._observe()
                break
            except Exception as error:
                if not is_sim_error(error, self.sim_errors):
                    raise
                logger.warning("%s: reset failed (%s)", self._name, first_line(error))
                if attempt + 1 == RESET_ATTEMPTS:
                    raise EnvFaultError(
                        f"{self._name}: reset failed {RESET_ATTEMPTS} times, each "
                        f"with a fresh seed (last: {first_line(error)}); check the "
                        "simulator install and env_config"
                    ) from error
                seed = fresh_seed()
        self._steps = 0
        return self._image, self._info(False)

    def step(self, action):
        """One agent step = `action_repeat` simulator steps (docs/algorithm.md §7)."""
        if self._steps is None:
            raise RuntimeError("Call reset() before step() (and after an episode end).")
        action = self._check_action(action)
        try:
            return self._step(action)
        except Exception as error:
            if not is_sim_error(error, self.sim_errors):
                raise
            return self._end_on_error(error)

    def _step(self, action: np.ndarray):
        reward, success, terminated, truncated = 0.0, False, False, False
        for _ in range(self.action_repeat):
            sub = self._step_sim(action)
            reward += float(sub.reward)
            success = success or bool(sub.success)
            terminated, truncated = bool(sub.terminated), bool(sub.truncated)
            if terminated or truncated:
                break
        image = self._observe()
        self._steps += 1
        truncated = not terminated and (truncated or self._steps >= self.time_limit)
        if terminated or truncated:
            self._steps = None
        self._image = image
        self._failed_first_steps = 0
        return image, reward, terminated, truncated, self._info(success)

    def _end_on_error(self, error: Exception):
        """Ends the episode (truncated) after a simulator error: reward 0, the
        last good frame, `info["env_error"]`. Raises once `MAX_FAILED_FIRST_STEPS`
        episodes in a row failed at their first step (a broken simulator)."""
        message = first_line(error)
        logger.warning("%s: episode truncated (%s)", self._name, message)
        self._failed_first_steps = (
            self._failed_first_steps + 1 if self._steps == 0 else 0
        )
        self._steps = None
        if self._failed_first_steps >= MAX_FAILED_FIRST_STEPS:
            raise EnvFaultError(
                f"{self._name}: {MAX_FAILED_FIRST_STEPS} episodes in a row failed at "
                f"their first step (last: {message}); the simulator is broken, "
                "check its install and env_config"
            ) from error
        info = {**self._info(False), "env_error": message}
        return self._image.copy(), 0.0, False, True, info

    @property
    def _name(self) -> str:
        return type(self).__name__

    def render(self) -> np.ndarray | None:
        """The latest observation frame."""
        return None if self._image is None else self._image.copy()

    def _check_action(self, action) -> np.ndarray:
        action = np.asarray(action, dtype=np.float64)
        if action.shape != self.action_space.shape:
            raise ValueError(
                f"Expected an action of shape {self.action_space.shape}, "
                f"got {action.shape}"
            )
        if not np.all(np.isfinite(action)):
            raise ValueError(f"Action has non-finite entries: {action}")
        return np.clip(action, -1.0, 1.0)

    def _info(self, success: bool) -> dict:
        return {"success": success} if self.reports_success else {}

    def _reset_sim(self, seed: int | None) -> None:
        raise NotImplementedError

    def _step_sim(self, action: np.ndarray) -> SimStep:
        raise NotImplementedError

    def _observe(self) -> np.ndarray:
        raise NotImplementedError
