"""Episodes as MWM stores them (docs/algorithm.md §1), outside RLlib (the loop
without Ray, tests, benchmarks); `rllib_mwm.core.replay.buffer.ReplayBuffer`
stores and samples them.

A stored step holds the observation together with the action that *led to it*;
the first step of an episode holds a zero action and zero reward. Arrays:
`obs` (T+1, H, W, 3) uint8, `actions` (T+1, A), `rewards`, `is_first`,
`is_terminal`, `success` (T+1,).
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from rllib_mwm.core.replay.buffer import KEYS

#: A stored step: (obs, action that led to it, reward, is_first, is_terminal,
#: success), in the order of the replay's `KEYS`.
Step = tuple
DTYPES = (np.uint8, np.float32, np.float32, bool, bool, bool)  # Of `KEYS`.


def reset_step(obs: np.ndarray, action_shape: tuple[int, ...]) -> Step:
    """The first step of an episode: its reset frame, a zero action, reward 0."""
    return (obs, np.zeros(action_shape, np.float32), 0.0, True, False, False)


def env_step(obs, action, reward, terminated: bool, info: dict) -> Step:
    """A step after `env.step(action)` returned (obs, reward, terminated, ..., info)."""
    success = bool(info.get("success", False))
    return (obs, np.asarray(action, np.float32), reward, False, terminated, success)


def episode_arrays(steps: list[Step]) -> dict[str, np.ndarray]:
    """Steps → the episode's arrays (module docstring)."""
    columns = zip(*steps, strict=True)
    return {
        key: np.asarray(column, dtype)
        for key, column, dtype in zip(KEYS, columns, DTYPES, strict=True)
    }


def run_episode(env: gym.Env, policy, seed: int | None = None) -> dict[str, np.ndarray]:
    """Runs one episode with `policy(obs) -> action`, stored in MWM's alignment."""
    obs, _ = env.reset(seed=seed)
    steps = [reset_step(obs, env.action_space.shape)]
    done = False
    while not done:
        action = np.asarray(policy(obs), np.float32)
        obs, reward, terminated, truncated, info = env.step(action)
        steps.append(env_step(obs, action, reward, terminated, info))
        done = terminated or truncated
    return episode_arrays(steps)


def random_episode(env: gym.Env, seed: int) -> dict[str, np.ndarray]:
    """One episode of uniform random actions, the prefill policy
    (docs/algorithm.md §6)."""
    env.action_space.seed(seed)
    return run_episode(env, lambda _: env.action_space.sample(), seed=seed)


def synthetic_batch(
    batch: int, length: int, action_dim: int, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Random frames and actions in the sequence-batch layout (tests, benchmarks)."""
    is_first = np.zeros((batch, length), bool)
    is_first[:, 0] = True
    return dict(
        obs=rng.integers(0, 256, (batch, length, 64, 64, 3), dtype=np.uint8),
        actions=rng.uniform(-1, 1, (batch, length, action_dim)).astype(np.float32),
        rewards=rng.uniform(0, 1, (batch, length)).astype(np.float32),
        is_first=is_first,
        is_terminal=np.zeros((batch, length), bool),
    )
