"""Uniform-random-policy return and success of tasks, with our env adapters.

    python scripts/random_baseline.py metaworld_button_press metaworld_reach \
        --episodes 50 --env-config '{"time_limit": 100, "fast_render": true}' \
        --out bench_results/random_baseline.json
    python scripts/random_baseline.py metaworld_door_close --policy scripted \
        --episodes 10 --env-config '{"time_limit": 150, "fast_render": true}'

`--policy scripted` plays Meta-world's own expert policy for the task
(`metaworld.policies`, which reads the simulator state, not pixels) instead: the
return and success a solved task reaches in these episodes, and
`first_success_step`, the mean agent step of the first success (episodes that
succeed), which says how long an episode the task needs.

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
from rllib_mwm.core.envs.registry import make_env


def scripted_policy(task: str, env):
    """Meta-world's expert for `metaworld_<task>`: a function of no arguments that
    reads the simulator's state vector and returns the action."""
    if not task.startswith("metaworld_"):
        raise SystemExit(
            f"--policy scripted: only Meta-world tasks have one, not {task}."
        )
    import metaworld.policies

    name = "".join(map(str.title, task.removeprefix("metaworld_").split("_")))
    expert = getattr(metaworld.policies, f"Sawyer{name}V3Policy")()
    return lambda: np.clip(expert.get_action(env.unwrapped.sim._get_obs()), -1.0, 1.0)


def random_episodes(
    task: str, episodes: int, env_config: dict, seed: int, policy: str = "random"
) -> dict:
    env = make_env(task, seed=seed, **env_config)
    rng = np.random.default_rng(seed)
    if policy == "scripted":
        act = scripted_policy(task, env)
    else:
        act = lambda: rng.uniform(-1.0, 1.0, env.action_space.shape)  # noqa: E731
    returns, successes, first_success, has_success = [], [], [], False
    try:
        for episode in range(episodes):
            env.reset(seed=seed + episode)
            total, success, done, step = 0.0, False, False, 0
            while not done:
                _, reward, terminated, truncated, info = env.step(act())
                step += 1
                total += float(reward)
                if "success" in info:
                    has_success = True
                    if info["success"] and not success:
                        first_success.append(step)
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
        "policy": policy,
    }
    if has_success:
        row["success_rate"] = float(np.mean(successes))
        steps = float(np.mean(first_success)) if first_success else None
        row["first_success_step"] = steps
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tasks", nargs="+")
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--env-config", default="{}", help="JSON env_config")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--policy", choices=["random", "scripted"], default="random")
    parser.add_argument("--out", default=None, help="JSON file (default: stdout only)")
    args = parser.parse_args(argv)
    env_config = json.loads(args.env_config)
    rows = []
    for task in args.tasks:
        rows.append(
            random_episodes(task, args.episodes, env_config, args.seed, args.policy)
        )
        print(json.dumps(rows[-1]), flush=True)
    if args.out:
        os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
        command = shlex.join(["python", *sys.argv])
        with open(args.out, "w") as f:
            json.dump({"command": command, "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
