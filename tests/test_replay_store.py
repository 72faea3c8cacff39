"""Replay persistence: episode files, checkpoints that list them, eviction,
restore elsewhere, and the RAM/disk plan (rllib_mwm.core.replay.store)."""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import numpy as np
import pytest

from rllib_mwm.core.replay.buffer import KEYS
from rllib_mwm.core.replay.store import bytes_per_step, check_replay_fits
from rllib_mwm.rllib.replay import MWMReplayBuffer

FRAME = (64, 64, 3)


def episode(steps: int, seed: int) -> dict[str, np.ndarray]:
    """`steps` + 1 stored steps of random frames (which do not compress)."""
    rng = np.random.default_rng(seed)
    n = steps + 1
    return {
        "obs": rng.integers(0, 256, (n, *FRAME), dtype=np.uint8),
        "actions": rng.uniform(-1, 1, (n, 4)).astype(np.float32),
        "rewards": rng.uniform(0, 1, n).astype(np.float32),
        "is_first": np.arange(n) == 0,
        "is_terminal": np.arange(n) == n - 1,
        "success": rng.uniform(size=n) < 0.1,
    }


def buffer(directory, capacity=10_000, seed=0) -> MWMReplayBuffer:
    return MWMReplayBuffer(capacity, minlen=8, maxlen=8, seed=seed, directory=directory)


def files(directory: Path) -> set[str]:
    return {p.name for p in Path(directory).glob("*.npz")}


def assert_same_buffer(a: MWMReplayBuffer, b: MWMReplayBuffer) -> None:
    assert list(a.episodes) == list(b.episodes)
    for key in a.episodes:
        for name in KEYS:
            x, y = a.episodes[key][name], b.episodes[key][name]
            assert x.dtype == y.dtype and x.tobytes() == y.tobytes()
    assert a.num_steps == b.num_steps and a.num_steps_added == b.num_steps_added
    for length in (5, 8, 13):  # Leftover windows and the RNG carry on alike.
        x, y = a.sample(3, length), b.sample(3, length)
        for name in KEYS:
            np.testing.assert_array_equal(x[name], y[name])


def test_checkpoint_lists_files_and_restores_bitwise_elsewhere(tmp_path):
    replay = buffer(tmp_path / "run" / "replay")
    for i in range(6):
        replay.add_episode(episode(30, i))
    replay.sample(3, 5)  # Leaves the rest of a window for the next 5-step row.
    assert len(files(tmp_path / "run" / "replay")) == 6
    path = replay.save_to_path(tmp_path / "run" / "checkpoint_1" / "replay")
    state_bytes = sum(p.stat().st_size for p in Path(path).iterdir())
    assert state_bytes < 10_000 < replay.nbytes  # A list, not the frames.

    restored = buffer(tmp_path / "other" / "replay", seed=99)
    restored.restore_from_path(path)
    # The files were brought into the new run's own directory.
    assert files(tmp_path / "other" / "replay") == files(tmp_path / "run" / "replay")
    assert_same_buffer(replay, restored)


def test_checkpoints_write_only_new_episodes(tmp_path):
    store = tmp_path / "replay"
    replay = buffer(store)
    for i in range(4):
        replay.add_episode(episode(30, i))
    replay.save_to_path(tmp_path / "c1")
    before = {p.name: p.stat().st_mtime_ns for p in store.glob("*.npz")}
    replay.add_episode(episode(30, 10))
    replay.save_to_path(tmp_path / "c2")
    after = {p.name: p.stat().st_mtime_ns for p in store.glob("*.npz")}
    assert len(after) == 5 and {k: after[k] for k in before} == before
    c1, c2 = (
        pickle.loads((tmp_path / f"c{c}" / "state.pkl").read_bytes()) for c in "12"
    )
    assert [f[1] for f in c2["files"]][:4] == [f[1] for f in c1["files"]]


def test_evicted_files_outlive_the_checkpoints_that_list_them(tmp_path):
    store = tmp_path / "replay"
    replay = buffer(store, capacity=100)  # 3 episodes of 31 steps fit
    for i in range(3):
        replay.add_episode(episode(30, i))
    first = files(store)
    replay.save_to_path(tmp_path / "c1")
    replay.add_episode(episode(30, 3))  # Evicts episode 0, listed by c1.
    assert files(store) >= first
    replay.save_to_path(tmp_path / "c2")
    replay.add_episode(episode(30, 4))  # Evicts 1: c1 and c2 list it.
    assert len(files(store)) == 5
    replay.save_to_path(tmp_path / "c3")  # c1 is no longer kept: 0 goes.
    assert len(files(store)) == 4
    replay.save_to_path(tmp_path / "c4")  # c2 neither: 1 goes.
    assert files(store) == {r[0] for r in replay.records.values()}
    # c3 (the older kept checkpoint) still restores.
    restored = buffer(tmp_path / "x", capacity=100)
    restored.restore_from_path(tmp_path / "c3")
    assert len(restored.episodes) == 3


def test_without_checkpoints_evicted_files_go_at_once(tmp_path):
    replay = buffer(tmp_path / "replay", capacity=100)
    for i in range(6):
        replay.add_episode(episode(30, i))
    assert len(files(tmp_path / "replay")) == 3


def test_missing_or_corrupt_episode_files_are_one_line_errors(tmp_path):
    replay = buffer(tmp_path / "run")
    for i in range(3):
        replay.add_episode(episode(30, i))
    replay.save_to_path(tmp_path / "ckpt")
    name = sorted(files(tmp_path / "run"))[1]
    data = bytearray((tmp_path / "run" / name).read_bytes())
    data[-100] ^= 1
    (tmp_path / "run" / name).write_bytes(bytes(data))
    with pytest.raises(ValueError, match=f"{name} is corrupt") as error:
        buffer(tmp_path / "new").restore_from_path(tmp_path / "ckpt")
    assert "\n" not in str(error.value)
    (tmp_path / "run" / name).unlink()
    with pytest.raises(FileNotFoundError) as error:
        buffer(tmp_path / "new2").restore_from_path(tmp_path / "ckpt")
    message = str(error.value)
    assert f"in {tmp_path / 'run'}, 1 are missing (e.g. {name})" in message
    assert "\n" not in message


def test_a_checkpoint_holding_the_arrays_restores_into_a_store(tmp_path):
    old = MWMReplayBuffer(10_000, minlen=8, maxlen=8, seed=0)  # No directory.
    for i in range(3):
        old.add_episode(episode(30, i))
    state = old.get_state()
    assert "episodes" in state and "files" not in state
    new = buffer(tmp_path / "replay")
    new.set_state(state)
    assert len(files(tmp_path / "replay")) == 3
    assert_same_buffer(old, new)


def test_the_plan_names_the_numbers_and_the_key(tmp_path):
    step = bytes_per_step(FRAME, 4)
    assert step == 64 * 64 * 3 + 16 + 4 + 3
    check_replay_fits(100_000, step, available_ram=2 * 10**9)
    with pytest.raises(ValueError) as error:
        check_replay_fits(2_000_000, step, available_ram=16 * 10**9)
    assert str(error.value) == (
        "replay.capacity 2,000,000 steps x 12,311 B = 24.6 GB does not fit in the "
        "16.0 GB of available RAM; lower replay.capacity (at most 1,299,650 here) "
        "or use a larger machine"
    )
    with pytest.raises(
        ValueError,
        match=r"24\.6 GB \(uncompressed\) does not fit in "
        r"the 1\.0 GB free on the disk of .*replay\.directory",
    ):
        check_replay_fits(2_000_000, step, 10**11, directory=tmp_path, free_disk=10**9)


def test_a_replay_too_large_for_this_machine_stops_before_any_env(monkeypatch):
    from ray.rllib.algorithms.algorithm import Algorithm

    from rllib_mwm import MWMConfig

    def no_env_runners(*args, **kwargs):
        raise AssertionError("Algorithm.setup (which starts the envs) ran")

    monkeypatch.setattr(Algorithm, "setup", no_env_runners)
    config = (
        MWMConfig()
        .environment("metaworld_reach")
        .preset("debug")
        .training(replay={"capacity": 10**9})  # 12 TB
    )
    with pytest.raises(ValueError) as error:
        config.build_algo()
    message = str(error.value)
    assert message.startswith(
        "replay.capacity 1,000,000,000 steps x 12,327 B = 12327.0 GB does not fit"
    )
    assert re.search(r"lower replay\.capacity \(at most [\d,]+ here\)", message)
    assert "\n" not in message
