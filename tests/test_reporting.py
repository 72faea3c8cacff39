"""What MWM reports and what `rllib train` prints: the success rate only for envs
with a success signal, the open-loop report as a TensorBoard image and a GIF, the
progress line and the end-of-run summary."""

from __future__ import annotations

import shlex
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pyarrow.fs
import pytest
from PIL import Image
from ray.rllib.env.single_agent_episode import SingleAgentEpisode
from ray.rllib.utils.metrics.metrics_logger import MetricsLogger
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import rllib_mwm
from rllib_mwm.rllib.reporting import (
    TensorBoardVideo,
    log_episode_success,
    open_loop_grid,
)
from rllib_mwm.tools import console
from rllib_mwm.tools.console import progress_line


# ------------------------------------------------------------------ success
def real_episode(env_name: str, steps: int = 3) -> SingleAgentEpisode:
    """A few random steps of a real env, with its own info dicts."""
    env_config = {"fast_render": True} if env_name.startswith("metaworld") else {}
    env = rllib_mwm.make_env(env_name, seed=0, **env_config)
    try:
        episode = SingleAgentEpisode()
        obs, info = env.reset(seed=0)
        episode.add_env_reset(obs, infos=info)
        for _ in range(steps):
            action = env.action_space.sample()
            obs, reward, terminated, truncated, info = env.step(action)
            episode.add_env_step(obs, action, reward, infos=info, terminated=terminated)
    finally:
        env.close()
    return episode


def success_after(episode) -> float | None:
    """`success_rate` as RLlib would report it after the episode-end callback."""
    logger = MetricsLogger()
    runner = SimpleNamespace(
        config=SimpleNamespace(metrics_num_episodes_for_smoothing=100)
    )
    log_episode_success(episode=episode, env_runner=runner, metrics_logger=logger)
    value = logger.peek("success_rate", default="absent")
    return None if value == "absent" else value


def test_success_rate_only_for_envs_that_report_success():
    assert success_after(real_episode("metaworld_reach")) in (0.0, 1.0)
    assert success_after(real_episode("dmc_cartpole_balance")) is None


def test_success_rate_is_the_fraction_of_episodes_with_a_success():
    def episode(flags):
        chunk = SingleAgentEpisode()
        chunk.add_env_reset(0, infos={})
        for flag in flags:
            chunk.add_env_step(0, 0, 0.0, infos={"success": flag})
        return chunk

    logger = MetricsLogger()
    runner = SimpleNamespace(
        config=SimpleNamespace(metrics_num_episodes_for_smoothing=4)
    )
    for flags in ([False, True, False], [False, False], [True], [False]):
        log_episode_success(
            episode=episode(flags), env_runner=runner, metrics_logger=logger
        )
    assert logger.peek("success_rate") == pytest.approx(2 / 4)


def test_progress_line_shows_success_only_when_reported():
    result = {
        "training_iteration": 3,
        "agent_steps": 100,
        "time_total_s": 10.0,
        "evaluation": {"env_runners": {"episode_return_mean": 5.0}},
    }
    assert "success" not in progress_line(result)
    result["evaluation"]["env_runners"]["success_rate"] = 0.25
    assert "success 0.25" in progress_line(result)


# ------------------------------------------------------------ open-loop video
def test_open_loop_report_is_an_image_summary_and_a_gif(tmp_path):
    rng = np.random.default_rng(0)
    truth, recon, pred = (
        rng.integers(0, 256, (2, 4, 8, 8, 3), dtype=np.uint8) for _ in range(3)
    )
    grid = open_loop_grid(truth, recon, pred)  # (T, 3H, NW, 3)
    video = TensorBoardVideo(str(tmp_path))
    tag = "open_loop/truth_reconstruction_prediction"
    paths = [video.write(tag, grid, step) for step in (200, 400)]
    video.close()

    events = EventAccumulator(str(tmp_path), size_guidance={"images": 0})
    events.Reload()
    assert tag in events.Tags()["images"]
    images = events.Images(tag)
    assert [image.step for image in images] == [200, 400]
    assert (images[0].height, images[0].width) == (3 * 8, 2 * 8)
    for path in paths:
        assert path.startswith(str(tmp_path / "open_loop"))
        gif = Image.open(path)
        assert gif.size == (2 * 8, 3 * 8) and gif.n_frames == 4
    with open(paths[0], "rb") as f:
        assert f.read() == images[0].encoded_image_string


# ------------------------------------------------------------------ summary
def fake_result(rows, checkpoint=None, error=None, trial_id="t0"):
    return SimpleNamespace(
        metrics_dataframe=pd.DataFrame(rows),
        metrics={"trial_id": trial_id},
        checkpoint=checkpoint
        and SimpleNamespace(path=checkpoint, filesystem=pyarrow.fs.LocalFileSystem()),
        path=f"/results/exp/{trial_id}",
        filesystem=pyarrow.fs.LocalFileSystem(),
        error=error,
    )


def eval_row(steps, ret, success=None):
    row = {
        "training_iteration": steps // 10,
        console.EVAL_STEPS: steps,
        console.EVAL_RETURN: ret,
    }
    if success is not None:
        row[console.EVAL_SUCCESS] = success
    return row


def test_evaluations_skip_iterations_without_one():
    rows = [
        {"training_iteration": 1},
        eval_row(100, 1.0, 0.0),
        # Stale evaluation metrics on an iteration without an evaluation.
        {"training_iteration": 11, console.EVAL_RETURN: 1.0},
        eval_row(200, 3.0, 0.5),
    ]
    evals = console.evaluations(pd.DataFrame(rows))
    assert [e["steps"] for e in evals] == [100, 200]
    assert [e["success"] for e in evals] == [0.0, 0.5]


def test_best_evaluation_is_the_highest_success_then_return():
    evals = console.evaluations(
        pd.DataFrame(
            [eval_row(100, 9.0, 0.0), eval_row(200, 2.0, 1.0), eval_row(300, 5.0, 1.0)]
        )
    )
    assert console.best_evaluation(evals)["steps"] == 300
    no_success = console.evaluations(
        pd.DataFrame([eval_row(100, 9.0), eval_row(200, 2.0)])
    )
    best = console.best_evaluation(no_success)
    assert best["steps"] == 100 and "success" not in best
    assert "success" not in console.describe(best)


def test_summary_names_evaluations_checkpoint_and_commands():
    results = [
        fake_result(
            [eval_row(100, 1.0, 0.0), eval_row(200, 7.5, 1.0), eval_row(300, 2.0, 0.0)],
            checkpoint="/results/exp/t0/checkpoint_000002",
        ),
        fake_result([], error=RuntimeError("boom\nValueError: bad env"), trial_id="t1"),
    ]
    command = ["train", "file", "my experiment.yaml"]
    lines = console.summary_lines("exp", results, 125.0, "/results/exp", command)
    text = "\n".join(lines)
    assert lines[0].startswith("exp: 2 trial(s), 1 failed, wall time 2m05s")
    assert "[t0] best eval: return 7.5, success 1.00 at 200 agent steps" in text
    assert "[t0] last eval: return 2.0, success 0.00 at 300 agent steps" in text
    assert "[t0] checkpoint: /results/exp/t0/checkpoint_000002" in text
    assert "[t1] failed: ValueError: bad env" in text
    assert "[t1] no evaluation" in text
    assert "--logdir /results/exp" in text
    (evaluate,) = [line for line in lines if line.strip().startswith("evaluate:")]
    assert shlex.split(evaluate)[2:4] == [
        "evaluate",
        "/results/exp/t0/checkpoint_000002",
    ]
    (resume,) = [line for line in lines if line.strip().startswith("resume:")]
    assert shlex.split(resume)[2:] == [*command, "--resume"]


def test_summary_without_success_or_evaluations():
    rows = [eval_row(100, 4.0), {"training_iteration": 20}]
    lines = console.summary_lines("exp", [fake_result(rows)], 1.0, "/r/exp")
    text = "\n".join(lines)
    assert "best eval: return 4.0 at 100 agent steps" in text
    assert "success" not in text and "checkpoint:" not in text
    assert not any(line.strip().startswith("evaluate:") for line in lines)


def test_summary_of_trials_that_failed_before_their_first_iteration():
    error = RuntimeError("Traceback ...\n  File x\nValueError: env crashed at reset\n")
    results = [fake_result([], error=error, trial_id=t) for t in ("t0", "t1")]
    lines = console.summary_lines("exp", results, 3.0, "/results/exp", ["train"])
    assert lines[0] == (
        "[t0] failed before its first iteration: ValueError: env crashed at reset; "
        "error log: /results/exp/t0/error.txt"
    )
    assert lines[1].startswith("[t1] failed before its first iteration")
    assert lines[2].startswith("exp: 2 trial(s), 2 failed")
    assert len(lines) == 3  # No TensorBoard, evaluate or resume line.
