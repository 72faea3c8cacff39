"""The `rllib` command (also `rllib_mwm` and `python -m rllib_mwm`).

Ray 2.41 removed RLlib's command line; this restores its classic form for any
algorithm registered with Tune (MWM, PPO, ...):

    rllib train file tuned_examples/mwm/debug.yaml [--resume] [--verbose]
    rllib train --algo MWM --env metaworld_reach --config '{"presets": ["debug"]}' \
        --stop '{"agent_steps": 2000}'
    rllib evaluate <checkpoint> [--episodes 10] [--video out.gif] [--verbose]
    rllib_mwm plot <result dirs...> [--out curves.png] [--reference scores.json]
    rllib_mwm report <experiment dir> [--reference scores.json]

A tuned-example YAML holds one experiment per top-level key (`run`, `env`,
`stop`, `config`, `checkpoint_config`, ...: `EXPERIMENT_KEYS`, listed in the
README). Search spaces (`grid_search`, `choice`, `uniform`, ...) work anywhere in
`config`; a stop limit may map env names to limits (`rllib_mwm.tools.cluster`).
`num_gpus_per_learner: auto` puts the learner on a GPU where the cluster has
one, else on the CPU with a warning; a GPU share a learner cannot use, or a
trial larger than the cluster, is an error before Tune starts. A run prints
one line per iteration and a summary at the end; Ray's and RLlib's own lines
only with `--verbose` (`rllib_mwm.tools.console`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import rllib_mwm  # noqa: F401  (process set-up and registration before ray.rllib)
from rllib_mwm.core.errors import CLIError

EXPERIMENT_KEYS = {
    "run",
    "env",
    "stop",
    "config",
    "checkpoint_config",
    "checkpoint_freq",
    "checkpoint_at_end",
    "keep_checkpoints_num",
    "num_samples",
    "storage_path",
    "local_dir",
    "max_concurrent_trials",
    "max_failures",
}
#: Classic stop keys (old API stack results) → new-API-stack result keys.
STOP_KEYS = {
    "episode_reward_mean": "env_runners/episode_return_mean",
    "evaluation/episode_reward_mean": "evaluation/env_runners/episode_return_mean",
    "sampler_results/episode_reward_mean": "env_runners/episode_return_mean",
    "timesteps_total": "num_env_steps_sampled_lifetime",
}


@dataclass
class Experiment:
    """One experiment of a tuned-example file, in Tune's terms."""

    name: str
    run: str
    param_space: dict[str, Any]
    stop: dict[str, Any] = field(default_factory=dict)
    checkpoint: dict[str, Any] = field(default_factory=dict)
    num_samples: int = 1
    storage_path: str | None = None
    max_concurrent_trials: int | None = None
    max_failures: int = 0


# ------------------------------------------------------------------- parsing
def load_experiments(path: str) -> list[Experiment]:
    """Reads a tuned-example YAML; malformed files raise `CLIError` with the line."""
    import yaml

    try:
        with open(path) as f:
            spec = yaml.safe_load(f)
    except FileNotFoundError as error:
        raise CLIError(f"{path}: no such file") from error
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else path
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise CLIError(f"{where}: malformed YAML: {problem}") from error
    if not isinstance(spec, dict) or not spec:
        raise CLIError(f"{path}: expected experiments as top-level keys")
    return [experiment_from_dict(name, body, path) for name, body in spec.items()]


def experiment_from_dict(name: str, body: Any, where: str = "") -> Experiment:
    """Translates one classic experiment dict; unknown keys raise `CLIError`."""
    from rllib_mwm.tools.cluster import to_search_space

    prefix = f"{where}: experiment {name!r}" if where else f"experiment {name!r}"
    if not isinstance(body, dict):
        raise CLIError(f"{prefix}: expected a mapping with run/env/stop/config")
    unknown = sorted(set(body) - EXPERIMENT_KEYS)
    if unknown:
        raise CLIError(
            f"{prefix}: unknown key(s) {unknown}; valid: {sorted(EXPERIMENT_KEYS)}"
        )
    if "run" not in body:
        raise CLIError(f"{prefix}: needs `run: <algorithm>` (e.g. run: MWM)")
    config = dict(body.get("config") or {})
    if "env" in body:
        config["env"] = body["env"]
    checkpoint = dict(body.get("checkpoint_config") or {})
    for old, new in (
        ("checkpoint_freq", "checkpoint_frequency"),
        ("checkpoint_at_end", "checkpoint_at_end"),
        ("keep_checkpoints_num", "num_to_keep"),
    ):
        if old in body:
            checkpoint[new] = body[old]
    return Experiment(
        name=str(name),
        run=str(body["run"]),
        param_space=to_search_space(config),
        stop=translate_stop(body.get("stop") or {}, str(body["run"])),
        checkpoint=checkpoint,
        num_samples=int(body.get("num_samples", 1)),
        storage_path=body.get("storage_path") or body.get("local_dir"),
        max_concurrent_trials=body.get("max_concurrent_trials"),
        max_failures=int(body.get("max_failures", 0)),
    )


def translate_stop(stop: dict[str, Any], run: str) -> dict[str, Any]:
    """Classic result names → today's; MWM reports `timesteps_total` itself."""
    if not isinstance(stop, dict):
        raise CLIError(f"stop must be a mapping of result keys to limits: {stop!r}")
    table = dict(STOP_KEYS)
    if run == "MWM":
        table.pop("timesteps_total")  # MWM reports it: env frames.
    return {table.get(k, k): v for k, v in stop.items()}


def parse_json(text: str, what: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise CLIError(f"--{what} is not valid JSON ({error.msg}): {text}") from error
    if not isinstance(value, dict):
        raise CLIError(f"--{what} must be a JSON object, got {text}")
    return value


# ------------------------------------------------------------------- running
def check_experiment(experiment: Experiment) -> None:
    """Fails fast, before Ray starts, on an unknown algorithm or a bad config."""
    from ray.tune.registry import get_trainable_cls

    from rllib_mwm.tools import cluster

    rllib_mwm.register()
    # `auto` checked as on a GPU cluster; `cluster.place_learners` resolves it.
    space = cluster.resolve_learner_gpus(experiment.param_space, has_gpu=True)
    try:
        cluster.check_stop(experiment.stop, cluster.grid_values(space, "env"))
        cluster.check_learner_gpus(space)
    except ValueError as error:
        raise CLIError(f"experiment {experiment.name!r}: {error}") from error
    try:
        trainable = get_trainable_cls(experiment.run)
    except Exception as error:
        raise CLIError(
            f"experiment {experiment.name!r}: unknown algorithm {experiment.run!r} "
            "(any algorithm registered with Tune works, e.g. MWM, PPO)"
        ) from error
    from ray.rllib.algorithms.algorithm import Algorithm

    if isinstance(trainable, type) and issubclass(trainable, Algorithm):
        config = trainable.get_default_config()
        try:
            config.update_from_dict(cluster.first_sample(space))
            for note in getattr(config, "new_warnings", list)():
                print(f"rllib: warning: {note}", file=sys.stderr)
            config.validate()
        except (ValueError, TypeError, ImportError) as error:
            message = str(error).strip().splitlines()[0]
            raise CLIError(f"experiment {experiment.name!r}: {message}") from error


def run_experiments(
    experiments: list[Experiment],
    resume: bool = False,
    verbose: bool = False,
    command: list[str] | None = None,
) -> int:
    """Runs each experiment with Tune; `resume` continues an interrupted one.
    Prints one line per iteration and a summary per experiment; Ray's and
    RLlib's info and warning lines only if `verbose` (`rllib_mwm.tools.console`).
    `command` (argv without the program) is repeated in the resume hint."""
    from rllib_mwm.tools import cluster, console

    if not verbose:
        console.quiet_console()
    for experiment in experiments:
        check_experiment(experiment)
    import ray

    if not ray.is_initialized():  # Joins RAY_ADDRESS if set.
        rllib_mwm.init_ray(include_dashboard=False, **console.ray_init_kwargs(verbose))
    try:  # `num_gpus_per_learner: auto` → the GPU or the CPU; trials fit?
        on_cpu = cluster.place_learners(experiments, ray.nodes())
    except ValueError as error:
        raise CLIError(str(error)) from error
    if on_cpu:
        print(f"rllib: {cluster.cpu_fallback_warning(on_cpu)}", file=sys.stderr)
    errors = 0
    for experiment in experiments:
        start = time.monotonic()
        results, path = _fit(experiment, resume)
        errors += results.num_errors
        lines = console.summary_lines(
            experiment.name, results, time.monotonic() - start, path, command
        )
        print("\n".join(lines), flush=True)
    return int(errors > 0)


def _fit(experiment: Experiment, resume: bool):
    """Runs one experiment; returns Tune's results and the experiment path."""
    from ray import tune

    from rllib_mwm.tools.cluster import (
        BudgetProgressPrinter,
        BudgetStopper,
        has_per_env_limits,
    )
    from rllib_mwm.tools.resume import ResumeFromNewestCheckpoint, keep_tuner_state

    storage = experiment.storage_path or "~/ray_results"
    if "://" not in storage:  # Keep URIs (s3://, gs://) as they are.
        storage = os.path.abspath(os.path.expanduser(storage))
    path = os.path.join(storage, experiment.name)
    stop = experiment.stop
    if has_per_env_limits(stop):
        stop = BudgetStopper(stop)
    if resume:
        keep_tuner_state(path)  # Puts back a `tuner.pkl` a kill truncated.
    if resume and tune.Tuner.can_restore(path):
        print(f"resuming {path}", flush=True)
        tuner = tune.Tuner.restore(
            path,
            trainable=experiment.run,
            param_space=experiment.param_space,
            resume_errored=True,
        )
    else:
        if resume:
            print(f"nothing to resume at {path}; starting it", flush=True)
        tuner = tune.Tuner(
            experiment.run,
            param_space=experiment.param_space,
            tune_config=tune.TuneConfig(
                num_samples=experiment.num_samples,
                max_concurrent_trials=experiment.max_concurrent_trials,
            ),
            run_config=tune.RunConfig(
                name=experiment.name,
                storage_path=storage,
                stop=stop,
                checkpoint_config=tune.CheckpointConfig(**experiment.checkpoint),
                # Remote storage: upload what trials write to their working dir
                # (MWM's open-loop reports, `MWM._trial_dir`).
                sync_config=tune.SyncConfig(sync_artifacts="://" in storage),
                failure_config=tune.FailureConfig(max_failures=experiment.max_failures),
                # Pickled with the experiment: a `--resume` runs them too.
                callbacks=[
                    BudgetProgressPrinter(experiment.stop),
                    ResumeFromNewestCheckpoint(),
                ],
                verbose=0,
            ),
        )
        keep_tuner_state(path)  # The `tuner.pkl` that `Tuner` just wrote.
    return tuner.fit(), path


# ------------------------------------------------------------------ commands
def _train(args) -> int:
    if args.file:
        if args.algo or args.env:
            raise CLIError("use either `train file <yaml>` or --algo/--env, not both")
        experiments = load_experiments(args.file)
    else:
        if not args.algo:
            raise CLIError("train needs `file <yaml>` or --algo (and --env)")
        config = parse_json(args.config, "config")
        if args.env:
            config["env"] = args.env
        body = {"run": args.algo, "config": config}
        name = args.name or f"{args.algo}_{args.env or 'env'}".replace("/", "_")
        experiments = [experiment_from_dict(name, body)]
    for experiment in experiments:
        if args.stop is not None:  # Replaces the file's stop criteria.
            stop = parse_json(args.stop, "stop")
            experiment.stop = translate_stop(stop, experiment.run)
        if args.storage_path:
            experiment.storage_path = args.storage_path
        if args.checkpoint_freq is not None:
            experiment.checkpoint["checkpoint_frequency"] = args.checkpoint_freq
        if args.checkpoint_at_end:
            experiment.checkpoint["checkpoint_at_end"] = True
        if args.num_samples is not None:
            experiment.num_samples = args.num_samples
    return run_experiments(
        experiments, resume=args.resume, verbose=args.verbose, command=args.argv
    )


def _evaluate(args) -> int:
    from rllib_mwm.tools.evaluate import evaluate_checkpoint

    return evaluate_checkpoint(
        args.checkpoint,
        episodes=args.episodes,
        video=args.video,
        explore=args.explore,
        verbose=args.verbose,
    )


def _plot(args) -> int:
    from rllib_mwm.tools import plot

    return plot.main(args.rest)


def _report(args) -> int:
    from rllib_mwm.tools import report

    return report.main(args.rest)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rllib", description="RLlib's classic command line, for any algorithm."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="train with Tune")
    train.add_argument("file_word", nargs="?", choices=["file"], help=argparse.SUPPRESS)
    train.add_argument("file", nargs="?", help="tuned-example YAML")
    train.add_argument("--algo", "--run", dest="algo", help="registered algorithm")
    train.add_argument("--env", help="registered env name")
    train.add_argument("--config", default="{}", help="JSON config dict")
    train.add_argument("--stop", help="JSON stop criteria (replace the file's)")
    train.add_argument("--name", help="experiment name (default ALGO_ENV)")
    train.add_argument("--storage-path", "--local-dir", dest="storage_path")
    train.add_argument("--checkpoint-freq", type=int)
    train.add_argument("--checkpoint-at-end", action="store_true")
    train.add_argument("--num-samples", type=int)
    train.add_argument("--resume", action="store_true", help="continue a stopped run")
    train.add_argument(
        "--verbose", action="store_true", help="show Ray's and RLlib's log lines"
    )
    train.set_defaults(handler=_train)
    evaluate = commands.add_parser("evaluate", help="roll out a checkpoint")
    evaluate.add_argument("checkpoint")
    evaluate.add_argument("--episodes", type=int, default=10)
    evaluate.add_argument(
        "--video", help="GIF of the agent's frames (default: <checkpoint>_eval.gif)"
    )
    evaluate.add_argument("--explore", action="store_true", help="sample actions")
    evaluate.add_argument("--verbose", action="store_true", help="show RLlib's logs")
    evaluate.set_defaults(handler=_evaluate)
    plot = commands.add_parser(  # Its own -h: rllib_mwm plot -h.
        "plot", help="learning curves (rllib_mwm plot -h)", add_help=False
    )
    plot.add_argument("rest", nargs=argparse.REMAINDER)
    plot.set_defaults(handler=_plot)
    report = commands.add_parser(
        "report",
        help="the paper's Meta-world table (rllib_mwm report -h)",
        add_help=False,
    )
    report.add_argument("rest", nargs=argparse.REMAINDER)
    report.set_defaults(handler=_report)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    # Save Tune's experiment state at every step, so that `--resume` after a
    # crash or kill continues from the newest checkpoint, not an older one.
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "0")
    argv = sys.argv[1:] if argv is None else list(argv)
    delegated = {"plot": _plot, "report": _report}  # Own parsers, -h included.
    if argv and argv[0] in delegated:
        return delegated[argv[0]](argparse.Namespace(rest=argv[1:]))
    args = build_parser().parse_args(argv)
    args.argv = argv
    try:
        return args.handler(args)
    except CLIError as error:
        print(f"rllib: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
