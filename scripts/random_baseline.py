"""Uniform-random-policy return and success of tasks, with our env adapters.

    python scripts/random_baseline.py metaworld_button_press metaworld_reach \
        --episodes 50 --env-config '{"time_limit": 100, "fast_render": true}' \
        --out bench_results/random_baseline.json

An episode succeeds if any of its agent steps reported `info["success"]` (as
`success_rate` in training results). Envs without a success signal (DMC) report
return only. Writes one JSON row per task (under "rows", beside the command):
episodes, mean/std return, success rate, and the env_config used, so a learning
curve can be compared with the same episodes.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys

import numpy as np

import rllib_mwm  # noqa: F401  (process set-up: headless GL)
from rllib_mwm.envs.registry import make_env


def random_episodes(task: str, episodes: int, env_config: dict, seed: int) -> dict:
    env = make_env(task, seed=seed, **env_config)
    rng = np.random.default_rng(seed)
    returns, successes, has_success = [], [], False
    try:
        for episode in range(episodes):
            env.reset(seed=seed + episode)
            total, success, done = 0.0, False, False
            while not done:
                action = rng.uniform(-1.0, 1.0, env.action_space.shape)
                _, reward, terminated, truncated, info = env.step(action)
                total += float(reward)
                if "success" in info:
                    has_success = True
                    success = success or bool(info["success"])
                done = terminated or truncated
            returns.append(total)
            successes.append(success)
    finally:
        env.close()
    row = {
        "task": task,
        "episodes": episodes,
        "return_mean": float(np.mean(returns)),
        "return_std": float(np.std(returns)),
        "env_config": env_config,
        "seed": seed,
    }
    if has_success:
        row["success_rate"] = float(np.mean(successes))
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tasks", nargs="+")
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--env-config", default="{}", help="JSON env_config")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="JSON file (default: stdout only)")
    args = parser.parse_args(argv)
    env_config = json.loads(args.env_config)
    rows = []
    for task in args.tasks:
        rows.append(random_episodes(task, args.episodes, env_config, args.seed))
        print(json.dumps(rows[-1]), flush=True)
    if args.out:
        os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
        command = shlex.join(["python", *sys.argv])
        with open(args.out, "w") as f:
            json.dump({"command": command, "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
