"""The original MWM command line, on RLlib and Tune.

    python -m rllib_mwm.tools.train --logdir logs/peg --configs metaworld \
        --task metaworld_peg_insert_side --steps 502000 \
        --mae.reward_pred True --mae.early_conv True

Means what it meant in the reference code: `--configs` applies presets in order
(`defaults` is implicit), `--steps` counts agent steps (env frames / action
repeat), and `--key value` / `--key.sub value` override any config key, values
read as YAML (`True`, `1e4`, `[reward, discount]`). The original names that
differ are translated (`rllib_mwm.rllib.released.translate_config`, which also maps the
released code's whole `configs.yaml`); everything else must be an MWMConfig key.
The learner trains on a GPU where the Ray cluster has one, else on the CPU
(`num_gpus_per_learner: auto`; `--num_gpus_per_learner 0` keeps it on the CPU).
The run is a Tune experiment named after `--logdir`, checkpointed every
`--checkpoint_freq` iterations and at the end; `--resume` continues it.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import yaml

from rllib_mwm.rllib.released import set_dotted, translate_config
from rllib_mwm.tools.cli import CLIError, Experiment, run_experiments
from rllib_mwm.tools.cluster import to_search_space

RUN_FLAGS = ("logdir", "configs", "task", "steps", "checkpoint_freq")


def parse_flags(argv: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """`--key value` pairs → (run flags, config overrides by dotted key)."""
    run: dict[str, Any] = {"configs": [], "checkpoint_freq": 10}
    overrides: dict[str, Any] = {}
    resume = False
    i = 0
    while i < len(argv):
        flag = argv[i]
        if flag == "--resume":
            resume, i = True, i + 1
            continue
        if not flag.startswith("--"):
            raise CLIError(f"expected --key value, got {flag!r}")
        key = "checkpoint_freq" if flag == "--checkpoint-freq" else flag[2:]
        values = []
        i += 1
        while i < len(argv) and not argv[i].startswith("--"):
            values.append(argv[i])
            i += 1
        if not values:
            raise CLIError(f"{flag} needs a value")
        if key == "configs":
            run["configs"] += values
        elif key in RUN_FLAGS:
            run[key] = values[0] if len(values) == 1 else values
        else:
            overrides[key] = _value(values)
    run["resume"] = resume
    return run, overrides


def _value(values: list[str]) -> Any:
    parsed = [yaml.safe_load(v) for v in values]
    return parsed[0] if len(parsed) == 1 else parsed


def build_experiment(argv: list[str]) -> tuple[Experiment, bool]:
    """The Tune experiment the original flags describe (and `--resume`)."""
    run, overrides = parse_flags(argv)
    for needed in ("logdir", "task"):
        if needed not in run:
            raise CLIError(f"--{needed} is required")
    presets = [name for name in run["configs"] if name != "defaults"]
    released: dict[str, Any] = {}
    try:
        for key, value in overrides.items():
            set_dotted(released, key, value)
        translated = translate_config(released)
    except ValueError as error:
        raise CLIError(str(error)) from None
    config: dict[str, Any] = {
        "env": run["task"],
        "presets": presets,
        "num_gpus_per_learner": "auto",  # The original trained on the GPU.
        **translated,
    }
    logdir = os.path.abspath(os.path.expanduser(run["logdir"]))
    stop = {"agent_steps": int(float(run["steps"]))} if "steps" in run else {}
    experiment = Experiment(
        name=os.path.basename(logdir),
        run="MWM",
        param_space=to_search_space(config),
        stop=stop,
        checkpoint={
            "checkpoint_frequency": int(run["checkpoint_freq"]),
            "checkpoint_at_end": True,
        },
        storage_path=os.path.dirname(logdir),
    )
    return experiment, run["resume"]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv in (["-h"], ["--help"]):
        print(__doc__)
        return 0
    try:
        experiment, resume = build_experiment(argv)
        return run_experiments([experiment], resume=resume)
    except CLIError as error:
        print(f"rllib_mwm.tools.train: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
