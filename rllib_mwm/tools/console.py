"""Everything `rllib train` prints.

- `progress_line` / `ProgressPrinter`: one line per iteration of every trial
  (steps, frames, speed, returns, evaluation, ETA); `duration` writes the times.
- `quiet_console` / `ray_init_kwargs`: by default Ray's and RLlib's info and
  warning lines are hidden. The driver's `ray`, `ray.rllib`, `ray.tune` and
  `ray.train` loggers are set to ERROR, Python's deprecation warnings are
  ignored and Tune prints no header; the workers' output (the trial actors'
  "Checkpoint successfully created", RLlib's deprecation warnings, the core
  workers' lines) stays in Ray's session logs (`ray.init(log_to_driver=False)`).
  Errors still show: a failed trial is logged by Tune on the driver at ERROR,
  and the summary names it. `--verbose` keeps everything.
- `learner_device`: where a trial's learner trains (`cuda` or `cpu`), for the
  progress line (`cluster.BudgetProgressPrinter`).
- `summary_lines`: the end of a run: per trial the best and last evaluation
  (return, and success where the env reports it) and the newest checkpoint,
  then the wall time and the commands for TensorBoard, `rllib evaluate` and
  `--resume`.
"""

from __future__ import annotations

import logging
import math
import os
import shlex
import sys
import warnings
from collections.abc import Iterable
from typing import Any

from ray.tune import Callback

#: Result columns (Tune's `metrics_dataframe`, nested keys joined with "/").
EVAL_RETURN = "evaluation/env_runners/episode_return_mean"
EVAL_SUCCESS = "evaluation/env_runners/success_rate"
EVAL_STEPS = "evaluation/agent_steps"  # MWM marks its evaluation results with it.
#: Trials listed by name in the summary (the best ones); the rest are counted.
SUMMARY_TRIALS = 10
QUIET_LOGGERS = ("ray", "ray.rllib", "ray.tune", "ray.train")


# ------------------------------------------------------------------- logging
def quiet_console() -> None:
    """Hides Ray's and RLlib's info and warning lines in this process. Tune's
    new output engine prints its experiment header at any verbosity; its
    legacy one (`RAY_AIR_NEW_OUTPUT=0`) prints nothing at `verbose=0`."""
    os.environ["RAY_AIR_NEW_OUTPUT"] = "0"
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    controller = logging.getLogger("ray.tune.execution.tune_controller")
    if not any(isinstance(f, _StaleCheckpointFilter) for f in controller.filters):
        controller.addFilter(_StaleCheckpointFilter())
    for category in (DeprecationWarning, PendingDeprecationWarning, FutureWarning):
        warnings.filterwarnings("ignore", category=category)
    warnings.filterwarnings("ignore", module=r"ray(\.|$)")


class _StaleCheckpointFilter(logging.Filter):
    """Hides Tune's "Error handling checkpoint … FileNotFoundError … checkpoint_*"
    after `--resume`: the experiment state saved before a kill still listed a
    checkpoint that `num_to_keep` had already deleted, and Tune fails to delete it
    again. Nothing is lost (the run goes on from the newest checkpoint); it is a
    warning-level event, shown with `--verbose`."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return not (
            isinstance(error, FileNotFoundError)
            and "checkpoint_" in str(error)
            and "Error handling checkpoint" in record.getMessage()
        )


def ray_init_kwargs(verbose: bool) -> dict[str, Any]:
    """`ray.init` keywords: quiet keeps the workers' output in Ray's log files."""
    return {} if verbose else {"log_to_driver": False, "logging_level": logging.ERROR}


def learner_device(config: dict) -> str | None:
    """`cuda` or `cpu`: where RLlib puts the learner of a trial with this
    config (`num_gpus_per_learner` > 0: a GPU, `ray.rllib.utils.framework.
    get_device`); None for a config without the key (not an RLlib algorithm)."""
    gpus = config.get("num_gpus_per_learner")
    if not isinstance(gpus, int | float):
        return None
    return "cuda" if gpus > 0 and not config.get("_fake_gpus") else "cpu"


# ------------------------------------------------------------------- summary
def evaluations(frame) -> list[dict[str, float]]:
    """The evaluations in one trial's results (`Result.metrics_dataframe`), in
    order: `return`, `steps` (agent steps; the iteration for algorithms that do
    not report them, with `unit` "iteration") and `success` where reported."""
    if frame is None or EVAL_RETURN not in frame:
        return []
    rows = frame[frame[EVAL_RETURN].notna()]
    steps, unit = "training_iteration", "iteration"
    if EVAL_STEPS in rows:
        rows, steps, unit = rows[rows[EVAL_STEPS].notna()], EVAL_STEPS, "agent steps"
    found = []
    for _, row in rows.iterrows():
        entry = {"return": float(row[EVAL_RETURN]), "unit": unit}
        entry["steps"] = int(row[steps]) if steps in row else 0
        success = row.get(EVAL_SUCCESS)
        if success is not None and not math.isnan(success):
            entry["success"] = float(success)
        found.append(entry)
    return found


def best_evaluation(evals: list[dict]) -> dict | None:
    """The highest success rate, ties (and envs without success) by return."""
    return max(
        evals, key=lambda e: (e.get("success", -math.inf), e["return"]), default=None
    )


def describe(evaluation: dict) -> str:
    text = f"return {evaluation['return']:.1f}"
    if "success" in evaluation:
        text += f", success {evaluation['success']:.2f}"
    if evaluation["unit"] == "iteration":
        return f"{text} at iteration {evaluation['steps']}"
    return f"{text} at {evaluation['steps']} agent steps"


def summary_lines(
    name: str,
    results: Iterable,
    seconds: float,
    experiment_path: str,
    command: list[str] | None = None,
) -> list[str]:
    """The end of a run of experiment `name` from Tune's results (`Result`s);
    `command` is the argv after the program name, for the resume command.

    Where every trial failed before its first iteration, nothing was trained:
    each one's error comes first, with its error log, and there is no TensorBoard
    or resume command to offer."""
    trials = [_trial(result) for result in results]
    errors = sum(trial["error"] is not None for trial in trials)
    header = (
        f"{name}: {len(trials)} trial(s), {errors} failed, wall time "
        f"{duration(seconds)}; results in {experiment_path}"
    )
    if trials and all(trial["failed_at_start"] for trial in trials):
        lines = [
            f"[{trial['id']}] failed before its first iteration: "
            f"{_last_line(trial['error'])}; error log: {trial['path']}/error.txt"
            for trial in trials
        ]
        return [*lines, header]
    lines = [header]
    order = sorted(trials, key=_rank, reverse=True)
    for trial in order[:SUMMARY_TRIALS]:
        lines += [f"  [{trial['id']}] {line}" for line in _trial_lines(trial)]
    if len(order) > SUMMARY_TRIALS:
        lines.append(f"  ... and {len(order) - SUMMARY_TRIALS} more trials")
    tensorboard = [executable("tensorboard"), "--logdir", experiment_path]
    lines.append(f"  TensorBoard: {shlex.join(tensorboard)}")
    checkpoint = next((t["checkpoint"] for t in order if t["checkpoint"]), None)
    if checkpoint:
        evaluate = [executable("rllib"), "evaluate", checkpoint, "--episodes", "10"]
        lines.append(f"  evaluate:    {shlex.join(evaluate)}")
    if command is None:
        lines.append("  resume:      the same command with --resume")
    else:
        again = [*command, *([] if "--resume" in command else ["--resume"])]
        lines.append(f"  resume:      {shlex.join([executable('rllib'), *again])}")
    return lines


def _trial(result) -> dict[str, Any]:
    evals = evaluations(result.metrics_dataframe)
    checkpoint = result.checkpoint
    if checkpoint is not None:
        checkpoint = _location(checkpoint.path, checkpoint.filesystem)
    frame = result.metrics_dataframe
    return {
        "failed_at_start": result.error is not None and (frame is None or frame.empty),
        "id": (result.metrics or {}).get("trial_id") or os.path.basename(result.path),
        "path": _location(result.path, result.filesystem),
        "best": best_evaluation(evals),
        "last": evals[-1] if evals else None,
        "checkpoint": checkpoint,
        "error": result.error,
    }


def _last_line(error: BaseException) -> str:
    """The last non-empty line of an error (Tune wraps the trial's traceback)."""
    message = [line for line in str(error).splitlines() if line.strip()]
    return message[-1].strip() if message else type(error).__name__


def _trial_lines(trial: dict) -> list[str]:
    lines = []
    if trial["error"] is not None:
        lines.append(f"failed: {_last_line(trial['error'])}")
        lines.append(f"error log: {trial['path']}/error.txt")
    if trial["best"] is None:
        lines.append("no evaluation")
    else:
        lines.append(f"best eval: {describe(trial['best'])}")
        lines.append(f"last eval: {describe(trial['last'])}")
    if trial["checkpoint"]:
        lines.append(f"checkpoint: {trial['checkpoint']}")
    return lines


def _rank(trial: dict) -> tuple:
    best = trial["best"]
    if best is None:
        return (False, -math.inf, -math.inf)
    return (True, best.get("success", -math.inf), best["return"])


def _location(path: str, filesystem) -> str:
    """A local path as is; a path on remote storage as a URI (s3://...)."""
    kind = getattr(filesystem, "type_name", "local")
    return path if kind == "local" else f"{kind}://{path}"


def executable(name: str) -> str:
    """How to call the script `name` installed beside this Python (e.g.
    `.venv/bin/rllib`), relative to the working directory when below it."""
    path = os.path.join(os.path.dirname(sys.executable), name)
    if not os.path.exists(path):
        return name
    relative = os.path.relpath(path)
    if relative.startswith(os.pardir):
        return path
    return relative if os.sep in relative else os.path.join(os.curdir, relative)


# ------------------------------------------------------------------ progress
def progress_line(result: dict, eta_s: float | None = None) -> str:
    """One line per training iteration: steps, frames, speed, returns, ETA."""
    steps = result.get("agent_steps")
    if steps is None:  # Not an MWM result (e.g. PPO through the same CLI).
        steps = result.get("env_runners", {}).get("num_env_steps_sampled_lifetime", 0)
    parts = [f"iter {result.get('training_iteration', 0):>4}"]
    if "phase" in result:
        parts.append(f"{result['phase']:<8}")
    parts.append(f"{int(steps):>8} steps")
    if "env_frames" in result:
        parts.append(f"{int(result['env_frames']):>8} frames")
    elapsed = result.get("time_total_s") or 0.0
    if elapsed:
        parts.append(f"{steps / elapsed:6.1f} steps/s")
    runners = result.get("env_runners", {})
    if "episode_return_mean" in runners:
        parts.append(f"return {runners['episode_return_mean']:8.1f}")
    evaluation = result.get("evaluation", {}).get("env_runners", {})
    if "episode_return_mean" in evaluation:
        text = f"eval {evaluation['episode_return_mean']:8.1f}"
        if "success_rate" in evaluation:
            text += f" success {evaluation['success_rate']:.2f}"
        parts.append(text)
    if eta_s is not None:
        parts.append(f"ETA {duration(eta_s)}")
    return " | ".join(parts)


def eta_seconds(result: dict, stop: dict) -> float | None:
    """Time left until the nearest numeric stop criterion, from the pace so far."""
    elapsed, fractions = result.get("time_total_s") or 0.0, []
    for key, limit in stop.items():
        value = _lookup(result, key)
        if isinstance(limit, int | float) and isinstance(value, int | float) and limit:
            fractions.append(min(1.0, value / limit))
    done = max(fractions, default=0.0)
    return elapsed * (1.0 - done) / done if done and elapsed else None


def _lookup(result: dict, key: str):
    value = result
    for part in key.split("/"):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


class ProgressPrinter(Callback):
    """Tune callback printing `progress_line` for every result of every trial."""

    def __init__(self, stop: dict | None = None):
        self.stop = stop or {}

    def on_trial_result(self, iteration, trials, trial, result, **info):
        line = progress_line(result, eta_seconds(result, self.stop))
        print(f"[{trial.trial_id}] {line}", flush=True)


def duration(seconds: float) -> str:
    """`1h05m` from an hour on, else `4m07s`."""
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{seconds:02d}s"
