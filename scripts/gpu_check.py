"""The GPU check, for a bare GPU box: torch, timm and the simulator wheels, no Ray.

    python scripts/gpu_check.py --out bench_results/gpu [--minutes 3] \
        [--task metaworld_reach] [--num-envs 1] [--paper-scores PATH] [--short]

1. Update speed at the paper config (MAE 32×32 frames, world model 50×50,
   reference widths) in fp32 and bf16: `scripts/bench_updates.py --device cuda`,
   seconds, counted FLOPs, peak GPU memory, MFU against the data sheet's dense
   bf16 peak and fractions of the same run's 8192² matmul rates.
2. A real training run of the core (`rllib_mwm.core.loop.CoreLoop`) for
   `--minutes`: the Meta-world preset's networks, batches and schedule on the
   task's real simulator, with a shortened prefill and MAE pretraining so that a
   few minutes reach the training phase (`LOOP_OVERRIDES`); evaluations of
   `eval_eps` episodes every `eval_every` agent steps. Reports agent steps/s, env
   frames, the time split and each evaluation's success rate beside the paper's
   MWM success at the nearest frame count it reports (`--paper-scores`: the
   released scores file, rows of task, seed, method, steps, success_rates).
3. The same update speed in bf16 with the transformer stacks compiled.

`--short` (for CPU tests): the `debug` sizes, fp32 only, a 150-agent-step run.
Writes updates.json, train.json, updates_compiled.json and summary.json into
`--out`; exits 1 if a part failed (the others still run).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import rllib_mwm  # noqa: E402,F401  (process set-up: headless rendering)
from rllib_mwm.core.defaults import mwm_settings  # noqa: E402
from rllib_mwm.core.loop import CoreLoop  # noqa: E402
from rllib_mwm.tools import plot  # noqa: E402

#: How the training run departs from the Meta-world preset: prefill and MAE
#: pretraining cut (5000 each in the paper) so that minutes reach training.
LOOP_OVERRIDES = {"prefill": 2500, "mae_pretrain": 500, "eval_every": 2500}
SHORT_OVERRIDES = {
    "eval_eps": 1,
    "eval_every": 100,
    "env_config": {"fast_render": True},
}


def bench(args, name: str, extra: list[str], limit: float) -> dict | None:
    """Runs bench_updates in a child with a time limit; its JSON or None."""
    out = Path(args.out) / f"{name}.json"
    command = [
        sys.executable,
        str(ROOT / "scripts" / "bench_updates.py"),
        f"--device={args.device}",
        f"--configs={'debug' if args.short else 'paper'}",
        f"--repeats={1 if args.short else args.repeats}",
        f"--out={out}",
        *extra,
    ]
    print(f"gpu_check: {name}: {' '.join(command[1:])}", flush=True)
    path = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    try:
        env = {**os.environ, "PYTHONPATH": path}
        subprocess.run(command, check=True, timeout=limit, env=env)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as error:
        print(f"gpu_check: {name} failed: {error}", flush=True)
        return None
    return json.loads(out.read_text())


def paper_success(path: str | None, task: str, frames: int) -> dict | None:
    """The paper's MWM success rate (mean over seeds) at the frame count it
    reports nearest to `frames`."""
    if path is None:
        return None
    runs = [r for r in plot.read_reference(path, {task}) if r.method == "mwm (paper)"]
    if not runs:
        return None
    curve = plot.aggregate(runs)
    index = int(np.argmin(np.abs(curve.frames - frames)))
    return {
        "paper_frames": int(curve.frames[index]),
        "paper_mwm_success": float(curve.mean[index]),
        "paper_seeds": curve.num_runs,
    }


def train(args) -> dict:
    if args.short:
        settings = mwm_settings("metaworld", "debug", **SHORT_OVERRIDES)
    else:
        settings = mwm_settings("metaworld", **LOOP_OVERRIDES)
    device = args.device if args.device == "cuda" else None
    loop = CoreLoop(args.task, settings, device=device, num_envs=args.num_envs)
    report = loop.run(
        **({"agent_steps": 150} if args.short else {"minutes": args.minutes})
    )
    for evaluation in report["evaluations"]:
        paper = paper_success(args.paper_scores, args.task, evaluation["env_frames"])
        evaluation.update(paper or {})
    report["task"] = args.task
    report["overrides"] = SHORT_OVERRIDES if args.short else LOOP_OVERRIDES
    report["presets"] = ["metaworld", "debug"] if args.short else ["metaworld"]
    return report


def summarize(updates: list[dict | None], report: dict | None) -> dict:
    summary = {}
    for data in updates:
        for row in (data or {}).get("results", []):
            key = row["update"] + " " + row["precision"]
            key += " compiled" if data["meta"]["compile"] else ""
            summary[key] = {
                "seconds": round(row["median_s"], 4),
                "tflop": round(row["tflop"], 4),
                "peak_gpu_gib": round(row.get("peak_gpu_gib", float("nan")), 2),
                "mfu": round(row.get("mfu", float("nan")), 4),
                "fraction_of_bf16_matmul": round(row["fraction_of_bf16_matmul"], 4),
            }
        if data:
            meta = data["meta"]
            summary["matmul_gflops"] = {
                k: round(v) for k, v in meta.items() if k.startswith("matmul_")
            }
    if report:
        summary["train"] = {
            k: report[k]
            for k in (
                "task",
                "phase",
                "agent_steps",
                "env_frames",
                "train_agent_steps_per_s",
                "precision",
                "evaluations",
            )
        }
    return summary


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="bench_results/gpu")
    parser.add_argument("--minutes", type=float, default=2.5)
    parser.add_argument("--task", default="metaworld_reach")
    parser.add_argument("--num-envs", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--paper-scores",
        help="the paper's scores, the released code's scores/score.json "
        "(without it: no paper success beside ours)",
    )
    parser.add_argument("--short", action="store_true")
    parser.add_argument(
        "--device", default="cuda" if torch.cuda.is_available() else "cpu"
    )
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    start = time.perf_counter()
    device_name = torch.cuda.get_device_name() if args.device == "cuda" else "cpu"
    print(f"gpu_check: torch {torch.__version__} on {device_name}", flush=True)
    precisions = "fp32" if args.short or args.device == "cpu" else "fp32,bf16"
    updates = bench(args, "updates", [f"--precisions={precisions}"], 120)
    report = None
    try:
        report = train(args)
        Path(args.out, "train.json").write_text(json.dumps(report, indent=2))
    except Exception as error:  # Report it; the compiled benchmark still runs.
        print(f"gpu_check: training run failed: {type(error).__name__}: {error}")
    compiled = None
    if not args.short and args.device == "cuda":
        extra = ["--precisions=bf16", "--compile"]
        compiled = bench(args, "updates_compiled", extra, 130)
    summary = summarize([updates, compiled], report)
    summary["device"] = device_name
    summary["torch"] = torch.__version__
    summary["ray_imported"] = "ray" in sys.modules
    summary["wall_s"] = round(time.perf_counter() - start, 1)
    Path(args.out, "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))
    failed = updates is None or report is None
    failed |= not args.short and args.device == "cuda" and compiled is None
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
