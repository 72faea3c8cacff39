"""scripts/bench_train.py's projection of a 500K-frame run from measured rates."""

from __future__ import annotations

import pytest
from helpers import load_script


@pytest.fixture(scope="module")
def bench_train():
    return load_script("bench_train")


def run(mode, runners, env_s, learner_s, other_s=0.0):
    return {
        "mode": mode,
        "env_runners": runners,
        "seconds_per_agent_step": {
            "env": env_s,
            "learner": learner_s,
            "replay_and_sync": other_s,
        },
        # 2e9 FLOPs per agent step in 1 s: 2 GFLOP/s; 8x more FLOPs at the
        # paper's batches.
        "learner_flops_per_agent_step_bench": 2e9 * learner_s,
        "learner_flops_per_agent_step_paper": 16e9 * learner_s,
    }


def test_projection_adds_sequential_and_overlaps_the_max(bench_train):
    runs = [
        run("sequential", 1, env_s=0.1, learner_s=1.0, other_s=0.01),
        run("sequential", 2, env_s=0.06, learner_s=1.0, other_s=0.01),
        run("overlap", 1, env_s=0.0, learner_s=1.0),
    ]
    projection = bench_train.projection(runs, gpu_tflops=1.6e-2)  # 16 GFLOP/s
    assert projection["agent_steps"] == 250_000
    assert projection["cpu_learner_gflops_reached"] == pytest.approx(2.0)
    rows = {(r["learner"].split()[0], r["env_runners"]): r for r in projection["rows"]}
    cpu = rows[("this", 1)]  # learner: 8 s per agent step at the paper's batches
    assert cpu["sequential_hours"] == pytest.approx(250_000 * (0.1 + 8.01) / 3600)
    assert cpu["overlapped_hours"] == pytest.approx(250_000 * 8.01 / 3600)
    assert rows[("this", 2)]["env_s_per_agent_step"] == pytest.approx(0.06)
    gpu = rows[("one", 4)]  # 16e9 FLOPs at 16 GFLOP/s: 1 s; env 0.1 s / 4 runners
    assert gpu["env_s_per_agent_step"] == pytest.approx(0.025)
    assert gpu["sequential_hours"] == pytest.approx(250_000 * (0.025 + 1.01) / 3600)
    assert gpu["overlapped_hours"] == pytest.approx(250_000 * 1.01 / 3600)
    assert sorted(k for where, k in rows if where == "one") == [1, 2, 4, 8]


def test_projection_needs_a_sequential_single_runner_run(bench_train):
    assert bench_train.projection([run("overlap", 1, 0.1, 1.0)], 100.0) == {}
