"""`rllib_mwm plot`: curves from fake Tune result dirs and a fake paper file."""

import json

import numpy as np
import pytest

from rllib_mwm.tools import plot


def result(agent_steps=None, success=None, ret=None, config=None, repeat=False):
    """One result.json line; `repeat`: RLlib's copy of the last evaluation."""
    line = {"training_iteration": 1, "agent_steps": agent_steps or 0}
    if success is not None:
        runners = {"success_rate": success, "episode_return_mean": ret}
        line["evaluation"] = {"env_runners": runners}
        if not repeat:
            line["evaluation"].update(
                agent_steps=agent_steps, env_frames=2 * agent_steps
            )
    if config is not None:
        line["config"] = config
    return line


def write_trial(trial_dir, lines, params=None):
    trial_dir.mkdir(parents=True)
    text = "".join(json.dumps(line) + "\n" for line in lines)
    (trial_dir / "result.json").write_text(text)
    if params is not None:
        (trial_dir / "params.json").write_text(json.dumps(params))


@pytest.fixture
def results(tmp_path):
    """Two seeds of metaworld_reach (evaluated at different frames) and one of
    metaworld_push whose config is only in params.json."""
    root = tmp_path / "results"
    reach = {"env": "metaworld_reach", "seed": 0}
    write_trial(
        root / "reach" / "MWM_0",
        [
            result(500, config=reach),  # No evaluation yet.
            result(1000, 0.0, 10.0, config=reach),
            result(2000, 0.0, 10.0, config=reach, repeat=True),  # Not new.
            result(3000, 1.0, 30.0, config=reach),
        ],
    )
    reach = {"env": "metaworld_reach", "seed": 1}
    write_trial(
        root / "reach" / "MWM_1",
        [result(1000, 0.5, 20.0, config=reach), result(2000, 1.0, 40.0, config=reach)],
    )
    write_trial(
        root / "push" / "MWM_0",
        [result(1000, 0.2, 5.0), result(2000, 0.4, 7.0)],
        params={"env": "metaworld_push", "seed": 0},
    )
    return root


@pytest.fixture
def reference(tmp_path):
    """Paper-format scores: 2 methods × 2 seeds on reach, plus an absent task."""

    def entry(task, seed, method, rates):
        steps = [10000, 30000]
        return dict(
            task=task, seed=seed, method=method, steps=steps, success_rates=rates
        )

    entries = [
        entry("metaworld_reach", 0, "mwm", [0.2, 0.4]),
        entry("metaworld_reach", 1, "mwm", [0.4, 0.8]),
        entry("metaworld_reach", 0, "dreamerv2", [0.0, 0.2]),
        entry("metaworld_reach", 1, "dreamerv2", [0.2, 0.2]),
        entry("metaworld_basketball", 0, "mwm", [1.0, 1.0]),
    ]
    path = tmp_path / "paper.json"
    path.write_text(json.dumps(entries))
    return path


def by_key(curves):
    return {(curve.task, curve.method): curve for curve in curves}


def test_curves_per_task_and_method(results, reference):
    dirs = [results / "reach", results / "push"]
    curves = plot.assemble_curves(dirs, "success", reference=reference)
    assert [(c.task, c.method) for c in curves] == [
        ("metaworld_push", "mwm (ours)"),
        ("metaworld_reach", "mwm (ours)"),
        ("metaworld_reach", "dreamerv2 (paper)"),
        ("metaworld_reach", "mwm (paper)"),
    ]
    curves = by_key(curves)
    ours = curves["metaworld_reach", "mwm (ours)"]
    # Seed 0 at frames 2000, 6000; seed 1 at 2000, 4000; seed 0 interpolated at
    # 4000 (0.5); 6000 only seed 0 covers.
    np.testing.assert_allclose(ours.frames, [2000, 4000, 6000])
    np.testing.assert_allclose(ours.mean, [0.25, 0.75, 1.0])
    np.testing.assert_allclose(ours.low, [0.0, 0.5, 1.0])
    np.testing.assert_allclose(ours.high, [0.5, 1.0, 1.0])
    assert ours.num_runs == 2
    push = curves["metaworld_push", "mwm (ours)"]
    np.testing.assert_allclose(push.frames, [2000, 4000])
    np.testing.assert_allclose(push.mean, [0.2, 0.4])
    paper = curves["metaworld_reach", "mwm (paper)"]
    np.testing.assert_allclose(paper.frames, [10000, 30000])
    np.testing.assert_allclose(paper.mean, [0.3, 0.6])
    dreamer = curves["metaworld_reach", "dreamerv2 (paper)"]
    np.testing.assert_allclose(dreamer.mean, [0.1, 0.2])
    np.testing.assert_allclose(dreamer.low, [0.0, 0.2])


def test_return_metric_and_label(results):
    (curve,) = plot.assemble_curves([results / "reach"], "return", label="mine")
    assert curve.method == "mine"
    np.testing.assert_allclose(curve.mean, [15.0, 30.0, 30.0])


def test_main_writes_png(results, reference, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    out = tmp_path / "curves.png"
    assert (
        plot.main([str(results), "--out", str(out), "--reference", str(reference)]) == 0
    )
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "4 curves, 2 tasks" in capsys.readouterr().out


@pytest.mark.parametrize("kind", ["missing", "empty", "no_evaluation"])
def test_bad_result_dir_names_it(tmp_path, kind):
    path = tmp_path / kind
    if kind == "empty":
        path.mkdir()
    if kind == "no_evaluation":
        write_trial(path / "MWM_0", [result(500, config={"env": "metaworld_reach"})])
    with pytest.raises(SystemExit, match=f"rllib_mwm plot: error: .*{kind}"):
        plot.main([str(path), "--out", str(tmp_path / "x.png")])


def test_reference_needs_success_metric(results, reference):
    with pytest.raises(SystemExit, match="--metric success"):
        plot.main([str(results), "--metric", "return", "--reference", str(reference)])
