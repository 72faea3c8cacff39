"""The benchmark on a Ray cluster: per-task budgets, retries and concurrency in
YAML, the resource check, the benchmark tuned example, and (slow) two trials on
a two-node Ray cluster started with `ray start` on this machine."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest
import yaml

from rllib_mwm import MWM
from rllib_mwm.core.envs.registry import task_names
from rllib_mwm.tools import cli, cluster

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "tuned_examples" / "mwm"
BENCHMARK = EXAMPLES / "metaworld_benchmark.yaml"
SUITES = ["metaworld_500k.yaml", "metaworld_1m.yaml", "metaworld_2m.yaml"]
SUITES.append("metaworld_3m.yaml")


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "experiment.yaml"
    path.write_text(textwrap.dedent(text))
    return str(path)


# ------------------------------------------------------------ YAML and stop
def test_retries_concurrency_and_per_env_stop_are_read(tmp_path):
    (experiment,) = cli.load_experiments(
        write(
            tmp_path,
            """\
            bench:
              run: MWM
              stop:
                agent_steps: {metaworld_reach: 252000, metaworld_push: 1002000}
                training_iteration: 10000
              config:
                presets: [metaworld]
                env: {grid_search: [metaworld_reach, metaworld_push]}
              max_concurrent_trials: 8
              max_failures: 3
            """,
        )
    )
    assert experiment.max_concurrent_trials == 8 and experiment.max_failures == 3
    assert cluster.has_per_env_limits(experiment.stop)
    cli.check_experiment(experiment)  # Every env of the grid has a limit.
    reach = cluster.trial_stop(experiment.stop, {"env": "metaworld_reach"})
    assert reach == {"agent_steps": 252000, "training_iteration": 10000}
    push = cluster.trial_stop(experiment.stop, {"env": "metaworld_push"})
    assert push["agent_steps"] == 1002000


def test_an_env_without_a_limit_fails_before_ray_starts(tmp_path, capsys):
    path = write(
        tmp_path,
        """\
        bench:
          run: MWM
          stop: {agent_steps: {metaworld_reach: 252000}}
          config:
            env: {grid_search: [metaworld_reach, metaworld_push]}
        """,
    )
    assert cli.main(["train", "file", path]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "no limit for env(s) ['metaworld_push']" in err


def test_budget_stopper_stops_each_trial_at_its_own_limit():
    stopper = cluster.BudgetStopper(
        {"agent_steps": {"a": 100, "b": 300}, "evaluation/success_rate": 1.0}
    )

    def result(env, steps, success=0.0):
        config = {"env": env}
        evaluation = {"success_rate": success}
        return {"agent_steps": steps, "config": config, "evaluation": evaluation}

    assert not stopper("t", result("a", 99))
    assert stopper("t", result("a", 100))
    assert not stopper("t", result("b", 299))
    assert stopper("t", result("b", 300))
    assert stopper("t", result("b", 1, success=1.0))  # Nested keys: a/b.
    assert not stopper("t", result("c", 10**9))  # No limit for c.
    assert not stopper.stop_all()


def test_budget_stopper_survives_the_experiment_state():
    """`--resume` restores the stopper from Tune's pickled run config."""
    import pickle

    stopper = pickle.loads(pickle.dumps(cluster.BudgetStopper({"x": {"a": 1}})))
    assert stopper("t", {"x": 1, "config": {"env": "a"}})


def test_progress_eta_uses_the_trials_own_budget(capsys):
    printer = cluster.BudgetProgressPrinter({"agent_steps": {"a": 2000, "b": 8000}})

    class Trial:
        trial_id = "t0"

    for env, eta in (("a", "0m10s"), ("b", "1m10s")):
        result = {"agent_steps": 1000, "time_total_s": 10.0, "config": {"env": env}}
        printer.on_trial_result(0, [], Trial(), result)
        assert capsys.readouterr().out.rstrip().endswith(f"ETA {eta}")


# --------------------------------------------------------------- resources
def nodes(*resources: dict) -> list[dict]:
    return [{"Alive": True, "Resources": r} for r in resources]


def request(**config) -> tuple[dict, list[dict]]:
    config = {"env": "metaworld_reach", "presets": ["debug"], **config}
    return config, MWM.default_resource_request(config).bundles


GPU_NODE = {"CPU": 96.0, "GPU": 8.0, "memory": 1e12}


@pytest.mark.parametrize(
    "config, cluster_nodes, message",
    [
        (  # The learner (num_learners 0: in the main process) wants a GPU.
            {"num_gpus_per_learner": 1},
            nodes({"CPU": 16.0}, {"CPU": 16.0}),
            r"the main process asks for 1 GPU but the largest node has 0; lower "
            r"num_gpus_per_learner \(0.25 shares a GPU between 4 trials; auto uses "
            r"one only where the cluster has one\) or add a GPU node",
        ),
        (
            {"num_gpus_per_learner": 2},
            nodes({"CPU": 8.0, "GPU": 1.0}, {"CPU": 8.0, "GPU": 1.0}),
            "the main process asks for 2 GPU but the largest node has 1; lower "
            "num_gpus_per_learner",
        ),
        (
            {"num_env_runners": 2, "num_cpus_per_env_runner": 8},
            nodes({"CPU": 4.0}, {"CPU": 6.0}),
            "the env runner asks for 8 CPU but the largest node has 6; lower "
            "num_cpus_per_env_runner or add a node with more CPUs",
        ),
        (
            {"num_learners": 1, "num_gpus_per_learner": 4},
            nodes({"CPU": 8.0, "GPU": 2.0}),
            "the learner asks for 4 GPU .* lower num_gpus_per_learner",
        ),
        (
            {"custom_resources_for_main_process": {"node_a": 1}},
            nodes({"CPU": 8.0}),
            "the main process asks for 1 node_a .* remove 'node_a' from "
            "custom_resources_for_main_process or start a node with it",
        ),
        (  # Every bundle fits on some node, but not all of them together.
            {"num_env_runners": 6, "num_cpus_per_env_runner": 2},
            nodes({"CPU": 4.0}, {"CPU": 4.0}),
            r"one trial asks for 13 CPU in all \(main process 1 \+ 6 env runners × 2\)"
            " but the cluster has 8; set num_env_runners to at most 3 or lower "
            "num_cpus_per_env_runner, or add nodes",
        ),
    ],
)
def test_a_trial_larger_than_the_cluster_is_named(config, cluster_nodes, message):
    config, bundles = request(**config)
    with pytest.raises(ValueError, match=message) as error:
        cluster.check_resources("bench", config, bundles, cluster_nodes)
    assert len(str(error.value).splitlines()) == 1


def test_a_trial_that_fits_passes_and_dead_nodes_do_not_count():
    config, bundles = request(num_gpus_per_learner=0.25, num_env_runners=1)
    cluster.check_resources("bench", config, bundles, nodes({"CPU": 3.0}, GPU_NODE))
    dead = [{"Alive": False, "Resources": GPU_NODE}]
    with pytest.raises(ValueError, match="GPU"):
        cluster.check_resources("bench", config, bundles, nodes({"CPU": 8.0}) + dead)


# ------------------------------------------------- the benchmark tuned example
def test_benchmark_runs_every_task_and_seed_at_the_paper_budget():
    (experiment,) = cli.load_experiments(str(BENCHMARK))
    budgets = {}  # env -> agent steps, from the per-suite tuned examples
    for name in SUITES:
        for suite in yaml.safe_load((EXAMPLES / name).read_text()).values():
            budgets[suite["env"]] = suite["stop"]["agent_steps"]
    assert experiment.stop == {"agent_steps": budgets}
    envs = cluster.grid_values(experiment.param_space, "env")
    assert sorted(envs) == sorted(budgets) == sorted(task_names("metaworld"))
    assert cluster.grid_values(experiment.param_space, "seed") == [0, 1, 2, 3, 4]
    assert experiment.param_space["presets"] == ["metaworld"]
    assert experiment.max_failures >= 1 and experiment.max_concurrent_trials
    assert experiment.checkpoint["num_to_keep"] >= 1
    assert experiment.checkpoint["checkpoint_at_end"] is True
    cli.check_experiment(experiment)

    # Tune starts trials in grid order: seed 0 on all tasks, longest first, then
    # seed 1, ...: the trials to start last are short.
    from ray.tune.search.variant_generator import generate_variants

    order = [
        (v["seed"], v["env"]) for _, v in generate_variants(experiment.param_space)
    ]
    assert [seed for seed, _ in order] == [s for s in range(5) for _ in range(50)]
    steps = [budgets[env] for _, env in order[:50]]
    assert steps == sorted(steps, reverse=True)
    assert [env for _, env in order[:50]] * 5 == [env for _, env in order]


def test_benchmark_trial_resources():
    (experiment,) = cli.load_experiments(str(BENCHMARK))
    assert cluster.place_learners([experiment], nodes(GPU_NODE)) == []
    config = cluster.first_sample(experiment.param_space)
    request = MWM.default_resource_request(config)
    assert request.required_resources == {"CPU": 3.0, "GPU": 0.25}
    # 32 trials fill a node with 8 GPUs and 96 CPUs.
    cluster.check_resources("bench", config, request.bundles, nodes(GPU_NODE))


# ---------------------------------------------------------- the learner's GPU
def suite(file_name: str) -> list:
    return cli.load_experiments(str(EXAMPLES / file_name))


def test_auto_puts_the_learner_on_the_clusters_gpu():
    experiments = suite("metaworld_500k.yaml") + suite("metaworld_benchmark.yaml")
    gpu_cluster = nodes({"CPU": 16.0}, {"CPU": 16.0, "GPU": 1.0})
    assert cluster.place_learners(experiments, gpu_cluster) == []
    shares = [e.param_space["num_gpus_per_learner"] for e in experiments]
    assert shares == [1] * 28 + [0.25]
    request = MWM.default_resource_request(
        cluster.first_sample(experiments[0].param_space)
    )
    assert request.required_resources["GPU"] == 1


def test_auto_falls_back_to_the_cpu_with_one_warning():
    experiments = suite("metaworld_500k.yaml") + suite("metaworld_benchmark.yaml")
    on_cpu = cluster.place_learners(experiments, nodes({"CPU": 96.0}))
    assert on_cpu == [e.name for e in experiments]
    assert {e.param_space["num_gpus_per_learner"] for e in experiments} == {0}
    request = MWM.default_resource_request(
        cluster.first_sample(experiments[-1].param_space)
    )
    assert "GPU" not in request.required_resources
    (line,) = cluster.cpu_fallback_warning(on_cpu).splitlines()
    assert line.startswith("warning: the Ray cluster has no GPU: 29 experiments ")
    assert "on the CPU" in line and "num_gpus_per_learner: 0 to silence" in line
    (one,) = cluster.place_learners(suite("dmc.yaml")[:1], nodes({"CPU": 8.0}))
    assert "experiment 'mwm-dmc_walker_walk' (num_gpus_per_learner: auto) trains" in (
        cluster.cpu_fallback_warning([one])
    )


def test_a_number_is_not_resolved_and_a_cpu_learner_is_no_fallback():
    space = {"num_gpus_per_learner": 1, "env": "x"}
    assert cluster.resolve_learner_gpus(space, has_gpu=False) == space
    assert not cluster.asks_auto({"env": "x"})
    grid = {"num_gpus_per_learner": {"grid_search": ["auto", {"auto": 0.5}, 0]}}
    assert cluster.asks_auto(grid)
    resolved = cluster.resolve_learner_gpus(grid, has_gpu=True)
    assert resolved["num_gpus_per_learner"] == {"grid_search": [1, 0.5, 0]}


@pytest.mark.parametrize("gpus", [0, 1, 0.5, 0.25, 0.2, 0.125, 0.3333, "auto"])
def test_gpu_shares_a_learner_can_use_pass(gpus):
    space = cluster.resolve_learner_gpus({"num_gpus_per_learner": gpus}, True)
    cluster.check_learner_gpus(space)


@pytest.mark.parametrize(
    "config, message",
    [
        (
            {"num_gpus_per_learner": 0.3},
            r"num_gpus_per_learner 0.3 leaves 0.1 of each GPU unused \(3 learner\(s\) "
            r"fit in one\); use a 1/n share: 0.333 \(3 per GPU\) or 0.25 \(4 per GPU\)",
        ),
        (
            {"num_gpus_per_learner": {"auto": 0.6}},
            r"0.6 leaves 0.4 .* use a 1/n share: 1 \(1 per GPU\) or 0.5 \(2 per GPU\)",
        ),
        (
            {"num_gpus_per_learner": {"grid_search": [0.5, 0.4]}},
            "num_gpus_per_learner 0.4 leaves 0.2 of each GPU unused",
        ),
        (
            {"num_gpus_per_learner": 1.5},
            r"num_gpus_per_learner 1.5: a learner runs on one GPU; set it to 1",
        ),
        (
            {"num_gpus_per_learner": 2, "num_learners": 1},
            "num_gpus_per_learner 2: a learner runs on one GPU",
        ),
        (
            {"num_gpus_per_learner": 0.5, "num_learners": 2},
            "num_learners 2 with num_gpus_per_learner 0.5: learners that train "
            "together need a GPU each",
        ),
        (
            {"num_gpus_per_learner": -1},
            r"num_gpus_per_learner must be a number >= 0, `auto` .* got -1",
        ),
        ({"num_gpus_per_learner": "one"}, "must be a number >= 0.* got 'one'"),
        ({"num_gpus_per_learner": {"auto": "x"}}, "must be a number >= 0.* got 'x'"),
    ],
)
def test_gpu_shares_a_learner_cannot_use_are_named(config, message):
    space = cluster.resolve_learner_gpus(config, has_gpu=True)
    with pytest.raises(ValueError, match=message) as error:
        cluster.check_learner_gpus(space)
    assert len(str(error.value).splitlines()) == 1


def test_more_learners_than_the_clusters_gpus_are_named():
    from ray.rllib.algorithms.ppo import PPO

    config = {"env": "CartPole-v1", "num_learners": 3, "num_gpus_per_learner": 1}
    two_gpus = nodes({"CPU": 8.0, "GPU": 1.0}, {"CPU": 8.0, "GPU": 1.0})
    with pytest.raises(ValueError) as error:
        cluster.check_trial_resources("ppo", PPO, config, two_gpus)
    assert str(error.value) == (
        "experiment 'ppo': one trial asks for 3 GPU in all (3 learners × 1) but the "
        "cluster has 2; set num_learners to at most 2 or lower num_gpus_per_learner, "
        "or add GPU nodes"
    )
    cluster.check_trial_resources("ppo", PPO, {**config, "num_learners": 2}, two_gpus)


def test_the_progress_line_names_the_learners_device(capsys):
    printer = cluster.BudgetProgressPrinter({"agent_steps": 2000})

    class Trial:
        trial_id = "t0"

    for gpus, device in ((1, "cuda"), (0.25, "cuda"), (0, "cpu")):
        config = {"env": "a", "num_gpus_per_learner": gpus}
        result = {"agent_steps": 1000, "time_total_s": 10.0, "config": config}
        printer.on_trial_result(0, [], Trial(), result)
        line = capsys.readouterr().out.rstrip()
        assert line.endswith(f"ETA 0m10s | learner: {device}"), line


# ------------------------------------------------------ two nodes, for real
PROBE = '''
import ray
from ray.rllib.callbacks.callbacks import RLlibCallback


class NodeId(RLlibCallback):
    """Adds the Ray node that runs the trial's main process to its results."""

    def on_train_result(self, *, algorithm, result, **kwargs):
        result["node_id"] = ray.get_runtime_context().get_node_id()
'''
NODES = """
import json, sys, time
import ray
ray.init(address=sys.argv[1], logging_level="ERROR")
deadline = time.time() + 120
while time.time() < deadline:
    alive = [n for n in ray.nodes() if n["Alive"]]
    if len(alive) == 2:
        break
    time.sleep(1)
print(json.dumps({n["NodeID"]: sorted(n["Resources"]) for n in alive}))
"""


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def ray_start(args: list[str], temp_dir: str, env: dict, log: Path):
    """`ray start --block` in its own process group, on loopback only."""
    ports = free_ports(6)
    command = [
        str(Path(sys.executable).parent / "ray"),
        "start",
        "--block",
        "--node-ip-address=127.0.0.1",
        f"--temp-dir={temp_dir}",
        "--object-store-memory=100000000",
        "--disable-usage-stats",
        f"--node-manager-port={ports[0]}",
        f"--object-manager-port={ports[1]}",
        f"--dashboard-agent-listen-port={ports[2]}",
        f"--dashboard-agent-grpc-port={ports[3]}",
        f"--metrics-export-port={ports[4]}",
        f"--runtime-env-agent-port={ports[5]}",
        *args,
    ]
    with open(log, "w") as out:
        return subprocess.Popen(
            command,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def stop(process: subprocess.Popen, temp_dir: str) -> None:
    """Ends the node's process group, then any process left that runs under the
    node's own temp dir (ours alone)."""
    import psutil

    for sig, wait in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
        if process.poll() is None:
            try:
                os.killpg(process.pid, sig)
                process.wait(wait)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
    for proc in psutil.process_iter(["pid", "cmdline"]):
        if temp_dir in " ".join(proc.info["cmdline"] or []):
            with contextlib.suppress(psutil.Error):
                proc.kill()


@pytest.mark.slow
def test_two_trials_run_on_two_nodes_into_one_storage_path(tmp_path):
    """A head and a second node (`ray start`, 2 CPUs each, custom resources
    node_a/node_b) on loopback; two debug trials, one pinned to each node, run
    through `rllib train file` with RAY_ADDRESS; both write results and
    checkpoints under one storage path. Then the benchmark example's GPU request
    is refused in one line naming the key."""
    probe = tmp_path / "probe"
    probe.mkdir()
    (probe / "cluster_probe.py").write_text(PROBE)
    env = {
        **os.environ,
        "RAY_AUTH_MODE": "disabled",
        "PYTHONPATH": os.pathsep.join([str(probe), os.environ.get("PYTHONPATH", "")]),
    }
    env.pop("RAY_ADDRESS", None)
    head_dir = tempfile.mkdtemp(prefix="rh", dir="/tmp")  # Ray's socket paths
    worker_dir = tempfile.mkdtemp(prefix="rw", dir="/tmp")  # must stay short.
    (port, client_port) = free_ports(2)
    address = f"127.0.0.1:{port}"
    head = worker = None
    start = time.time()
    try:
        head = ray_start(
            [
                "--head",
                f"--port={port}",
                f"--ray-client-server-port={client_port}",
                "--include-dashboard=false",
                "--num-cpus=2",
                "--num-gpus=0",
                '--resources={"node_a": 1}',
            ],
            head_dir,
            env,
            tmp_path / "head.log",
        )
        time.sleep(5)
        worker = ray_start(
            [
                f"--address={address}",
                "--num-cpus=2",
                "--num-gpus=0",
                '--resources={"node_b": 1}',
            ],
            worker_dir,
            env,
            tmp_path / "worker.log",
        )
        found = subprocess.run(
            [sys.executable, "-c", NODES, address],
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert found.returncode == 0, found.stderr[-3000:]
        node_resources = json.loads(found.stdout.strip().splitlines()[-1])
        assert len(node_resources) == 2, (
            found.stdout,
            (tmp_path / "head.log").read_text(),
        )
        node_of = {
            name: node
            for node, names in node_resources.items()
            for name in names
            if name in ("node_a", "node_b")
        }

        debug = yaml.safe_load((EXAMPLES / "debug.yaml").read_text())["mwm-debug"]
        debug["config"]["custom_resources_for_main_process"] = {
            "grid_search": [{"node_a": 1}, {"node_b": 1}]
        }
        debug["config"]["callbacks"] = "cluster_probe.NodeId"
        debug["stop"] = {"training_iteration": {"metaworld_reach": 2}}
        debug["max_failures"] = 0
        experiment_yaml = tmp_path / "two_nodes.yaml"
        experiment_yaml.write_text(yaml.safe_dump({"mwm-two-nodes": debug}))
        storage = tmp_path / "storage"
        run = subprocess.run(
            [
                sys.executable,
                "-m",
                "rllib_mwm",
                "train",
                "file",
                str(experiment_yaml),
                "--storage-path",
                str(storage),
            ],
            cwd=ROOT,
            env={**env, "RAY_ADDRESS": address},
            capture_output=True,
            text=True,
            timeout=1200,
        )
        assert run.returncode == 0, (run.stdout + run.stderr)[-5000:]

        trials = sorted(p for p in (storage / "mwm-two-nodes").iterdir() if p.is_dir())
        assert len(trials) == 2, trials
        ran_on = {}
        for trial in trials:
            lines = (trial / "result.json").read_text().splitlines()
            last = json.loads(lines[-1])
            assert last["training_iteration"] == 2  # The per-env stop.
            (pinned,) = last["config"]["custom_resources_for_main_process"]
            ran_on[pinned] = last["node_id"]
            assert sorted(trial.glob("checkpoint_*")), f"no checkpoint in {trial}"
        assert ran_on == node_of  # node_a's trial on the head, node_b's on the other.
        assert ran_on["node_a"] != ran_on["node_b"]

        # No node has a GPU: the benchmark's trials would wait forever.
        refused = subprocess.run(
            [
                sys.executable,
                "-m",
                "rllib_mwm",
                "train",
                "file",
                str(BENCHMARK),
                "--storage-path",
                str(tmp_path / "refused"),
            ],
            cwd=ROOT,
            env={**env, "RAY_ADDRESS": address},
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert refused.returncode == 2, refused.stderr[-3000:]
        error = [line for line in refused.stderr.splitlines() if "rllib: error" in line]
        assert len(error) == 1 and re.search(
            "asks for 0.25 GPU but the largest node has 0; lower num_gpus_per_learner",
            error[0],
        ), refused.stderr[-3000:]
        assert not (tmp_path / "refused").exists()
    finally:
        for process, temp_dir in ((worker, worker_dir), (head, head_dir)):
            if process is not None:
                stop(process, temp_dir)
            shutil.rmtree(temp_dir, ignore_errors=True)
        print(f"two-node test: {time.time() - start:.0f} s")
