"""An env runner process killed mid-run in a sequential run (the overlapped case
is in tests/test_overlap.py): RLlib restarts it, MWM drops the partial episode
and the schedule's counters stay exact."""

from __future__ import annotations

import pytest
from test_overlap import kill_env_runner_and_check, overlap_config


@pytest.mark.slow
def test_killed_env_runner_is_restarted_in_a_sequential_run(ray_session, tmp_path):
    algo = overlap_config(0).build_algo()
    algo.report_dir = str(tmp_path)
    try:
        while algo.progress["phase"] != "train":
            algo.train()
        algo.train()
        kill_env_runner_and_check(algo)
    finally:
        algo.stop()
