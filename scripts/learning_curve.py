"""A wall-clock-limited MWM run that records its evaluation curve.

    python scripts/learning_curve.py --env metaworld_button_press --presets metaworld \
        cpu --config '{"env_config": {"time_limit": 100, "fast_render": true}}' \
        --minutes 30 --out bench_results/curve_button_press.json
    python scripts/learning_curve.py --from-results <trial dir>/result.json \
        --out bench_results/curve_cli.json    # the curve of an `rllib train` run

Trains with `MWMConfig().preset(...)` plus `--config` overrides (JSON, any
MWMConfig/RLlib key) for `--minutes`, then writes every evaluation (agent steps,
env frames, return, success rate, wall time) to `--out` (JSON) and a PNG beside
it. The first evaluation comes right after prefill + pretraining, the random
prefill episodes give the random-policy return. `last3` holds the last 3
evaluations and their mean: what we report (one lucky evaluation is not learning).
Success rates are None for envs without a success signal (DMC). For Meta-world
tasks the report also holds the paper's released MWM curve on the same task
(`paper_mwm`: mean success over its 5 seeds at 10K, 30K, ... frames, up to ours,
drawn on the PNG): the per-frame yardstick for a run that sees ~15K frames.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import tempfile
import time

os.environ.setdefault("RAY_AUTH_MODE", "disabled")

import numpy as np  # noqa: E402

import rllib_mwm  # noqa: E402,F401  (process set-up before ray.rllib)
from rllib_mwm.rllib.config import MWMConfig  # noqa: E402
from rllib_mwm.rllib.reporting import redirect_default_results  # noqa: E402
from rllib_mwm.tools import plot  # noqa: E402
from rllib_mwm.tools.report import find_reference  # noqa: E402

#: Learner metrics recorded beside each evaluation.
DIAGNOSTICS = (
    "world_model/reward_loss",
    "world_model/kl",
    "world_model/feature_loss",
    "world_model/feature_explained",
    "mae/mae_pixel_loss",
    "actor/imag_reward_mean",
    "actor/entropy",
    "actor/advantage_mean",
    "critic/value_mean",
)


def _success(runners: dict) -> float | None:
    """`success_rate` where the env has a success signal, else None (DMC)."""
    value = runners.get("success_rate")
    return None if value is None else float(value)


def random_row(result: dict) -> dict | None:
    """The prefill episodes' return and success (uniform random actions)."""
    runners = result.get("env_runners", {})
    if "episode_return_mean" not in runners:
        return None
    return {
        "return": float(runners["episode_return_mean"]),
        "success_rate": _success(runners),
    }


def evaluation_row(result: dict, minutes: float) -> dict | None:
    """One curve point from an iteration's result, None if it did not evaluate."""
    evaluation = result.get("evaluation", {})
    if "agent_steps" not in evaluation or "env_runners" not in evaluation:
        return None  # No evaluation this iteration, or one that timed out empty.
    runners = result.get("env_runners", {})
    row = {
        "agent_steps": int(evaluation["agent_steps"]),
        "env_frames": int(evaluation["env_frames"]),
        "return": float(evaluation["env_runners"]["episode_return_mean"]),
        "success_rate": _success(evaluation["env_runners"]),
        "minutes": round(minutes, 2),
        "train_return": float(runners.get("episode_return_mean", float("nan"))),
    }
    learners = result.get("learners", {}).get("default_policy", {})
    for key in DIAGNOSTICS:
        if key in learners:
            row[key] = round(float(learners[key]), 4)
    return row


def add_result(result: dict, minutes: float, rows: list, random_rows: list):
    """Files one iteration's result: its random-policy level before training,
    its evaluation (returned, None if it did not evaluate) as a curve point."""
    if result.get("phase") != "train":
        random_rows.append(random_row(result))
    row = evaluation_row(result, minutes)
    if row is not None:
        rows.append(row)
    return row


def make_report(rows: list[dict], random_rows: list, **run) -> dict:
    """The curve with the random-policy level and the mean of the last 3
    evaluations (what we report: one lucky evaluation is not learning)."""
    random_rows = [r for r in random_rows if r is not None]
    last = rows[-3:]
    successes = [r["success_rate"] for r in last if r["success_rate"] is not None]
    return {
        **run,
        "random_policy_return": random_rows[-1]["return"] if random_rows else None,
        "random_policy_success_rate": (
            random_rows[-1]["success_rate"] if random_rows else None
        ),
        "last3": {
            "return": [round(r["return"], 1) for r in last],
            "success_rate": successes or None,
            "mean_return": sum(r["return"] for r in last) / len(last) if last else None,
            "mean_success_rate": (
                sum(successes) / len(successes) if successes else None
            ),
        },
        "evaluations": rows,
    }


def report_from_results(path: str) -> dict:
    """The curve of a Tune trial (`rllib train file ...`), from its result.json."""
    rows, random_rows = [], []
    with open(path) as f:
        for line in f:
            result = json.loads(line)
            add_result(result, result.get("time_total_s", 0.0) / 60, rows, random_rows)
    config = result.get("config", {})
    return make_report(
        rows,
        random_rows,
        env=config.get("env"),
        seed=config.get("seed"),
        results=os.path.abspath(path),
        minutes=round(result.get("time_total_s", 0.0) / 60, 2),
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
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="learner torch threads (0: torch's default)",
    )
    parser.add_argument("--out", default="bench_results/curve.json")
    parser.add_argument(
        "--from-results",
        metavar="RESULT_JSON",
        help="no training: the curve of a Tune trial's result.json (`rllib train`)",
    )
    parser.add_argument(
        "--trained-with",
        metavar="COMMAND",
        help="with --from-results: the command that trained the trial (recorded "
        "as `command`, the file's way to reproduce the curve)",
    )
    parser.add_argument(
        "--reference",
        help="the paper's scores, the released code's scores/score.json "
        "(without it: no paper curve)",
    )
    parser.add_argument(
        "--paper-table",
        nargs="+",
        metavar="TASK",
        help="no training: the paper's MWM curve on each Meta-world TASK up to "
        "--paper-frames (JSON rows)",
    )
    parser.add_argument("--paper-frames", type=int, default=50_000)
    args = parser.parse_args(argv)
    # How this file was made: the script's own command line.
    given = sys.argv[1:] if argv is None else argv
    this_command = shlex.join(["python", "scripts/learning_curve.py", *given])
    if args.paper_table:
        rows = [
            {
                "task": task,
                **(paper_curve(args.reference, task, args.paper_frames) or {}),
            }
            for task in args.paper_table
        ]
        table = {"command": this_command, "rows": rows}
        write_json(table, args.out)
        print(f"wrote {args.out}")
        return 0
    if args.from_results:
        report = report_from_results(args.from_results)
        report["command"] = args.trained_with
        report["curve_command"] = this_command
        return write(add_paper_curve(report, args.reference), args.out)

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    rllib_mwm.init_ray(num_cpus=max(4, os.cpu_count() or 1), include_dashboard=False)
    config = build(args)
    # Not ~/ray_results: the run's events, episode files and open-loop GIFs.
    logs = redirect_default_results(tempfile.mkdtemp(prefix="learning_curve_"))
    print(f"learning_curve: TensorBoard events and open-loop GIFs under {logs}")
    algo = config.build_algo()
    start, rows, random_rows = time.time(), [], []
    try:
        while time.time() - start < args.minutes * 60:
            result = algo.train()
            row = add_result(result, (time.time() - start) / 60, rows, random_rows)
            if row is not None:
                print(json.dumps(row), flush=True)
    finally:
        algo.stop()
    report = make_report(
        rows,
        random_rows,
        env=args.env,
        presets=args.presets,
        config=json.loads(args.config),
        minutes=args.minutes,
        seed=args.seed,
        threads=args.threads or None,
        command=this_command,
    )
    return write(add_paper_curve(report, args.reference), args.out)


def write_json(report: dict, out: str) -> None:
    os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
    with open(out, "w") as f:
        json.dump(report, f, indent=1)


def write(report: dict, out: str) -> int:
    write_json(report, out)
    _plot(report, out.rsplit(".", 1)[0] + ".png")
    print(f"wrote {out}: last 3 evaluations {json.dumps(report['last3'])}")
    return 0


def paper_curve(reference: str | None, task: str, frames: float) -> dict | None:
    """The paper's released MWM runs on `task` (the file `rllib_mwm report`
    reads): mean success over its seeds at each of its evaluations, up to the
    first one at or past `frames`, and interpolated at `frames` (a run's last
    evaluation, or `--paper-frames`). None where the reference holds no such
    task (DMC) or, with `reference` None, where the default file is absent.
    """
    if reference is None:
        return None
    path = find_reference(reference)
    runs = [r for r in plot.read_reference(path, {task}) if r.method == "mwm (paper)"]
    if not runs:
        return None
    curve = plot.aggregate(runs)
    keep = int(np.searchsorted(curve.frames, frames)) + 1
    at = float(np.interp(frames, curve.frames, curve.mean))
    return {
        "reference": str(path),
        "seeds": curve.num_runs,
        "frames": curve.frames[:keep].astype(int).tolist(),
        "success_mean": [round(float(v), 3) for v in curve.mean[:keep]],
        # Below the paper's first evaluation (10K frames) it has no number.
        "at_frames": int(frames),
        "success_at_frames": round(at, 3) if frames >= curve.frames[0] else None,
    }


def add_paper_curve(report: dict, reference: str | None) -> dict:
    """`report` with the paper's MWM curve on its task beside ours (Meta-world)."""
    rows = report["evaluations"]
    if rows and report.get("env"):
        report["paper_mwm"] = paper_curve(
            reference, report["env"], rows[-1]["env_frames"]
        )
    return report


def _plot(report: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = report["evaluations"]
    frames = [r["env_frames"] for r in rows]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(frames, [r["return"] for r in rows], "o-", label="eval return")
    if report["random_policy_return"] is not None:
        ax.axhline(report["random_policy_return"], ls="--", c="gray", label="random")
    ax.set(xlabel="env frames", ylabel="eval return", title=report["env"])
    ax.legend(loc="upper left")
    if rows and rows[-1]["success_rate"] is not None:
        twin = ax.twinx()
        twin.plot(frames, [r["success_rate"] for r in rows], "s:", c="C2")
        paper = report.get("paper_mwm")
        if paper:
            twin.plot(
                paper["frames"],
                paper["success_mean"],
                "^--",
                c="C3",
                label=f"paper MWM success ({paper['seeds']} seeds)",
            )
            twin.legend(loc="upper right")
        twin.set(ylabel="eval success rate (green)", ylim=(-0.05, 1.05))
    fig.tight_layout()
    fig.savefig(path, dpi=100)


if __name__ == "__main__":
    sys.exit(main())
