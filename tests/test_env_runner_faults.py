"""An env runner process killed mid-run in a sequential run (the overlapped case
is in tests/test_overlap.py): RLlib restarts it, MWM drops the partial episode
and the schedule's counters stay exact."""

from __future__ import annotations

import pytest
import ray
from test_overlap import kill_env_runner_and_check, overlap_config

import rllib_mwm


@pytest.mark.slow
def test_killed_env_runner_is_restarted_in_a_sequential_run(tmp_path):
    rllib_mwm.init_ray(num_cpus=4, include_dashboard=False, log_to_driver=False)
    algo = overlap_config(0).build_algo()
    algo.report_dir = str(tmp_path)
    try:
        while algo.progress["phase"] != "train":
            algo.train()
        algo.train()
        kill_env_runner_and_check(algo)
    finally:
        algo.stop()
        ray.shutdown()
