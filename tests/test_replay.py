"""MWMReplayBuffer: alignment of env-runner chunks, sampling, eviction, memory."""

from __future__ import annotations

import gc
import tracemalloc

import numpy as np
import pytest
from ray.rllib.env.single_agent_episode import SingleAgentEpisode

from rllib_mwm.replay import KEYS, MWMReplayBuffer, episode_chunk_arrays

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


def start_histogram(prioritize_ends: bool, total=41, length=10, n=20_000):
    replay = MWMReplayBuffer(capacity=10_000, prioritize_ends=prioritize_ends, seed=1)
    replay.add(runner_chunks(total - 1, cut_every=100))
    starts = np.concatenate(
        [replay.sample(500, length)["obs"][:, 0, 0, 0, 0] for _ in range(n // 500)]
    )
    return np.bincount(starts.astype(int), minlength=total - length + 1) / n


def test_uniform_starts_without_prioritize_ends():
    hist = start_histogram(False)
    np.testing.assert_allclose(hist, 1 / 32, atol=0.01)


def test_prioritize_ends_puts_extra_mass_on_the_last_start():
    # randint(total - T + 1 + T) clipped to total - T: the last start gets T + 1
    # of the total - T + 1 + T equally likely draws (spec §6).
    hist = start_histogram(True)
    np.testing.assert_allclose(hist[:-1], 1 / 42, atol=0.01)
    assert hist[-1] == pytest.approx(11 / 42, abs=0.02)


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
    with pytest.raises(ValueError, match="no episode of >= 16 steps"):
        replay.sample(2, 16)


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
    replay = MWMReplayBuffer(capacity=10_000, seed=3)
    for _ in range(3):
        replay.add(runner_chunks(30, cut_every=8))
    state = replay.get_state()
    restored = MWMReplayBuffer(**replay.get_ctor_args_and_kwargs()[1])
    restored.set_state(state)
    assert restored.num_steps == replay.num_steps
    for key in replay.episodes:
        for name in KEYS:
            np.testing.assert_array_equal(
                restored.episodes[key][name], replay.episodes[key][name]
            )
    a, b = replay.sample(4, 8), restored.sample(4, 8)
    np.testing.assert_array_equal(a["obs"], b["obs"])
