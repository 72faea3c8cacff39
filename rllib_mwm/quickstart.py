"""Quick start: train MWM with RLlib on a real Meta-world task, on a CPU.

    python -m rllib_mwm.quickstart [--env metaworld_reach] [--iterations 12]

Builds `MWMConfig().environment(env).preset("debug")` (tiny widths, 50-step
episodes) with one remote env runner and one evaluation env runner, then runs
`algo.train()`: random-action prefill episodes, MAE pretraining, then the
world-model / actor-critic / MAE update schedule, printing one line per
iteration and evaluating the mode policy. Ends with a checkpoint that
`MWM.from_checkpoint(path)` restores, replay buffer included.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

os.environ.setdefault("RAY_AUTH_MODE", "disabled")

import rllib_mwm  # noqa: E402,F401  (process set-up before ray.rllib)
from rllib_mwm.config import MWMConfig  # noqa: E402
from rllib_mwm.reporting import progress_line  # noqa: E402


def build_config(env: str, seed: int) -> MWMConfig:
    env_config = {"fast_render": True} if env.startswith("metaworld") else {}
    return (
        MWMConfig()
        .environment(env, env_config=env_config)
        .preset("debug")
        .env_runners(num_env_runners=1)
        .evaluation(evaluation_num_env_runners=1)
        .debugging(seed=seed)
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="metaworld_reach")
    parser.add_argument("--iterations", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--checkpoint", default=None, help="default: a temp dir")
    args = parser.parse_args(argv)

    import ray

    ray.init(num_cpus=max(4, os.cpu_count() or 1), include_dashboard=False)
    algo = build_config(args.env, args.seed).build_algo()
    try:
        for _ in range(args.iterations):
            print(progress_line(algo.train()), flush=True)
        path = algo.save_to_path(args.checkpoint or tempfile.mkdtemp(prefix="mwm_"))
    finally:
        algo.stop()
    print(f"checkpoint (with replay buffer): {path}")
    print(f"TensorBoard: tensorboard --logdir {algo.logdir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
