"""Update speed that explains itself: seconds, counted FLOPs, achieved GFLOP/s next
to the same run's matmul rates, peak RSS and a per-phase profile.

    python scripts/bench_updates.py --out bench_results/updates.json \
        [--configs paper,16x16] [--precisions fp32,bf16] [--repeats 3] \
        [--threads 2] [--device cpu|cuda] [--compile]

"paper": MAE batch 32×32 frames, world-model batch 50×50 (the Meta-world preset);
"16x16": both batches 16×16. Default widths (the reference architecture); "cpu":
the `metaworld` + `cpu` presets' widths and batches (MAE 16×8 frames, world model
16×16); "debug": the `debug` preset's (smoke runs). 4-dim actions, random uint8
frames (speed does not depend on pixel content). The learner is the core's
(`rllib_mwm.core.learner.CoreLearner`), so this runs without Ray.

Each (config, precision) runs in a fresh child process, so its peak RSS is its
own. The parent measures the 2048² (GPU: 8192²) matmul rate in fp32 and bf16 before
and after the children and reports every update's speed as a fraction of those
rates: on a shared machine the ratio is the number to compare, not the seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

os.environ.setdefault("RAY_AUTH_MODE", "disabled")

import numpy as np  # noqa: E402
import torch  # noqa: E402

import rllib_mwm  # noqa: E402,F401  (process set-up before torch/ray imports)
from rllib_mwm.core import perf  # noqa: E402

#: Dense bf16 peak TFLOP/s by device-name fragment (vendor data sheets), for MFU.
BF16_PEAK_TFLOPS = {"H200": 989.4, "H100": 989.4, "A100": 312.0, "L40S": 362.1}
SHAPES = {
    "paper": ((32, 32), (50, 50)),
    "16x16": ((16, 16), (16, 16)),
    "cpu": ((16, 8), (16, 16)),
    "debug": ((4, 8), (4, 16)),
}
#: Configurations at a preset's widths (the others: the reference widths).
PRESETS = {"cpu": ("metaworld", "cpu"), "debug": ("debug",)}
UPDATES = ("mae", "world_model_actor_critic")
#: Untimed updates first: lazy init, compilation, and the heap growing to its
#: steady size (the second paper-size update still faults in new pages).
WARMUP_UPDATES = 2


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def matmul_gflops(dtype: torch.dtype, device: str, size: int = 2048) -> float:
    """Best-of-5 rate of a size² matmul (2·size³ FLOPs): 2048² on a CPU, 8192² on
    a GPU. Where a 2048² matmul would take over a second (bf16 on a CPU without
    bf16 units: ~0.3 GFLOP/s), 512²."""
    if device == "cuda":
        size = 8192
    small = torch.randn(512, 512, device=device, dtype=dtype)
    small @ small
    sync(device)
    start = time.perf_counter()
    small @ small
    sync(device)
    if (time.perf_counter() - start) * (size / 512) ** 3 > 1.0:
        size = 512
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    a @ b  # Warm-up.
    best = float("inf")
    for _ in range(5):
        sync(device)
        start = time.perf_counter()
        a @ b
        sync(device)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def matmul_rates(device: str) -> dict[str, float]:
    return {
        "fp32": matmul_gflops(torch.float32, device),
        "bf16": matmul_gflops(torch.bfloat16, device),
    }


def peak_tflops(args, measured_bf16_gflops: float) -> tuple[float, str]:
    if args.peak_tflops:
        return args.peak_tflops, "--peak-tflops"
    if args.device == "cuda":
        name = torch.cuda.get_device_name()
        for fragment, peak in BF16_PEAK_TFLOPS.items():
            if fragment in name:
                return peak, f"data sheet ({name})"
    return measured_bf16_gflops / 1e3, "measured bf16 matmul"


def build_learner(device: str, precision: str, compile_: bool, presets=()):
    """A `CoreLearner` (no Ray) at the reference widths, or a preset's."""
    import gymnasium as gym

    from rllib_mwm.core.defaults import MODEL_KEYS, mwm_settings
    from rllib_mwm.core.learner import CoreLearner
    from rllib_mwm.core.model import MWMModel

    obs_space = gym.spaces.Box(0, 255, (64, 64, 3), np.uint8)
    act_space = gym.spaces.Box(-1.0, 1.0, (4,), np.float32)
    settings = mwm_settings(*presets, precision=precision, compile=compile_)
    model_config = {key: getattr(settings, key) for key in MODEL_KEYS}
    model = MWMModel(model_config, act_space, obs_space)
    return CoreLearner(model, settings, device if device == "cuda" else None)


def update_functions(learner, shape: str) -> dict:
    from rllib_mwm.core.replay.episodes import synthetic_batch

    (mb, mt), (wb, wt) = SHAPES[shape]
    rng = np.random.default_rng(0)
    mae_batch = synthetic_batch(mb, mt, 4, rng)
    mae_batch = {"obs": mae_batch["obs"], "rewards": mae_batch["rewards"]}
    wm_batch = synthetic_batch(wb, wt, 4, rng)
    return {
        "mae": lambda: learner.update_mae(mae_batch),
        "world_model_actor_critic": lambda: learner.update_world_model(wm_batch),
    }


def count_flops(fn) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def profile_phases(fn, device: str) -> dict[str, float]:
    """Seconds per `perf.phase` label (inclusive) in one update."""
    activities = [torch.profiler.ProfilerActivity.CPU]
    if device == "cuda":
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    with torch.profiler.profile(activities=activities) as prof:
        fn()
        sync(device)
    phases = {}
    for event in prof.key_averages():
        if event.key in perf.PHASES:
            total = event.device_time_total if device == "cuda" else 0
            phases[event.key] = max(event.cpu_time_total, total) / 1e6
    return dict(sorted(phases.items()))


def run_child(args) -> list[dict]:
    """One (config, precision) in this process: timing, FLOPs, profile, RSS."""
    torch.set_num_threads(args.threads)
    presets = PRESETS.get(args.configs, ())
    learner = build_learner(args.device, args.precision, args.compile, presets)
    rows = []
    for update, fn in update_functions(learner, args.configs).items():
        start = time.perf_counter()
        for _ in range(WARMUP_UPDATES):  # Not timed: see WARMUP_UPDATES.
            fn()
        sync(args.device)
        warmup = time.perf_counter() - start
        times, faults = [], []
        for _ in range(args.repeats):
            sync(args.device)
            before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            start = time.perf_counter()
            fn()
            sync(args.device)
            times.append(time.perf_counter() - start)
            faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
        median = statistics.median(times)
        # Of the plain updates so far, before the FLOP counter and the profiler.
        timed_peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        flops = count_flops(fn)
        rows.append(
            {
                "config": args.configs,
                "precision": args.precision,
                "resolved_precision": perf.resolve_precision(
                    args.precision, args.device
                ),
                "update": update,
                "median_s": median,
                "times_s": times,
                # Pages first touched during each timed update: a handful once
                # the heap has stopped growing; more means heap growth was timed.
                "minor_faults": faults,
                "warmup_s": warmup,
                "tflop": flops / 1e12,
                "gflops_per_s": flops / median / 1e9,
                "phases_s": profile_phases(fn, args.device),
                "timed_peak_rss_gib": timed_peak_kib / 2**20,
            }
        )
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for row in rows:
        # Of the whole child: both updates, the FLOP counter and the profiler.
        row["peak_rss_gib"] = peak_kib / 2**20
        if args.device == "cuda":
            row["peak_gpu_gib"] = torch.cuda.max_memory_allocated() / 2**30
    return rows


def spawn(args, config: str, precision: str) -> list[dict]:
    command = [
        sys.executable,
        __file__,
        "--child",
        f"--configs={config}",
        f"--precision={precision}",
        f"--repeats={args.repeats}",
        f"--threads={args.threads}",
        f"--device={args.device}",
    ] + (["--compile"] if args.compile else [])
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="bench_results/updates.json")
    parser.add_argument("--configs", default="paper,16x16")
    parser.add_argument("--precisions", default="fp32,bf16")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--compile", action="store_true")
    parser.add_argument(
        "--peak-tflops",
        type=float,
        help="device bf16 peak for MFU (default: data sheet for known GPUs, else "
        "the measured bf16 matmul rate)",
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--precision", default="fp32", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(run_child(args)))
        return 0
    torch.set_num_threads(args.threads)
    before = matmul_rates(args.device)
    results = [
        row
        for config in args.configs.split(",")
        for precision in args.precisions.split(",")
        for row in spawn(args, config, precision)
    ]
    after = matmul_rates(args.device)
    fp32 = (before["fp32"] + after["fp32"]) / 2
    bf16 = (before["bf16"] + after["bf16"]) / 2
    rates = {f"matmul_{k}_gflops_before": v for k, v in before.items()}
    rates.update({f"matmul_{k}_gflops_after": v for k, v in after.items()})
    peak, peak_source = peak_tflops(args, bf16)
    for row in results:
        row["fraction_of_fp32_matmul"] = row["gflops_per_s"] / fp32
        row["fraction_of_bf16_matmul"] = row["gflops_per_s"] / bf16
        if args.device == "cuda":  # On a CPU the matmul fractions say it.
            row["mfu"] = row["gflops_per_s"] / 1e3 / peak
        print(json.dumps({k: v for k, v in row.items() if k != "times_s"}))
    meta = {
        "device": args.device,
        "threads": args.threads,
        "compile": args.compile,
        "torch": torch.__version__,
        "cpu": perf.cpu_name(),
        "cpu_bf16_units": perf.cpu_has_bf16_units(),
        "cores": os.cpu_count(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "allocator": perf.tune_allocator(),
        "mfu_peak_tflops": peak,
        "mfu_peak_source": peak_source,
        **rates,
    }
    print(json.dumps(meta))
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({"meta": meta, "results": results}, f, indent=2)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
