"""Throughput of the env adapters: agent steps/s with random actions.

    python scripts/bench_envs.py --out bench_results/envs.json [--steps 200]

Each row times `steps` agent steps (uniform random actions, resets included,
construction excluded) and reports agent steps/s and simulator frames/s
(agent steps x action_repeat). A last row times the reference route for
`dmc_manip_reach_duplo` (dm_control `reach_duplo_vision`, stepped twice and
rendered at 64x64 per agent step) for comparison with our `_features` route.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np  # noqa: E402

CASES = (
    ("metaworld_peg_insert_side", {"fast_render": False}),
    ("metaworld_peg_insert_side", {"fast_render": True}),
    ("dmc_walker_walk", {}),
    ("dmc_manip_reach_duplo", {}),
)


def bench_adapter(name: str, config: dict, steps: int, seed: int) -> dict:
    """Time `steps` agent steps of `make_env(name, **config)`."""
    from rllib_mwm.core.envs import make_env

    start = time.perf_counter()
    env = make_env(name, seed=seed, **config)
    construct_s = time.perf_counter() - start
    env.action_space.seed(seed)
    start, resets, done = time.perf_counter(), 0, True
    for _ in range(steps):
        if done:
            env.reset()
            resets += 1
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        done = terminated or truncated
    seconds = time.perf_counter() - start
    row = _row(name, steps, env.action_repeat, seconds, resets, construct_s)
    env.close()
    return {**row, "fast_render": bool(config.get("fast_render", False))}


def bench_manip_vision_reference(steps: int, seed: int, repeat: int = 2) -> dict:
    """The reference route: load `<task>_vision` and render camera 0 at 64x64."""
    from dm_control import manipulation

    start = time.perf_counter()
    env = manipulation.load("reach_duplo_vision", seed=seed)
    construct_s = time.perf_counter() - start
    spec, rng = env.action_spec(), np.random.default_rng(seed)
    start, resets, timestep = time.perf_counter(), 0, None
    for _ in range(steps):
        if timestep is None or timestep.last():
            env.reset()
            resets += 1
        action = rng.uniform(spec.minimum, spec.maximum)
        for _ in range(repeat):
            timestep = env.step(action)
            if timestep.last():
                break
        env.physics.render(64, 64, camera_id=0)
    seconds = time.perf_counter() - start
    env.close()
    name = "dmc_manip_reach_duplo (reference: _vision env)"
    return {
        **_row(name, steps, repeat, seconds, resets, construct_s),
        "fast_render": False,
    }


def _row(name, steps, repeat, seconds, resets, construct_s) -> dict:
    return {
        "task": name,
        "agent_steps": steps,
        "action_repeat": repeat,
        "seconds": round(seconds, 3),
        "agent_steps_per_s": round(steps / seconds, 2),
        "env_frames_per_s": round(steps * repeat / seconds, 2),
        "resets": resets,
        "construct_s": round(construct_s, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("bench_results/envs.json"))
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rows = [bench_adapter(name, cfg, args.steps, args.seed) for name, cfg in CASES]
    rows.append(bench_manip_vision_reference(args.steps, args.seed))
    for row in rows:
        print(
            f"{row['task']:<50} fast_render={row['fast_render']!s:<5} "
            f"{row['agent_steps_per_s']:8.2f} agent steps/s "
            f"{row['env_frames_per_s']:8.2f} frames/s"
        )
    machine = {
        "size": [64, 64],
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "mujoco_gl": os.environ.get("MUJOCO_GL"),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    rows = [{**row, **machine} for row in rows]
    args.out.write_text(json.dumps(rows, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
