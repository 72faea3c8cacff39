"""What MWM reports besides the learner's losses (docs/algorithm.md §6).

- `log_episode_success`: an env-runner callback logging `success_rate` (an episode
  succeeds if any of its steps reported `info["success"]`) through RLlib's
  MetricsLogger, so it appears next to `episode_return_mean` under
  `env_runners/` and `evaluation/env_runners/`. Only envs with a success signal
  (Meta-world, RLBench) report it; for the others (DMC) it stays out of the
  results instead of reading 0. It also sums, over the run, the episodes that a
  simulator error ended (`info["env_error"]`, `rllib_mwm.core.envs.wrappers`) under
  `env_errors`.
- `open_loop_grid` / `TensorBoardVideo`: the open-loop prediction report (truth /
  MAE reconstruction / model prediction for a few sequences) written as an
  animated image to TensorBoard and as a GIF, without going through the result
  dict (a video there would be serialized into every `result.json` line).

The progress line `rllib train` prints is `rllib_mwm.tools.console`'s.
"""

from __future__ import annotations

import io
import os

import numpy as np


def episode_success(chunks) -> bool | None:
    """Whether any step of the episode's chunks reported `info["success"]`;
    None if the env never reports it."""
    flags = [
        bool(info["success"])
        for chunk in chunks
        for info in chunk.get_infos()
        if isinstance(info, dict) and "success" in info
    ]
    return any(flags) if flags else None


def episode_env_errors(chunks) -> int:
    """How many steps of the episode's chunks report `info["env_error"]`."""
    return sum(
        1
        for chunk in chunks
        for info in chunk.get_infos()
        if isinstance(info, dict) and "env_error" in info
    )


def log_episode_success(
    *, episode, env_runner, metrics_logger, prev_episode_chunks=(), **_
):
    """`on_episode_end` callback: logs 1.0/0.0 under `success_rate`, averaged
    over the same window as RLlib's `episode_return_mean` (nothing for an env
    that never reports `info["success"]`), and adds the episode's simulator
    errors to `env_errors`, a sum over the run."""
    chunks = [*prev_episode_chunks, episode]
    metrics_logger.log_value(
        "env_errors", episode_env_errors(chunks), reduce="lifetime_sum"
    )
    success = episode_success(chunks)
    if success is None:
        return
    metrics_logger.log_value(
        "success_rate",
        float(success),
        reduce="mean",
        window=env_runner.config.metrics_num_episodes_for_smoothing,
    )


def redirect_default_results(directory: str) -> str:
    """Algorithms built outside Tune (`config.build_algo()`) make their log
    directory (and MWM its episode files and open-loop reports) under Ray's
    default storage path, `~/ray_results`; this puts them under `directory`
    instead (tests, benchmarks). Returns `directory`."""
    from ray.tune.trainable import trainable

    trainable.DEFAULT_STORAGE_PATH = directory
    return directory


def open_loop_grid(truth: np.ndarray, recon: np.ndarray, pred: np.ndarray):
    """(N, T, H, W, 3) uint8 each → (T, 3·H, N·W, 3): rows truth/recon/prediction."""
    rows = [np.concatenate(list(x), axis=2) for x in (truth, recon, pred)]
    return np.concatenate(rows, axis=1)  # (T, 3H, NW, 3)


def gif_bytes(frames: np.ndarray, fps: int = 10) -> bytes:
    """(T, H, W, 3) uint8 → an animated GIF."""
    from PIL import Image

    images = [Image.fromarray(frame) for frame in frames]
    buffer = io.BytesIO()
    images[0].save(
        buffer,
        format="GIF",
        save_all=True,
        append_images=images[1:],
        duration=int(1000 / fps),
        loop=0,
    )
    return buffer.getvalue()


class TensorBoardVideo:
    """Writes animated images into a TensorBoard event file in `logdir`, and
    each one as a GIF beside it."""

    def __init__(self, logdir: str):
        self.logdir = logdir
        self._writer = None

    def write(self, tag: str, frames: np.ndarray, step: int) -> str:
        """frames (T, H, W, 3) uint8 at TensorBoard step `step`. Also saves
        `<logdir>/<tag's folder>/<step, 9 digits>.gif` and returns its path."""
        from tensorboard.compat.proto.summary_pb2 import Summary
        from torch.utils.tensorboard import SummaryWriter

        if self._writer is None:
            self._writer = SummaryWriter(self.logdir)
        encoded = gif_bytes(frames)
        height, width = frames.shape[1:3]
        image = Summary.Image(
            height=height, width=width, colorspace=3, encoded_image_string=encoded
        )
        summary = Summary(value=[Summary.Value(tag=tag, image=image)])
        self._writer._get_file_writer().add_summary(summary, step)
        self._writer.flush()
        folder = os.path.join(self.logdir, os.path.dirname(tag))
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, f"{step:09d}.gif")
        with open(path, "wb") as f:
            f.write(encoded)
        return path

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
