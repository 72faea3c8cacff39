"""`MWMReplayBuffer`: the core `ReplayBuffer` as an RLlib `Checkpointable`, the
`replay` component of MWM's checkpoints (docs/algorithm.md §6)."""

from __future__ import annotations

from pathlib import Path

from ray.rllib.utils.checkpoints import Checkpointable

from rllib_mwm.core.replay.buffer import ReplayBuffer


class MWMReplayBuffer(ReplayBuffer, Checkpointable):
    """`ReplayBuffer` saved and restored by RLlib. With a `directory` a checkpoint
    lists the episode files, and writing one deletes the files neither it nor
    the previous one lists (`checkpoint_written`)."""

    def restore_from_path(self, path, *args, **kwargs) -> None:
        """Also looks for the episode files in `<path>/../../replay`: a
        checkpoint's replay component under a moved trial directory."""
        self._restore_hint = Path(path).absolute().parent.parent / "replay"
        try:
            super().restore_from_path(path, *args, **kwargs)
        finally:
            self._restore_hint = None

    def save_to_path(self, path=None, *, state=None, **kwargs) -> str:
        """Writes the state (a list of files with a store); then deletes the
        files of evicted episodes that neither this nor the previous checkpoint
        lists."""
        state = self.get_state() if state is None else state
        path = super().save_to_path(path, state=state, **kwargs)
        self.checkpoint_written(state)
        return path

    def get_ctor_args_and_kwargs(self):
        return (
            (),
            {
                "capacity": self.capacity,
                "minlen": self.minlen,
                "maxlen": self.maxlen,
                "prioritize_ends": self.prioritize_ends,
                "directory": None if self.store is None else str(self.store.directory),
            },
        )
