"""`rllib_mwm report`: the paper's table from Tune result dirs (synthetic ones, and
one rebuilt from the paper's released MWM runs, which must give its numbers)."""

import json
import re
from pathlib import Path

import numpy as np
import pytest

from rllib_mwm.tools import cli, report

RELEASED = (
    Path(__file__).resolve().parents[2]
    / "shared"
    / "reference"
    / "mwm_paper_metaworld_scores.json"
)
ROWS = ["100K frames", "250K frames", "500K frames", "at budget"]
K = 1000


def write_trial(root, task, seed, frames, values, name=None):
    """A trial dir whose result.json has one line per evaluation, as MWM writes
    it (plus a line without evaluation first)."""
    trial = root / (name or f"MWM_{task}_{seed}")
    trial.mkdir(parents=True)
    config = {"env": task, "seed": seed}
    lines = [{"training_iteration": 1, "agent_steps": 100, "config": config}]
    for i, (frame, value) in enumerate(zip(frames, values, strict=True)):
        evaluation = {
            "agent_steps": frame // 2,
            "env_frames": frame,
            "env_runners": {"success_rate": value, "episode_return_mean": 0.0},
        }
        lines.append(
            {"training_iteration": i + 2, "config": config, "evaluation": evaluation}
        )
    (trial / "result.json").write_text("".join(json.dumps(x) + "\n" for x in lines))
    return trial


def evals(last):
    """Evaluation frames of the released logs: 10K, 30K, ..., last."""
    return list(range(10 * K, last + 1, 20 * K))


@pytest.fixture
def reference(tmp_path):
    """metaworld_a and metaworld_c: 0.5M budget; metaworld_b: 1M. Constant
    success per method and task."""
    rates = {
        ("metaworld_a", "mwm"): 0.8,
        ("metaworld_b", "mwm"): 0.4,
        ("metaworld_c", "mwm"): 0.0,
        ("metaworld_a", "dreamerv2"): 0.1,
        ("metaworld_b", "dreamerv2"): 0.1,
        ("metaworld_c", "dreamerv2"): 0.1,
    }
    entries = []
    for (task, method), rate in rates.items():
        steps = evals(990 * K if task == "metaworld_b" else 490 * K)
        for seed in range(5):
            entries.append(
                dict(
                    task=task,
                    seed=seed,
                    method=method,
                    steps=steps,
                    success_rates=[rate] * len(steps),
                )
            )
    path = tmp_path / "paper.json"
    path.write_text(json.dumps(entries))
    return path


@pytest.fixture
def experiment(tmp_path):
    root = tmp_path / "mwm-benchmark"
    frames = evals(490 * K)
    write_trial(root, "metaworld_a", 0, frames, [f / 1e6 for f in frames])
    steps = [0.0 if f <= 90 * K else 1.0 for f in frames]  # 0.5 at 100K.
    write_trial(root, "metaworld_a", 1, frames, steps)
    write_trial(root, "metaworld_a", 2, [], [])  # Started, no evaluation yet.
    frames = evals(990 * K)
    write_trial(root, "metaworld_b", 0, frames, [0.6] * len(frames))
    frames = evals(310 * K)  # Unfinished: 310K of 1M frames.
    write_trial(root, "metaworld_b", 1, frames, [0.2] * len(frames))
    write_trial(root, "dmc_walker_walk", 0, frames, [0.5] * len(frames))
    return root


def test_hand_computed_statistics(experiment, reference):
    from rllib_mwm.tools import plot

    runs, pending = report.read_ours(experiment)
    paper = plot.read_reference(reference)
    columns, cells = report.table(runs, paper, reps=200)
    assert columns == ["ours", "paper MWM", "paper DreamerV2"]
    # metaworld_a: seed 0 success = frames/1M, seed 1 a step at 100K.
    # metaworld_b: seed 0 constant 0.6; seed 1 constant 0.2, stopped at 310K.
    a = {"100K": (0.1 + 0.5) / 2, "250K": (0.25 + 1) / 2, "500K": (0.49 + 1) / 2}
    a["budget"] = (np.mean([0.41, 0.43, 0.45, 0.47, 0.49]) + 1) / 2
    b = {"100K": 0.4, "250K": 0.4, "500K": 0.6, "budget": 0.6}
    for row, key in zip(ROWS, a, strict=True):
        ours = cells[row]["ours"]
        assert ours.tasks == 2  # dmc_walker_walk is not in the benchmark.
        assert ours.mean == pytest.approx((a[key] + b[key]) / 2), row
        # The paper's columns use the same tasks (a, b; not c).
        assert cells[row]["paper MWM"].mean == pytest.approx(0.6), row
        assert cells[row]["paper DreamerV2"].mean == pytest.approx(0.1), row
        assert cells[row]["paper MWM"].iqm == pytest.approx(0.6), row
    assert cells["250K frames"]["ours"].left_out == 0
    assert cells["at budget"]["ours"].runs_per_task == 1
    assert cells["at budget"]["ours"].left_out == 1  # metaworld_a's second run.

    lines = report.coverage(runs, pending, report.task_budgets(paper))
    text = "\n".join(lines)
    assert "not in the paper's benchmark (left out): dmc_walker_walk" in text
    assert "missing tasks (1 of 3): metaworld_c" in text
    assert "missing runs: metaworld_b seed 2" in text
    assert "metaworld_a seed 2 (no evaluation yet)" in text
    assert "metaworld_b seed 1 (last evaluation at 310K of 1M frames)" in text
    assert "seeds: 3 per task here, the paper has 5" in text


def test_budgets_from_the_reference(reference):
    from rllib_mwm.tools import plot

    budgets = report.task_budgets(plot.read_reference(reference))
    assert budgets == {
        "metaworld_a": 500 * K,
        "metaworld_b": 1000 * K,
        "metaworld_c": 500 * K,
    }


def test_iqm_and_interval():
    scores = {"t1": [0.0, 0.2, 0.4, 1.0], "t2": [0.1, 0.3, 0.5, 0.9]}
    cell = report.summarize(scores, reps=500)
    assert cell.mean == pytest.approx(0.425)
    assert cell.iqm == pytest.approx((0.2 + 0.3 + 0.4 + 0.5) / 4)  # Middle half.
    assert 0.0 <= cell.low < cell.iqm < cell.high <= 1.0
    again = report.summarize(scores, reps=500)
    assert (again.low, again.high) == (cell.low, cell.high)  # Reproducible.
    constant = report.summarize({"t1": [0.5] * 3, "t2": [0.5] * 3}, reps=100)
    assert constant.low == constant.high == constant.iqm == pytest.approx(0.5)
    uneven = report.summarize({"t1": [0.1, 0.2, 0.3], "t2": [0.4]}, reps=100)
    assert (uneven.runs_per_task, uneven.left_out) == (1, 2)
    assert uneven.mean == pytest.approx((0.2 + 0.4) / 2)


def test_main_prints_the_table(experiment, reference, capsys):
    argv = ["report", str(experiment), "--reference", str(reference), "--reps", "200"]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "unfinished runs:" in out and "rliable, 200 resamples" in out
    (row,) = [line for line in out.splitlines() if line.startswith("at budget")]
    assert row.split()[2] == "2"  # Tasks.


@pytest.mark.parametrize("kind", ["empty", "ppo", "dmc", "reference"])
def test_bad_input_is_one_line_naming_the_fix(tmp_path, reference, kind, capsys):
    root = tmp_path / "experiment"
    root.mkdir()
    argv = [str(root), "--reference", str(reference)]
    if kind == "ppo":  # Results without MWM's evaluations.
        (root / "PPO_0").mkdir()
        line = {"training_iteration": 1, "config": {"env": "CartPole-v1"}}
        (root / "PPO_0" / "result.json").write_text(json.dumps(line) + "\n")
    elif kind == "dmc":
        write_trial(root, "dmc_walker_walk", 0, evals(50 * K), [0.0] * 3)
    elif kind == "reference":
        write_trial(root, "metaworld_a", 0, evals(50 * K), [0.0] * 3)
        argv[-1] = str(tmp_path / "missing.json")
    with pytest.raises(SystemExit) as error:
        report.main(argv)
    message = str(error.value)
    assert len(message.splitlines()) == 1 and message.startswith("rllib_mwm report")
    expected = {
        "empty": "no result.json under .*; pass the directory of a Tune experiment",
        "ppo": "no MWM evaluation results .*; pass the directory of a Tune",
        "dmc": "none of the tasks .* is in the paper's Meta-world benchmark",
        "reference": "no such reference file: .*missing.json",
    }[kind]
    assert re.search(expected, message), message


@pytest.mark.skipif(not RELEASED.is_file(), reason="the paper's scores are absent")
def test_released_mwm_runs_reproduce_the_papers_numbers(tmp_path, capsys):
    """Our runs := the paper's released MWM runs; the report must give the
    paper's figures (41.9 / 54.4 / 65.5 % at 100K / 250K / 500K frames, 81.7 %
    at budget; DreamerV2 36.6 / 51.8 / 57.6 / 67.9 %)."""
    for entry in json.loads(RELEASED.read_text()):
        if entry["method"] == "mwm":
            root = tmp_path / "released"
            write_trial(
                root,
                entry["task"],
                entry["seed"],
                entry["steps"],
                entry["success_rates"],
            )
    assert (
        report.main(
            [str(tmp_path / "released"), "--reference", str(RELEASED), "--reps", "100"]
        )
        == 0
    )
    out = capsys.readouterr().out
    table = {}
    for row in ROWS:
        (line,) = [x for x in out.splitlines() if x.startswith(row)]
        numbers = [float(x) for x in re.findall(r"\d+\.\d+", line)]
        assert line[len(row) :].split()[0] == "50"  # Tasks.
        table[row] = numbers[0::4]  # Means: ours, paper MWM, paper DreamerV2.
    ours = [table[row][0] for row in ROWS]
    assert ours == [41.9, 54.4, 65.5, 81.7]
    assert [table[row][1] for row in ROWS] == ours
    assert [table[row][2] for row in ROWS] == [36.6, 51.8, 57.6, 67.9]
    assert "paper MWM, all 50 tasks: 41.9 / 54.4 / 65.5 / 81.7" in out
    assert "complete: every task and seed at its budget" in out


def test_without_reference_the_error_names_the_released_scores(experiment, capsys):
    with pytest.raises(SystemExit) as done:
        report.main([str(experiment)])
    message = str(done.value)
    assert message.startswith("rllib_mwm report: error: pass --reference PATH")
    assert "scores/score.json" in message and "\n" not in message


def test_help_through_the_rllib_command(capsys):
    with pytest.raises(SystemExit) as done:
        cli.main(["report", "-h"])
    assert done.value.code == 0
    assert "usage: rllib_mwm report" in capsys.readouterr().out
