"""Replay checkpoint cost: seconds, bytes written and extra RSS per checkpoint of
an `MWMReplayBuffer` holding N agent steps, then of a second checkpoint after
10K more steps, and the restore.

    .venv/bin/python scripts/bench_replay_checkpoint.py --mode store \
        --steps 100000 1000000 --out bench_results/replay_checkpoint_store.json
    .venv/bin/python scripts/bench_replay_checkpoint.py --mode embedded ...

`--mode embedded` is the code path before episode files (no `directory`: the
whole replay is pickled into every checkpoint); `--mode store` writes each
episode once as a compressed file and checkpoints list the files. Episodes are
synthetic: 250 steps of one real Meta-world episode's frames (reach, random
actions), each shifted by its own offset, so frames compress as real ones do.
RSS is sampled every 5 ms from /proc/self/statm; "extra" is the peak during the
checkpoint minus the RSS before it.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

EPISODE = 250  # agent steps of a Meta-world episode (251 stored steps)
MORE = 10_000  # steps added before the second checkpoint


def base_frames() -> np.ndarray:
    import rllib_mwm  # noqa: F401  (rendering set-up)
    from rllib_mwm.core.envs.registry import make_env
    from rllib_mwm.core.replay.episodes import random_episode

    env = make_env("metaworld_reach", time_limit=EPISODE, fast_render=True)
    try:
        return random_episode(env, seed=0)["obs"]  # (251, 64, 64, 3)
    finally:
        env.close()


def synthetic_episode(frames: np.ndarray, i: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(i)
    n = len(frames)
    obs = np.roll(frames, (int(rng.integers(n)), int(rng.integers(8))), axis=(0, 2))
    return {
        "obs": obs,
        "actions": rng.uniform(-1, 1, (n, 4)).astype(np.float32),
        "rewards": rng.uniform(0, 10, n).astype(np.float32),
        "is_first": np.arange(n) == 0,
        "is_terminal": np.zeros(n, bool),
        "success": np.zeros(n, bool),
    }


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class PeakRSS:
    """Peak RSS while the block runs, sampled every 5 ms."""

    def __enter__(self):
        self.start, self.peak, self._stop = rss(), rss(), threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, rss())

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss())
        self.extra = self.peak - self.start


def du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def fill(replay, frames, start: int, steps: int) -> tuple[int, float]:
    """Adds episodes until `steps` more steps are stored; (next index, seconds)."""
    began, target, i = time.perf_counter(), replay.num_steps_added + steps, start
    while replay.num_steps_added < target:
        replay.add_episode(synthetic_episode(frames, i))
        i += 1
    return i, time.perf_counter() - began


def checkpoint(replay, path: Path, store: Path | None) -> dict:
    store_before = du(store) if store else 0
    with PeakRSS() as memory:
        began = time.perf_counter()
        replay.save_to_path(path)
        seconds = time.perf_counter() - began
    written = du(path) + max(0, (du(store) if store else 0) - store_before)
    return {
        "seconds": round(seconds, 3),
        "bytes_written": written,
        "extra_rss_bytes": memory.extra,
    }


def run(steps: int, mode: str, frames: np.ndarray, work: Path) -> dict:
    import psutil

    from rllib_mwm.core.replay.store import bytes_per_step, check_replay_fits
    from rllib_mwm.rllib.replay import MWMReplayBuffer

    # Refuses (one line) rather than pushing the machine into its OOM killer.
    margin = 2 * 10**9
    available = psutil.virtual_memory().available - margin
    check_replay_fits(steps + MORE, bytes_per_step(frames.shape[1:], 4), available)
    store = work / "replay" if mode == "store" else None
    kwargs = dict(capacity=10**8, minlen=50, maxlen=50, seed=0)
    if store is not None:
        kwargs["directory"] = store
    replay = MWMReplayBuffer(**kwargs)
    index, add_s = fill(replay, frames, 0, steps)
    result = {
        "stored_steps": replay.num_steps,
        "replay_bytes_in_ram": replay.nbytes,
        "add_seconds": round(add_s, 2),
        "rss_before_checkpoint_bytes": rss(),
        "checkpoint": checkpoint(replay, work / "checkpoint_1", store),
    }
    store_before = du(store) if store else 0
    _, more_s = fill(replay, frames, index, MORE)
    result["add_10k_seconds"] = round(more_s, 2)
    result["add_10k_store_bytes"] = (du(store) - store_before) if store else 0
    result["second_checkpoint_after_10k_steps"] = checkpoint(
        replay, work / "checkpoint_2", store
    )
    if store is not None:
        result["store_bytes_total"] = du(store)
    digest = episode_digests(replay)
    del replay  # One copy in memory at a time.
    restored = MWMReplayBuffer(**kwargs)
    began = time.perf_counter()
    restored.restore_from_path(work / "checkpoint_2")
    result["restore_seconds"] = round(time.perf_counter() - began, 2)
    result["restore_identical"] = episode_digests(restored) == digest
    return result


def episode_digests(replay) -> list[tuple[str, int]]:
    """(key, CRC-32 of all arrays) per episode: equal iff bitwise equal (whp)."""
    import zlib

    digests = []
    for key, episode in replay.episodes.items():
        crc = 0
        for name in sorted(episode):
            crc = zlib.crc32(episode[name].tobytes(), crc)
        digests.append((key, crc))
    return digests


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=("store", "embedded"), required=True)
    parser.add_argument("--steps", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--out", help="JSON file (default: print only)")
    parser.add_argument("--workdir", help="where checkpoints go (default: a temp dir)")
    args = parser.parse_args(argv)
    frames = base_frames()
    results = {"mode": args.mode, "runs": {}}
    for steps in args.steps:
        work = Path(tempfile.mkdtemp(prefix="bench_replay_", dir=args.workdir))
        try:
            results["runs"][str(steps)] = run(steps, args.mode, frames, work)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        print(json.dumps({steps: results["runs"][str(steps)]}), flush=True)
    results["peak_rss_bytes"] = (
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    )
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
