"""Peak host memory (RSS) of MWM's pretraining phase, without simulators or Ray.

Fills an `MWMReplayBuffer` with synthetic 64×64 episodes, builds the learner at
the given widths and batch sizes (default: the paper's, MAE 32×32 and world model
50×50) and runs `MWM._pretrain` until pretraining ends. Prints the process's peak
RSS before and after pretraining. Run it in a fresh process:

    RAY_AUTH_MODE=disabled python scripts/pretrain_memory.py --mae-pretrain 1 \
        --pretrain 0

The default counts (2 MAE and 1 world-model + actor-critic updates) are small on
purpose: `MWM` holds one batch at a time, so the peak does not grow with them
once every kind of update has run; only the run time does (minutes per update
on a small CPU at the paper's widths).
"""

from __future__ import annotations

import argparse
import resource
import time
import types

import gymnasium as gym
import numpy as np
import torch

from rllib_mwm import MWM, MWMConfig  # First: rllib_mwm sets up its imports.
from rllib_mwm.rllib.replay import MWMReplayBuffer

OBS_SHAPE, ACTION_DIM = (64, 64, 3), 4


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def synthetic_episode(length: int, rng: np.random.Generator) -> dict:
    episode = {
        "obs": rng.integers(0, 256, (length + 1, *OBS_SHAPE), dtype=np.uint8),
        "actions": rng.uniform(-1, 1, (length + 1, ACTION_DIM)).astype(np.float32),
        "rewards": rng.uniform(0, 1, length + 1).astype(np.float32),
        "is_first": np.zeros(length + 1, bool),
        "is_terminal": np.zeros(length + 1, bool),
        "success": np.zeros(length + 1, bool),
    }
    episode["is_first"][0] = True
    return episode


class LocalLearnerGroup:
    """The part of RLlib's `LearnerGroup` that `MWM` calls, on one local learner."""

    def __init__(self, learner):
        self._learner = learner

    def foreach_learner(self, func, **kwargs):
        value = func(self._learner, **kwargs)
        return [types.SimpleNamespace(get=lambda: value)]


def pretraining_algorithm(config: MWMConfig, replay: MWMReplayBuffer):
    """An object with `MWM`'s methods and the state `_pretrain` reads, no actors."""
    from ray.rllib.utils.metrics.metrics_logger import MetricsLogger

    learner = config.build_learner(
        spaces={
            "default_policy": (
                config.observation_space,
                config.action_space,
            )
        }
    )
    methods = {k: v for k, v in vars(MWM).items() if callable(v)}
    methods["_sync_weights"] = lambda self: None
    algo = type("PretrainOnly", (), methods)()
    algo.config, algo.replay_buffer = config, replay
    algo.learner_group = LocalLearnerGroup(learner)
    algo.metrics = MetricsLogger()
    algo.progress = {"phase": "pretrain", "mae_pretrain_updates": 0}  # After prefill
    return algo


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mae-pretrain", type=int, default=1)
    parser.add_argument("--pretrain", type=int, default=0)
    parser.add_argument("--batch", type=int, default=50, help="dataset.batch")
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--episode-length", type=int, default=250)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = (
        MWMConfig()
        .environment(
            observation_space=gym.spaces.Box(0, 255, OBS_SHAPE, np.uint8),
            action_space=gym.spaces.Box(-1.0, 1.0, (ACTION_DIM,), np.float32),
        )
        .training(
            mae_pretrain=args.mae_pretrain,
            pretrain=args.pretrain,
            dataset={"batch": args.batch, "length": 50},
            precision="fp32",
        )
    )
    config.validate_mwm()
    rng = np.random.default_rng(0)
    replay = MWMReplayBuffer(capacity=10**7, minlen=50, maxlen=50, seed=0)
    for _ in range(args.episodes):
        replay.add_episode(synthetic_episode(args.episode_length, rng))
    algo = pretraining_algorithm(config, replay)
    before = peak_rss_mb()
    start, calls = time.perf_counter(), 0
    while algo.progress["phase"] == "pretrain":
        algo._pretrain()
        calls += 1
    learner = algo.learner_group._learner
    print(
        f"MAE updates {learner.progress['mae_updates']}, world-model updates "
        f"{learner.progress['world_model_updates']}, {calls} training steps, "
        f"{time.perf_counter() - start:.0f} s"
    )
    print(f"peak RSS before pretraining: {before:.0f} MB")
    print(f"peak RSS after pretraining:  {peak_rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
