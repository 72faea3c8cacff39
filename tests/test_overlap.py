"""Overlapped sampling (`max_policy_lag`): the env runners sample the next
fragment while the learner updates, the schedule stays exact, the lag is bounded.

Two debug-preset Meta-world algorithms (one remote env runner each), one
sequential and one overlapped, are stepped side by side from the same seed.
"""

from __future__ import annotations

import os
import signal

import numpy as np
import pytest
from helpers import debug_config

from rllib_mwm import MWMConfig

FRAGMENT = 10  # rollout_fragment_length of the debug preset, one env per runner.


def overlap_config(max_policy_lag: int, **training) -> MWMConfig:
    return (
        debug_config(prefill=60, mae_pretrain=2, pretrain=1, eval_eps=0)
        .training(log_every=10**9, max_policy_lag=max_policy_lag, **training)
        .reporting(min_sample_timesteps_per_iteration=3 * FRAGMENT)
    )


def progress_row(algo, result: dict) -> dict:
    progress = algo.progress
    return {
        "phase": progress["phase"],
        "train_steps": progress["train_steps"],
        "world_model_updates": progress["world_model_updates"],
        "mae_updates": progress["mae_updates"],
        "policy_lag": result.get("policy_lag"),
        "time_split": result.get("time_split", {}),
        "evaluation": result.get("evaluation"),
    }


def run(config: MWMConfig, iterations: int, tmp_path, keep: bool = False):
    """`iterations` of a fresh algorithm: a progress row per iteration (and the
    algorithm, still running, with `keep`)."""
    algo = config.build_algo()
    algo.report_dir = str(tmp_path)
    try:
        rows = [progress_row(algo, algo.train()) for _ in range(iterations)]
    except BaseException:
        algo.stop()
        raise
    if keep:
        return rows, algo
    algo.stop()
    return rows


ITERATIONS = 6  # prefill, pretrain, 4 training iterations of 3 fragments


@pytest.fixture(scope="module")
def overlapped(ray_session, tmp_path_factory):
    """The overlapped run's rows and its algorithm (the last test kills its env
    runner)."""
    config = overlap_config(FRAGMENT, eval_eps=1, eval_every=2 * FRAGMENT).evaluation(
        evaluation_num_env_runners=1, evaluation_parallel_to_training=True
    )
    rows, algo = run(config, ITERATIONS, tmp_path_factory.mktemp("o"), keep=True)
    yield rows, algo
    algo.stop()


@pytest.fixture(scope="module")
def sequential_and_overlapped(ray_session, overlapped, tmp_path_factory):
    sequential = run(overlap_config(0), ITERATIONS, tmp_path_factory.mktemp("s"))
    return sequential, overlapped[0]


def test_overlap_keeps_the_update_schedule(sequential_and_overlapped):
    sequential, overlapped = sequential_and_overlapped
    assert [r["phase"] for r in overlapped][-1] == "train"
    keys = ("phase", "train_steps", "world_model_updates", "mae_updates")
    assert [[r[k] for k in keys] for r in overlapped] == [
        [r[k] for k in keys] for r in sequential
    ]
    # Exact counts per stored agent step (debug: train_every = train_mae_every = 5).
    last = overlapped[-1]
    assert last["train_steps"] >= 9 * FRAGMENT
    assert last["world_model_updates"] == last["train_steps"] // 5
    assert last["mae_updates"] == last["train_steps"] // 5


def test_policy_lag_is_reported_and_bounded(sequential_and_overlapped):
    sequential, overlapped = sequential_and_overlapped
    train = [r["policy_lag"] for r in sequential if r["phase"] == "train"]
    assert train == [0] * (ITERATIONS - 2)
    # Per iteration, the largest lag: all fragments but the first after
    # pretraining start one fragment (of the one runner) behind the learner.
    train = [r["policy_lag"] for r in overlapped if r["phase"] == "train"]
    assert train == [FRAGMENT] * (ITERATIONS - 2)


def test_evaluation_runs_parallel_to_training(overlapped):
    """The overlapped run evaluates on its evaluation env runner while it trains
    (`evaluation_parallel_to_training`): a report comes some iterations after it
    started and names the agent step whose weights it evaluated."""
    rows, algo = overlapped
    evaluations = [r["evaluation"] for r in rows if r["evaluation"]]
    for _ in range(10):  # An evaluation episode spans a few training iterations.
        if evaluations:
            break
        evaluation = algo.train().get("evaluation")
        evaluations += [evaluation] if evaluation else []
    assert evaluations
    evaluation = evaluations[0]
    assert evaluation["parallel_to_training"] is True
    runners = evaluation["env_runners"]
    assert runners["num_episodes"] == 1  # eval_eps, a whole episode
    assert runners["episode_len_mean"] == 50  # debug preset: time_limit 50
    assert np.isfinite(runners["episode_return_mean"])
    assert 0.0 <= runners["success_rate"] <= 1.0
    assert evaluation["agent_steps"] >= 60  # after prefill (60 steps), pretraining


@pytest.mark.slow
def test_lag_bound_smaller_than_a_fragment_runs_sequentially(ray_session, tmp_path):
    rows = run(overlap_config(FRAGMENT - 1), 3, tmp_path)
    assert rows[-1]["phase"] == "train"
    assert rows[-1]["policy_lag"] == 0


def test_time_split_names_where_the_driver_spends_its_time(
    sequential_and_overlapped,
):
    for rows in sequential_and_overlapped:
        split = rows[-1]["time_split"]
        assert set(split) >= {"sample_wait_s", "learner_s", "weight_sync_s"}
        assert all(seconds >= 0 for seconds in split.values())
        assert split["learner_s"] > 0


@pytest.mark.slow
def test_killed_env_runner_is_restarted_and_the_run_goes_on(overlapped):
    """SIGKILL the env runner while a fragment is in flight (overlap): RLlib
    restarts it, MWM drops the episode it was sampling, the schedule stays exact.
    tests/test_env_runner_faults.py runs the same on a sequential run (slow)."""
    kill_env_runner_and_check(overlapped[1])


def kill_env_runner_and_check(algo) -> None:
    group = algo.env_runner_group
    (pid,) = group.foreach_env_runner(
        lambda runner: os.getpid(), local_env_runner=False
    )
    unfinished = set(algo.replay_buffer._ongoing)
    assert unfinished  # 50-step episodes, 30-step iterations: one is running.
    steps_before = algo.progress["train_steps"]
    os.kill(pid, signal.SIGKILL)
    results = [algo.train() for _ in range(3)]

    (new_pid,) = group.foreach_env_runner(
        lambda runner: os.getpid(), local_env_runner=False
    )
    assert new_pid != pid
    assert group.num_healthy_remote_env_runners() == 1
    assert group.num_remote_worker_restarts() >= 1
    progress = algo.progress
    assert progress["phase"] == "train" and progress["train_steps"] > steps_before
    assert (
        progress["world_model_updates"] == progress["train_steps"] // 5
    )  # exact schedule
    assert progress["mae_updates"] == progress["train_steps"] // 5
    # The dead runner's episode never finishes: dropped, not kept forever.
    assert not unfinished & set(algo.replay_buffer._ongoing)
    assert results[-1]["dropped_partial_episodes"] >= 1
