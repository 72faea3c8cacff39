"""End-to-end training throughput on real Meta-world: sequential vs
overlapped sampling, 1 and 2 env runners, and what that means for a 500K-frame run.

    python scripts/bench_train.py --out bench_results/train.json \
        [--env metaworld_reach] [--agent-steps 100] [--runners 1,2] \
        [--modes sequential,overlap] [--dataset 8x50] [--mae-dataset 8x32] \
        [--gpu-tflops 100]

Each (mode, runners) runs in a fresh child process with its own Ray: the
Meta-world preset's widths (MAE 256×4, RSSM 1024, heads 4×512), `fast_render`,
a short prefill and 2 MAE pretraining steps, then `--agent-steps` agent steps of
training that are timed. Batches are smaller than the paper's (8×50 and 8×32
instead of 50×50 and 32×32) so that a run takes minutes on a CPU; the projection
scales the learner's time to the paper's batches by counted FLOPs.

Per run the JSON has env frames/s and agent steps/s of the timed part; the
driver's wall time split into waiting for samples, learner updates, replay
(adding fragments and sampling batches), weight sync and the rest; the policy
lag; peak RSS of the driver and of each env runner; and the learner's counted
FLOPs per agent step at the bench's and the paper's batches.

`projection` turns those rates into the wall-clock of one 500K-frame run (250K
agent steps at action repeat 2):
- on this machine: env time per agent step as measured, learner time per agent
  step scaled to the paper's batches at the rate this CPU reached;
- on one GPU learner with K env runners: learner time = paper FLOPs per agent step
  / `--gpu-tflops` (an ASSUMED effective rate: one H200 measured 12–14 TFLOP/s
  at the paper's batches, scripts/gpu_check.py), env time = this machine's
  per-runner rate / K (one core per runner).
Sequential wall = env + learner; overlapped = max(env, learner).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("RAY_AUTH_MODE", "disabled")

FRAMES_500K = 500_000
ACTION_REPEAT = 2
PAPER = {"dataset": (50, 50), "mae_dataset": (32, 32)}


def shape(text: str) -> tuple[int, int]:
    batch, length = text.lower().split("x")
    return int(batch), int(length)


def bench_config(args, mode: str, runners: int):
    from rllib_mwm import MWMConfig

    (b, t), (mb, mt) = args.dataset, args.mae_dataset
    return (
        MWMConfig()
        .environment(args.env, env_config={"fast_render": True})
        .preset(*args.presets.split(","))
        .env_runners(
            num_env_runners=runners,
            num_cpus_per_env_runner=0.5,
            rollout_fragment_length=args.fragment,
        )
        .training(
            prefill=args.prefill,
            mae_pretrain=2,
            pretrain=1,
            eval_eps=0,
            log_every=10**9,
            replay={"capacity": 100_000},
            dataset={"batch": b, "length": t},
            mae_dataset={"batch": mb, "length": mt},
            max_policy_lag=runners * args.fragment if mode == "overlap" else 0,
        )
        .reporting(min_sample_timesteps_per_iteration=runners * args.fragment)
        .debugging(seed=0)
    )


def count_update_flops(algo, args) -> dict[str, float]:
    """Counted FLOPs of one MAE and one world-model + actor-critic update at the
    bench's batches, and scaled to the paper's (FLOPs grow with batch × length)."""
    from torch.utils.flop_counter import FlopCounterMode

    learner = algo.learner_group._learner
    flops = {}
    for name, update, batch in (
        ("mae", "update_mae", algo._mae_batch()),
        ("world_model", "update_world_model", algo._world_model_batch()),
    ):
        with FlopCounterMode(display=False) as counter:
            getattr(learner, update)(batch)
        flops[name] = float(counter.get_total_flops())
    bench_rows = {"mae": args.mae_dataset, "world_model": args.dataset}
    paper_rows = {"mae": PAPER["mae_dataset"], "world_model": PAPER["dataset"]}
    scale = {
        k: (paper_rows[k][0] * paper_rows[k][1]) / (bench_rows[k][0] * bench_rows[k][1])
        for k in flops
    }
    return {
        "bench": flops,
        "paper": {k: flops[k] * scale[k] for k in flops},
    }


def run_child(args) -> dict:
    import ray

    import rllib_mwm

    mode, runners = args.child.split(":")
    runners = int(runners)
    from rllib_mwm.rllib.reporting import redirect_default_results

    rllib_mwm.init_ray(num_cpus=max(4, runners + 2), include_dashboard=False)
    # Log directory, episode files and reports: a temporary directory.
    scratch = redirect_default_results(tempfile.mkdtemp(prefix="bench_train_"))
    algo = bench_config(args, mode, runners).build_algo()
    replay_seconds = [0.0]
    sample = algo.replay_buffer.sample

    def timed_sample(*a, **kw):
        start = time.perf_counter()
        try:
            return sample(*a, **kw)
        finally:
            replay_seconds[0] += time.perf_counter() - start

    algo.replay_buffer.sample = timed_sample
    setup_start = time.perf_counter()
    while algo.progress["phase"] != "train":
        algo.train()
    setup_s = time.perf_counter() - setup_start

    split, lags = {}, []
    replay_seconds[0] = 0.0
    steps0 = algo.progress["train_steps"]
    start = time.perf_counter()
    while algo.progress["train_steps"] - steps0 < args.agent_steps:
        result = algo.train()
        for key, seconds in result.get("time_split", {}).items():
            split[key] = split.get(key, 0.0) + float(seconds)
        lags.append(int(result.get("policy_lag", 0)))
    wall = time.perf_counter() - start
    steps = algo.progress["train_steps"] - steps0

    replay = replay_seconds[0] + split.get("replay_add_s", 0.0)
    learner = split.get("learner_s", 0.0) - replay_seconds[0]
    parts = {
        "sample_wait": split.get("sample_wait_s", 0.0),
        "learner": learner,
        "replay": replay,
        "weight_sync": split.get("weight_sync_s", 0.0),
    }
    parts["other"] = max(0.0, wall - sum(parts.values()))
    runner_rss = algo.env_runner_group.foreach_env_runner(
        lambda r: __import__("resource").getrusage(0).ru_maxrss / 2**20,
        local_env_runner=False,
    )
    flops = count_update_flops(algo, args)
    algo.stop()
    ray.shutdown()
    shutil.rmtree(scratch, ignore_errors=True)
    return {
        "mode": mode,
        "env_runners": runners,
        "setup_s": round(setup_s, 1),
        "timed_agent_steps": steps,
        "wall_s": round(wall, 2),
        "agent_steps_per_s": steps / wall,
        "env_frames_per_s": steps * ACTION_REPEAT / wall,
        "time_split_s": {k: round(v, 3) for k, v in parts.items()},
        "time_split_fraction": {k: round(v / wall, 4) for k, v in parts.items()},
        "policy_lag_max": max(lags) if lags else 0,
        "peak_rss_gib": {
            "driver": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
            "env_runners": runner_rss,
        },
        "flops_per_update": flops,
        "seconds_per_agent_step": {
            "env": parts["sample_wait"] / steps,
            "learner": learner / steps,
            "replay_and_sync": (replay + parts["weight_sync"]) / steps,
        },
        # One MAE and one world-model update per 5 agent steps (train_every).
        "learner_flops_per_agent_step_bench": sum(flops["bench"].values()) / 5,
        "learner_flops_per_agent_step_paper": sum(flops["paper"].values()) / 5,
    }


def projection(runs: list[dict], gpu_tflops: float) -> dict:
    """Wall-clock of one 500K-frame run from the sequential runs' rates."""
    agent_steps = FRAMES_500K // ACTION_REPEAT
    sequential = {r["env_runners"]: r for r in runs if r["mode"] == "sequential"}
    if 1 not in sequential:
        return {}
    one = sequential[1]
    rate = one["learner_flops_per_agent_step_bench"] / max(
        one["seconds_per_agent_step"]["learner"], 1e-9
    )
    learner_cpu = one["learner_flops_per_agent_step_paper"] / rate
    learner_gpu = one["learner_flops_per_agent_step_paper"] / (gpu_tflops * 1e12)
    other = one["seconds_per_agent_step"]["replay_and_sync"]
    table = []
    for where, learner, ks in (
        ("this machine (CPU learner)", learner_cpu, sorted(sequential)),
        (
            f"one GPU learner at an assumed {gpu_tflops:g} TFLOP/s",
            learner_gpu,
            [1, 2, 4, 8],
        ),
    ):
        for k in ks:
            env = (
                sequential[k]["seconds_per_agent_step"]["env"]
                if where.startswith("this") and k in sequential
                else one["seconds_per_agent_step"]["env"] / k
            )
            table.append(
                {
                    "learner": where,
                    "env_runners": k,
                    "env_s_per_agent_step": env,
                    "learner_s_per_agent_step": learner + other,
                    "sequential_hours": agent_steps * (env + learner + other) / 3600,
                    "overlapped_hours": agent_steps * max(env, learner + other) / 3600,
                }
            )
    return {
        "frames": FRAMES_500K,
        "agent_steps": agent_steps,
        "cpu_learner_gflops_reached": rate / 1e9,
        "paper_learner_tflop_per_agent_step": one["learner_flops_per_agent_step_paper"]
        / 1e12,
        "gpu_tflops_assumed": gpu_tflops,
        "rows": table,
    }


def main(argv=None) -> int:
    from rllib_mwm.core import perf

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="bench_results/train.json")
    parser.add_argument("--env", default="metaworld_reach")
    parser.add_argument("--agent-steps", type=int, default=100)
    parser.add_argument("--prefill", type=int, default=300)
    parser.add_argument("--fragment", type=int, default=25)
    parser.add_argument("--runners", default="1,2")
    parser.add_argument("--modes", default="sequential,overlap")
    parser.add_argument("--dataset", type=shape, default=(8, 50))
    parser.add_argument("--mae-dataset", type=shape, default=(8, 32))
    parser.add_argument("--gpu-tflops", type=float, default=100.0)
    parser.add_argument(
        "--presets", default="metaworld", help="e.g. metaworld,debug for a smoke run"
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print("RESULT " + json.dumps(run_child(args)), flush=True)
        return 0

    runs = []
    for runners in [int(k) for k in args.runners.split(",")]:
        for mode in args.modes.split(","):
            cmd = [sys.executable, __file__, *(argv or sys.argv[1:])]
            cmd += ["--child", f"{mode}:{runners}"]
            print(f"bench_train: {mode}, {runners} env runner(s) ...", flush=True)
            out = subprocess.run(cmd, capture_output=True, text=True)
            lines = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")]
            if out.returncode or not lines:
                sys.stderr.write(out.stderr[-3000:])
                raise SystemExit(f"bench_train: the {mode}:{runners} run failed")
            run = json.loads(lines[-1][len("RESULT ") :])
            runs.append(run)
            print(
                f"  {run['env_frames_per_s']:.2f} env frames/s, split "
                f"{run['time_split_fraction']}, policy lag {run['policy_lag_max']}",
                flush=True,
            )
    result = {
        "command": " ".join([os.path.basename(sys.executable), *sys.argv]),
        "machine": {"cpu": perf.cpu_name(), "cpus": os.cpu_count()},
        "env": args.env,
        "dataset": args.dataset,
        "mae_dataset": args.mae_dataset,
        "runs": runs,
        "projection": projection(runs, args.gpu_tflops),
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)
    for row in result["projection"].get("rows", []):
        print(
            f"{row['learner']}, {row['env_runners']} env runner(s): "
            f"{row['sequential_hours']:.1f} h sequential, "
            f"{row['overlapped_hours']:.1f} h overlapped"
        )
    print(f"bench_train: wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
