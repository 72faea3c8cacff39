"""MWMReplayBuffer: alignment of env-runner chunks, sampling, eviction, memory."""

from __future__ import annotations

import gc
import tracemalloc

import numpy as np
import pytest
from ray.rllib.env.single_agent_episode import SingleAgentEpisode
from scipy import stats

from rllib_mwm.core.replay.buffer import KEYS, episode_chunk_arrays
from rllib_mwm.rllib.replay import MWMReplayBuffer

FRAME = (64, 64, 3)


def frame(t: int) -> np.ndarray:
    """A frame whose pixels encode the step index t."""
    return np.full(FRAME, t % 256, np.uint8)


def runner_chunks(steps: int, cut_every: int, success_at=None, terminated=False):
    """Chunks as a SingleAgentEnvRunner returns them: RLlib episodes cut every
    `cut_every` steps, with info dicts and per-step module outputs. Action t is
    (t, -t) and its reward 10·t, taken at frame t and leading to frame t+1."""
    episode = SingleAgentEpisode()
    episode.add_env_reset(observation=frame(0), infos={"success": False})
    chunks = []
    for t in range(steps):
        last = t == steps - 1
        episode.add_env_step(
            observation=frame(t + 1),
            action=np.array([t, -t], np.float32),
            reward=10.0 * t,
            infos={"success": t + 1 == success_at, "near_object": 0.5},
            terminated=terminated and last,
            truncated=not terminated and last,
            extra_model_outputs={"state_out": np.zeros(2048, np.float32)},
        )
        if last or (t + 1) % cut_every == 0:
            successor = None if last else episode.cut(len_lookback_buffer=1)
            chunks.append(episode.to_numpy())
            episode = successor
    return chunks


def test_chunks_are_joined_in_mwm_alignment():
    replay = MWMReplayBuffer(capacity=10_000)
    chunks = runner_chunks(23, cut_every=5, success_at=7, terminated=True)
    assert replay.add(chunks[:-1]) == 20
    assert replay.num_steps == 0  # Unfinished episodes are not sampled from.
    replay.add(chunks[-1:])
    (episode,) = replay.episodes.values()
    assert len(episode["obs"]) == 24
    np.testing.assert_array_equal(episode["obs"][:, 0, 0, 0], np.arange(24))
    # Step t holds the action that led to it: zero first, then (t-1, 1-t).
    np.testing.assert_array_equal(episode["actions"][0], [0, 0])
    np.testing.assert_array_equal(episode["actions"][1:, 0], np.arange(23))
    np.testing.assert_array_equal(episode["rewards"], [0, *(10.0 * np.arange(23))])
    assert episode["is_first"].tolist() == [True] + [False] * 23
    assert episode["is_terminal"].tolist() == [False] * 23 + [True]
    assert np.flatnonzero(episode["success"]).tolist() == [7]


def test_truncated_episode_is_not_terminal():
    arrays = episode_chunk_arrays(runner_chunks(4, cut_every=10)[0])
    assert not arrays["is_terminal"].any()


def test_sequences_are_contiguous_with_is_first_forced():
    replay = MWMReplayBuffer(capacity=10_000, seed=0)
    for _ in range(3):
        replay.add(runner_chunks(40, cut_every=7))
    batch = replay.sample(32, 10)
    assert batch["obs"].shape == (32, 10, *FRAME)
    assert set(batch) == set(KEYS)
    steps = batch["obs"][:, :, 0, 0, 0].astype(int)
    np.testing.assert_array_equal(np.diff(steps, axis=1), 1)
    assert batch["is_first"][:, 0].all()
    # Inside a sequence is_first is only true where the episode really started.
    np.testing.assert_array_equal(batch["is_first"][:, 1:], steps[:, 1:] == 0)


def indexed_episode(steps: int, terminal: bool = False) -> dict[str, np.ndarray]:
    """A stored episode of `steps` + 1 steps whose rewards are the step index t,
    with success and is_terminal on the last step if `terminal`."""
    n = steps + 1
    episode = {
        "obs": np.zeros((n, 1, 1, 3), np.uint8),
        "actions": np.zeros((n, 2), np.float32),
        "rewards": np.arange(n, dtype=np.float32),
        "is_first": np.arange(n) == 0,
        "is_terminal": np.zeros(n, bool),
        "success": np.zeros(n, bool),
    }
    episode["is_terminal"][-1] = episode["success"][-1] = terminal
    return episode


def start_counts(replay, batch, length, draws):
    """Histogram of the first step index of `draws` sampled rows."""
    starts = np.concatenate(
        [replay.sample(batch, length)["rewards"][:, 0] for _ in range(draws // batch)]
    ).astype(int)
    return np.bincount(starts)


def start_probabilities(total: int, length: int, bonus: int) -> np.ndarray:
    """The released code's start index: min(randint(total − T + 1 + bonus),
    total − T), for windows of exactly T steps."""
    upper = total - length + 1 + bonus
    probs = np.full(total - length + 1, 1 / upper)
    probs[-1] = (upper - (total - length)) / upper
    return probs


@pytest.mark.parametrize(
    "total, prioritize_ends",
    [(251, True), (501, False)],  # Meta-world (250 steps), DMC (1000 frames / 2)
    ids=["metaworld", "dmc"],
)
def test_full_length_episodes_keep_one_window_per_row(total, prioritize_ends):
    """minlen = T = 50: every row is one window and the starts follow
    randint(total − T + 1 + T) clipped, as before the short-episode fix."""
    replay = MWMReplayBuffer(
        capacity=10**6, minlen=50, maxlen=50, prioritize_ends=prioritize_ends, seed=0
    )
    for _ in range(3):
        replay.add_episode(indexed_episode(total - 1))
    batch = replay.sample(50, 50)
    np.testing.assert_array_equal(np.diff(batch["rewards"], axis=1), 1)
    assert batch["is_first"][:, 0].all() and not batch["is_first"][:, 1:].any()
    counts = start_counts(replay, 50, 50, 50_000)
    assert len(counts) <= total - 50 + 1
    expected = start_probabilities(total, 50, 50 if prioritize_ends else 0)
    observed = np.pad(counts, (0, len(expected) - len(counts)))
    assert stats.chisquare(observed, expected * observed.sum()).pvalue > 1e-3


def test_prioritize_ends_adds_minlen_not_the_row_length():
    # rlbench: minlen 1, so the last start gets 2 of total − T + 2 draws.
    replay = MWMReplayBuffer(capacity=10**6, minlen=1, maxlen=50, seed=0)
    replay.add_episode(indexed_episode(99))
    counts = start_counts(replay, 50, 50, 30_000)
    expected = start_probabilities(100, 50, 1)
    observed = np.pad(counts, (0, len(expected) - len(counts)))
    assert stats.chisquare(observed, expected * observed.sum()).pvalue > 1e-3


def test_short_episodes_are_joined_into_full_rows():
    """rlbench: episodes end on success before T steps; their last (success and
    terminal) steps must reach the world model."""
    replay = MWMReplayBuffer(capacity=10**6, minlen=1, maxlen=50, seed=0)
    for steps in (7, 12, 20):
        replay.add_episode(indexed_episode(steps, terminal=True))
    batch = replay.sample(16, 50)
    assert batch["rewards"].shape == (16, 50)
    # Rows are consecutive pieces of one stream of whole episodes (a short
    # episode is its own window): t counts 0, 1, ..., last, then 0 again.
    t = batch["rewards"].reshape(-1).astype(int)
    is_first = batch["is_first"].reshape(-1)
    assert t[0] == 0
    ends = np.flatnonzero(np.diff(t) != 1)
    assert (t[ends + 1] == 0).all() and set(t[ends]) <= {7, 12, 20}
    np.testing.assert_array_equal(is_first, t == 0)
    np.testing.assert_array_equal(batch["is_terminal"].reshape(-1)[ends], True)
    np.testing.assert_array_equal(batch["success"], batch["is_terminal"])


def test_mae_rows_are_cut_from_the_world_model_windows():
    """MAE rows (32 steps) continue the 50-step windows the world model samples:
    the stream of rows holds whole windows, not windows of 32."""
    replay = MWMReplayBuffer(capacity=10**6, minlen=50, maxlen=50, seed=0)
    for _ in range(4):
        replay.add_episode(indexed_episode(100))
    first = replay.sample(3, 32)
    second = replay.sample(3, 32)  # The rest of the last window comes first.
    is_first = np.concatenate([first["is_first"], second["is_first"]]).reshape(-1)
    t = np.concatenate([first["rewards"], second["rewards"]]).reshape(-1)
    np.testing.assert_array_equal(np.flatnonzero(is_first), [0, 50, 100, 150])
    for window in np.split(t, [50, 100, 150]):
        np.testing.assert_array_equal(np.diff(window), 1)


def test_sampling_a_row_length_above_maxlen_joins_windows():
    replay = MWMReplayBuffer(capacity=10**6, minlen=10, maxlen=10, seed=0)
    replay.add_episode(indexed_episode(40))
    batch = replay.sample(2, 25)
    np.testing.assert_array_equal(
        np.flatnonzero(batch["is_first"].reshape(-1)), [0, 10, 20, 30, 40]
    )


def test_capacity_evicts_oldest_episodes_first():
    replay = MWMReplayBuffer(capacity=100)
    ids = []
    for _ in range(4):  # 31 stored steps each
        chunks = runner_chunks(30, cut_every=50)
        ids.append(chunks[0].id_)
        replay.add(chunks)
    assert list(replay.episodes) == ids[1:]
    assert replay.num_steps == 93 and replay.num_episodes_added == 4


def test_minlen_skips_short_episodes_and_sampling_explains_itself():
    replay = MWMReplayBuffer(capacity=1000, minlen=20)
    replay.add(runner_chunks(10, cut_every=50))
    assert replay.num_steps == 0
    with pytest.raises(ValueError, match="no episode yet"):
        replay.sample(2, 16)
    with pytest.raises(ValueError, match="minlen <= maxlen"):
        MWMReplayBuffer(capacity=1000, minlen=20, maxlen=10)


def test_memory_is_the_raw_bytes_of_the_stored_steps():
    """Spec budget: at most 1.1 × 64·64·3 + small scalars per stored step, and no
    info dicts or module outputs kept (they are ~8 KB a step in RLlib episodes)."""
    episodes = [runner_chunks(100, cut_every=25) for _ in range(5)]
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    replay = MWMReplayBuffer(capacity=10_000)
    for chunks in episodes:
        replay.add(chunks)
    del episodes, chunks
    gc.collect()
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    per_step = held / replay.num_steps
    scalars = 2 * 4 + 4 + 3  # actions (A = 2), reward, three flags
    assert per_step <= 1.1 * np.prod(FRAME) + scalars
    assert replay.nbytes == replay.num_steps * (np.prod(FRAME) + scalars)


def test_state_round_trip_restores_contents_and_sampling():
    replay = MWMReplayBuffer(capacity=10_000, minlen=8, maxlen=8, seed=3)
    for _ in range(3):
        replay.add(runner_chunks(30, cut_every=8))
    replay.sample(3, 5)  # Leaves the rest of a window for the next 5-step row.
    state = replay.get_state()
    restored = MWMReplayBuffer(**replay.get_ctor_args_and_kwargs()[1])
    restored.set_state(state)
    assert restored.num_steps == replay.num_steps
    for key in replay.episodes:
        for name in KEYS:
            np.testing.assert_array_equal(
                restored.episodes[key][name], replay.episodes[key][name]
            )
    for length in (5, 8):
        a, b = replay.sample(4, length), restored.sample(4, length)
        for name in KEYS:
            np.testing.assert_array_equal(a[name], b[name])
