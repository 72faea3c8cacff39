"""What one Tune experiment over many tasks on a Ray cluster needs.

- Per-task budgets: a stop criterion may map env names to limits
  (`stop: {agent_steps: {metaworld_reach: 252000, ...}}`), so that one experiment
  grid-searching over tasks stops each trial at its own task's budget
  (`trial_stop`, `BudgetStopper`).
- `BudgetProgressPrinter`: the progress line with each trial's own ETA.
- A resource check before Tune starts (`check_resources`): a trial that asks for
  more CPUs, GPUs or custom resources than any node (or the whole cluster) has
  would stay pending forever; this names the config key to change instead.

Both raise `ValueError` with a one-line message; the command line prints it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ray.tune import Stopper
from ray.tune.utils import flatten_dict

from rllib_mwm.reporting import ProgressPrinter

#: Where each resource of an RLlib trial's placement-group bundles comes from.
_BUNDLE_KEYS = {
    "main process": (
        "num_cpus_for_main_process (or num_cpus_per_learner)",
        "num_gpus_per_learner",
    ),
    "learner": ("num_cpus_per_learner", "num_gpus_per_learner"),
    "env runner": ("num_cpus_per_env_runner", "num_gpus_per_env_runner"),
    "evaluation env runner": (
        "num_cpus_per_env_runner (in evaluation_config)",
        "num_gpus_per_env_runner (in evaluation_config)",
    ),
}
_CUSTOM_KEYS = {
    "main process": "custom_resources_for_main_process",
    "learner": "custom_resources_per_learner",
    "env runner": "custom_resources_per_env_runner",
    "evaluation env runner": "custom_resources_per_env_runner",
}


# ------------------------------------------------------------------ budgets
def has_per_env_limits(stop: Mapping[str, Any]) -> bool:
    return any(isinstance(limit, Mapping) for limit in stop.values())


def check_stop(stop: Mapping[str, Any], envs: list[str]) -> None:
    """Every limit is a number or a mapping {env: number} covering `envs`."""
    for key, limit in stop.items():
        if not isinstance(limit, Mapping):
            if not isinstance(limit, int | float):
                raise ValueError(f"stop {key!r}: expected a number, got {limit!r}")
            continue
        bad = {env: v for env, v in limit.items() if not isinstance(v, int | float)}
        if bad:
            raise ValueError(f"stop {key!r}: limits must be numbers, got {bad}")
        missing = [env for env in envs if env not in limit]
        if missing:
            raise ValueError(
                f"stop {key!r} has no limit for env(s) {missing}; add them to the "
                "per-env table"
            )


def trial_stop(stop: Mapping[str, Any], config: Mapping[str, Any]) -> dict:
    """The numeric stop criteria of one trial: per-env limits looked up by the
    trial's `env`; criteria without a limit for that env are left out."""
    env = config.get("env")
    limits = {}
    for key, limit in stop.items():
        if isinstance(limit, Mapping):
            limit = limit.get(env)
        if limit is not None:
            limits[key] = limit
    return limits


class BudgetStopper(Stopper):
    """Tune stopper for criteria with per-env limits (see `trial_stop`): stops a
    trial once any of its result keys (`a/b` for nested ones) reaches its limit."""

    def __init__(self, stop: Mapping[str, Any]):
        self.stop = dict(stop)

    def __call__(self, trial_id: str, result: dict) -> bool:
        flat = flatten_dict(result)
        limits = trial_stop(self.stop, result.get("config", {}))
        return any(key in flat and flat[key] >= v for key, v in limits.items())

    def stop_all(self) -> bool:
        return False


class BudgetProgressPrinter(ProgressPrinter):
    """`ProgressPrinter` whose ETA counts towards each trial's own limits."""

    def __init__(self, stop: Mapping[str, Any] | None = None):
        super().__init__(dict(stop or {}))
        self.budgets = self.stop

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self.stop = trial_stop(self.budgets, result.get("config", {}))
        super().on_trial_result(iteration, trials, trial, result, **info)


# ---------------------------------------------------------------- resources
def check_resources(
    name: str, config: Mapping[str, Any], bundles: list[dict], nodes: list[dict]
) -> None:
    """Raises if a bundle of the trial's placement group fits on no live node, or
    the trial needs more of a resource than the cluster has in all.

    `config` is the trial's algorithm config (a dict), `bundles` its placement
    group's bundles (`Algorithm.default_resource_request(config).bundles`: the
    main process, then env runners, evaluation env runners, learners) and
    `nodes` is `ray.nodes()`.
    """
    alive = [node.get("Resources", {}) for node in nodes if node.get("Alive", True)]
    for bundle, role in zip(bundles, bundle_roles(config, len(bundles)), strict=True):
        for resource, amount in bundle.items():
            largest = max((node.get(resource, 0.0) for node in alive), default=0.0)
            if amount > largest + 1e-9:
                raise ValueError(
                    f"experiment {name!r}: the {role} asks for {amount:g} "
                    f"{resource} but the largest node has {largest:g}; "
                    f"{_fix(role, resource)}"
                )
    total: dict[str, float] = {}
    for bundle in bundles:
        for resource, amount in bundle.items():
            total[resource] = total.get(resource, 0.0) + amount
    for resource, amount in total.items():
        available = sum(node.get(resource, 0.0) for node in alive)
        if amount > available + 1e-9:
            raise ValueError(
                f"experiment {name!r}: one trial asks for {amount:g} {resource} in "
                f"all but the cluster has {available:g}; lower num_env_runners, "
                "evaluation_num_env_runners or the per-runner resources, or add nodes"
            )


def bundle_roles(config: Mapping[str, Any], count: int) -> list[str]:
    """What each bundle of an RLlib trial's placement group is for."""
    runners = int(config.get("num_env_runners", 0) or 0)
    learners = int(config.get("num_learners", 0) or 0)
    evaluators = count - 1 - runners - learners
    roles = ["main process"] + ["env runner"] * runners
    roles += ["evaluation env runner"] * evaluators + ["learner"] * learners
    if evaluators < 0 or len(roles) != count:  # Not RLlib's layout: no names.
        return ["main process"] + ["bundle"] * (count - 1)
    return roles


def _fix(role: str, resource: str) -> str:
    """The config key to lower (with num_learners 0 the learner, and its GPU,
    lives in the main process)."""
    if role not in _BUNDLE_KEYS:
        return "lower the trial's resource request or add a larger node"
    cpu_key, gpu_key = _BUNDLE_KEYS[role]
    if resource == "CPU":
        return f"lower {cpu_key} or add a node with more CPUs"
    if resource == "GPU":
        hint = " (0.25 shares a GPU between 4 trials)" if "learner" in gpu_key else ""
        return f"lower {gpu_key}{hint} or add a GPU node"
    return (
        f"remove {resource!r} from {_CUSTOM_KEYS[role]} or start a node with it "
        f"(ray start --resources '{{\"{resource}\": 1}}')"
    )
