"""Killed at any moment, resumed exactly.

A checkpoint is compared by what it holds on disk: the weights, the four
optimizer states, the learner's counters, `progress` (phase included) and the
replay (its state and every listed episode's arrays), bitwise. The slow test
runs the debug tuned example through `rllib train`, SIGKILLs it at random
moments (some right as a checkpoint directory appears, i.e. while Tune writes
it) and checks that each `--resume` restores exactly the newest checkpoint
written whole, even where Tune's experiment state still names an older one
(`rllib_mwm.tools.resume`): `ReloadProbe` saves the resumed algorithm right after it
loaded one.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import pickle
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from helpers import assert_same_tree, debug_config
from ray.rllib.callbacks.callbacks import RLlibCallback

from rllib_mwm.core.replay.store import DiskFullError, read_episode
from rllib_mwm.rllib.checkpoints import RESUME_FILE

ROOT = Path(__file__).resolve().parent.parent
DEBUG_YAML = ROOT / "tuned_examples" / "mwm" / "debug.yaml"
PROBE_ENV = "MWM_RESUME_PROBE_DIR"


class ReloadProbe(RLlibCallback):
    """Saves the algorithm right after it loaded a checkpoint (what it restored)."""

    def on_checkpoint_loaded(self, *, algorithm, **kwargs) -> None:
        probe, stamp = Path(os.environ[PROBE_ENV]), time.time_ns()
        algorithm.save_to_path(probe / f"partial_{stamp}")
        os.rename(probe / f"partial_{stamp}", probe / f"restored_{stamp}")  # Whole.


# --------------------------------------------------------------- comparison
def checkpoint_contents(path) -> dict:
    """What a checkpoint holds that a resume must restore exactly."""
    path = Path(path)

    def load(name):
        with open(path / name, "rb") as f:
            return pickle.load(f)

    learner = load("learner_group/learner/state.pkl")
    algorithm = load("algorithm_state.pkl")
    replay = load("replay/state.pkl")
    directory = Path(replay["directory"])
    return {
        "weights": load(
            "learner_group/learner/rl_module/default_policy/module_state.pkl"
        ),
        "optimizers": learner["optimizer"],
        "counters": learner["mwm_progress"],
        "progress": algorithm["mwm_progress"],
        "replay": {k: v for k, v in replay.items() if k != "directory"},
        "episodes": [read_episode(directory, f[1:]) for f in replay["files"]],
    }


# ------------------------------------------------- fast: disk full, restore
def test_full_disk_checkpoint_keeps_the_previous_one_and_it_restores_exactly(
    ray_session, tmp_path, monkeypatch
):
    """A checkpoint whose copy into the trial directory runs out of disk: the
    half-written directory goes, the error says the previous checkpoint is
    intact, and restoring that one gives back exactly what it holds."""
    from ray.train._internal import storage as ray_storage

    from rllib_mwm.rllib import checkpoints

    config = debug_config(runners=0, prefill=50, mae_pretrain=2, eval_eps=0)
    algo = config.build_algo()
    try:
        algo.report_dir = str(tmp_path / "reports")
        algo.train()  # Prefill: one 50-step episode.
        algo._storage = ray_storage.StorageContext(
            storage_path=str(tmp_path), experiment_dir_name="exp", trial_dir_name="t"
        )
        first = algo.save().checkpoint.path
        # Written last, once the copy into the trial directory is whole.
        whole = json.loads((Path(first) / RESUME_FILE).read_text())
        assert whole["training_iteration"] == 1
        expected = checkpoint_contents(first)
        assert expected["progress"]["phase"] == "pretrain"
        algo.train()  # Pretraining: weights, optimizers and counters move on.

        real_copy = ray_storage._pyarrow_fs_copy_files

        def copy_then_run_out_of_disk(source, destination, **kwargs):
            real_copy(source, destination, **kwargs)  # Then fail at the end.
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(
            ray_storage, "_pyarrow_fs_copy_files", copy_then_run_out_of_disk
        )
        with pytest.raises(DiskFullError) as error:
            algo.save()
        message = str(error.value)
        assert "\n" not in message and "no space left on device" in message
        assert f"the previous checkpoint is intact: {first};" in message
        written = sorted(p.name for p in Path(first).parent.glob("checkpoint_*"))
        assert written == [Path(first).name]  # The half-written one is gone.
        monkeypatch.undo()

        def no_room_for_the_resume_file(checkpoint_dir, metrics):
            raise OSError(errno.ENOSPC, "No space left on device")

        # Copied whole but not marked so: not restorable by `--resume`, so it goes.
        monkeypatch.setattr(
            checkpoints, "write_resume_file", no_room_for_the_resume_file
        )
        with pytest.raises(DiskFullError) as error:
            algo.save()
        assert f"the previous checkpoint is intact: {first};" in str(error.value)
        assert sorted(Path(first).parent.glob("checkpoint_*")) == [Path(first)]
        monkeypatch.undo()

        def full_temporary_disk(checkpoint_dir):
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(algo, "save_checkpoint", full_temporary_disk)
        with pytest.raises(DiskFullError, match="previous checkpoint is intact"):
            algo.save()  # Failed before the copy: nothing in the trial dir goes.
        monkeypatch.undo()
        assert sorted(Path(first).parent.glob("checkpoint_*")) == [Path(first)]

        algo.save_to_path(tmp_path / "before_restore")
        moved_on = checkpoint_contents(tmp_path / "before_restore")
        assert moved_on["counters"] != expected["counters"]
        algo.restore_from_path(first)
        algo.save_to_path(tmp_path / "after_restore")
        restored = checkpoint_contents(tmp_path / "after_restore")
        assert_same_tree(restored, expected)
        assert_same_tree(checkpoint_contents(first), expected)  # Untouched.
    finally:
        algo.stop()


# ----------------------------------------------------- slow: kill and resume
def debug_experiment(tmp_path: Path, agent_steps: int) -> Path:
    """debug.yaml with the probe callback and a `agent_steps` stop."""
    spec = yaml.safe_load(DEBUG_YAML.read_text())
    ((name, body),) = spec.items()
    body["stop"] = {"agent_steps": agent_steps}
    body["config"]["callbacks"] = f"{__name__}.ReloadProbe"
    path = tmp_path / "debug.yaml"
    path.write_text(yaml.safe_dump({name: body}))
    return path


def start(experiment: Path, storage: Path, probe: Path, resume: bool, log):
    command = [sys.executable, "-m", "rllib_mwm", "train", "file", str(experiment)]
    command += ["--storage-path", str(storage)] + (["--resume"] if resume else [])
    env = dict(os.environ, RAY_AUTH_MODE="disabled", **{PROBE_ENV: str(probe)})
    env["PYTHONPATH"] = os.pathsep.join(
        [str(Path(__file__).parent), env.get("PYTHONPATH", "")]
    )
    return subprocess.Popen(
        command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )


def kill(process: subprocess.Popen) -> None:
    """SIGKILL to the run's process group: the CLI, Ray's processes, the trial."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.killpg(process.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)


def newest_whole_checkpoint(experiment_dir: Path) -> Path | None:
    """The newest checkpoint written whole (`RESUME_FILE` is written last): what
    `--resume` starts from, even where Tune's experiment state names an older one."""
    whole = [c.parent for c in experiment_dir.glob(f"MWM_*/checkpoint_*/{RESUME_FILE}")]
    return max(whole, default=None)


def wait_for(condition, process, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        if process.poll() is not None:
            return condition()
        time.sleep(0.002)
    return False


@pytest.mark.slow
def test_killed_at_random_moments_the_run_resumes_exactly(tmp_path):
    storage, probe = tmp_path / "storage", tmp_path / "probe"
    probe.mkdir()
    with open(tmp_path / "run.log", "ab") as log:
        kills_during_write = kill_and_resume(
            debug_experiment(tmp_path, agent_steps=100_000), storage, probe, log
        )
    assert kills_during_write >= 4


def kill_and_resume(experiment, storage, probe, log, trials=8) -> int:
    """`trials` × (SIGKILL, `--resume`, compare); returns the kills made right as
    a checkpoint directory appeared."""
    rng = random.Random(0)
    experiment_dir = storage / "mwm-debug"
    tail = lambda: Path(log.name).read_text()[-3000:]  # noqa: E731

    def checkpoints() -> set[Path]:
        return {c for t in experiment_dir.glob("MWM_*") for c in t.glob("checkpoint_*")}

    def restored() -> set[Path]:
        return set(probe.glob("restored_*"))

    process = start(experiment, storage, probe, resume=False, log=log)
    kills_during_write = 0
    try:
        for trial in range(trials):
            before = checkpoints()
            if trial % 2 == 0:  # Right as Tune starts writing a new checkpoint.
                assert wait_for(lambda b=before: checkpoints() - b, process, 600), (
                    tail()
                )
                kills_during_write += 1
            else:  # Anywhere, once a checkpoint exists to resume from.
                found = wait_for(
                    lambda: newest_whole_checkpoint(experiment_dir), process, 600
                )
                assert found, tail()
                time.sleep(rng.uniform(0, 20))
            kill(process)
            newest = newest_whole_checkpoint(experiment_dir)
            seen = restored()
            process = start(experiment, storage, probe, resume=True, log=log)
            if newest is None:  # Killed before any checkpoint: starts afresh.
                continue
            expected = checkpoint_contents(newest)  # Complete: every file loads.
            assert wait_for(lambda s=seen: restored() - s, process, 600), tail()
            (path,) = restored() - seen
            assert_same_tree(checkpoint_contents(path), expected, str(newest))
    finally:
        kill(process)
    return kills_during_write
