"""The `rllib` command: classic YAML translation, errors, the original flags, and
real runs (MWM from the debug tuned example with checkpoint + resume, PPO)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image, ImageSequence
from ray.tune.search.sample import Domain
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from rllib_mwm import MWMConfig
from rllib_mwm.tools.cli import (
    CLIError,
    check_experiment,
    experiment_from_dict,
    load_experiments,
    main,
)
from rllib_mwm.tools.train import build_experiment

ROOT = Path(__file__).resolve().parents[1]
DEBUG_YAML = ROOT / "tuned_examples" / "mwm" / "debug.yaml"


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "experiment.yaml"
    path.write_text(text)
    return str(path)


def test_classic_keys_are_translated(tmp_path):
    (experiment,) = load_experiments(
        write(
            tmp_path,
            "cartpole-ppo:\n"
            "  run: PPO\n"
            "  env: CartPole-v1\n"
            "  local_dir: /tmp/results\n"
            "  checkpoint_freq: 5\n"
            "  checkpoint_at_end: true\n"
            "  keep_checkpoints_num: 2\n"
            "  stop: {episode_reward_mean: 150, timesteps_total: 100000}\n"
            "  config:\n"
            "    num_workers: 1\n"
            "    lr: {grid_search: [0.001, 0.0001]}\n"
            "    gamma: {uniform: [0.9, 0.99]}\n",
        )
    )
    assert experiment.run == "PPO" and experiment.storage_path == "/tmp/results"
    assert experiment.checkpoint == {
        "checkpoint_frequency": 5,
        "checkpoint_at_end": True,
        "num_to_keep": 2,
    }
    assert experiment.stop == {
        "env_runners/episode_return_mean": 150,
        "num_env_steps_sampled_lifetime": 100000,
    }
    space = experiment.param_space
    assert space["env"] == "CartPole-v1" and space["num_workers"] == 1
    assert space["lr"] == {"grid_search": [0.001, 0.0001]}
    assert isinstance(space["gamma"], Domain)
    assert 0.9 <= space["gamma"].sample() <= 0.99


def test_mwm_keeps_its_own_timesteps_total():
    experiment = experiment_from_dict(
        "x", {"run": "MWM", "stop": {"timesteps_total": 10, "agent_steps": 5}}
    )
    assert experiment.stop == {"timesteps_total": 10, "agent_steps": 5}


@pytest.mark.parametrize(
    "body, message",
    [
        ({"env": "CartPole-v1"}, "needs `run: <algorithm>`"),
        ({"run": "PPO", "restore": "x"}, r"unknown key\(s\) \['restore'\]"),
        ("PPO", "expected a mapping"),
    ],
)
def test_bad_experiments_are_rejected(body, message):
    with pytest.raises(CLIError, match=message):
        experiment_from_dict("x", body)


def test_malformed_yaml_is_one_line_with_the_line_number(tmp_path, capsys):
    path = write(tmp_path, "a:\n  run: MWM\n  config: {mask_ratio: [1, 2}\n")
    assert main(["train", "file", path]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert f"{path}:3: malformed YAML" in err


@pytest.mark.parametrize(
    "config, message",
    [
        ('{"mask_ration": 0.5}', "Unknown MWMConfig key 'mask_ration'.*'mask_ratio'"),
        ('{"mask_ratio": 1.5}', r"mask_ratio must be in \[0, 1\)"),
        ("{mask_ratio: 1}", "--config is not valid JSON"),
        (
            '{"num_gpus_per_learner": 0.3}',
            r"experiment 'MWM_metaworld_reach': num_gpus_per_learner 0.3 leaves 0.1 "
            r"of each GPU unused .* use a 1/n share: 0.333",
        ),
        ('{"num_gpus_per_learner": {"auto": 2}}', "a learner runs on one GPU"),
    ],
)
def test_bad_config_fails_before_ray_starts(config, message, capsys):
    argv = ["train", "--algo", "MWM", "--env", "metaworld_reach", "--config", config]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert re.search(message, err), err


def test_unknown_algorithm_is_named(capsys):
    assert main(["train", "--algo", "NoSuchAlgo", "--env", "CartPole-v1"]) == 2
    assert "unknown algorithm 'NoSuchAlgo'" in capsys.readouterr().err


def test_original_flags_build_the_same_config_as_the_yaml(tmp_path):
    experiment, resume = build_experiment(
        [
            "--logdir",
            str(tmp_path / "logs" / "peg"),
            "--configs",
            "defaults",
            "metaworld",
            "--task",
            "metaworld_peg_insert_side",
            "--steps",
            "502000",
            "--mae.reward_pred",
            "True",
            "--mae.early_conv",
            "False",
            "--discount",
            "0.98",
            "--precision",
            "32",
            "--grad_heads",
            "[reward]",
            "--time_limit",
            "100",
        ]
    )
    (from_yaml,) = load_experiments(
        write(
            tmp_path,
            "peg:\n"
            "  run: MWM\n"
            "  env: metaworld_peg_insert_side\n"
            "  stop: {agent_steps: 502000}\n"
            "  config:\n"
            "    presets: [metaworld]\n"
            "    mae: {reward_pred: true, early_conv: false}\n"
            "    gamma: 0.98\n"
            "    precision: fp32\n"
            "    grad_heads: [reward]\n"
            "    env_config: {time_limit: 100}\n"
            "    num_gpus_per_learner: auto\n",  # The original trained on the GPU.
        )
    )
    assert not resume and experiment.stop == from_yaml.stop
    assert experiment.name == "peg"
    assert experiment.storage_path == str(tmp_path / "logs")
    flags = MWMConfig().update_from_dict(experiment.param_space)
    yaml_config = MWMConfig().update_from_dict(from_yaml.param_space)
    assert flags.to_dict() == yaml_config.to_dict()
    assert flags.mae["early_conv"] is False and flags.gamma == 0.98
    assert flags.env_config == {"time_limit": 100, "action_repeat": 2}
    assert experiment.param_space["num_gpus_per_learner"] == "auto"
    cpu, _ = build_experiment(
        ["--logdir", "x", "--task", "metaworld_reach", "--num_gpus_per_learner", "0"]
    )
    assert cpu.param_space["num_gpus_per_learner"] == 0


def test_original_flags_reject_unknown_keys():
    experiment, _ = build_experiment(
        ["--logdir", "x", "--task", "metaworld_reach", "--mae.rewardpred", "True"]
    )
    with pytest.raises(ValueError, match="Unknown MWMConfig.mae key 'rewardpred'"):
        MWMConfig().update_from_dict(experiment.param_space)


# ------------------------------------------------------------------ real runs
def rllib(*args: str, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    return subprocess.Popen(
        [sys.executable, "-m", "rllib_mwm", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        **kwargs,
    )


def iterations(trial_dir: Path) -> list[int]:
    lines = (trial_dir / "result.json").read_text().splitlines()
    return [json.loads(line)["training_iteration"] for line in lines]


# A kill loop of about 2 minutes: `slow`, so that the default run stays under
# 10 minutes on the 2-core CI machine (it was at 649 s with it).
@pytest.mark.slow
def test_debug_tuned_example_runs_checkpoints_and_resumes(tmp_path):
    args = ["train", "file", str(DEBUG_YAML), "--storage-path", str(tmp_path)]
    stop = ["--stop", '{"training_iteration": 5}']
    first = rllib(*args, *stop, start_new_session=True)
    experiment = tmp_path / "mwm-debug"
    deadline = time.time() + 600
    while not list(experiment.glob("*/checkpoint_000002")) and time.time() < deadline:
        assert first.poll() is None, first.stdout.read()
        time.sleep(2)
    os.killpg(first.pid, signal.SIGKILL)  # Interrupt the run mid-way.
    first.wait()
    (trial,) = [p for p in experiment.iterdir() if p.is_dir()]
    second = rllib(*args, *stop, "--resume")
    out, _ = second.communicate(timeout=600)
    assert second.returncode == 0, out
    assert "resuming" in out and "| eval " in out
    resumed = [int(i) for i in re.findall(r"\] iter +(\d+) \|", out)]
    # Continued from the last checkpoint (>= iteration 2), not from iteration 1.
    assert resumed[0] > 2 and resumed[-1] == 5, resumed
    result = json.loads((trial / "result.json").read_text().splitlines()[-1])
    assert result["training_iteration"] == 5
    assert result["phase"] == "train" and result["agent_steps"] > 100
    # The tuned example keeps its last 2 checkpoints (each holds the replay).
    checkpoints = sorted(trial.glob("checkpoint_*"))
    assert len(checkpoints) == 2, checkpoints
    assert_quiet_with_summary(out, checkpoints[-1], resumed)
    # The open-loop report is in the trial directory, for `tensorboard --logdir`.
    assert open_loop_images(trial) and list(trial.glob("open_loop/*.gif"))

    evaluate = rllib("evaluate", str(checkpoints[-1]), "--episodes", "2")
    out, _ = evaluate.communicate(timeout=300)
    assert evaluate.returncode == 0, out
    assert re.search(r"2 episodes of metaworld_reach: return -?\d", out), out
    assert re.search(r"success rate (0|1)\.\d\d", out), out
    gif = Image.open(trial / f"{checkpoints[-1].name}_eval.gif")  # the default
    assert gif.size == (64, 64) and gif.n_frames > 1
    # Every observation of the 2 episodes of 50 steps, at 20 frames per second
    # (a frame equal to the one before is merged into it, durations summed).
    duration = sum(frame.info["duration"] for frame in ImageSequence.Iterator(gif))
    assert duration == 2 * (50 + 1) * 1000 // 20


def open_loop_images(directory: Path) -> list:
    """Open-loop image summaries in the event files of `directory`."""
    images = []
    for path in directory.glob("events.out.tfevents.*"):
        events = EventAccumulator(str(path), size_guidance={"images": 0})
        events.Reload()
        tag = "open_loop/truth_reconstruction_prediction"
        images += events.Images(tag) if tag in events.Tags()["images"] else []
    return images


def assert_quiet_with_summary(out: str, checkpoint: Path, iterations: list) -> None:
    """One progress line per iteration; no Ray or RLlib info/warning lines; a
    summary with the evaluations, checkpoint and commands at the end."""
    trial = checkpoint.parent
    lines = [line for line in out.splitlines() if line.strip()]
    progress = [line for line in lines if re.search(r"\] iter +\d+ \|", line)]
    assert iterations == list(range(iterations[0], iterations[-1] + 1))
    assert all(line.endswith(" | learner: cpu") for line in progress), progress
    for noise in ("Checkpoint successfully created", "DeprecationWarning", "INFO"):
        assert noise not in out, out
    summary = lines[lines.index(progress[-1]) + 1 :]
    text = "\n".join(summary)
    assert summary[0].startswith("mwm-debug: 1 trial(s), 0 failed, wall time "), text
    assert re.search(r"best eval: return -?[\d.]+, success [01]\.\d\d at", text)
    assert re.search(r"last eval: return -?[\d.]+, success [01]\.\d\d at", text)
    assert f"checkpoint: {checkpoint}" in text
    assert f"--logdir {trial.parent}" in text
    evaluate = rf"evaluate: +\S*rllib evaluate {re.escape(str(checkpoint))} "
    assert re.search(evaluate, text), text
    assert re.search(r"resume: +\S*rllib train file \S+debug.yaml .*--resume", text)
    # Nothing else: "resuming ...", the progress lines, the (indented) summary.
    assert len(lines) == 1 + len(progress) + len(summary), out
    assert all(line.startswith("  ") for line in summary[1:]), text


def train_ppo_one_iteration(env: str, storage, *flags: str, config: str = "{}"):
    """`rllib train --algo PPO` for one iteration on `env` into `storage`, with
    `config` (JSON) besides `num_env_runners: 0`."""
    return rllib(
        "train",
        "--algo",
        "PPO",
        "--env",
        env,
        "--config",
        json.dumps({"num_env_runners": 0, **json.loads(config)}),
        "--stop",
        '{"training_iteration": 1}',
        "--storage-path",
        str(storage),
        *flags,
    )


@pytest.mark.slow  # ~45 s: PPO through the `rllib` command, Ray started twice
def test_any_registered_algorithm_trains_verbosely(tmp_path):
    run = train_ppo_one_iteration(
        "CartPole-v1",
        tmp_path,
        "--checkpoint-at-end",
        "--verbose",
        config='{"num_gpus_per_learner": "auto"}',
    )
    out, _ = run.communicate(timeout=300)
    assert run.returncode == 0, out
    # `auto`: the learner on a GPU where Ray finds one, else on the CPU, warned once.
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    (progress,) = [
        line for line in out.splitlines() if re.search(r"\] iter +1 \|", line)
    ]
    assert progress.endswith(f"| learner: {device}"), progress
    warnings = [
        line for line in out.splitlines() if "the Ray cluster has no GPU" in line
    ]
    assert warnings == (
        []
        if device == "cuda"
        else [
            "rllib: warning: the Ray cluster has no GPU: experiment 'PPO_CartPole-v1' "
            "(num_gpus_per_learner: auto) trains its learner on the CPU, much slower; "
            "add a GPU node, or set num_gpus_per_learner: 0 to silence this"
        ]
    )
    (trial,) = [p for p in (tmp_path / "PPO_CartPole-v1").iterdir() if p.is_dir()]
    assert iterations(trial) == [1]
    # --verbose shows Ray's and RLlib's own lines (hidden by default).
    assert "Checkpoint successfully created" in out, out
    assert "no evaluation" in out and f"checkpoint: {trial}" in out


def test_a_failed_trial_shows_in_the_quiet_console(tmp_path):
    run = train_ppo_one_iteration("NoSuchEnv-v0", tmp_path)
    out, _ = run.communicate(timeout=300)
    assert run.returncode == 1, out
    assert "NoSuchEnv-v0" in out  # Tune's error line, with the cause.
    lines = out.splitlines()
    (summary,) = [line for line in lines if line.startswith("PPO_NoSuchEnv-v0: ")]
    assert "1 trial(s), 1 failed" in summary
    # It failed before its first iteration: its error first, no resume hint.
    first = lines.index(summary) - 1
    assert re.search(r"\] failed before its first iteration: .+", lines[first]), out
    assert lines[first].endswith("error.txt"), out
    after = lines[first:]
    assert not any(
        line.strip().startswith(("resume:", "TensorBoard:")) for line in after
    )


def test_quiet_console_hides_only_tunes_stale_checkpoint_error():
    """After --resume, Tune may fail to delete a checkpoint it deleted before the
    kill; that line is hidden in the quiet console, other errors are not."""
    import logging

    from rllib_mwm.tools.console import _StaleCheckpointFilter

    def record(error):
        try:
            raise error
        except Exception:
            exc_info = sys.exc_info()
        return logging.LogRecord(
            "ray.tune.execution.tune_controller",
            logging.ERROR,
            __file__,
            1,
            "Trial %s: Error handling checkpoint %s",
            ("t", "c"),
            exc_info,
        )

    stale = FileNotFoundError("Path not found: (fs, /x/trial/checkpoint_000000)")
    keep = _StaleCheckpointFilter().filter
    assert not keep(record(stale))
    assert keep(record(FileNotFoundError("Path not found: /x/trial/result.json")))
    assert keep(record(OSError("checkpoint_000001: no space left on device")))


def test_suspicious_values_are_warned_once_before_the_run(capsys, monkeypatch):
    import rllib_mwm.rllib.config as config_module

    monkeypatch.setattr(config_module, "_WARNED", set())
    config = {
        "env": "metaworld_reach",
        "presets": ["debug"],
        "replay": {"capacity": 60},
    }
    experiment = experiment_from_dict("mwm", {"run": "MWM", "config": config})
    check_experiment(experiment)
    check_experiment(experiment)
    err = capsys.readouterr().err
    assert err.count("rllib: warning: replay.capacity 60 is below prefill 100") == 1


def test_original_flags_go_through_the_released_config_translation():
    experiment, _ = build_experiment(
        [
            "--logdir",
            "x",
            "--task",
            "metaworld_reach",
            "--reward_head.layers",
            "[64, 64]",
        ]
    )
    assert experiment.param_space["reward_head"] == {"layers": 2, "units": 64}
    with pytest.raises(CLIError, match="rssm.norm = 'layer' is not supported"):
        build_experiment(
            ["--logdir", "x", "--task", "metaworld_reach", "--rssm.norm", "layer"]
        )
