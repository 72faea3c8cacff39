"""`MWMReplayBuffer`: compact episodic replay for MWM (MWM_SPEC §6).

Why not RLlib's `EpisodeReplayBuffer`: it keeps `SingleAgentEpisode` objects, i.e.
every step's info dict and module outputs (MWM's carried state is ~8 KB a step),
which would more than double the memory of 64×64 uint8 frames. Here an episode is
a handful of flat numpy arrays in MWM's alignment (`rllib_mwm.episodes`):

    obs        (T+1, H, W, 3) uint8   frame at step t
    actions    (T+1, A) float32       action that led to step t (zeros at t = 0)
    rewards    (T+1,)   float32       reward received on arriving at step t
    is_first   (T+1,)   bool          true at t = 0 only
    is_terminal(T+1,)   bool          the env terminated at step t
    success    (T+1,)   bool          the env reported success at step t

Sampling follows the reference: an episode uniformly at random among those with at
least T steps, a start index (`prioritize_ends` favours the end), exactly T steps,
`is_first` forced on the first. Capacity is in steps, evicting whole episodes
oldest first. Episode chunks from env runners are joined by episode id and stored
when the episode ends, as the reference stores only finished episodes.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import numpy as np
from ray.rllib.utils.checkpoints import Checkpointable

Episode = dict[str, np.ndarray]
KEYS = ("obs", "actions", "rewards", "is_first", "is_terminal", "success")


def episode_chunk_arrays(chunk) -> Episode:
    """One `SingleAgentEpisode` chunk → arrays in MWM's alignment.

    The first chunk of an episode (`t_started == 0`) contributes its reset frame
    with a zero action; later chunks start with the frame the previous chunk ended
    on, which is skipped.
    """
    obs = np.asarray(chunk.get_observations(), np.uint8)  # (n+1, H, W, 3)
    infos = chunk.get_infos()
    actions = np.asarray(chunk.get_actions(), np.float32).reshape(len(chunk), -1)
    n = len(chunk)
    success = np.array([bool(i.get("success", False)) for i in infos], bool)
    arrays = {
        "obs": obs,
        "actions": np.concatenate([np.zeros_like(actions[:1]), actions]),
        "rewards": np.concatenate([[0.0], chunk.get_rewards()]).astype(np.float32),
        "is_first": np.zeros(n + 1, bool),
        "is_terminal": np.zeros(n + 1, bool),
        "success": success,
    }
    arrays["is_first"][0] = True
    arrays["is_terminal"][-1] = bool(chunk.is_terminated)
    if chunk.t_started > 0:
        arrays = {k: v[1:] for k, v in arrays.items()}
    return arrays


class MWMReplayBuffer(Checkpointable):
    """Finished episodes as compact arrays; FIFO by episode; uniform sampling."""

    def __init__(
        self,
        capacity: int,
        minlen: int = 1,
        prioritize_ends: bool = True,
        seed: int | None = None,
    ):
        self.capacity = int(capacity)
        self.minlen = int(minlen)
        self.prioritize_ends = bool(prioritize_ends)
        self.rng = np.random.default_rng(seed)
        self.episodes: OrderedDict[str, Episode] = OrderedDict()
        self._ongoing: dict[str, list[Episode]] = {}
        self.num_steps = 0
        self.num_steps_added = 0
        self.num_episodes_added = 0

    # --------------------------------------------------------------- adding
    def add(self, chunks) -> int:
        """Adds env-runner episode chunks; returns the number of new agent steps."""
        new_steps = 0
        for chunk in chunks:
            arrays = episode_chunk_arrays(chunk)
            new_steps += len(chunk)
            parts = self._ongoing.setdefault(chunk.id_, [])
            parts.append(arrays)
            if chunk.is_done:
                del self._ongoing[chunk.id_]
                self.add_episode(
                    {k: np.concatenate([p[k] for p in parts]) for k in KEYS}, chunk.id_
                )
        return new_steps

    def add_episode(self, episode: Episode, key: str | None = None) -> None:
        """Stores one whole episode (arrays as in the module docstring)."""
        length = len(episode["obs"])
        if not episode["is_first"][0]:
            raise ValueError("an episode must start with is_first (a reset frame)")
        if length < self.minlen:
            return  # The reference skips episodes shorter than `minlen`.
        key = key or f"episode_{self.num_episodes_added}"
        self.episodes[key] = {k: np.ascontiguousarray(episode[k]) for k in KEYS}
        self.num_steps += length
        self.num_steps_added += length
        self.num_episodes_added += 1
        while self.num_steps > self.capacity and len(self.episodes) > 1:
            _, old = self.episodes.popitem(last=False)
            self.num_steps -= len(old["obs"])

    # -------------------------------------------------------------- sampling
    def sample(self, batch: int, length: int) -> dict[str, np.ndarray]:
        """`batch` sequences of exactly `length` steps, (B, T, ...) arrays."""
        usable = [e for e in self.episodes.values() if len(e["obs"]) >= length]
        if not usable:
            raise ValueError(
                f"the replay holds no episode of >= {length} steps yet "
                f"({len(self.episodes)} episodes, {self.num_steps} steps); raise "
                "`prefill` or lower `dataset.length` / `mae_dataset.length`"
            )
        picks = self.rng.integers(len(usable), size=batch)
        rows = [self._sequence(usable[i], length) for i in picks]
        return {k: np.stack([row[k] for row in rows]) for k in KEYS}

    def _sequence(self, episode: Episode, length: int) -> Episode:
        total = len(episode["obs"])
        upper = total - length + 1
        if self.prioritize_ends:
            upper += length
        start = min(int(self.rng.integers(upper)), total - length)
        row = {k: v[start : start + length] for k, v in episode.items()}
        row["is_first"] = row["is_first"].copy()
        row["is_first"][0] = True
        return row

    # ----------------------------------------------------------------- stats
    @property
    def nbytes(self) -> int:
        """Bytes held by the stored arrays (what capacity planning needs)."""
        return sum(a.nbytes for e in self.episodes.values() for a in e.values())

    def get_metrics(self) -> dict[str, float]:
        return {
            "num_steps": self.num_steps,
            "num_episodes": len(self.episodes),
            "num_steps_added_lifetime": self.num_steps_added,
            "num_bytes": self.nbytes,
        }

    def __len__(self) -> int:
        return self.num_steps

    # ----------------------------------------------------------- checkpoints
    def get_state(self, components=None, *, not_components=None, **kwargs) -> dict:
        """Stored episodes (not unfinished chunks: env runners restart episodes)."""
        return {
            "episodes": [(k, dict(e)) for k, e in self.episodes.items()],
            "num_steps_added": self.num_steps_added,
            "num_episodes_added": self.num_episodes_added,
            "rng": self.rng.bit_generator.state,
        }

    def set_state(self, state: dict[str, Any]) -> None:
        self.episodes = OrderedDict((k, dict(e)) for k, e in state["episodes"])
        self.num_steps = sum(len(e["obs"]) for e in self.episodes.values())
        self.num_steps_added = state["num_steps_added"]
        self.num_episodes_added = state["num_episodes_added"]
        self.rng.bit_generator.state = state["rng"]
        self._ongoing = {}

    def get_ctor_args_and_kwargs(self):
        return (
            (),
            {
                "capacity": self.capacity,
                "minlen": self.minlen,
                "prioritize_ends": self.prioritize_ends,
            },
        )
