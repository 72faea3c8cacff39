"""bf16 vs fp32 parity: the same init, the same stream of real Meta-world batches,
`--updates` MAE + world-model/actor-critic updates in each precision; the final
smoothed losses must agree within `--rtol` (default 5 %) and stay finite.

    python scripts/precision_parity.py --out bench_results/parity.json \
        [--updates 300] [--widths default|debug] [--device cpu|cuda]

Prints one JSON line and exits 1 when the check fails. `tests/test_perf.py` runs
its short form (`parity(...)` with debug widths and a few updates).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

os.environ.setdefault("RAY_AUTH_MODE", "disabled")

import numpy as np  # noqa: E402
import torch  # noqa: E402

import rllib_mwm  # noqa: E402  (process set-up before simulator imports)
from rllib_mwm.core.replay.episodes import random_episode  # noqa: E402
from rllib_mwm.rllib.config import PRESETS, MWMConfig  # noqa: E402
from rllib_mwm.rllib.replay import MWMReplayBuffer  # noqa: E402

#: Losses compared, as the learner reports them.
LOSSES = (
    "mae/mae_pixel_loss",
    "world_model/feature_loss",
    "world_model/kl_loss",
    "world_model/reward_loss",
    "critic/critic_loss",
)
_WIDTH_KEYS = (
    "mae",
    "wm_flat_vit",
    "rssm",
    "reward_head",
    "discount_head",
    "actor",
    "critic",
    "imag_horizon",
)


def batch_stream(
    updates: int, batch: int, length: int, episodes: int = 4, time_limit: int = 250
) -> list:
    """Fixed (MAE batch, world-model batch) pairs from random-action episodes of
    `metaworld_reach` (real frames and shaped rewards), seeded."""
    env = rllib_mwm.make_env(
        "metaworld_reach", seed=0, fast_render=True, time_limit=time_limit
    )
    replay = MWMReplayBuffer(capacity=100_000, minlen=length, seed=0)
    try:
        for episode_seed in range(episodes):
            replay.add_episode(random_episode(env, episode_seed))
    finally:
        env.close()
    stream = []
    for _ in range(updates):
        seqs = replay.sample(batch, length)
        seqs.pop("success")
        stream.append(({"obs": seqs["obs"], "rewards": seqs["rewards"]}, seqs))
    return stream


def build_learner(precision: str, widths: str, device: str):
    import gymnasium as gym

    obs_space = gym.spaces.Box(0, 255, (64, 64, 3), np.uint8)
    act_space = gym.spaces.Box(-1.0, 1.0, (4,), np.float32)
    config = MWMConfig().environment(
        observation_space=obs_space, action_space=act_space
    )
    if widths == "debug":
        config.training(**{k: PRESETS["debug"][k] for k in _WIDTH_KEYS})
    config.training(precision=precision, mae_opt={"warmup": 10})
    config.learners(num_gpus_per_learner=1 if device == "cuda" else 0)
    config.validate_mwm()
    return config.build_learner(spaces={"default_policy": (obs_space, act_space)})


def run(precision: str, stream: list, widths: str, device: str, seed: int = 0):
    torch.manual_seed(seed)
    learner = build_learner(precision, widths, device)
    history = {key: [] for key in LOSSES}
    for mae_batch, wm_batch in stream:
        metrics = learner.update_mae(mae_batch)
        metrics.update(learner.update_world_model(wm_batch))
        for key in LOSSES:
            history[key].append(metrics[key])
    return history


def smoothed(values: list[float], window: int) -> float:
    return float(np.mean(values[-window:]))


def parity(
    updates: int,
    widths: str = "default",
    device: str = "cpu",
    batch: int = 8,
    length: int = 16,
    rtol: float = 0.05,
    **stream_kwargs,
) -> dict:
    """Runs both precisions and compares the last-`window` means of each loss."""
    stream = batch_stream(updates, batch, length, **stream_kwargs)
    window = max(1, updates // 10)
    final = {}
    for precision in ("fp32", "bf16"):
        history = run(precision, stream, widths, device)
        final[precision] = {k: smoothed(v, window) for k, v in history.items()}
    rel = {
        k: abs(final["bf16"][k] - final["fp32"][k]) / max(abs(final["fp32"][k]), 1e-8)
        for k in LOSSES
    }
    finite = all(np.isfinite(v) for p in final.values() for v in p.values())
    return {
        "updates": updates,
        "widths": widths,
        "device": device,
        "batch": [batch, length],
        "window": window,
        "final": final,
        "relative_difference": rel,
        "rtol": rtol,
        "ok": finite and max(rel.values()) <= rtol,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="bench_results/parity.json")
    parser.add_argument("--updates", type=int, default=300)
    parser.add_argument("--widths", default="default", choices=["default", "debug"])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--length", type=int, default=16)
    parser.add_argument("--rtol", type=float, default=0.05)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    result = parity(
        args.updates, args.widths, args.device, args.batch, args.length, args.rtol
    )
    print(json.dumps(result))
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
