"""`scripts/gpu_check.py` runs where Ray is not installed: its short form (the
update benchmark's debug sizes and a 150-agent-step training run of the core on
the real Meta-world simulator) with `import ray` failing in every process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_check_short_form_runs_without_ray(tmp_path):
    blocked = tmp_path / "blocked" / "ray"
    blocked.mkdir(parents=True)
    (blocked / "__init__.py").write_text(
        "raise ImportError(\"No module named 'ray' (blocked by the test)\")\n"
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(blocked.parent), str(ROOT)]),
        "MUJOCO_GL": "egl",
    }
    out = tmp_path / "gpu"
    # The released scores' format: two seeds of the paper's MWM, and a DreamerV2 run.
    scores = tmp_path / "score.json"
    runs = [("mwm", 0, [0.2, 0.6]), ("mwm", 1, [0.4, 0.8]), ("dreamerv2", 0, [1, 1])]
    scores.write_text(
        json.dumps(
            [
                {
                    "task": "metaworld_reach",
                    "seed": seed,
                    "method": method,
                    "steps": [100, 1000],
                    "success_rates": rates,
                }
                for method, seed, rates in runs
            ]
        )
    )
    command = [sys.executable, str(ROOT / "scripts/gpu_check.py"), "--short"]
    done = subprocess.run(
        [*command, "--device=cpu", f"--out={out}", f"--paper-scores={scores}"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["ray_imported"] is False
    for update in ("mae", "world_model_actor_critic"):
        row = summary[f"{update} fp32"]
        assert row["seconds"] > 0 and row["tflop"] > 0
    # The update benchmark counts the pages each timed update touched first.
    for row in json.loads((out / "updates.json").read_text())["results"]:
        assert len(row["minor_faults"]) == len(row["times_s"]) == 1
        assert all(isinstance(n, int) and n >= 0 for n in row["minor_faults"])
    train = summary["train"]
    assert train["phase"] == "train" and train["agent_steps"] >= 150
    assert train["env_frames"] == 2 * train["agent_steps"]  # action_repeat 2
    assert train["train_agent_steps_per_s"] > 0
    (evaluation,) = train["evaluations"]
    assert 0.0 <= evaluation["success_rate"] <= 1.0
    # At 200 env frames (after the 100 prefill agent steps) the paper's nearest
    # point is 100 frames: the mean of its two MWM seeds there.
    assert evaluation["env_frames"] == 200
    assert evaluation["paper_frames"] == 100 and evaluation["paper_seeds"] == 2
    assert abs(evaluation["paper_mwm_success"] - 0.3) < 1e-12
    report = json.loads((out / "train.json").read_text())
    # Real updates ran on replayed episodes: finite losses of every optimizer.
    for key in ("mae/loss", "world_model/loss", "actor/actor_loss"):
        assert report["last_metrics"][key] == report["last_metrics"][key]
    # The schedule: one world-model and one MAE update per 5 policy steps.
    # Every env step counts: the debug preset's prefill (two 50-step episodes),
    # then one policy step per round with one env.
    assert report["agent_steps"] == 100 + report["train_steps"] == 150
    assert report["world_model_updates"] == report["train_steps"] // 5
    assert report["mae_updates"] == report["train_steps"] // 5
