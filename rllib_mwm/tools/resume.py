"""`--resume` restarts each trial from the newest checkpoint that was written
whole, whatever Tune's experiment state says.

Tune's experiment state reaches the storage path through a background sync that
is skipped while one still runs, so after a SIGKILL it can name an older
checkpoint than the newest one in the trial directory, or one that
`num_to_keep` has since deleted (the trial then starts from scratch). Each
checkpoint `MWM.save` finishes gets a `RESUME_FILE` written last
(`rllib_mwm.rllib.checkpoints`): Tune's counters at that iteration. On resume,
`ResumeFromNewestCheckpoint` rebuilds each unfinished trial's checkpoint list from
the directories that have one, and `keep_tuner_state` puts back a `tuner.pkl` that
a kill left truncated.
"""

from __future__ import annotations

import os
import pickle
import shutil
from pathlib import Path

from ray import tune

from rllib_mwm.rllib.checkpoints import complete_checkpoints

#: A copy of Tune's `tuner.pkl` (`keep_tuner_state`).
TUNER_BACKUP = "tuner.pkl.backup"


def keep_tuner_state(experiment_dir: str) -> None:
    """Keeps `--resume` possible after a kill during Tune's sync of the
    experiment directory, which rewrites `tuner.pkl` in place: killed mid-copy,
    it is left truncated and `Tuner.restore` fails to unpickle it. A whole
    `tuner.pkl` is copied to `TUNER_BACKUP`; a broken one is replaced by that
    copy. Local storage only."""
    if "://" in experiment_dir:
        return
    state = Path(experiment_dir, "tuner.pkl")
    backup = Path(experiment_dir, TUNER_BACKUP)
    if _unpickles(state):
        _copy_atomically(state, backup)
    elif backup.is_file():
        _copy_atomically(backup, state)


def _unpickles(path: Path) -> bool:
    try:
        pickle.loads(path.read_bytes())
    except Exception:  # Missing, empty, truncated: any unpickling error.
        return False
    return True


def _copy_atomically(source: Path, target: Path) -> None:
    partial = target.with_name(target.name + ".partial")
    shutil.copyfile(source, partial)
    os.replace(partial, target)


def checkpoint_index(path: str | Path) -> int:
    return int(Path(path).name.rsplit("_", 1)[1])


def adopt_newest_checkpoint(trial) -> Path | None:
    """Points `trial` (a Tune `Trial`) at the newest whole checkpoint in its
    directory; removes half-written ones newer than that. Returns the checkpoint
    it now restores from, or None where it changed nothing: remote storage, no
    checkpoint written by this version (no `RESUME_FILE`), or Tune already
    names the newest."""
    from ray.train._internal.session import _TrainingResult

    if "://" in trial.path:
        return None
    complete = complete_checkpoints(trial.path)
    if not complete:
        return None
    newest = complete[-1][0]
    for path in Path(trial.path).glob("checkpoint_*"):
        if checkpoint_index(path) > checkpoint_index(newest):
            # Half-written: never restorable, and the next save's directory.
            shutil.rmtree(path, ignore_errors=True)
    latest = trial.latest_checkpoint_result
    if latest is not None and Path(latest.checkpoint.path) == newest:
        return None
    # Tune's own bookkeeping (private in Ray 2.60), rebuilt from the disk: the
    # checkpoints `num_to_keep` counts, the latest, the next directory's index.
    manager = trial.run_metadata.checkpoint_manager
    manager._checkpoint_results, manager._latest_checkpoint_result = [], None
    for path, metrics in complete:
        trial.storage.current_checkpoint_index = checkpoint_index(path) - 1
        trial.on_checkpoint(
            _TrainingResult(checkpoint=tune.Checkpoint(str(path)), metrics=metrics)
        )
    return newest


class ResumeFromNewestCheckpoint(tune.Callback):
    """Before Tune starts the trials of a resumed experiment, each unfinished
    one is pointed at its newest whole checkpoint (`adopt_newest_checkpoint`)."""

    def setup(self, **info) -> None:
        self._checked = False

    def on_step_begin(self, iteration: int, trials: list, **info) -> None:
        if getattr(self, "_checked", False):
            return
        self._checked = True
        for trial in trials:
            if trial.status != trial.TERMINATED:
                adopt_newest_checkpoint(trial)
