"""Episodes as MWM stores them (docs/algorithm.md §1), outside RLlib (tests,
benchmarks); `rllib_mwm.core.replay.buffer.ReplayBuffer` stores and samples them.

A stored step holds the observation together with the action that *led to it*;
the first step of an episode holds a zero action and zero reward. Arrays:
`obs` (T+1, H, W, 3) uint8, `actions` (T+1, A), `rewards`, `is_first`,
`is_terminal`, `success` (T+1,).
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np


def run_episode(env: gym.Env, policy, seed: int | None = None) -> dict[str, np.ndarray]:
    """Runs one episode with `policy(obs) -> action`, stored in MWM's alignment."""
    obs, _ = env.reset(seed=seed)
    zero = np.zeros(env.action_space.shape, np.float32)
    steps = [(obs, zero, 0.0, True, False, False)]
    done = False
    while not done:
        action = np.asarray(policy(obs), np.float32)
        obs, reward, terminated, truncated, info = env.step(action)
        steps.append(
            (obs, action, reward, False, terminated, bool(info.get("success", False)))
        )
        done = terminated or truncated
    columns = zip(*steps, strict=True)
    names = ("obs", "actions", "rewards", "is_first", "is_terminal", "success")
    dtypes = (np.uint8, np.float32, np.float32, bool, bool, bool)
    return {n: np.asarray(c, d) for n, c, d in zip(names, columns, dtypes, strict=True)}


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
