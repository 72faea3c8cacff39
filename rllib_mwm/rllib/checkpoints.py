"""MWM's checkpoints: what they hold besides RLlib's (`progress`, the replay) and
the mark that a checkpoint was written whole (docs/algorithm.md §6).

`MWMCheckpoints` is the part of `MWM` that saves and restores. Each checkpoint
`save` finishes gets a `RESUME_FILE` written last (`write_resume_file`): Tune's
counters at that iteration. Its presence means the copy into the trial directory
is whole, which `--resume` (`rllib_mwm.tools.resume`) relies on; out of disk, the
half-written copy goes and `DiskFullError` names the previous checkpoint.
"""

from __future__ import annotations

import json
import numbers
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
from ray.tune.utils import flatten_dict

from rllib_mwm.core.replay.store import DiskFullError, is_disk_full

#: Written into a checkpoint after Tune copied it into the trial directory:
#: its presence means the copy is whole; it holds the result's scalar metrics.
RESUME_FILE = "mwm_resume.json"


def write_resume_file(checkpoint_dir: str, metrics: dict) -> None:
    """Tune's scalar metrics of the checkpoint's iteration, flattened as Tune
    flattens them (`env_runners/episode_return_mean`: what a
    `checkpoint_score_attribute` names), without the config; written atomically.
    `Trainable.restore` reads `training_iteration`, `time_total_s`, ... from them."""
    flat = flatten_dict({k: v for k, v in metrics.items() if k != "config"})
    scalars = {
        key: value
        for key, value in flat.items()
        if isinstance(value, (numbers.Number, str)) and not isinstance(value, bool)
    }
    partial = os.path.join(checkpoint_dir, RESUME_FILE + ".partial")
    with open(partial, "w") as f:
        json.dump(scalars, f, default=_plain)
    os.replace(partial, os.path.join(checkpoint_dir, RESUME_FILE))


def _plain(value):
    """NumPy scalars (Tune's counters can be) as Python numbers."""
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def complete_checkpoints(trial_dir: str | Path) -> list[tuple[Path, dict]]:
    """The trial's whole checkpoints, oldest first, with their metrics."""
    found = []
    for path in sorted(Path(trial_dir).glob("checkpoint_*")):
        try:
            found.append((path, json.loads((path / RESUME_FILE).read_text())))
        except (OSError, json.JSONDecodeError):
            continue
    return found


class MWMCheckpoints:
    """`MWM`'s state beyond RLlib's (`progress`, the replay) and Tune's `save`
    with the resume mark and disk-full handling. Mixed into `MWM` before
    `Algorithm`, whose methods `super()` reaches."""

    def get_state(self, components=None, *, not_components=None, **kwargs):
        state = super().get_state(components, not_components=not_components, **kwargs)
        state["mwm_progress"] = dict(self.progress)
        if self._check_component("replay", components, not_components):
            state["replay"] = self.replay_buffer.get_state()
        return state

    def set_state(self, state) -> None:
        super().set_state(state)
        if "mwm_progress" in state:
            self.progress.update(state["mwm_progress"])
        if "replay" in state:
            self.replay_buffer.set_state(state["replay"])

    def get_checkpointable_components(self):
        return [
            *super().get_checkpointable_components(),
            ("replay", self.replay_buffer),
        ]

    def save(self, checkpoint_dir: str | None = None):
        """Tune's checkpoint: `save_checkpoint` into a temporary directory, then a
        copy into the trial directory. Out of disk, the half-written copy and the
        temporary directory are removed and the error names the previous
        checkpoint, which is intact (its episode files too: `MWMReplayBuffer`)."""
        storage = getattr(self, "_storage", None)
        # Tune's own temporary directory would stay behind on failure.
        temporary = tempfile.mkdtemp() if storage and not checkpoint_dir else None
        index = storage.current_checkpoint_index if storage else None
        target = checkpoint_dir or temporary
        try:
            result = super().save(target)
            saved = getattr(result.checkpoint, "path", None)
            if saved and os.path.isdir(saved):
                # Last: the copy is whole. Out of disk here, it goes (below).
                write_resume_file(saved, result.metrics)
        except OSError as error:
            if not is_disk_full(error):
                raise
            previous = self._last_checkpoint
            if storage is not None and storage.current_checkpoint_index != index:
                # The copy into the trial directory had begun: remove it.
                target = storage.checkpoint_fs_path
                if self._trial_dir() == storage.trial_fs_path:  # Local storage.
                    shutil.rmtree(target, ignore_errors=True)
                    complete = complete_checkpoints(storage.trial_fs_path)
                    previous = previous or (str(complete[-1][0]) if complete else None)
            previous = previous or "the newest one in the trial directory"
            raise DiskFullError(
                f"checkpoint {target} not written: no space left on device; the "
                f"previous checkpoint is intact: {previous}; free disk space, then "
                "resume (rllib train ... --resume)"
            ) from error
        finally:
            if temporary is not None:
                shutil.rmtree(temporary, ignore_errors=True)
        self._last_checkpoint = saved
        return result
