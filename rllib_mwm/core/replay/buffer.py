"""`ReplayBuffer`: compact episodic replay for MWM (docs/algorithm.md §6); RLlib
checkpoints it as `rllib_mwm.rllib.replay.MWMReplayBuffer`.

Why not RLlib's `EpisodeReplayBuffer`: it keeps `SingleAgentEpisode` objects, i.e.
every step's info dict and module outputs (MWM's carried state is ~8 KB a step),
which would more than double the memory of 64×64 uint8 frames. Here an episode is
a handful of flat numpy arrays in MWM's alignment (`rllib_mwm.core.replay.episodes`):

    obs        (T+1, H, W, 3) uint8   frame at step t
    actions    (T+1, A) float32       action that led to step t (zeros at t = 0)
    rewards    (T+1,)   float32       reward received on arriving at step t
    is_first   (T+1,)   bool          true at t = 0 only
    is_terminal(T+1,)   bool          the env terminated at step t
    success    (T+1,)   bool          the env reported success at step t

Sampling follows the released code. A *window* is drawn from an episode picked
uniformly among all stored ones: `min(total, maxlen)` steps (shortened by
`randint(minlen)`, never below `minlen`), its start drawn by `randint(total −
len + 1 (+ minlen with prioritize_ends))` clipped to the last valid start, and
`is_first` forced on its first step. Rows are cut from the stream of such windows:
a row of T steps joins windows until it is full (`is_first` marks each join) and
the rest of the last window starts the next row, also across `sample` calls. So
episodes shorter than T are trained on, and the MAE's 32-step rows are cut from
the same `maxlen`-step windows as the world model's rows. Capacity is in steps,
evicting whole episodes oldest first. Episode chunks from env runners are joined
by episode id and stored when the episode ends, as the reference stores only
finished episodes.

With a `directory`, each stored episode is also written once as a compressed
file there (`rllib_mwm.core.replay.store`) and a checkpoint lists the files instead
of holding the arrays; without one, checkpoints hold the arrays. The file of an
evicted episode is deleted once neither of the last two checkpoints written (or
the one restored) lists it.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from pathlib import Path
from typing import Any

import numpy as np

from rllib_mwm.core.replay.store import (
    EpisodeStore,
    Record,
    find_episodes,
    read_episode,
)

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


class ReplayBuffer:
    """Finished episodes as compact arrays; FIFO by episode; uniform sampling.

    `maxlen` caps the window length (the world model's `dataset.length`); None
    caps it at the length of the rows asked for. `directory`: where episode files
    go (module docstring); None keeps checkpoints self-contained.
    """

    def __init__(
        self,
        capacity: int,
        minlen: int = 1,
        prioritize_ends: bool = True,
        seed: int | None = None,
        maxlen: int | None = None,
        directory: str | Path | None = None,
    ):
        if minlen < 1 or (maxlen is not None and maxlen < minlen):
            raise ValueError(f"need 1 <= minlen <= maxlen, got {minlen}, {maxlen}")
        self.capacity = int(capacity)
        self.minlen = int(minlen)
        self.maxlen = None if maxlen is None else int(maxlen)
        self.prioritize_ends = bool(prioritize_ends)
        self.rng = np.random.default_rng(seed)
        self.episodes: OrderedDict[str, Episode] = OrderedDict()
        self._ongoing: dict[str, list[Episode]] = {}
        #: Row length → rest of the window the last row of that length cut:
        #: (episode key, start, steps).
        self._rest: dict[int, tuple[str, int, int]] = {}
        self.num_steps = 0
        self.num_steps_added = 0
        self.num_episodes_added = 0
        self.store = None if directory is None else EpisodeStore(directory)
        #: Episode key → its file (with a store).
        self.records: dict[str, Record] = {}
        #: Files listed by the last two checkpoints written or restored, and files
        #: of evicted episodes that one of those still lists.
        self._listed: deque[frozenset[str]] = deque(maxlen=2)
        self._evicted: list[str] = []

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

    def drop_unfinished(self, keep: set[str]) -> int:
        """Forgets the unfinished episodes whose ids are not in `keep` (those of an
        env runner that died: its next chunks never come); returns how many."""
        dropped = [key for key in self._ongoing if key not in keep]
        for key in dropped:
            del self._ongoing[key]
        return len(dropped)

    def add_episode(self, episode: Episode, key: str | None = None) -> None:
        """Stores one whole episode (arrays as in the module docstring)."""
        length = len(episode["obs"])
        if not episode["is_first"][0]:
            raise ValueError("an episode must start with is_first (a reset frame)")
        if length < self.minlen:
            return  # The reference skips episodes shorter than `minlen`.
        key = key or f"episode_{self.num_episodes_added}"
        arrays = {k: np.ascontiguousarray(episode[k]) for k in KEYS}
        if self.store is not None:  # First, so that a failed write changes nothing.
            self.records[key] = self.store.write(arrays, self.num_episodes_added)
        self.episodes[key] = arrays
        self.num_steps += length
        self.num_steps_added += length
        self.num_episodes_added += 1
        while self.num_steps > self.capacity and len(self.episodes) > 1:
            old_key, old = self.episodes.popitem(last=False)
            self.num_steps -= len(old["obs"])
            if old_key in self.records:
                self._evicted.append(self.records.pop(old_key)[0])
        if self._evicted:
            self._delete_unlisted()

    def _delete_unlisted(self) -> None:
        """Deletes the files of evicted episodes no kept checkpoint lists."""
        listed = frozenset().union(*self._listed)
        for name in [n for n in self._evicted if n not in listed]:
            self.store.delete(name)
        self._evicted = [n for n in self._evicted if n in listed]

    # -------------------------------------------------------------- sampling
    def sample(self, batch: int, length: int) -> dict[str, np.ndarray]:
        """`batch` rows of exactly `length` steps, (B, T, ...) arrays, cut in order
        from the stream of windows (module docstring)."""
        if not self.episodes:
            raise ValueError(
                "the replay holds no episode yet; raise `prefill` (episodes shorter "
                "than `replay.minlen` are not stored)"
            )
        keys = list(self.episodes)
        first = self.episodes[keys[0]]
        rows = {
            k: np.empty((batch, length, *v.shape[1:]), v.dtype)
            for k, v in first.items()
        }
        rest = self._rest.pop(length, None)
        if rest is not None and rest[0] not in self.episodes:
            rest = None  # Evicted since.
        for b in range(batch):
            filled = 0
            while filled < length:
                fresh = rest is None
                if fresh:
                    rest = self._window(keys, self.maxlen or length)
                key, start, steps = rest
                n = min(steps, length - filled)
                episode = self.episodes[key]
                for k, column in rows.items():
                    column[b, filled : filled + n] = episode[k][start : start + n]
                if fresh:
                    rows["is_first"][b, filled] = True
                filled += n
                rest = (key, start + n, steps - n) if n < steps else None
        if rest is not None:
            self._rest[length] = rest
        return rows

    def _window(self, keys: list[str], maxlen: int) -> tuple[str, int, int]:
        """(episode key, start, steps) of a new window, as the released code."""
        key = keys[int(self.rng.integers(len(keys)))]
        total = len(self.episodes[key]["obs"])
        steps = min(total, maxlen) - int(self.rng.integers(self.minlen))
        steps = max(self.minlen, steps)
        upper = total - steps + 1 + (self.minlen if self.prioritize_ends else 0)
        start = min(int(self.rng.integers(upper)), total - steps)
        return key, start, steps

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
        """Stored episodes (not unfinished chunks: env runners restart episodes):
        with a store the list of their files, else the arrays."""
        state = {
            "num_steps_added": self.num_steps_added,
            "num_episodes_added": self.num_episodes_added,
            "rng": self.rng.bit_generator.state,
            "rest": dict(self._rest),
        }
        if self.store is None:
            state["episodes"] = [(k, dict(e)) for k, e in self.episodes.items()]
        else:
            state["directory"] = str(self.store.directory)
            state["files"] = [(k, *self.records[k]) for k in self.episodes]
        return state

    def set_state(self, state: dict[str, Any]) -> None:
        if "files" in state:
            episodes = self._read_files(state)
        else:
            episodes = [(k, dict(e)) for k, e in state["episodes"]]
        self.episodes = OrderedDict(episodes)
        self.num_steps = sum(len(e["obs"]) for e in self.episodes.values())
        self.num_steps_added = state["num_steps_added"]
        self.num_episodes_added = state["num_episodes_added"]
        self.rng.bit_generator.state = state["rng"]
        self._rest = dict(state.get("rest", {}))
        self._ongoing = {}
        self._evicted = []
        self._listed.clear()
        if self.store is None:
            self.records = {}
            return
        if "files" in state:
            self.records = {k: tuple(r) for k, *r in state["files"]}
        else:  # A checkpoint holding the arrays: write them once.
            self.records = {
                k: self.store.write(e, i) for i, (k, e) in enumerate(episodes)
            }
        self._listed.append(frozenset(r[0] for r in self.records.values()))

    def _read_files(self, state: dict[str, Any]) -> list[tuple[str, Episode]]:
        """The listed episodes from the checkpoint's directory, else from this
        buffer's or `_restore_hint` (the run moved); copied into this store."""
        records = [(name, steps, crc) for _, name, steps, crc in state["files"]]
        candidates = [Path(state["directory"])]
        for other in (self.store, self._restore_hint):
            directory = getattr(other, "directory", other)
            if directory is not None:
                candidates.append(Path(directory))
        source = find_episodes(candidates, records)
        if self.store is not None and source != self.store.directory:
            self.store.adopt(source, [r[0] for r in records])
        return [
            (key, read_episode(source, record))
            for (key, *_), record in zip(state["files"], records, strict=True)
        ]

    _restore_hint: Path | None = None

    def checkpoint_written(self, state: dict[str, Any]) -> None:
        """`state` (from `get_state`) was written as a checkpoint: deletes the
        files of evicted episodes that neither it nor the previous one lists."""
        if self.store is not None:
            self._listed.append(frozenset(f[1] for f in state["files"]))
            self._delete_unlisted()
