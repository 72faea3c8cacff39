"""`--resume` starts each trial from the newest whole checkpoint in its
directory, not from an older one a stale experiment state names, and survives a
`tuner.pkl` a kill truncated (`rllib_mwm.tools.resume`)."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
from ray import tune
from ray.train._internal.session import _TrainingResult
from ray.train._internal.storage import StorageContext
from ray.tune.experiment import Trial

from rllib_mwm.rllib.checkpoints import RESUME_FILE, write_resume_file
from rllib_mwm.tools.resume import (
    TUNER_BACKUP,
    ResumeFromNewestCheckpoint,
    keep_tuner_state,
)


def make_trial(tmp_path: Path) -> Trial:
    storage = StorageContext(
        storage_path=str(tmp_path), experiment_dir_name="exp", trial_dir_name="t"
    )
    trial = Trial(
        "MWM",
        stub=True,
        storage=storage,
        checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
    )
    Path(trial.path).mkdir(parents=True, exist_ok=True)
    return trial


def write_checkpoint(trial: Trial, index: int, iteration: int | None) -> Path:
    """A checkpoint directory; `iteration` None: half-written (no RESUME_FILE)."""
    path = Path(trial.path) / f"checkpoint_{index:06d}"
    path.mkdir()
    (path / "algorithm_state.pkl").write_bytes(b"state")
    if iteration is not None:
        # Tune's counters can be NumPy scalars; lists and the config are left out;
        # nested results are flattened as Tune flattens them.
        metrics = {"training_iteration": np.int64(iteration), "x": [1]}
        metrics |= {"config": {"lr": 1.0}, "env_runners": {"return": 2.0}}
        write_resume_file(str(path), {**metrics, "time_total_s": np.float32(0.5)})
    return path


def register(trial: Trial, path: Path, iteration: int) -> None:
    """What Tune does when a trial reports a checkpoint."""
    metrics = {"training_iteration": iteration}
    trial.on_checkpoint(_TrainingResult(tune.Checkpoint(str(path)), metrics))


def resume(trial: Trial) -> None:
    callback = ResumeFromNewestCheckpoint()
    callback.setup()
    callback.on_step_begin(0, [trial])


def test_stale_state_resumes_from_the_newest_whole_checkpoint(tmp_path):
    trial = make_trial(tmp_path)
    # Tune's (stale) experiment state: checkpoints 0 and 1, since deleted by
    # num_to_keep=2. On disk: 2 and 3 whole, 4 half-written when the run was killed.
    register(trial, Path(trial.path) / "checkpoint_000000", 2)
    register(trial, Path(trial.path) / "checkpoint_000001", 4)
    assert trial.storage.current_checkpoint_index == 1
    second, third = write_checkpoint(trial, 2, 6), write_checkpoint(trial, 3, 8)
    half = write_checkpoint(trial, 4, None)

    resume(trial)
    assert Path(trial.checkpoint.path) == third
    # What `Trainable.restore` reads: the scalar metrics of that iteration.
    restored = trial.latest_checkpoint_result.metrics
    expected = {"training_iteration": 8, "time_total_s": 0.5}
    assert restored == {**expected, "env_runners/return": 2.0}
    assert not half.exists()  # Never restorable; the next save's directory.
    assert trial.storage.current_checkpoint_index == 3  # The next save: 4.
    # num_to_keep counts the checkpoints on disk: the next one removes the oldest.
    fourth = write_checkpoint(trial, 4, 10)
    register(trial, fourth, 10)
    assert sorted(Path(trial.path).glob("checkpoint_*")) == [third, fourth]
    assert not second.exists()


def test_resume_changes_nothing_where_tune_names_the_newest_or_none_is_marked(
    tmp_path,
):
    trial = make_trial(tmp_path)
    newest = write_checkpoint(trial, 0, 3)
    register(trial, newest, 3)
    resume(trial)
    assert Path(trial.checkpoint.path) == newest
    assert trial.storage.current_checkpoint_index == 0

    # Checkpoints of an earlier version (no RESUME_FILE): Tune's own behaviour,
    # nothing on disk removed.
    old = make_trial(tmp_path / "old")
    unmarked = [write_checkpoint(old, i, None) for i in (0, 1)]
    register(old, unmarked[0], 2)
    resume(old)
    assert Path(old.checkpoint.path) == unmarked[0]
    assert all(path.exists() for path in unmarked)
    assert not (unmarked[1] / RESUME_FILE).exists()


def test_finished_trials_are_left_alone(tmp_path):
    trial = make_trial(tmp_path)
    register(trial, write_checkpoint(trial, 0, 2), 2)
    write_checkpoint(trial, 1, 4)
    trial.set_status(Trial.TERMINATED)
    resume(trial)
    assert Path(trial.checkpoint.path).name == "checkpoint_000000"


def test_a_truncated_tuner_state_is_put_back_from_its_copy(tmp_path):
    """Tune's sync rewrites tuner.pkl in place; a kill mid-copy truncates it and
    `Tuner.restore` fails with EOFError. `--resume` puts back the last whole one."""
    state = tmp_path / "tuner.pkl"
    whole = {"run": "MWM", "n": 1}
    state.write_bytes(pickle.dumps(whole))
    keep_tuner_state(str(tmp_path))
    assert pickle.loads((tmp_path / TUNER_BACKUP).read_bytes()) == whole
    for broken in (b"", pickle.dumps(whole)[:7]):
        state.write_bytes(broken)
        keep_tuner_state(str(tmp_path))
        assert pickle.loads(state.read_bytes()) == whole
    # A new run in the same directory writes a new tuner.pkl: the copy follows.
    state.write_bytes(pickle.dumps({"run": "MWM", "n": 2}))
    keep_tuner_state(str(tmp_path))
    assert pickle.loads((tmp_path / TUNER_BACKUP).read_bytes())["n"] == 2
    # Nothing to put back: left as it is (Tune then says what is wrong).
    lone = tmp_path / "lone"
    lone.mkdir()
    (lone / "tuner.pkl").write_bytes(b"")
    keep_tuner_state(str(lone))
    assert (lone / "tuner.pkl").read_bytes() == b""
    assert not (lone / TUNER_BACKUP).exists()
