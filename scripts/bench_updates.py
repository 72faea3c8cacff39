"""Median wall time of one MAE update and one world-model + actor-critic update.

    python scripts/bench_updates.py --out bench_results/updates.json \
        [--configs paper,16x16] [--repeats 3] [--threads 2] [--device cpu]

"paper": MAE batch 32×32 frames, world-model batch 50×50 (the Meta-world preset);
"16x16": both batches 16×16. Default widths (the reference architecture), 4-dim
actions, random uint8 frames (speed does not depend on pixel content).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time

os.environ.setdefault("RAY_AUTH_MODE", "disabled")

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

import rllib_mwm  # noqa: E402,F401  (process set-up before torch/ray imports)
from rllib_mwm.config import MWMConfig  # noqa: E402
from rllib_mwm.episodes import synthetic_batch  # noqa: E402

SHAPES = {"paper": ((32, 32), (50, 50)), "16x16": ((16, 16), (16, 16))}


def timed(fn, repeats: int, device: str) -> list[float]:
    fn()  # Warm-up (allocations, lazy init) is not counted.
    times = []
    for _ in range(repeats):
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return times


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="bench_results/updates.json")
    parser.add_argument("--configs", default="paper,16x16")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    obs_space = gym.spaces.Box(0, 255, (64, 64, 3), np.uint8)
    act_space = gym.spaces.Box(-1.0, 1.0, (4,), np.float32)
    config = (
        MWMConfig()
        .environment(observation_space=obs_space, action_space=act_space)
        .learners(num_gpus_per_learner=1 if args.device == "cuda" else 0)
        .training(precision=args.precision)
    )
    learner = config.build_learner(spaces={"default_policy": (obs_space, act_space)})
    rng = np.random.default_rng(0)
    results = []
    for name in args.configs.split(","):
        (mb, mt), (wb, wt) = SHAPES[name]
        mae_batch = synthetic_batch(mb, mt, 4, rng)
        mae_batch = {"obs": mae_batch["obs"], "rewards": mae_batch["rewards"]}
        wm_batch = synthetic_batch(wb, wt, 4, rng)
        for update, fn in (
            ("mae", lambda b=mae_batch: learner.update_mae(b)),
            (
                "world_model_actor_critic",
                lambda b=wm_batch: learner.update_world_model(b),
            ),
        ):
            times = timed(fn, args.repeats, args.device)
            row = {
                "config": name,
                "update": update,
                "median_s": statistics.median(times),
                "times_s": times,
                "mae_batch": [mb, mt],
                "wm_batch": [wb, wt],
            }
            print(json.dumps(row), flush=True)
            results.append(row)
    meta = {
        "device": args.device,
        "threads": args.threads,
        "precision": args.precision,
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "python": sys.version.split()[0],
    }
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({"meta": meta, "results": results}, f, indent=2)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
