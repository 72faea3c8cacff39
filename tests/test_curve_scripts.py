"""scripts/learning_curve.py (curve rows from results, the last-3 summary, the
curve of an `rllib train` trial read back from its result.json) and
scripts/random_baseline.py (random-policy return and success on the real envs)."""

from __future__ import annotations

import json

import pytest
from helpers import load_script


@pytest.fixture(scope="module")
def curve():
    return load_script("learning_curve")


def result(phase, steps, train_return, evaluation=None, success=None):
    runners = {"episode_return_mean": train_return}
    if success is not None:
        runners["success_rate"] = success
    out = {"phase": phase, "env_runners": runners, "time_total_s": 60.0 * steps / 100}
    if evaluation is not None:
        eval_runners = {"episode_return_mean": evaluation[0]}
        if evaluation[1] is not None:
            eval_runners["success_rate"] = evaluation[1]
        out["evaluation"] = {
            "agent_steps": steps,
            "env_frames": 2 * steps,
            "env_runners": eval_runners,
        }
    return out


def write_results(path, rows, config):
    with open(path, "w") as f:
        for row in rows:
            f.write(json.dumps({**row, "config": config}) + "\n")


def test_metaworld_trial_curve_reports_the_last_three_evaluations(curve, tmp_path):
    rows = [
        result("prefill", 100, 5.0, success=0.0),
        result("pretrain", 200, 7.0, success=0.25),  # the last random episodes
        result("train", 300, 9.0, evaluation=(10.0, 0.0), success=0.0),
        result("train", 400, 9.0),  # no evaluation this iteration
        # An evaluation that timed out empty: RLlib reports the step counts only.
        {**result("train", 450, 9.0), "evaluation": {"agent_steps": 450}},
        result("train", 500, 9.0, evaluation=(20.0, 0.2), success=0.1),
        result("train", 600, 9.0, evaluation=(40.0, 0.6), success=0.1),
        result("train", 700, 9.0, evaluation=(60.0, 1.0), success=0.1),
    ]
    path = tmp_path / "result.json"
    write_results(path, rows, {"env": "metaworld_reach", "seed": 3})
    report = curve.report_from_results(str(path))
    assert [r["agent_steps"] for r in report["evaluations"]] == [300, 500, 600, 700]
    assert report["random_policy_return"] == 7.0
    assert report["random_policy_success_rate"] == 0.25
    assert (report["env"], report["seed"]) == ("metaworld_reach", 3)
    assert report["minutes"] == 7
    last3 = report["last3"]
    assert last3["success_rate"] == [0.2, 0.6, 1.0]
    assert last3["mean_success_rate"] == pytest.approx(0.6)
    assert last3["mean_return"] == pytest.approx(40.0)
    assert curve.write(report, str(tmp_path / "curve.json")) == 0
    assert (tmp_path / "curve.png").stat().st_size > 0
    # From the command line, the file records how the trial was trained and how
    # the curve was read from it.
    trained = "rllib train file tuned_examples/mwm/cpu.yaml"
    out = tmp_path / "from_cli.json"
    argv = ["--from-results", str(path), "--trained-with", trained, "--out", str(out)]
    assert curve.main(argv) == 0
    written = json.loads(out.read_text())
    assert written["command"] == trained
    assert written["curve_command"].split()[1:3] == [
        "scripts/learning_curve.py",
        "--from-results",
    ]
    assert written["last3"] == last3


def test_metaworld_curve_carries_the_papers_mwm_curve_on_its_task(curve, tmp_path):
    reference = tmp_path / "scores.json"
    steps = [10_000, 30_000, 50_000, 70_000]
    entries = [
        ("metaworld_reach", "mwm", 0, [0.0, 0.4, 0.6, 1.0]),
        ("metaworld_reach", "mwm", 1, [0.2, 0.6, 1.0, 1.0]),
        ("metaworld_reach", "dreamerv2", 0, [1.0, 1.0, 1.0, 1.0]),  # not MWM
        ("metaworld_door_close", "mwm", 0, [1.0, 1.0, 1.0, 1.0]),  # other task
    ]
    reference.write_text(
        json.dumps(
            [
                {"task": t, "method": m, "seed": s, "steps": steps, "success_rates": v}
                for t, m, s, v in entries
            ]
        )
    )
    rows = [result("train", 10_000, 9.0, evaluation=(10.0, 0.0))]
    path = tmp_path / "result.json"
    write_results(path, rows, {"env": "metaworld_reach", "seed": 0})
    report = curve.add_paper_curve(curve.report_from_results(str(path)), reference)
    paper = report["paper_mwm"]
    # Our last evaluation is at 20K frames: the paper's curve up to 30K.
    assert paper["frames"] == [10_000, 30_000]
    assert paper["success_mean"] == pytest.approx([0.1, 0.5])
    assert paper["seeds"] == 2
    assert paper["success_at_frames"] == pytest.approx(0.3)
    assert paper["at_frames"] == 20_000
    assert curve.write(report, str(tmp_path / "curve.json")) == 0
    # Below the paper's first evaluation it has no number; DMC has no curve.
    early = curve.paper_curve(reference, "metaworld_reach", 4_000)
    assert early["success_at_frames"] is None
    assert curve.paper_curve(reference, "dmc_walker_walk", 20_000) is None
    with pytest.raises(FileNotFoundError, match="no such reference file"):
        curve.paper_curve(tmp_path / "missing.json", "metaworld_reach", 20_000)
    # The table of the paper's early curve on several tasks (no training).
    out = tmp_path / "table.json"
    argv = ["--paper-table", "metaworld_reach", "dmc_walker_walk"]
    argv += ["--paper-frames", "50000", "--reference", str(reference)]
    assert curve.main([*argv, "--out", str(out)]) == 0
    reach, walker = json.loads(out.read_text())["rows"]
    assert reach["frames"] == [10_000, 30_000, 50_000]
    assert reach["success_mean"] == pytest.approx([0.1, 0.5, 0.8])
    assert walker == {"task": "dmc_walker_walk"}


def test_env_without_success_reports_none_not_zero(curve):
    rows = [
        curve.evaluation_row(result("train", 100 * i, 1.0, evaluation=(i, None)), i)
        for i in (1, 2)
    ]
    random_rows = [curve.random_row(result("prefill", 50, 3.0))]
    report = curve.make_report(rows, random_rows, env="dmc_finger_spin")
    assert all(r["success_rate"] is None for r in rows)
    assert report["random_policy_success_rate"] is None
    assert report["last3"]["success_rate"] is None
    assert report["last3"]["mean_return"] == pytest.approx(1.5)


@pytest.mark.parametrize(
    "task, env_config, has_success",
    [
        ("metaworld_reach", {"time_limit": 5, "fast_render": True}, True),
        ("dmc_cartpole_balance", {"time_limit": 5}, False),
    ],
)
def test_random_baseline_plays_whole_episodes(task, env_config, has_success):
    baseline = load_script("random_baseline")
    row = baseline.random_episodes(task, 2, env_config, seed=0)
    assert row["episodes"] == 2 and row["env_config"] == env_config
    assert ("success_rate" in row) == has_success
    assert row["return_std"] >= 0 and row["return_mean"] == row["return_mean"]  # no NaN
    # Seeded: the same episodes again give the same returns.
    assert baseline.random_episodes(task, 2, env_config, seed=0) == row


def test_scripted_policy_solves_what_random_actions_do_not():
    """Meta-world's expert closes the faucet within 150 agent steps; random
    actions do not (0 of 50 episodes, docs/curves/README.md)."""
    baseline = load_script("random_baseline")
    env_config = {"time_limit": 150, "fast_render": True}
    task = "metaworld_faucet_close"
    expert = baseline.random_episodes(task, 1, env_config, 0, "scripted")
    assert expert["success_rate"] == 1.0 and 0 < expert["first_success_step"] < 150
    rand = baseline.random_episodes(task, 1, env_config, 0)
    assert rand["success_rate"] == 0.0 and rand["first_success_step"] is None
    assert expert["return_mean"] > 2 * rand["return_mean"]
    with pytest.raises(SystemExit, match="only Meta-world"):
        baseline.random_episodes("dmc_cartpole_balance", 1, {}, 0, "scripted")
