"""What one Tune experiment over many tasks on a Ray cluster needs.

- Search spaces from YAML (`to_search_space`) and their first trial's config.
- Per-task budgets: a stop criterion may map env names to limits
  (`stop: {agent_steps: {metaworld_reach: 252000, ...}}`), so that one experiment
  grid-searching over tasks stops each trial at its own task's budget
  (`trial_stop`, `BudgetStopper`).
- `BudgetProgressPrinter`: the progress line with each trial's own ETA and its
  learner's device.
- Where the learner goes: `num_gpus_per_learner: auto` (one GPU) or `{auto: 0.25}`
  (a share of one) in a tuned example is resolved against the live cluster
  (`resolve_learner_gpus`): the GPU where the cluster has one, else the CPU.
  `check_learner_gpus` rejects GPU requests a learner cannot use.
- A resource check before Tune starts (`check_resources`): a trial that asks for
  more CPUs, GPUs or custom resources than any node (or the whole cluster) has
  would stay pending forever; this names the config key to change instead.

All raise `ValueError` with a one-line message; the command line prints it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from ray.tune import Stopper
from ray.tune.utils import flatten_dict

from rllib_mwm.tools.console import (
    ProgressPrinter,
    eta_seconds,
    learner_device,
    progress_line,
)

#: Tune samplers a YAML config may use as `{uniform: [a, b]}` (`to_search_space`).
SAMPLERS = ("choice", "uniform", "loguniform", "randint", "quniform")
GPU_KEY = "num_gpus_per_learner"
#: Share of a GPU a learner may leave unused (0.33 per learner: 3 per GPU).
UNUSED_GPU_TOLERANCE = 0.01
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
#: Per resource, the role whose count fits a trial into the cluster, and its key.
_COUNT_KEYS = {
    "CPU": ("env runner", "num_env_runners"),
    "GPU": ("learner", "num_learners"),
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
        config = result.get("config", {})
        line = progress_line(
            result, eta_seconds(result, trial_stop(self.budgets, config))
        )
        device = learner_device(config)
        if device:
            line += f" | learner: {device}"
        print(f"[{trial.trial_id}] {line}", flush=True)


# ------------------------------------------------------------- search space
def to_search_space(value: Any) -> Any:
    """`{grid_search: [...]}` stays (Tune reads it); `{uniform: [a, b]}` etc.
    become Tune samplers; everything else is left as is, recursively."""
    from ray import tune

    if isinstance(value, dict):
        if len(value) == 1 and next(iter(value)) in SAMPLERS:
            kind, args = next(iter(value.items()))
            return tune.choice(args) if kind == "choice" else getattr(tune, kind)(*args)
        return {k: to_search_space(v) for k, v in value.items()}
    return value


def grid_values(space: Mapping[str, Any], key: str) -> list[Any]:
    """The values a top-level key of a search space takes (its grid, or itself)."""
    value = space.get(key)
    if isinstance(value, Mapping) and set(value) == {"grid_search"}:
        return list(value["grid_search"])
    return [] if value is None else [value]


def first_sample(space: Any) -> Any:
    """A concrete config from a search space (first grid value, sampler draw)."""
    from ray.tune.search.sample import Domain

    if isinstance(space, Mapping):
        if set(space) == {"grid_search"}:
            return first_sample(space["grid_search"][0])
        return {k: first_sample(v) for k, v in space.items()}
    if isinstance(space, Domain):
        return space.sample()
    return space


# -------------------------------------------------------------- learner GPUs
def auto_share(value: Any) -> Any:
    """The GPU share `auto` (1) or `{auto: x}` (x) asks for; None otherwise."""
    if value == "auto":
        return 1
    if isinstance(value, Mapping) and set(value) == {"auto"}:
        return value["auto"]
    return None


def asks_auto(space: Mapping[str, Any]) -> bool:
    """Whether `num_gpus_per_learner` is `auto` (`{auto: x}`), in a grid too."""
    values = grid_values(space, GPU_KEY)
    return any(auto_share(value) is not None for value in values)


def resolve_learner_gpus(space: Mapping[str, Any], has_gpu: bool) -> dict:
    """`space` (a search space or a config) with `num_gpus_per_learner: auto`
    (or `{auto: x}`) replaced by its share where the cluster has a GPU, by 0
    (the CPU learner) where it has none; other values stay."""

    def resolve(value):
        share = auto_share(value)
        if share is None:
            return value
        return share if has_gpu else 0

    space = dict(space)
    value = space.get(GPU_KEY)
    if isinstance(value, Mapping) and set(value) == {"grid_search"}:
        space[GPU_KEY] = {"grid_search": [resolve(v) for v in value["grid_search"]]}
    elif GPU_KEY in space:
        space[GPU_KEY] = resolve(value)
    return space


def cluster_gpus(nodes: list[dict]) -> float:
    """GPUs of the live nodes (`ray.nodes()`) together."""
    alive = [node.get("Resources", {}) for node in nodes if node.get("Alive", True)]
    return sum(node.get("GPU", 0.0) for node in alive)


def check_learner_gpus(space: Mapping[str, Any]) -> None:
    """Rules for `num_gpus_per_learner` in a config or search space (its grid
    values too), after `resolve_learner_gpus`: a number >= 0; at most 1 (RLlib's
    torch learner runs on one device); below 1, a 1/n share, so that n learners
    fill a GPU; and learners that train together (`num_learners` > 1) each on a
    GPU of their own (NCCL refuses to share one)."""
    learners = int(first_sample(space.get("num_learners", 0)) or 0)
    for gpus in grid_values(space, GPU_KEY):
        _check_learner_share(gpus, learners)


def _check_learner_share(gpus: Any, learners: int) -> None:
    if isinstance(gpus, bool) or not isinstance(gpus, int | float) or gpus < 0:
        raise ValueError(
            f"{GPU_KEY} must be a number >= 0, `auto` (a GPU where the cluster has "
            f"one, else the CPU) or {{auto: 0.25}} (a share of one), got {gpus!r}"
        )
    if gpus > 1:
        raise ValueError(
            f"{GPU_KEY} {gpus:g}: a learner runs on one GPU; set it to 1 (more "
            "GPUs: more learners, num_learners)"
        )
    if 0 < gpus < 1:
        fit = math.floor(1 / gpus + 1e-6)  # Learners one GPU holds.
        unused = 1 - fit * gpus
        if unused > UNUSED_GPU_TOLERANCE:
            raise ValueError(
                f"{GPU_KEY} {gpus:g} leaves {unused:.2g} of each GPU unused ({fit} "
                f"learner(s) fit in one); use a 1/n share: {1 / fit:.3g} ({fit} per "
                f"GPU) or {1 / (fit + 1):.3g} ({fit + 1} per GPU)"
            )
        if learners > 1:
            raise ValueError(
                f"num_learners {learners} with {GPU_KEY} {gpus:g}: learners that "
                f"train together need a GPU each (NCCL cannot share one); set "
                f"{GPU_KEY} to 1 or 0"
            )


def cpu_fallback_warning(names: list[str]) -> str:
    """The one line saying that experiments asking for `auto` train on the CPU."""
    if len(names) == 1:
        what = f"experiment {names[0]!r} ({GPU_KEY}: auto) trains its learner"
    else:
        what = f"{len(names)} experiments ({GPU_KEY}: auto) train their learners"
    return (
        f"warning: the Ray cluster has no GPU: {what} on the CPU, much slower; "
        f"add a GPU node, or set {GPU_KEY}: 0 to silence this"
    )


def place_learners(experiments: list, nodes: list[dict]) -> list[str]:
    """Resolves `num_gpus_per_learner: auto` in each experiment's `param_space`
    (the command line's `Experiment`s: `name`, `run`, `param_space`) against
    the live nodes (`ray.nodes()`), then checks that a trial of each fits.
    Returns the names of the experiments whose `auto` fell back to the CPU."""
    from ray.tune.registry import get_trainable_cls

    has_gpu = cluster_gpus(nodes) > 0
    on_cpu = (
        [] if has_gpu else [e.name for e in experiments if asks_auto(e.param_space)]
    )
    for experiment in experiments:
        experiment.param_space = resolve_learner_gpus(experiment.param_space, has_gpu)
        trainable = get_trainable_cls(experiment.run)
        config = first_sample(experiment.param_space)
        check_trial_resources(experiment.name, trainable, config, nodes)
    return on_cpu


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
    roles = bundle_roles(config, len(bundles))
    for bundle, role in zip(bundles, roles, strict=True):
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
            parts = _breakdown(bundles, roles, resource)
            raise ValueError(
                f"experiment {name!r}: one trial asks for {amount:g} {resource} in "
                f"all ({parts}) but the cluster has {available:g}; "
                f"{_total_fix(bundles, roles, resource, available)}"
            )


def check_trial_resources(
    name: str, trainable: Any, config: Mapping[str, Any], nodes: list[dict]
) -> None:
    """`check_resources` for a trial of `trainable` (an RLlib `Algorithm`
    class; other trainables are not checked) with the concrete `config`."""
    from ray.rllib.algorithms.algorithm import Algorithm

    if not (isinstance(trainable, type) and issubclass(trainable, Algorithm)):
        return
    request = trainable.default_resource_request(dict(config))
    bundles = getattr(request, "bundles", None) or []
    check_resources(name, config, bundles, nodes)


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
        hint = (
            " (0.25 shares a GPU between 4 trials; auto uses one only where the "
            "cluster has one)"
        )
        hint = hint if "learner" in gpu_key else ""
        return f"lower {gpu_key}{hint} or add a GPU node"
    return (
        f"remove {resource!r} from {_CUSTOM_KEYS[role]} or start a node with it "
        f"(ray start --resources '{{\"{resource}\": 1}}')"
    )


def _breakdown(bundles: list[dict], roles: list[str], resource: str) -> str:
    """`main process 1 + 6 env runners × 2`: who asks for `resource`."""
    counts: dict[tuple[str, float], int] = {}
    for bundle, role in zip(bundles, roles, strict=True):
        if bundle.get(resource, 0.0) > 0:
            key = (role, bundle[resource])
            counts[key] = counts.get(key, 0) + 1
    parts = []
    for (role, amount), count in counts.items():
        parts.append(
            f"{role} {amount:g}" if count == 1 else f"{count} {role}s × {amount:g}"
        )
    return " + ".join(parts)


def _total_fix(
    bundles: list[dict], roles: list[str], resource: str, available: float
) -> str:
    """How many env runners (CPUs) or learners (GPUs) would fit, and the key."""
    if resource not in _COUNT_KEYS:
        return f"lower the trial's {resource!r} request or add nodes with it"
    role, key = _COUNT_KEYS[resource]
    own = [
        b.get(resource, 0.0) for b, r in zip(bundles, roles, strict=True) if r == role
    ]
    rest = sum(b.get(resource, 0.0) for b in bundles) - sum(own)
    each = max(own, default=0.0)
    per_key = _BUNDLE_KEYS[role][0 if resource == "CPU" else 1]
    nodes = "nodes" if resource == "CPU" else "GPU nodes"
    if each > 0 and rest <= available + 1e-9:
        fit = math.floor((available - rest) / each + 1e-9)
        return f"set {key} to at most {fit} or lower {per_key}, or add {nodes}"
    if resource == "CPU":
        return (
            "lower evaluation_num_env_runners, num_cpus_for_main_process or the "
            "per-runner CPUs, or add nodes"
        )
    return "lower num_gpus_per_env_runner or num_gpus_per_learner, or add GPU nodes"
