"""Every tuned example parses and validates; the Meta-world budgets cover all tasks."""

from pathlib import Path

import pytest
import yaml
from ray import tune

from rllib_mwm.core.envs import rlbench
from rllib_mwm.core.envs.registry import task_names
from rllib_mwm.rllib.config import MWMConfig
from rllib_mwm.tools import cluster
from rllib_mwm.tools.cli import EXPERIMENT_KEYS

EXAMPLES = Path(__file__).resolve().parents[1] / "tuned_examples" / "mwm"
# Budget in env frames -> (file, agent steps to stop at, number of tasks).
METAWORLD_BUDGETS = {
    500_000: ("metaworld_500k.yaml", 252_000, 28),
    1_000_000: ("metaworld_1m.yaml", 502_000, 11),
    2_000_000: ("metaworld_2m.yaml", 1_002_000, 6),
    3_000_000: ("metaworld_3m.yaml", 1_502_000, 5),
}


#: Examples that train on the CPU on purpose (the tests', the `cpu` preset's).
CPU_EXAMPLES = ("debug.yaml", "cpu.yaml")


def load(file_name: str) -> dict:
    return yaml.safe_load((EXAMPLES / file_name).read_text())


def all_experiments() -> list:
    return [
        pytest.param(name, experiment, id=f"{path.name}:{name}")
        for path in sorted(EXAMPLES.glob("*.yaml"))
        for name, experiment in load(path.name).items()
    ]


def first_of_grids(value):
    """Replaces each `{grid_search: [...]}` by its first element."""
    if isinstance(value, dict):
        if set(value) == {"grid_search"}:
            return value["grid_search"][0]
        return {key: first_of_grids(sub) for key, sub in value.items()}
    return value


@pytest.mark.parametrize("name, experiment", all_experiments())
def test_experiment_validates(name, experiment, monkeypatch):
    assert set(experiment) <= EXPERIMENT_KEYS, name
    assert experiment["run"] == "MWM"
    assert set(experiment["stop"]) <= {"agent_steps", "training_iteration"}
    tune.CheckpointConfig(**experiment.get("checkpoint_config", {}))
    if not rlbench.rlbench_installed():  # Validate all but the simulator's presence.
        monkeypatch.setattr(rlbench, "rlbench_installed", lambda: True)
        monkeypatch.setattr(rlbench, "task_names", lambda: list(rlbench.DEFAULT_TASKS))
    config = MWMConfig().environment(experiment.get("env"))  # Or in `config`.
    for has_gpu in (True, False):  # `auto` resolved as `rllib train` does.
        space = cluster.resolve_learner_gpus(experiment["config"], has_gpu)
        cluster.check_learner_gpus(space)
        config.update_from_dict(first_of_grids(space))
        config.validate()


def test_experiment_names_are_unique():
    names = [name for path in EXAMPLES.glob("*.yaml") for name in load(path.name)]
    assert len(names) == len(set(names))


def test_metaworld_budgets_cover_every_task_once():
    tasks = []
    for budget, (file_name, agent_steps, count) in METAWORLD_BUDGETS.items():
        experiments = load(file_name).values()
        assert len(experiments) == count, file_name
        for experiment in experiments:
            assert experiment["stop"] == {"agent_steps": agent_steps}
            assert 2 * agent_steps >= budget
            assert experiment["config"]["presets"] == ["metaworld"]
            tasks.append(experiment["env"])
    assert len(tasks) == len(set(tasks)) == 50
    assert set(tasks) == set(task_names("metaworld"))


def test_debug_example_is_tiny():
    (experiment,) = load("debug.yaml").values()
    assert experiment["stop"] == {"agent_steps": 1000}
    config = MWMConfig().environment(experiment["env"])
    config.update_from_dict(experiment["config"])
    assert config.rssm["deter"] == 64 and config.env_config["time_limit"] == 50
    assert config.env_config["fast_render"] is True


def test_cpu_examples_use_the_cpu_preset_after_their_suite_preset():
    for name, experiment in load("cpu.yaml").items():
        assert experiment["config"]["presets"] == ["metaworld", "cpu"], name
        # Long enough for Meta-world's scripted experts (door_close: success at
        # agent step 82 on average, docs/curves/scripted_metaworld_150steps.json).
        assert experiment["config"]["env_config"] == {
            "time_limit": 150,
            "fast_render": True,
        }


@pytest.mark.parametrize("file_name", CPU_EXAMPLES)
def test_cpu_examples_fit_a_2_core_machine(file_name):
    """What `rllib train file` checks before Tune starts, against one 2-CPU node:
    the main process, the env runner and the evaluation env runner must fit."""
    import rllib_mwm
    from rllib_mwm.tools import cli

    rllib_mwm.register()  # As `init_ray` does: an earlier `ray.shutdown()` forgot MWM.
    nodes = [{"Alive": True, "Resources": {"CPU": 2.0}}]
    cluster.place_learners(cli.load_experiments(str(EXAMPLES / file_name)), nodes)


def test_search_example_grid():
    (experiment,) = load("search_mask_ratio_kl.yaml").values()
    grids = {
        key: value["grid_search"]
        for key, value in experiment["config"].items()
        if isinstance(value, dict) and "grid_search" in value
    }
    assert grids == {
        "mask_ratio": [0.5, 0.75, 0.9],
        "wmkl_minloss": [0.01, 0.1],
        "seed": [0, 1, 2],
    }


def test_suite_examples_put_the_learner_on_the_gpu_and_debug_stays_on_the_cpu():
    for path in sorted(EXAMPLES.glob("*.yaml")):
        for name, experiment in load(path.name).items():
            gpus = experiment["config"].get("num_gpus_per_learner", 0)
            if path.name in CPU_EXAMPLES:  # The tests' and the CPU preset's.
                assert gpus == 0, name
                continue
            share = cluster.auto_share(gpus)
            assert share is not None, f"{path.name}: {name} sets {gpus!r}, not auto"
            assert share in (1, 0.25), name  # A GPU, or a quarter of one (grids).
