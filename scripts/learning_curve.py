"""A wall-clock-limited MWM run that records its evaluation curve.

    python scripts/learning_curve.py --env dmc_cartpole_balance --presets dmc_vision \
        debug --config '{"dataset": {"batch": 8, "length": 32}}' --minutes 30 \
        --out bench_results/curve_cartpole.json

Trains with `MWMConfig().preset(...)` plus `--config` overrides (JSON, any
MWMConfig/RLlib key) for `--minutes`, then writes every evaluation (agent steps,
env frames, return, success rate, wall time) to `--out` (JSON) and a PNG beside
it. The first evaluation comes right after prefill + pretraining, the random
prefill episodes give the random-policy return.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

os.environ.setdefault("RAY_AUTH_MODE", "disabled")

import rllib_mwm  # noqa: E402,F401  (process set-up before ray.rllib)
from rllib_mwm.config import MWMConfig  # noqa: E402
from rllib_mwm.reporting import redirect_default_results  # noqa: E402

#: Learner metrics recorded beside each evaluation.
DIAGNOSTICS = (
    "world_model/reward_loss",
    "world_model/kl",
    "world_model/feature_loss",
    "mae/mae_pixel_loss",
    "actor/imag_reward_mean",
    "actor/entropy",
    "critic/value_mean",
)


def build(args) -> MWMConfig:
    config = (
        MWMConfig()
        .environment(args.env)
        .preset(*args.presets)
        .env_runners(num_env_runners=args.env_runners)
        .evaluation(evaluation_num_env_runners=1)
        .debugging(seed=args.seed)
    )
    return config.update_from_dict(json.loads(args.config))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="dmc_cartpole_balance")
    parser.add_argument("--presets", nargs="+", default=["dmc_vision", "debug"])
    parser.add_argument("--config", default="{}", help="JSON overrides")
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--env-runners", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="bench_results/curve.json")
    args = parser.parse_args(argv)

    rllib_mwm.init_ray(num_cpus=max(4, os.cpu_count() or 1), include_dashboard=False)
    config = build(args)
    # Not ~/ray_results: the run's events, episode files and open-loop GIFs.
    logs = redirect_default_results(tempfile.mkdtemp(prefix="learning_curve_"))
    print(f"learning_curve: TensorBoard events and open-loop GIFs under {logs}")
    algo = config.build_algo()
    start, rows, random_returns, random_success = time.time(), [], [], []
    try:
        while time.time() - start < args.minutes * 60:
            result = algo.train()
            runners = result.get("env_runners", {})
            if algo.progress["phase"] != "train" and "episode_return_mean" in runners:
                random_returns.append(float(runners["episode_return_mean"]))
                random_success.append(float(runners.get("success_rate", float("nan"))))
            evaluation = result.get("evaluation", {})
            if "agent_steps" not in evaluation:
                continue  # No evaluation ran in this iteration.
            row = {
                "agent_steps": int(evaluation["agent_steps"]),
                "env_frames": int(evaluation["env_frames"]),
                "return": float(evaluation["env_runners"]["episode_return_mean"]),
                "success_rate": float(
                    evaluation["env_runners"].get("success_rate", float("nan"))
                ),
                "minutes": round((time.time() - start) / 60, 2),
                "train_return": float(runners.get("episode_return_mean", float("nan"))),
            }
            learners = result.get("learners", {}).get("default_policy", {})
            for key in DIAGNOSTICS:
                if key in learners:
                    row[key] = round(float(learners[key]), 4)
            rows.append(row)
            print(json.dumps(row), flush=True)
    finally:
        algo.stop()
    report = {
        "env": args.env,
        "presets": args.presets,
        "config": json.loads(args.config),
        "minutes": args.minutes,
        "random_policy_return": random_returns[-1] if random_returns else None,
        "random_policy_success_rate": random_success[-1] if random_success else None,
        "evaluations": rows,
    }
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(report, f, indent=1)
    _plot(report, args.out.rsplit(".", 1)[0] + ".png")
    print(f"wrote {args.out}")
    return 0


def _plot(report: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = report["evaluations"]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot([r["env_frames"] for r in rows], [r["return"] for r in rows], "o-")
    if report["random_policy_return"] is not None:
        ax.axhline(report["random_policy_return"], ls="--", c="gray", label="random")
        ax.legend()
    ax.set(xlabel="env frames", ylabel="eval return", title=report["env"])
    fig.tight_layout()
    fig.savefig(path, dpi=100)


if __name__ == "__main__":
    sys.exit(main())
